#include "baton/runtime/reactor.h"

#include <sys/eventfd.h>
#include <sys/socket.h>
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
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "baton/runtime/buffer_ring.h"
#include "baton/runtime/log.h"

namespace baton {
namespace {

thread_local Reactor* current_reactor = nullptr;

constexpr uint16_t kBufferGroup = 0;

std::string SetupFlagNames(unsigned flags) {
  std::vector<std::string> names;
  if (flags & IORING_SETUP_SUBMIT_ALL) names.push_back("SUBMIT_ALL");
  if (flags & IORING_SETUP_COOP_TASKRUN) names.push_back("COOP_TASKRUN");
  if (flags & IORING_SETUP_TASKRUN_FLAG) names.push_back("TASKRUN_FLAG");
  if (flags & IORING_SETUP_SINGLE_ISSUER) names.push_back("SINGLE_ISSUER");
  if (flags & IORING_SETUP_DEFER_TASKRUN) names.push_back("DEFER_TASKRUN");
  return names.empty() ? "none" : absl::StrJoin(names, "|");
}

// Submits one operation prepared by `prep` on a private ring state, cancels
// it, and returns the result of its final CQE. Used only while probing, before
// the loop runs. -EINVAL means the kernel does not know the operation's flags.
template <typename Prep>
int ProbeOnce(io_uring* ring, Prep prep) {
  constexpr uint64_t kTarget = 1, kCancel = 2;
  io_uring_sqe* sqe = io_uring_get_sqe(ring);
  prep(sqe);
  io_uring_sqe_set_data64(sqe, kTarget);
  io_uring_submit(ring);
  sqe = io_uring_get_sqe(ring);
  io_uring_prep_cancel64(sqe, kTarget, 0);
  io_uring_sqe_set_data64(sqe, kCancel);
  io_uring_submit(ring);
  int result = -ETIMEDOUT;
  bool target_done = false, cancel_done = false;
  while (!target_done || !cancel_done) {
    __kernel_timespec ts{.tv_sec = 1, .tv_nsec = 0};
    io_uring_cqe* cqe = nullptr;
    if (io_uring_wait_cqe_timeout(ring, &cqe, &ts) < 0) break;
    if (cqe->user_data == kTarget) {
      result = cqe->res;
      if (!(cqe->flags & IORING_CQE_F_MORE)) target_done = true;
    } else if (cqe->user_data == kCancel) {
      cancel_done = true;
    }
    io_uring_cqe_seen(ring, cqe);
  }
  return result;
}

}  // namespace

ReactorOptions ReactorOptions::FromEnv() {
  ReactorOptions options;
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
  return absl::StrFormat(
      "setup=%s multishot_accept=%s multishot_recv=%s nodrop=%s",
      SetupFlagNames(setup_flags), multishot_accept ? "yes" : "no",
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
  // Newest flags first; each retry drops what an older kernel rejects.
  unsigned optional = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
                      IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SINGLE_ISSUER |
                      IORING_SETUP_DEFER_TASKRUN;
  if (options_.disable_defer_taskrun) optional &= ~IORING_SETUP_DEFER_TASKRUN;
  if (options_.disable_single_issuer) {
    optional &= ~(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
  }
  const unsigned drops[] = {
      0,
      IORING_SETUP_DEFER_TASKRUN,
      IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER,
      IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
          IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
      optional,
  };
  int ret = -EINVAL;
  for (unsigned drop : drops) {
    io_uring_params params{};
    params.flags =
        (optional & ~drop) | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
    params.cq_entries = options_.sq_entries * 4;
    ret = io_uring_queue_init_params(options_.sq_entries, &ring_, &params);
    if (ret == 0) {
      features_.setup_flags = optional & ~drop;
      features_.nodrop = (params.features & IORING_FEAT_NODROP) != 0;
      break;
    }
    if (ret != -EINVAL) break;
  }
  if (ret < 0) {
    return absl::UnavailableError(absl::StrFormat(
        "io_uring_queue_init failed: %s (io_uring disabled by sysctl or a "
        "seccomp profile?)",
        strerror(-ret)));
  }
  ring_ready_ = true;

  // Blocking on purpose: io_uring honours O_NONBLOCK with -EAGAIN instead
  // of waiting, which would turn the armed read into a busy loop.
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("eventfd: ", strerror(errno)));
  }
  ProbeFeatures();
  ArmWakeup();

  static std::once_flag logged;
  std::call_once(logged, [this] {
    utsname u{};
    uname(&u);
    Log("io_uring on kernel %s: %s", u.release, features_.ToString());
  });
  return absl::OkStatus();
}

void Reactor::ProbeFeatures() {
  if (!options_.disable_multishot_accept) {
    // A listening AF_UNIX socket (autobound, no address used) to accept on.
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sa_family_t family = AF_UNIX;
    if (fd >= 0 &&
        bind(fd, reinterpret_cast<sockaddr*>(&family), sizeof(family)) == 0 &&
        listen(fd, 1) == 0) {
      int res = ProbeOnce(&ring_, [fd](io_uring_sqe* sqe) {
        io_uring_prep_multishot_accept(sqe, fd, nullptr, nullptr, SOCK_CLOEXEC);
      });
      features_.multishot_accept = res == -ECANCELED;
    }
    if (fd >= 0) close(fd);
  }
  if (!options_.disable_multishot_recv) {
    auto ring = BufferRing::Create(&ring_, kBufferGroup, options_.buffer_count,
                                   options_.buffer_size);
    if (ring.ok()) {
      int sv[2];
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
        int res = ProbeOnce(&ring_, [fd = sv[0]](io_uring_sqe* sqe) {
          io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
          sqe->flags |= IOSQE_BUFFER_SELECT;
          sqe->buf_group = kBufferGroup;
        });
        features_.multishot_recv = res == -ECANCELED;
        close(sv[0]);
        close(sv[1]);
      }
      if (features_.multishot_recv) buffer_ring_ = *std::move(ring);
    }
  }
}

