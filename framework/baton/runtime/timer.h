// Timers on the reactor's ring: sleeping and deadlines around any task.
//
// Sleep(d) waits on an IORING_OP_TIMEOUT and returns absl::OkStatus(), or
// absl::CancelledError if its chain is stopped first.
//
// WithTimeout(task, d) runs `task` with a StopState of its own, stopped
// either when `d` elapses or when the caller's chain is stopped. The timer is
// a separate kernel timeout that *requests* cancellation, never a linked
// timeout, so a read that completes with data just as time runs out keeps its
// data. The result is the task's own if it succeeded, absl::
// DeadlineExceededError if it failed after the deadline passed. The timer's
// final CQE is always awaited before WithTimeout returns.
//
//   absl::Status s = co_await Sleep(absl::Milliseconds(5));
//   absl::StatusOr<size_t> n =
//       co_await WithTimeout(conn.Read(), absl::Seconds(30));
#ifndef BATON_RUNTIME_TIMER_H_
#define BATON_RUNTIME_TIMER_H_

#include <linux/time_types.h>

#include <cerrno>
#include <coroutine>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "baton/runtime/io.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task.h"

namespace baton {

__kernel_timespec ToKernelTimespec(absl::Duration d);

class [[nodiscard]] SleepAwaiter {
 public:
  explicit SleepAwaiter(absl::Duration d) : io_(Prep{ToKernelTimespec(d)}) {}
  bool await_ready() noexcept { return false; }
  template <typename P>
  bool await_suspend(std::coroutine_handle<P> h) {
    return io_.await_suspend(h);
  }
  absl::Status await_resume() {
    int32_t res = io_.await_resume();
    if (res == -ETIME || res == 0) return absl::OkStatus();
    if (res == -ECANCELED) return absl::CancelledError("sleep cancelled");
    return absl::InternalError(absl::StrCat("timeout op failed: ", -res));
  }

 private:
  struct Prep {
    __kernel_timespec ts;
    void operator()(io_uring_sqe* sqe) {
      io_uring_prep_timeout(sqe, &ts, 0, 0);
    }
  };
  IoAwaiter<Prep> io_;
};

inline SleepAwaiter Sleep(absl::Duration d) { return SleepAwaiter(d); }

namespace internal {

// The timer half of WithTimeout: requests stop on `inner` when it fires, and
// forwards the outer chain's stop to `inner` meanwhile.
class Deadline : private Operation, private StopCallback {
 public:
  Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  void Arm(StopState* outer, absl::Duration timeout);
  bool fired() const { return fired_; }
  StopState inner;

  // Stops forwarding, cancels the timer if pending and waits for its CQE.
  struct [[nodiscard]] DisarmAwaiter {
    Deadline* d;
    bool await_ready() noexcept;
    void await_suspend(std::coroutine_handle<> h) noexcept { d->waiter_ = h; }
    void await_resume() noexcept {}
  };
  DisarmAwaiter Disarm() { return DisarmAwaiter{this}; }

 private:
  static void OnTimer(Operation* op, int32_t res, uint32_t flags);
  static void OnOuterStop(StopCallback* cb);

  __kernel_timespec ts_{};
  StopState* outer_ = nullptr;
  Reactor* reactor_ = nullptr;
  bool pending_ = false;
  bool fired_ = false;
  std::coroutine_handle<> waiter_;
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
  co_await deadline.Disarm();
  if (deadline.fired() && !result.ok()) {
    co_return absl::DeadlineExceededError(
        absl::StrCat("timed out after ", absl::FormatDuration(timeout)));
  }
  co_return result;
}

}  // namespace baton

#endif  // BATON_RUNTIME_TIMER_H_
