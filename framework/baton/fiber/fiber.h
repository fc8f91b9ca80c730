// Stackful fibers on the reactor: blocking-style code over the coroutine I/O.
//
// A fiber is a function running on its own stack (stack.h: pooled, guarded)
// on the reactor of the thread that spawned it. It never blocks the thread:
// each blocking-style call (Await, Sleep, the Connection wrappers of
// fiber/connection.h) starts an ordinary baton Task, parks the fiber
// (switches back to the reactor loop) and resumes it when the Task has
// finished. So fibers wait on exactly the completion records, timers and
// events the coroutines use: there is no second I/O path, and everything
// the coroutine API guarantees (one resumption per operation, data that
// beat a cancel is kept) holds for fibers too.
//
// Contract:
// - Thread affinity: a fiber runs, parks and ends on its spawner's reactor
//   thread. Await/Sleep/Yield may only be called from inside a fiber; a
//   fiber never runs the reactor itself (no Reactor::Run/BlockOn in it).
// - Resumption: a parked fiber is switched back to where its awaited task
//   completes (like a coroutine's continuation), or on a later loop turn
//   when that happens inside another fiber.
// - Cancellation: every fiber has a StopState. Tasks it awaits run with it
//   as their chain's StopState, so RequestStop() makes the call the fiber is
//   parked in return absl::CancelledError (or whatever really happened, as
//   for coroutines), and later calls fail fast. Stopping a coroutine that
//   joins a fiber (co_await fiber.Join(), co_await fiber::Run(...)) requests
//   stop on that fiber and still waits for it to end: a TaskGroup of
//   fiber::Run tasks is cancelled and joined like one of coroutines.
// - Ownership: Spawn returns a handle; dropping it detaches the fiber (it
//   still runs to its end; its state and stack are freed then). A fiber
//   must have ended before its reactor is destroyed: stop and join it.
// - Functions run by fibers must not throw (baton does not use exceptions;
//   one escaping a fiber terminates the process).
//
//   baton::Task<void> Serve() {
//     int n = co_await baton::fiber::Run([] {
//       absl::Status s = baton::fiber::Sleep(absl::Milliseconds(5));
//       return s.ok() ? 1 : 0;
//     });
//   }
#ifndef BATON_FIBER_FIBER_H_
#define BATON_FIBER_FIBER_H_

#include <coroutine>
#include <cstddef>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "baton/fiber/stack.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/stop.h"
#include "baton/runtime/task.h"
#include "baton/runtime/timer.h"

namespace baton::fiber {

// A fiber's name, held in place (truncated to 63 bytes). Trivially
// copyable on purpose: FiberOptions travel through coroutine frames (Run),
// and GCC 12 copies some temporaries of a co_await expression into the
// frame bitwise, which a std::string does not survive.
class FiberName {
 public:
  FiberName(const char* s)  // NOLINT: implicit, like a string
      : FiberName(std::string_view(s == nullptr ? "" : s)) {}
  FiberName(const std::string& s)  // NOLINT
      : FiberName(std::string_view(s)) {}
  FiberName(std::string_view s) {  // NOLINT
    const size_t n = s.size() < sizeof(text_) ? s.size() : sizeof(text_) - 1;
    std::memcpy(text_, s.data(), n);
    text_[n] = '\0';
  }
  const char* c_str() const { return text_; }

 private:
  char text_[64];
};

struct FiberOptions {
  // Named in stack overflow reports.
  FiberName name = "fiber";
  // Usable stack bytes (rounded up to pages); see kDefaultStackSize.
  size_t stack_size = kDefaultStackSize;
};

namespace internal {

class FiberState;

// The fiber running on this thread, or nullptr outside fibers.
FiberState* CurrentFiber();
StopState* StopOf(FiberState* f);
// Fiber side: switches to the reactor until Wake(f).
void Park(FiberState* f);
// Resumes a parked fiber on a later loop turn (no-op if it is not parked or
// a resumption is already queued).
void Wake(FiberState* f);
bool Finished(const FiberState* f);
[[noreturn]] void NotInFiber(const char* what);

template <typename T>
struct AwaitSlot {
  std::optional<T> value;
  bool done = false;
};
template <>
struct AwaitSlot<void> {
  bool done = false;
};

template <typename T>
baton::internal::RootTask AwaitRoot(Task<T> task, AwaitSlot<T>* slot,
                                    FiberState* f) {
  if constexpr (std::is_void_v<T>) {
    co_await std::move(task);
  } else {
    slot->value.emplace(co_await std::move(task));
  }
  slot->done = true;
  Wake(f);
}

}  // namespace internal

// Waits (from a coroutine) for a fiber to end; see the contract above.
class [[nodiscard]] JoinAwaiter : private StopCallback {
 public:
  explicit JoinAwaiter(internal::FiberState* f) : f_(f) {
    on_stop = &JoinAwaiter::OnStop;
  }
  JoinAwaiter(const JoinAwaiter&) = delete;
  JoinAwaiter& operator=(const JoinAwaiter&) = delete;
  bool await_ready() const noexcept { return internal::Finished(f_); }
  template <typename P>
  void await_suspend(std::coroutine_handle<P> h) {
    stop_ = baton::internal::StopStateOf(h);
    handle_ = h;
    Link();
    if (stop_ != nullptr) {
      if (stop_->stop_requested()) {
        OnStop(this);
      } else {
        stop_->Register(this);
      }
    }
  }
  void await_resume() const noexcept {}

