#include "baton/fiber/fiber.h"

#include <boost/context/fiber.hpp>
#include <boost/context/stack_context.hpp>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "baton/runtime/log.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define BATON_FIBER_ASAN 1
#endif

namespace baton::fiber {
namespace internal {
namespace {

namespace ctx = boost::context;

thread_local FiberState* current_fiber = nullptr;
thread_local size_t live_fibers = 0;

// Hands boost::context a stack we took from the pool; gives it back there
// when the fiber's context is destroyed (just after its function returned).
struct PoolStackAllocator {
  Stack stack;
  ctx::stack_context allocate() {
    ctx::stack_context sc;
    sc.size = stack.size;
    sc.sp = stack.top();
    return sc;
  }
  void deallocate(ctx::stack_context&) noexcept {
    StackPool::ForThisThread().Release(stack);
  }
};

}  // namespace

class FiberState {
 public:
  FiberState(absl::AnyInvocable<void()> fn, FiberOptions options)
      : name_(options.name.c_str()),
        fn_(std::move(fn)),
        stack_(StackPool::ForThisThread().Acquire(options.stack_size)),
        reactor_(Reactor::Current()) {
    ++live_fibers;
    guard_.emplace(stack_, name_.c_str());
    context_ = ctx::fiber(
        std::allocator_arg, PoolStackAllocator{stack_},
        [this](ctx::fiber&& caller) { return Main(std::move(caller)); });
  }
  ~FiberState() { --live_fibers; }
  FiberState(const FiberState&) = delete;
  FiberState& operator=(const FiberState&) = delete;

  // Drives the fiber from the reactor: each resumption of this coroutine
  // switches into the fiber until it parks or ends.
  static baton::internal::RootTask Drive(std::shared_ptr<FiberState> self) {
    while (true) {
      if (!self->finished_) self->SwitchIn();
      if (self->finished_) break;
      co_await std::suspend_always{};
    }
    self->guard_.reset();
    while (JoinAwaiter* j = self->joiners_) {
      self->joiners_ = j->next;
      j->OnFiberFinished();
    }
  }

  void Start(std::coroutine_handle<> driver) {
    driver_ = driver;
    wake_posted_ = true;
    reactor_->Post(driver_);
  }

  void Park() {
    parked_ = true;
    SwitchOut(/*ending=*/false);
    parked_ = false;
  }

  // Called where the awaited task finished. On the reactor's own stack
  // (not inside another fiber) the fiber is switched to right away, as a
  // coroutine would be resumed by its task's completion: that saves a loop
  // turn per parked call. Inside another fiber, or with the driver already
  // queued, the resumption is posted. Once the fiber has ended, its driver
  // is posted to finish it (joiners, guard registration).
  void Wake() {
    if (!parked_ || wake_posted_) return;
    if (current_fiber == nullptr) {
      SwitchIn();
      if (finished_ && !wake_posted_) {
        wake_posted_ = true;
        reactor_->Post(driver_);
      }
      return;
    }
    wake_posted_ = true;
    reactor_->Post(driver_);
  }

  void AddJoiner(JoinAwaiter* j) {
    j->next = joiners_;
    joiners_ = j;
  }

  bool finished() const { return finished_; }
  StopState* stop() { return &stop_; }
  Reactor* reactor() const { return reactor_; }
  const std::string& name() const { return name_; }

 private:
  ctx::fiber Main(ctx::fiber&& caller) {
#if defined(BATON_FIBER_ASAN)
    __sanitizer_finish_switch_fiber(nullptr, &caller_bottom_, &caller_size_);
#endif
    caller_ = std::move(caller);
    fn_();
    fn_ = nullptr;  // the function's captures die on the fiber's stack
    finished_ = true;
    SwitchOut(/*ending=*/true);
    return std::move(caller_);
  }

