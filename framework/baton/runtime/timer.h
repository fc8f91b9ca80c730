// Timers on the reactor: sleeping and deadlines around any task.
//
// Sleep(d) waits on a reactor Timer (user space: no system call, no kernel
// timeout; the loop bounds its wait by the earliest deadline) and returns
// absl::OkStatus(), or absl::CancelledError if its chain is stopped first.
// Either way the waiting coroutine is resumed exactly once, on a later turn.
//
// WithTimeout(task, d) runs `task` with a StopState of its own, stopped
// either when `d` elapses or when the caller's chain is stopped. The timer
// *requests* cancellation, so a read that completes with data just as time
// runs out keeps its data. The result is the task's own if it succeeded,
// absl::DeadlineExceededError if it failed after the deadline passed.
//
//   absl::Status s = co_await Sleep(absl::Milliseconds(5));
//   absl::StatusOr<size_t> n =
//       co_await WithTimeout(conn.Read(), absl::Seconds(30));
#ifndef BATON_RUNTIME_TIMER_H_
#define BATON_RUNTIME_TIMER_H_

#include <cerrno>
#include <coroutine>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/stop.h"
#include "baton/runtime/task.h"

namespace baton {

class [[nodiscard]] SleepAwaiter : private Timer, private StopCallback {
 public:
  explicit SleepAwaiter(absl::Duration d) : duration_(d) {
    fire = &SleepAwaiter::OnFire;
    on_stop = &SleepAwaiter::OnStop;
  }
  SleepAwaiter(const SleepAwaiter&) = delete;
  SleepAwaiter& operator=(const SleepAwaiter&) = delete;
  ~SleepAwaiter() {
    if (stop_ != nullptr) stop_->Unregister(this);
    if (reactor_ != nullptr) reactor_->RemoveTimer(this);
  }
  bool await_ready() noexcept { return false; }
  template <typename P>
  bool await_suspend(std::coroutine_handle<P> waiter) {
    stop_ = internal::StopStateOf(waiter);
    if (stop_ != nullptr && stop_->stop_requested()) {
      cancelled_ = true;
      return false;
    }
    reactor_ = Reactor::Current();
    waiter_ = waiter;
    reactor_->AddTimer(this, duration_);
    if (stop_ != nullptr) stop_->Register(this);
    return true;
  }
  absl::Status await_resume() {
    if (cancelled_) return absl::CancelledError("sleep cancelled");
    return absl::OkStatus();
  }

 private:
  static void OnFire(Timer* t) {
    auto* self = static_cast<SleepAwaiter*>(t);
    if (self->stop_ != nullptr) self->stop_->Unregister(self);
    self->reactor_->Post(self->waiter_);
  }
  static void OnStop(StopCallback* cb) {
    auto* self = static_cast<SleepAwaiter*>(cb);
    self->reactor_->RemoveTimer(self);
    self->cancelled_ = true;
    self->reactor_->Post(self->waiter_);
  }

  absl::Duration duration_;
  Reactor* reactor_ = nullptr;
  StopState* stop_ = nullptr;
  std::coroutine_handle<> waiter_;
  bool cancelled_ = false;
};

inline SleepAwaiter Sleep(absl::Duration d) { return SleepAwaiter(d); }

namespace internal {

// The timer half of WithTimeout: requests stop on `inner` when it fires, and
// forwards the outer chain's stop to `inner` meanwhile.
class Deadline : private Timer, private StopCallback {
 public:
  Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;
  ~Deadline() { Disarm(); }

  void Arm(StopState* outer, absl::Duration timeout);
  // Stops forwarding and takes the timer out of the queue if it is pending.
  void Disarm();
  bool fired() const { return fired_; }
  StopState inner;

 private:
  static void OnFire(Timer* t);
  static void OnOuterStop(StopCallback* cb);

  StopState* outer_ = nullptr;
  Reactor* reactor_ = nullptr;
  bool fired_ = false;
};

}  // namespace internal

template <typename T>
Task<T> WithTimeout(Task<T> task, absl::Duration timeout) {
  static_assert(
      std::is_same_v<T, absl::Status> || requires(T t) { t.status(); },
      "WithTimeout needs a task returning absl::Status or absl::StatusOr");
  internal::Deadline deadline;
  deadline.Arm(co_await internal::CurrentStopState{}, timeout);
  T result = co_await std::move(task).AwaitWith(&deadline.inner);
  deadline.Disarm();
  if (deadline.fired() && !result.ok()) {
    co_return absl::DeadlineExceededError(
        absl::StrCat("timed out after ", absl::FormatDuration(timeout)));
  }
  co_return result;
}

}  // namespace baton

#endif  // BATON_RUNTIME_TIMER_H_
