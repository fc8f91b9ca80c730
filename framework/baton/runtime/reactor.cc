#include "baton/runtime/reactor.h"

#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "baton/runtime/backend/epoll_backend.h"
#include "baton/runtime/backend/uring_backend.h"
#include "baton/runtime/log.h"

namespace baton {
namespace {

thread_local Reactor* current_reactor = nullptr;

// io_uring_setup errors that mean "not here" (a seccomp profile, the
// kernel.io_uring_disabled sysctl, no io_uring in the kernel, the locked
// memory limit), not a bug: epoll is chosen instead.
bool RefusedHere(int err) {
  return err == EPERM || err == ENOSYS || err == EACCES || err == ENOMEM;
}

}  // namespace

const char* BackendName(BackendKind kind) {
  return kind == BackendKind::kEpoll ? "epoll" : "io_uring";
}

ReactorOptions ReactorOptions::FromEnv() {
  ReactorOptions options;
  if (const char* backend = getenv("BATON_BACKEND")) {
    absl::string_view b(backend);
    if (b == "epoll") options.backend = BackendChoice::kEpoll;
    if (b == "io_uring") options.backend = BackendChoice::kIoUring;
  }
  const char* env = getenv("BATON_DISABLE");
  if (env == nullptr) return options;
  for (absl::string_view name : absl::StrSplit(env, ',', absl::SkipEmpty())) {
    if (name == "multishot_recv") options.disable_multishot_recv = true;
    if (name == "multishot_accept") options.disable_multishot_accept = true;
    if (name == "defer_taskrun") options.disable_defer_taskrun = true;
    if (name == "single_issuer") options.disable_single_issuer = true;
  }
  return options;
}

std::string ReactorFeatures::ToString() const {
  if (backend == BackendKind::kEpoll) {
    return "epoll (edge-triggered; single-shot accept and recv)";
  }
  return absl::StrFormat(
      "setup=%s multishot_accept=%s multishot_recv=%s nodrop=%s",
      uring::SetupFlagNames(setup_flags), multishot_accept ? "yes" : "no",
      multishot_recv ? "yes" : "no", nodrop ? "yes" : "no");
}

Reactor::Reactor(const ReactorOptions& options) : options_(options) {}

Reactor* Reactor::Current() { return current_reactor; }

absl::StatusOr<std::unique_ptr<Reactor>> Reactor::Create(
    const ReactorOptions& options) {
  std::unique_ptr<Reactor> reactor(new Reactor(options));
  if (absl::Status s = reactor->Init(); !s.ok()) return s;
  current_reactor = reactor.get();
  return reactor;
}

absl::Status Reactor::Init() {
  auto on_wake = [this] { RunRemote(); };
  std::string why;  // why epoll, when it was chosen automatically
  if (options_.backend != BackendChoice::kEpoll) {
    int err = 0;
    absl::StatusOr<std::unique_ptr<Backend>> uring =
        uring::Create(options_, &Reactor::Dispatch, this, on_wake, &err);
    if (uring.ok()) {
      backend_ = *std::move(uring);
    } else if (options_.backend == BackendChoice::kAuto && RefusedHere(err)) {
      why = absl::StrFormat(
          "io_uring_setup failed with %s (%s)%s, so epoll was chosen",
          err == EPERM    ? "EPERM"
          : err == ENOSYS ? "ENOSYS"
          : err == EACCES ? "EACCES"
                          : "ENOMEM",
          strerror(err),
          err == ENOMEM ? "; raise RLIMIT_MEMLOCK (ulimit -l) for io_uring"
          : err == ENOSYS
              ? ": the kernel has no io_uring"
              : ": a seccomp profile or kernel.io_uring_disabled refuses it");
    } else {
      return absl::UnavailableError(absl::StrFormat(
          "%s%s", uring.status().message(),
          options_.backend == BackendChoice::kIoUring
              ? " (BATON_BACKEND=io_uring; BATON_BACKEND=epoll runs without "
                "it)"
              : ""));
    }
  }
  if (!backend_) {
    absl::StatusOr<std::unique_ptr<Backend>> epoll =
        epoll::Create(options_, &Reactor::Dispatch, this, on_wake);
    if (!epoll.ok()) return epoll.status();
    backend_ = *std::move(epoll);
  }

  static std::once_flag logged;
  std::call_once(logged, [this, &why] {
    utsname u{};
    uname(&u);
    Log("%s on kernel %s: %s%s", BackendName(backend()), u.release,
        features().ToString(), why.empty() ? "" : absl::StrCat("; ", why));
  });
  return absl::OkStatus();
}

Reactor::~Reactor() {
  backend_.reset();
  if (current_reactor == this) current_reactor = nullptr;
}

void Reactor::Post(std::coroutine_handle<> h) { ready_.push_back(h); }

void Reactor::Schedule(absl::AnyInvocable<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(remote_mu_);
    remote_.push_back(std::move(fn));
  }
  remote_pending_.store(true, std::memory_order_release);
  backend_->Wake();
}

