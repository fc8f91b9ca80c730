// Awaiting one kernel operation from a coroutine.
//
// `co_await Io(IoRequest::Connect(fd, addr, len))` submits the operation to
// the reactor's backend and resumes with its result `res` (negative errno on
// failure). The record lives in the awaiting frame: no allocation. If the
// chain's StopState is stopped while waiting, the operation is cancelled and
// the frame is still resumed exactly once, by the final completion, whose
// `res` says what really happened (-ECANCELED, or a result that beat the
// cancel). If the chain was already stopped, nothing is submitted and `res`
// is -ECANCELED. Single-shot operations only.
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

class IoAwaiter : private Operation, private StopCallback {
 public:
  explicit IoAwaiter(const IoRequest& request)
      : Operation(&IoAwaiter::OnComplete), request_(request) {
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
    reactor_->Submit(this, request_);
    waiter_ = waiter;
    if (stop_ != nullptr) stop_->Register(this);
    return true;
  }

  int32_t await_resume() noexcept { return res_; }
  uint32_t flags() const { return flags_; }
  // Whether the operation reached the backend (false for a stopped chain).
  bool submitted() const { return reactor_ != nullptr; }

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

  IoRequest request_;
  Reactor* reactor_ = nullptr;
  StopState* stop_ = nullptr;
  std::coroutine_handle<> waiter_;
  int32_t res_ = 0;
  uint32_t flags_ = 0;
};

inline IoAwaiter Io(const IoRequest& request) { return IoAwaiter(request); }

}  // namespace baton

#endif  // BATON_RUNTIME_IO_H_
