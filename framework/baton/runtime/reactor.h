// Reactor: one event loop per thread, driving baton coroutines.
//
// A Reactor is created on, and used only from, the thread that runs it. Each
// loop turn runs the ready queue, then lets its backend submit and wait (one
// syscall), then dispatches the completions. Every in-flight kernel operation
// carries a pointer to an Operation record (owned by the awaiting frame or
// the object that issued it); the reactor calls that record's completion
// function for each completion. Records must outlive their final completion:
// see stop.h for the cancellation contract that guarantees it.
//
// The backend (runtime/backend/) is io_uring, or epoll where io_uring is
// refused: ReactorOptions::backend, BATON_BACKEND=io_uring|epoll, and by
// default io_uring unless io_uring_setup fails with EPERM, ENOSYS, EACCES or
// ENOMEM (seccomp profiles, kernel.io_uring_disabled, RLIMIT_MEMLOCK), which
// is logged once with the reason. Kernel features are probed once at
// creation, never assumed: io_uring setup flags are retried without the
// newer ones, and multishot accept / multishot recv with a provided-buffer
// ring are used only where a real probe succeeds (otherwise the net layer
// falls back to single-shot operations, which is all epoll has).
// ReactorOptions can switch features off, which is how the tests exercise
// the fallbacks.
//
//   auto reactor = Reactor::Create(ReactorOptions::FromEnv());
//   int v = (*reactor)->BlockOn(SomeTask());   // or Run() until Stop()
#ifndef BATON_RUNTIME_REACTOR_H_
#define BATON_RUNTIME_REACTOR_H_

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "baton/runtime/backend/backend.h"
#include "baton/runtime/task.h"

namespace baton {

class BufferRing;

// kAuto: io_uring, or epoll where io_uring_setup is refused (see above).
enum class BackendChoice { kAuto, kIoUring, kEpoll };

struct ReactorOptions {
  BackendChoice backend = BackendChoice::kAuto;

  // Submission queue entries; the completion queue gets four times as many
  // because multishot operations complete in bursts.
  unsigned sq_entries = 2048;
  // Provided-buffer ring shared by every connection of the reactor (power of
  // two count). Exhaustion is back-pressure (-ENOBUFS), never an error.
  unsigned buffer_count = 512;
  unsigned buffer_size = 16 * 1024;

  // Leave a feature unused even if the kernel has it.
  bool disable_multishot_recv = false;
  bool disable_multishot_accept = false;
  bool disable_defer_taskrun = false;
  bool disable_single_issuer = false;

  // Reads BATON_BACKEND (io_uring, epoll or auto) and BATON_DISABLE
  // (comma-separated: multishot_recv, multishot_accept, defer_taskrun,
  // single_issuer) on top of the defaults.
  static ReactorOptions FromEnv();
};

// The record a kernel operation points at. `complete` runs on the reactor
// thread for every CQE of the operation (several for multishot ones).
struct Operation {
  using CompleteFn = void (*)(Operation* self, int32_t res, uint32_t flags);
  explicit Operation(CompleteFn fn) : complete(fn) {}
  CompleteFn complete;
};

// An Operation that forwards its completions to a member function of its
// owner. The owner updates `owner` if it moves (only while nothing is in
// flight).
template <typename Owner, void (Owner::*kMethod)(int32_t, uint32_t)>
struct MemberOperation : Operation {
  explicit MemberOperation(Owner* o) : Operation(&Trampoline), owner(o) {}
  static void Trampoline(Operation* op, int32_t res, uint32_t flags) {
    auto* self = static_cast<MemberOperation*>(op);
    (self->owner->*kMethod)(res, flags);
  }
  Owner* owner;
};

// CLOCK_MONOTONIC: the clock of reactor timers. System-wide, so two
// processes can compare readings (a handoff's pause spans both).
absl::Duration MonotonicNow();

// A deadline kept by the reactor in user space: the loop bounds its wait by
// the earliest one (IORING_ENTER_EXT_ARG, no kernel timeout per timer) and
// calls `fire` on its thread once the deadline has passed. Adding and
// removing are O(log n) and make no system call. The record lives in its
// owner (an awaiter, a WithTimeout frame); remove it before it goes away.
struct Timer {
  void (*fire)(Timer* self) = nullptr;
  int64_t deadline_ns = 0;  // CLOCK_MONOTONIC
  bool queued = false;
};

class Reactor {
 public:
  static absl::StatusOr<std::unique_ptr<Reactor>> Create(
      const ReactorOptions& options = ReactorOptions::FromEnv());
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // The reactor whose loop runs on this thread (set by Create).
  static Reactor* Current();