Reactor::~Reactor() {
  buffer_ring_.reset();
  if (ring_ready_) io_uring_queue_exit(&ring_);
  if (wake_fd_ >= 0) close(wake_fd_);
  if (current_reactor == this) current_reactor = nullptr;
}

io_uring_sqe* Reactor::PrepareSqe(Operation* op) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (sqe == nullptr) {
    // SQ full: push it to the kernel. If the CQ is overflowing the kernel
    // may refuse (-EBUSY) until we make room, so move completions aside.
    if (io_uring_submit(&ring_) < 0) StashCompletions();
    sqe = io_uring_get_sqe(&ring_);
  }
  io_uring_sqe_set_data(sqe, op);
  if (op != nullptr) ++inflight_;
  return sqe;
}

void Reactor::StashCompletions() {
  io_uring_cqe* cqe;
  unsigned head, n = 0;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    stashed_.push_back(*cqe);
    ++n;
  }
  io_uring_cq_advance(&ring_, n);
}

void Reactor::CancelOperation(Operation* op) {
  io_uring_sqe* sqe = PrepareSqe(nullptr);
  io_uring_prep_cancel(sqe, op, 0);
  io_uring_sqe_set_data(sqe, nullptr);
}

void Reactor::Post(std::coroutine_handle<> h) { ready_.push_back(h); }

void Reactor::Schedule(absl::AnyInvocable<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(remote_mu_);
    remote_.push_back(std::move(fn));
  }
  remote_pending_.store(true, std::memory_order_release);
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
}

void Reactor::Stop() {
  stop_.store(true, std::memory_order_release);
  if (current_reactor != this) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
  }
}

void Reactor::ArmWakeup() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (sqe == nullptr) {
    if (io_uring_submit(&ring_) < 0) StashCompletions();
    sqe = io_uring_get_sqe(&ring_);
  }
  io_uring_prep_read(sqe, wake_fd_, &wake_value_, sizeof(wake_value_), 0);
  io_uring_sqe_set_data(sqe, static_cast<Operation*>(&wake_op_));
}

void Reactor::OnWakeup(int32_t res, uint32_t /*flags*/) {
  if (res == -ECANCELED && stop_.load()) return;
  RunRemote();
  ArmWakeup();
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
  // wait for the end of a long turn (the eventfd read announcing it is only
  // reaped after the turn).
  for (size_t n = ready_.size(); n > 0 && !ready_.empty(); --n) {
    if (remote_pending_.load(std::memory_order_acquire)) RunRemote();
    std::coroutine_handle<> h = ready_.front();
    ready_.pop_front();
    h.resume();
  }
}

void Reactor::Dispatch(const io_uring_cqe& cqe) {
  // LIBURING_UDATA_TIMEOUT: the timeout liburing submits for a bounded wait
  // on kernels without IORING_FEAT_EXT_ARG (before 5.11).
  if (cqe.user_data == 0 || cqe.user_data == LIBURING_UDATA_TIMEOUT) return;
  auto* op = reinterpret_cast<Operation*>(cqe.user_data);
  // The always-armed wake-up read is not counted as work in flight.
  if (!(cqe.flags & IORING_CQE_F_MORE) && op != &wake_op_) --inflight_;
  op->complete(op, cqe.res, cqe.flags);
}

void Reactor::Reap() {
  if (!stashed_.empty()) {
    std::vector<io_uring_cqe> stashed;
    stashed.swap(stashed_);
    for (const io_uring_cqe& cqe : stashed) Dispatch(cqe);
  }
  // Copy a batch out and release the CQ slots before dispatching: handlers
  // may submit, and the slots are then free for the kernel to fill. Bounded,
  // so that a flood cannot keep the ready queue waiting.
  constexpr unsigned kBatch = 256;
  io_uring_cqe* cqes[kBatch];
  io_uring_cqe batch[kBatch];
  for (int rounds = 0; rounds < 8; ++rounds) {
    unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, kBatch);
    if (n == 0) break;
    for (unsigned i = 0; i < n; ++i) batch[i] = *cqes[i];
    io_uring_cq_advance(&ring_, n);
    for (unsigned i = 0; i < n; ++i) Dispatch(batch[i]);
  }
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

int Reactor::SubmitAndWait() {
  if (!ready_.empty() || !stashed_.empty()) {
    return io_uring_submit_and_get_events(&ring_);
  }
  if (timers_.empty() || timers_.begin()->first == INT64_MAX) {
    return io_uring_submit_and_wait(&ring_, 1);
  }
  const int64_t wait =
      std::max<int64_t>(0, timers_.begin()->first - MonotonicNanos());
  __kernel_timespec ts{.tv_sec = wait / 1'000'000'000,
                       .tv_nsec = wait % 1'000'000'000};
  io_uring_cqe* cqe = nullptr;
  return io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
}

void Reactor::Run() {
  current_reactor = this;
  while (!stop_.load(std::memory_order_acquire)) {
    RunReady();
    if (stop_.load(std::memory_order_acquire)) break;
    const int ret = SubmitAndWait();
    // -EINTR: a signal; -EBUSY/-EAGAIN: the CQ is overflowing or the kernel
    // is short of memory; reaping below makes progress in every case.
    if (ret < 0 && ret != -EINTR && ret != -EBUSY && ret != -EAGAIN &&
        ret != -ETIME) {
      Log("io_uring_submit_and_wait: %s", strerror(-ret));
    }
    Reap();
    FireTimers();
  }
  stop_.store(false, std::memory_order_release);
}

}  // namespace baton