  // Called by the fiber runtime once the fiber has ended.
  void OnFiberFinished();
  JoinAwaiter* next = nullptr;

 private:
  static void OnStop(StopCallback* cb);
  void Link();

  internal::FiberState* f_;
  StopState* stop_ = nullptr;
  std::coroutine_handle<> handle_;
};

// A handle on a spawned fiber. Move-only; dropping it detaches the fiber.
class Fiber {
 public:
  Fiber() = default;
  explicit Fiber(std::shared_ptr<internal::FiberState> state)
      : state_(std::move(state)) {}

  bool valid() const { return state_ != nullptr; }
  // True once the fiber's function has returned (and for an empty handle).
  // The other members need a valid() handle.
  bool done() const {
    return state_ == nullptr || internal::Finished(state_.get());
  }
  StopState* stop_state() { return internal::StopOf(state_.get()); }
  void RequestStop() { stop_state()->RequestStop(); }
  // `co_await fiber.Join()` from a coroutine; fiber::Join(fiber) from a
  // fiber.
  JoinAwaiter Join() { return JoinAwaiter(state_.get()); }

 private:
  std::shared_ptr<internal::FiberState> state_;
};

// Starts `fn` in a new fiber on the current reactor, on its next loop turn.
// (Not a coroutine: `fn` may own memory; see RunFiber.)
Fiber Spawn(absl::AnyInvocable<void()> fn, FiberOptions options = {});

// Runs `task` from inside a fiber: parks the fiber until the task has
// finished and returns its result. The task runs with the fiber's StopState.
template <typename T>
T Await(Task<T> task) {
  internal::FiberState* self = internal::CurrentFiber();
  if (self == nullptr) internal::NotInFiber("fiber::Await");
  internal::AwaitSlot<T> slot;
  baton::internal::RootTask root =
      internal::AwaitRoot(std::move(task), &slot, self);
  root.handle.promise().set_stop_state(internal::StopOf(self));
  // Runs on this fiber's stack up to the task's first suspension.
  root.handle.resume();
  while (!slot.done) internal::Park(self);
  if constexpr (!std::is_void_v<T>) return std::move(*slot.value);
}

namespace internal {

// Run's coroutine; Run (a plain function) takes the function by reference
// and moves it here, so no by-value argument object of Run itself lives in
// a caller's coroutine frame.
template <typename F>
Task<std::invoke_result_t<F&>> RunFiber(F fn, FiberOptions options) {
  using R = std::invoke_result_t<F&>;
  if constexpr (std::is_void_v<R>) {
    Fiber f = Spawn(std::move(fn), options);
    co_await f.Join();
  } else {
    std::optional<R> out;
    Fiber f = Spawn([&out, fn = std::move(fn)]() mutable { out.emplace(fn()); },
                    options);
    co_await f.Join();
    co_return std::move(*out);
  }
}

}  // namespace internal

// A coroutine's way to run blocking-style code: spawns `fn` in a fiber and
// resumes with its result once it has returned. Stopping the awaiting chain
// requests stop on the fiber. Lazy like every Task: the fiber is spawned
// when the task is first awaited.
//
// GCC 12 caveat: inside a coroutine, a *temporary* closure that owns memory
// (e.g. `co_await fiber::Run([s] {...})` with a std::string `s`) is
// destroyed twice by the compiler's handling of co_await temporaries.
// Name the closure first (`auto fn = [s] {...}; co_await
// fiber::Run(std::move(fn));`) or capture pointers/references only.
template <typename F>
requires std::is_invocable_v < std::decay_t<F>
& > Task<std::invoke_result_t<std::decay_t<F>&>> Run(
        F&& fn, FiberOptions options = {}) {
  return internal::RunFiber(std::decay_t<F>(std::forward<F>(fn)), options);
}

// --- Blocking-style calls, from inside a fiber. ---

// Parks until `f` has ended. Stopping this fiber requests stop on `f`.
void Join(Fiber& f);
// Resumes on the reactor's next loop turn (lets other work run).
void Yield();
// baton::Sleep: OK, or absl::CancelledError if this fiber is stopped first.
absl::Status Sleep(absl::Duration d);
// baton::WithTimeout around `task`, awaited from this fiber.
template <typename T>
T WithTimeout(Task<T> task, absl::Duration timeout) {
  return Await(baton::WithTimeout(std::move(task), timeout));
}
// Whether this fiber has been asked to stop.
bool StopRequested();
// The name of the running fiber ("" outside fibers).
const std::string& CurrentName();

// Fibers spawned on this thread that have not been freed yet (tests).
size_t LiveFibers();

}  // namespace baton::fiber

#endif  // BATON_FIBER_FIBER_H_
