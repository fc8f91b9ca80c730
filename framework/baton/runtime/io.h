// Awaiting one kernel operation from a coroutine.
//
// `co_await Io([&](io_uring_sqe* sqe) { io_uring_prep_connect(sqe, ...); })`
// submits the prepared SQE and resumes with the CQE's `res` (negative errno
// on failure). The record lives in the awaiting frame: no allocation. If the
// chain's StopState is stopped while waiting, the operation is cancelled and
// the frame is still resumed exactly once, by the final CQE, whose `res` says
// what really happened (-ECANCELED, or a result that beat the cancel). If the
// chain was already stopped, nothing is submitted and `res` is -ECANCELED.
//
// For the framework's layers; applications see Connection, Listener, timers.
#ifndef BATON_RUNTIME_IO_H_
#define BATON_RUNTIME_IO_H_

#include <cerrno>
#include <coroutine>
#include <cstdint>
#include <utility>

#include "baton/runtime/reactor.h"
#include "baton/runtime/stop.h"
#include "baton/runtime/task.h"

namespace baton {

template <typename Prep>
class IoAwaiter : private Operation, private StopCallback {
 public:
  explicit IoAwaiter(Prep prep)
      : Operation(&IoAwaiter::OnComplete), prep_(std::move(prep)) {
    on_stop = &IoAwaiter::OnStop;
  }

  bool await_ready() noexcept { return false; }

  template <typename P>
  bool await_suspend(std::coroutine_handle<P> waiter) {
    stop_ = internal::StopStateOf(waiter);
    if (stop_ != nullptr && stop_->stop_requested()) {
      res_ = -ECANCELED;
      return false;
    }
    reactor_ = Reactor::Current();
    prep_(reactor_->PrepareSqe(this));
    waiter_ = waiter;
    if (stop_ != nullptr) stop_->Register(this);
    return true;
  }

  int32_t await_resume() noexcept { return res_; }
  uint32_t flags() const { return flags_; }

 private:
  static void OnComplete(Operation* op, int32_t res, uint32_t flags) {
    auto* self = static_cast<IoAwaiter*>(op);
    self->res_ = res;
    self->flags_ = flags;
    if (self->stop_ != nullptr) self->stop_->Unregister(self);
    self->waiter_.resume();
  }
  static void OnStop(StopCallback* cb) {
    auto* self = static_cast<IoAwaiter*>(cb);
    self->reactor_->CancelOperation(self);
  }

  Prep prep_;
  Reactor* reactor_ = nullptr;
  StopState* stop_ = nullptr;
  std::coroutine_handle<> waiter_;
  int32_t res_ = 0;
  uint32_t flags_ = 0;
};

template <typename Prep>
IoAwaiter<Prep> Io(Prep prep) {
  return IoAwaiter<Prep>(std::move(prep));
}

}  // namespace baton

#endif  // BATON_RUNTIME_IO_H_
