#include "baton/runtime/backend/uring_backend.h"

#include <fcntl.h>
#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "baton/runtime/buffer_ring.h"
#include "baton/runtime/log.h"
#include "baton/runtime/reactor.h"

namespace baton {
namespace uring {

static_assert(kIoBuffer == IORING_CQE_F_BUFFER);
static_assert(kIoMore == IORING_CQE_F_MORE);
static_assert(kIoBufferShift == IORING_CQE_BUFFER_SHIFT);

namespace {

constexpr uint16_t kBufferGroup = 0;

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

class UringBackend final : public Backend {
 public:
  UringBackend(const ReactorOptions& options, Sink sink, void* reactor,
               absl::AnyInvocable<void()> on_wake)
      : Backend(sink, reactor, std::move(on_wake)), options_(options) {}
  ~UringBackend() override {
    buffer_ring_.reset();
    if (ring_ready_) io_uring_queue_exit(&ring_);
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  absl::Status Init(int* setup_errno);

  BufferRing* buffer_ring() override { return buffer_ring_.get(); }

  void Submit(Operation* op, const IoRequest& r) override {
    io_uring_sqe* sqe = GetSqe();
    switch (r.kind) {
      case IoRequest::Kind::kNop:
        io_uring_prep_nop(sqe);
        break;
      case IoRequest::Kind::kAccept:
        // A listener inherited from an epoll process is O_NONBLOCK, which
        // some kernels answer with -EAGAIN instead of waiting.
        if (listeners_.insert(r.fd).second) MakeBlocking(r.fd);
        if (r.multishot) {
          io_uring_prep_multishot_accept(sqe, r.fd, nullptr, nullptr,
                                         SOCK_CLOEXEC);
        } else {
          io_uring_prep_accept(sqe, r.fd, nullptr, nullptr, SOCK_CLOEXEC);
        }
        break;
      case IoRequest::Kind::kRecv:
        if (r.multishot) {
          io_uring_prep_recv_multishot(sqe, r.fd, nullptr, 0, 0);
          sqe->flags |= IOSQE_BUFFER_SELECT;
          sqe->buf_group = kBufferGroup;
          // Multishot receive (6.0) implies IORING_RECVSEND_POLL_FIRST (5.19).
          if (r.poll_first) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
        } else {
          io_uring_prep_recv(sqe, r.fd, r.buf, r.len, 0);
        }
        break;
      case IoRequest::Kind::kSend:
        io_uring_prep_send(sqe, r.fd, r.buf, r.len, MSG_NOSIGNAL);
        break;
      case IoRequest::Kind::kConnect:
        io_uring_prep_connect(sqe, r.fd, r.addr, r.addr_len);
        break;
      case IoRequest::Kind::kPoll:
        io_uring_prep_poll_add(sqe, r.fd, r.events);
        break;
      case IoRequest::Kind::kCancel:
        io_uring_prep_cancel(sqe, r.target, 0);
        break;
      case IoRequest::Kind::kCancelFd:
        io_uring_prep_cancel_fd(sqe, r.fd, IORING_ASYNC_CANCEL_ALL);
        break;
    }
    io_uring_sqe_set_data(sqe, op);
  }

  void Wait(int64_t timeout_ns) override {
    const int ret = SubmitAndWait(timeout_ns);
    // -EINTR: a signal; -EBUSY/-EAGAIN: the CQ is overflowing or the kernel
    // is short of memory; reaping below makes progress in every case.
    if (ret < 0 && ret != -EINTR && ret != -EBUSY && ret != -EAGAIN &&
        ret != -ETIME) {
      Log("io_uring_submit_and_wait: %s", strerror(-ret));
    }
    Reap();
  }

  void Wake() override {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
  }

  void ForgetFd(int fd, bool /*closing*/) override { listeners_.erase(fd); }

 private:
  static void MakeBlocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0 && (flags & O_NONBLOCK)) {
      fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    }
  }
  void ProbeFeatures();
  io_uring_sqe* GetSqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (sqe == nullptr) {
      // SQ full: push it to the kernel. If the CQ is overflowing the kernel
      // may refuse (-EBUSY) until we make room, so move completions aside.
      if (io_uring_submit(&ring_) < 0) StashCompletions();
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }
  void StashCompletions() {
    io_uring_cqe* cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      stashed_.push_back(*cqe);
      ++n;
    }
    io_uring_cq_advance(&ring_, n);
  }
  void ArmWakeup() {
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_read(sqe, wake_fd_, &wake_value_, sizeof(wake_value_), 0);
    io_uring_sqe_set_data(sqe, &wake_tag_);
  }
  int SubmitAndWait(int64_t timeout_ns) {
    if (timeout_ns == 0 || !stashed_.empty()) {
      return io_uring_submit_and_get_events(&ring_);
    }
    if (timeout_ns < 0) return io_uring_submit_and_wait(&ring_, 1);
    __kernel_timespec ts{.tv_sec = timeout_ns / 1'000'000'000,
                         .tv_nsec = timeout_ns % 1'000'000'000};
    io_uring_cqe* cqe = nullptr;
    return io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  }
  void Dispatch(const io_uring_cqe& cqe) {
    // LIBURING_UDATA_TIMEOUT: the timeout liburing submits for a bounded
    // wait on kernels without IORING_FEAT_EXT_ARG (before 5.11).
    if (cqe.user_data == 0 || cqe.user_data == LIBURING_UDATA_TIMEOUT) return;
    if (cqe.user_data == reinterpret_cast<uint64_t>(&wake_tag_)) {
      Woken();
      ArmWakeup();
      return;
    }
    Complete(reinterpret_cast<Operation*>(cqe.user_data), cqe.res, cqe.flags);
  }
  void Reap() {
    if (!stashed_.empty()) {
      std::vector<io_uring_cqe> stashed;
      stashed.swap(stashed_);
      for (const io_uring_cqe& cqe : stashed) Dispatch(cqe);
    }
    // Copy a batch out and release the CQ slots before dispatching: handlers
    // may submit, and the slots are then free for the kernel to fill.
    // Bounded, so that a flood cannot keep the ready queue waiting.
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

  const ReactorOptions& options_;
  io_uring ring_{};
  bool ring_ready_ = false;
  std::unique_ptr<BufferRing> buffer_ring_;
  std::vector<io_uring_cqe> stashed_;  // reaped while making SQ room
  int wake_fd_ = -1;
  uint64_t wake_value_ = 0;
  char wake_tag_ = 0;                   // the wake-up read's user_data
  absl::flat_hash_set<int> listeners_;  // accepted on (made blocking)
};

absl::Status UringBackend::Init(int* setup_errno) {
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
    *setup_errno = -ret;
    return absl::ErrnoToStatus(-ret, "io_uring_setup");
  }
  ring_ready_ = true;

  // Blocking on purpose: io_uring may honour O_NONBLOCK with -EAGAIN instead
  // of waiting, which would turn the armed read into a busy loop.
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) return absl::ErrnoToStatus(errno, "eventfd");
  ProbeFeatures();
  ArmWakeup();
  return absl::OkStatus();
}

void UringBackend::ProbeFeatures() {
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
      bool works = false;
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
        int res = ProbeOnce(&ring_, [fd = sv[0]](io_uring_sqe* sqe) {
          io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
          sqe->flags |= IOSQE_BUFFER_SELECT;
          sqe->buf_group = kBufferGroup;
        });
        works = res == -ECANCELED;
        close(sv[0]);
        close(sv[1]);
      }
      if (works) buffer_ring_ = *std::move(ring);
      features_.multishot_recv = works;
    }
  }
}

}  // namespace

std::string SetupFlagNames(unsigned flags) {
  std::vector<std::string> names;
  if (flags & IORING_SETUP_SUBMIT_ALL) names.push_back("SUBMIT_ALL");
  if (flags & IORING_SETUP_COOP_TASKRUN) names.push_back("COOP_TASKRUN");
  if (flags & IORING_SETUP_TASKRUN_FLAG) names.push_back("TASKRUN_FLAG");
  if (flags & IORING_SETUP_SINGLE_ISSUER) names.push_back("SINGLE_ISSUER");
  if (flags & IORING_SETUP_DEFER_TASKRUN) names.push_back("DEFER_TASKRUN");
  return names.empty() ? "none" : absl::StrJoin(names, "|");
}

absl::StatusOr<std::unique_ptr<Backend>> Create(
    const ReactorOptions& options, Backend::Sink sink, void* reactor,
    absl::AnyInvocable<void()> on_wake, int* setup_errno) {
  *setup_errno = 0;
  auto backend = std::make_unique<UringBackend>(options, sink, reactor,
                                                std::move(on_wake));
  if (absl::Status s = backend->Init(setup_errno); !s.ok()) return s;
  return backend;
}

}  // namespace uring
}  // namespace baton