  const ReactorFeatures& features() const { return backend_->features(); }
  BackendKind backend() const { return features().backend; }
  const ReactorOptions& options() const { return options_; }
  BufferRing* buffer_ring() { return backend_->buffer_ring(); }

  // --- For awaitables and the net layer (reactor thread only). ---
  // Starts `request`; its completions go to `op` (nullptr: none).
  void Submit(Operation* op, const IoRequest& request) {
    if (op != nullptr) ++inflight_;
    backend_->Submit(op, request);
  }
  // Asks the kernel to cancel `op`. The target still delivers its final
  // completion.
  void CancelOperation(Operation* op) {
    backend_->Submit(nullptr, IoRequest::Cancel(op));
  }
  // Before an fd that had operations here is closed (`closing`) or handed
  // to another reactor or process: see backend.h.
  void ForgetFd(int fd, bool closing) { backend_->ForgetFd(fd, closing); }
  // Resumes `h` on a later loop turn.
  void Post(std::coroutine_handle<> h);
  // Queues `t` to fire `after` from now (at the earliest on the next turn),
  // or takes it out of the queue (a no-op if it is not queued).
  void AddTimer(Timer* t, absl::Duration after);
  void RemoveTimer(Timer* t);
  size_t timers() const { return timers_.size(); }
  // Runs `fn` on the reactor's thread soon: between two resumptions of the
  // turn under way (a long turn does not delay it), or on the next turn.
  // Callable from any thread.
  void Schedule(absl::AnyInvocable<void()> fn);

  // Runs until Stop(). Stop() is callable from any thread.
  void Run();
  void Stop();

  // Runs the loop until `task` finishes and returns its value. For tests,
  // tools and main(); the task may spawn work that outlives it.
  template <typename T>
  T BlockOn(Task<T> task);

  // Counters for tests and diagnostics.
  void CountRecvNoBuffers() { ++recv_no_buffers_; }
  // How often a receive found the provided-buffer ring empty (-ENOBUFS).
  uint64_t recv_no_buffers() const { return recv_no_buffers_; }

  // Kernel operations in flight (submitted, final CQE not yet seen) that
  // were issued with an Operation record. Zero when everything is joined.
  int64_t inflight() const { return inflight_; }

 private:
  explicit Reactor(const ReactorOptions& options);
  absl::Status Init();
  void RunReady();
  void RunRemote();
  static void Dispatch(void* reactor, Operation* op, int32_t res,
                       uint32_t flags);
  void FireTimers();
  // How long the backend may wait: 0 with work ready, the earliest timer's
  // distance, or -1 (until something completes).
  int64_t WaitBound() const;

  ReactorOptions options_;
  std::unique_ptr<Backend> backend_;
  std::deque<std::coroutine_handle<>> ready_;
  int64_t inflight_ = 0;
  uint64_t recv_no_buffers_ = 0;
  absl::btree_set<std::pair<int64_t, Timer*>> timers_;

  // Cross-thread work: queued here, announced by Backend::Wake().
  std::mutex remote_mu_;
  std::vector<absl::AnyInvocable<void()>> remote_;
  std::atomic<bool> remote_pending_{false};  // remote_ may be non-empty
  std::atomic<bool> stop_{false};
};

// `co_await Yield()` resumes the caller on the reactor's next loop turn.
struct Yield {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const {
    Reactor::Current()->Post(h);
  }
  void await_resume() const noexcept {}
};

namespace internal {

// A self-destroying root coroutine owning its StopState: what Spawn and
// BlockOn start. Started by posting its handle to a reactor.
class RootTask {
 public:
  struct promise_type : PromiseBase {
    promise_type() { set_stop_state(&stop); }
    RootTask get_return_object() {
      return RootTask{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() {}
    StopState stop;
  };
  std::coroutine_handle<promise_type> handle;
};

template <typename T>
RootTask BlockOnRoot(Task<T> task, std::optional<T>* out, Reactor* reactor) {
  out->emplace(co_await std::move(task));
  reactor->Stop();
}

inline RootTask BlockOnRoot(Task<void> task, std::optional<bool>* out,
                            Reactor* reactor) {
  co_await std::move(task);
  out->emplace(true);
  reactor->Stop();
}

}  // namespace internal

template <typename T>
T Reactor::BlockOn(Task<T> task) {
  if constexpr (std::is_void_v<T>) {
    std::optional<bool> done;
    Post(internal::BlockOnRoot(std::move(task), &done, this).handle);
    Run();
    assert(done.has_value());
  } else {
    std::optional<T> result;
    Post(internal::BlockOnRoot(std::move(task), &result, this).handle);
    Run();
    assert(result.has_value());
    return std::move(*result);
  }
}

}  // namespace baton

#endif  // BATON_RUNTIME_REACTOR_H_