  // Reactor side.
  void SwitchIn() {
    wake_posted_ = false;
    FiberState* previous = current_fiber;
    current_fiber = this;
#if defined(BATON_FIBER_ASAN)
    void* fake_stack = nullptr;
    __sanitizer_start_switch_fiber(&fake_stack, stack_.bottom(), stack_.size);
#endif
    context_ = std::move(context_).resume();
#if defined(BATON_FIBER_ASAN)
    __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
    current_fiber = previous;
  }

  // Fiber side. When `ending`, Main returns the caller's context right
  // after this (boost switches to it), so only ASan is told here.
  void SwitchOut(bool ending) {
#if defined(BATON_FIBER_ASAN)
    if (ending) {
      __sanitizer_start_switch_fiber(nullptr, caller_bottom_, caller_size_);
      return;
    }
    void* fake_stack = nullptr;
    __sanitizer_start_switch_fiber(&fake_stack, caller_bottom_, caller_size_);
    caller_ = std::move(caller_).resume();
    __sanitizer_finish_switch_fiber(fake_stack, &caller_bottom_, &caller_size_);
#else
    if (ending) return;
    caller_ = std::move(caller_).resume();
#endif
  }

  std::string name_;
  absl::AnyInvocable<void()> fn_;
  Stack stack_;
  std::optional<GuardRegistration> guard_;
  Reactor* reactor_;
  StopState stop_;
  ctx::fiber context_;  // the fiber, while it is not running
  ctx::fiber caller_;   // the reactor, while the fiber runs
  std::coroutine_handle<> driver_;
  JoinAwaiter* joiners_ = nullptr;
  bool parked_ = false;
  bool wake_posted_ = false;
  bool finished_ = false;
#if defined(BATON_FIBER_ASAN)
  const void* caller_bottom_ = nullptr;
  size_t caller_size_ = 0;
#endif
};

FiberState* CurrentFiber() { return current_fiber; }
StopState* StopOf(FiberState* f) { return f->stop(); }
void Park(FiberState* f) { f->Park(); }
void Wake(FiberState* f) { f->Wake(); }
bool Finished(const FiberState* f) { return f->finished(); }

void NotInFiber(const char* what) {
  Log("%s called outside a fiber", what);
  std::abort();
}

}  // namespace internal

void JoinAwaiter::Link() { f_->AddJoiner(this); }

void JoinAwaiter::OnStop(StopCallback* cb) {
  auto* self = static_cast<JoinAwaiter*>(cb);
  // Joining is structured: the fiber is asked to stop, and still awaited.
  self->f_->stop()->RequestStop();
}

void JoinAwaiter::OnFiberFinished() {
  if (stop_ != nullptr) stop_->Unregister(this);
  f_->reactor()->Post(handle_);
}

Fiber Spawn(absl::AnyInvocable<void()> fn, FiberOptions options) {
  if (Reactor::Current() == nullptr) {
    Log("fiber::Spawn called on a thread without a reactor");
    std::abort();
  }
  thread_local bool handler_installed = false;
  if (!handler_installed) {
    handler_installed = true;
    InstallOverflowHandler();
  }
  auto state =
      std::make_shared<internal::FiberState>(std::move(fn), std::move(options));
  state->Start(internal::FiberState::Drive(state).handle);
  return Fiber(std::move(state));
}

namespace {

Task<void> JoinTask(Fiber* f) { co_await f->Join(); }
Task<void> YieldTask() { co_await baton::Yield(); }
Task<absl::Status> SleepTask(absl::Duration d) {
  co_return co_await baton::Sleep(d);
}

}  // namespace

void Join(Fiber& f) {
  if (f.done()) return;
  Await(JoinTask(&f));
}

void Yield() { Await(YieldTask()); }

absl::Status Sleep(absl::Duration d) { return Await(SleepTask(d)); }

bool StopRequested() {
  internal::FiberState* f = internal::CurrentFiber();
  return f != nullptr && f->stop()->stop_requested();
}

const std::string& CurrentName() {
  static const std::string* const kEmpty = new std::string();
  internal::FiberState* f = internal::CurrentFiber();
  return f != nullptr ? f->name() : *kEmpty;
}

size_t LiveFibers() { return internal::live_fibers; }

}  // namespace baton::fiber
