// Task<T>: the coroutine type of baton.
//
// A Task is lazy (it starts when awaited), move-only, and resumes its awaiter
// by symmetric transfer when it finishes, so chains of awaited tasks use no
// stack and no scheduler round-trip. Each Task frame is one heap allocation;
// awaiting I/O allocates nothing (the operation record lives in the frame).
//
// Error policy (all of baton): failures are values. Operations that can fail
// return absl::Status or absl::StatusOr<T>; Task<T> carries whatever T the
// coroutine returns. Exceptions are not used for control flow: one escaping a
// coroutine terminates the process.
//
// Cancellation: an awaited Task inherits its awaiter's StopState (see
// stop.h), so cancelling a spawned task reaches whatever leaf it waits on.
//
//   Task<absl::StatusOr<int>> Answer() { co_return 42; }
//   Task<void> Caller() {
//     absl::StatusOr<int> v = co_await Answer();
//   }
#ifndef BATON_RUNTIME_TASK_H_
#define BATON_RUNTIME_TASK_H_

#include <cassert>
#include <coroutine>
#include <exception>
#include <optional>
#include <utility>

#include "baton/runtime/stop.h"

namespace baton {

namespace internal {

// What every baton coroutine promise provides: a continuation and the
// StopState of its chain.
class PromiseBase {
 public:
  std::suspend_always initial_suspend() noexcept { return {}; }

  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <typename P>
    std::coroutine_handle<> await_suspend(
        std::coroutine_handle<P> self) noexcept {
      std::coroutine_handle<> next = self.promise().continuation_;
      return next ? next : std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { std::terminate(); }

  StopState* stop_state() const { return stop_; }
  void set_stop_state(StopState* stop) { stop_ = stop; }
  void set_continuation(std::coroutine_handle<> c) { continuation_ = c; }

 private:
  std::coroutine_handle<> continuation_;
  StopState* stop_ = nullptr;
};

// The StopState of the coroutine `h` if it is a baton coroutine.
template <typename P>
StopState* StopStateOf(std::coroutine_handle<P> h) {
  if constexpr (requires { h.promise().stop_state(); }) {
    return h.promise().stop_state();
  } else {
    return nullptr;
  }
}

template <typename T>
class TaskPromise : public PromiseBase {
 public:
  std::coroutine_handle<TaskPromise> handle() {
    return std::coroutine_handle<TaskPromise>::from_promise(*this);
  }
  template <typename U>
  void return_value(U&& value) {
    value_.emplace(std::forward<U>(value));
  }
  T TakeValue() { return std::move(*value_); }

 private:
  std::optional<T> value_;
};

template <>
class TaskPromise<void> : public PromiseBase {
 public:
  std::coroutine_handle<TaskPromise> handle() {
    return std::coroutine_handle<TaskPromise>::from_promise(*this);
  }
  void return_void() {}
  void TakeValue() {}
};

// `co_await CurrentStopState{}` yields the awaiting chain's StopState
// without suspending.
struct CurrentStopState {
  StopState* stop = nullptr;
  bool await_ready() noexcept { return false; }
  template <typename P>
  bool await_suspend(std::coroutine_handle<P> h) noexcept {
    stop = StopStateOf(h);
    return false;
  }
  StopState* await_resume() noexcept { return stop; }
};

}  // namespace internal

template <typename T = void>
class [[nodiscard]] Task {
 public:
  struct promise_type : internal::TaskPromise<T> {
    Task get_return_object() { return Task(Handle::from_promise(*this)); }
  };
  using Handle = std::coroutine_handle<promise_type>;

  Task() = default;
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      Reset();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { Reset(); }

  bool valid() const { return static_cast<bool>(handle_); }

  class Awaiter {
   public:
    explicit Awaiter(Handle h) : handle_(h) {}
    bool await_ready() noexcept { return false; }
    template <typename P>
    std::coroutine_handle<> await_suspend(
        std::coroutine_handle<P> caller) noexcept {
      handle_.promise().set_continuation(caller);
      handle_.promise().set_stop_state(internal::StopStateOf(caller));
      return handle_;
    }
    T await_resume() { return handle_.promise().TakeValue(); }

   private:
    Handle handle_;
  };

  Awaiter operator co_await() && noexcept {
    assert(handle_);
    return Awaiter(handle_);
  }

  // Awaits this task with `stop` as its chain's StopState instead of the
  // awaiter's (how WithTimeout gives the inner task its own cancellation).
  auto AwaitWith(StopState* stop) && noexcept {
    struct Awaiter {
      Handle handle;
      StopState* stop;
      bool await_ready() noexcept { return false; }
      std::coroutine_handle<> await_suspend(
          std::coroutine_handle<> caller) noexcept {
        handle.promise().set_continuation(caller);
        handle.promise().set_stop_state(stop);
        return handle;
      }
      T await_resume() { return handle.promise().TakeValue(); }
    };
    assert(handle_);
    return Awaiter{handle_, stop};
  }

 private:
  explicit Task(Handle h) : handle_(h) {}
  void Reset() {
    if (handle_) handle_.destroy();
    handle_ = {};
  }

  Handle handle_;
};

}  // namespace baton

#endif  // BATON_RUNTIME_TASK_H_