void Reactor::Stop() {
  stop_.store(true, std::memory_order_release);
  if (current_reactor != this) backend_->Wake();
}

void Reactor::RunRemote() {
  // Cleared before the work is taken: a Schedule() racing with this sets it
  // again, and the next check runs what it added.
  remote_pending_.store(false, std::memory_order_relaxed);
  std::vector<absl::AnyInvocable<void()>> work;
  {
    std::lock_guard<std::mutex> lock(remote_mu_);
    work.swap(remote_);
  }
  for (auto& fn : work) fn();
}

void Reactor::RunReady() {
  // Only what is ready now: work posted by these resumptions waits a turn,
  // so I/O completions are never starved. Work from other threads does not
  // wait for the end of a long turn (the wake-up announcing it is only
  // reaped after the turn).
  for (size_t n = ready_.size(); n > 0 && !ready_.empty(); --n) {
    if (remote_pending_.load(std::memory_order_acquire)) RunRemote();
    std::coroutine_handle<> h = ready_.front();
    ready_.pop_front();
    h.resume();
  }
}

void Reactor::Dispatch(void* reactor, Operation* op, int32_t res,
                       uint32_t flags) {
  auto* self = static_cast<Reactor*>(reactor);
  if (!(flags & kIoMore)) --self->inflight_;
  op->complete(op, res, flags);
}

absl::Duration MonotonicNow() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return absl::DurationFromTimespec(ts);
}

namespace {

int64_t MonotonicNanos() { return absl::ToInt64Nanoseconds(MonotonicNow()); }

}  // namespace

void Reactor::AddTimer(Timer* t, absl::Duration after) {
  RemoveTimer(t);
  const int64_t delay =
      after <= absl::ZeroDuration() ? 0 : absl::ToInt64Nanoseconds(after);
  const int64_t now = MonotonicNanos();
  t->deadline_ns = delay > INT64_MAX - now ? INT64_MAX : now + delay;
  timers_.insert({t->deadline_ns, t});
  t->queued = true;
}

void Reactor::RemoveTimer(Timer* t) {
  if (!t->queued) return;
  timers_.erase({t->deadline_ns, t});
  t->queued = false;
}

void Reactor::FireTimers() {
  if (timers_.empty()) return;
  const int64_t now = MonotonicNanos();
  while (!timers_.empty() && timers_.begin()->first <= now) {
    Timer* t = timers_.begin()->second;
    timers_.erase(timers_.begin());
    t->queued = false;
    t->fire(t);
  }
}

int64_t Reactor::WaitBound() const {
  if (!ready_.empty()) return 0;
  if (timers_.empty() || timers_.begin()->first == INT64_MAX) return -1;
  return std::max<int64_t>(0, timers_.begin()->first - MonotonicNanos());
}

void Reactor::Run() {
  current_reactor = this;
  while (!stop_.load(std::memory_order_acquire)) {
    RunReady();
    if (stop_.load(std::memory_order_acquire)) break;
    backend_->Wait(WaitBound());
    FireTimers();
  }
  stop_.store(false, std::memory_order_release);
}

}  // namespace baton
