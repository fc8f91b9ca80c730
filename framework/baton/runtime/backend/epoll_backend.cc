#include "baton/runtime/backend/epoll_backend.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "baton/runtime/log.h"
#include "baton/runtime/reactor.h"

namespace baton {
namespace epoll {
namespace {

constexpr uint32_t kEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
constexpr uint32_t kInputReady = EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP;
constexpr uint32_t kOutputReady = EPOLLOUT | EPOLLERR | EPOLLHUP;

// -errno of a syscall that returned -1.
int32_t Err() { return -errno; }

bool IsInput(const IoRequest& r) {
  switch (r.kind) {
    case IoRequest::Kind::kAccept:
    case IoRequest::Kind::kRecv:
      return true;
    case IoRequest::Kind::kPoll:
      return (r.events & POLLIN) != 0 || (r.events & POLLOUT) == 0;
    default:
      return false;
  }
}

void SetNonBlocking(int fd, bool on) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return;
  int want = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (want != flags) fcntl(fd, F_SETFL, want);
}

class EpollBackend final : public Backend {
 public:
  EpollBackend(Sink sink, void* reactor, absl::AnyInvocable<void()> on_wake)
      : Backend(sink, reactor, std::move(on_wake)) {
    features_.backend = BackendKind::kEpoll;
  }
  ~EpollBackend() override {
    if (epfd_ >= 0) close(epfd_);
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  absl::Status Init() {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) return absl::ErrnoToStatus(errno, "epoll_create1");
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) return absl::ErrnoToStatus(errno, "eventfd");
    epoll_event ev{};
    ev.events = EPOLLIN;  // level-triggered: a wake-up is never lost
    ev.data.fd = wake_fd_;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
      return absl::ErrnoToStatus(errno, "epoll_ctl(eventfd)");
    }
    // epoll_pwait2 (5.11): nanosecond timeouts. ENOSYS on older kernels,
    // EPERM or ENOSYS under a seccomp filter that does not know it.
    timespec zero{};
    epoll_event unused;
    pwait2_ =
        syscall(SYS_epoll_pwait2, epfd_, &unused, 1, &zero, nullptr, 0) >= 0;
    return absl::OkStatus();
  }

  void Submit(Operation* op, const IoRequest& r) override {
    switch (r.kind) {
      case IoRequest::Kind::kNop:
        Done(op, 0);
        return;
      case IoRequest::Kind::kCancel: {
        const bool found = CancelParked(r.target);
        Done(op, found ? 0 : -ENOENT);
        return;
      }
      case IoRequest::Kind::kCancelFd: {
        int n = 0;
        if (auto it = fds_.find(r.fd); it != fds_.end()) {
          if (Operation* in = it->second.in.op) n += CancelParked(in);
          if (Operation* out = it->second.out.op) n += CancelParked(out);
        }
        Done(op, n > 0 ? n : -ENOENT);
        return;
      }
      case IoRequest::Kind::kConnect:
        StartConnect(op, r);
        return;
      case IoRequest::Kind::kAccept:
        // accept4 after readiness may find the queue emptied by another
        // process sharing the listener (a handoff): it must not block.
        if (listeners_.insert(r.fd).second) SetNonBlocking(r.fd, true);
        break;
      default:
        break;
    }
    if (r.kind == IoRequest::Kind::kRecv) {
      // The last receive left the socket empty: any byte since then raised
      // an edge, so waiting is as good as trying (one syscall less per
      // message).
      auto it = fds_.find(r.fd);
      if (it != fds_.end() && std::exchange(it->second.drained, false)) {
        Park(op, r);
        return;
      }
    }
    const int32_t res = Attempt(r);
    if (res == -EAGAIN) {
      Park(op, r);
    } else {
      NoteReceived(r, res);
      Done(op, res);
    }
  }

  void Wait(int64_t timeout_ns) override {
    if (!done_.empty()) timeout_ns = 0;
    epoll_event events[256];
    int n;
    if (pwait2_) {
      timespec ts{.tv_sec = timeout_ns / 1'000'000'000,
                  .tv_nsec = timeout_ns % 1'000'000'000};
      n = static_cast<int>(syscall(SYS_epoll_pwait2, epfd_, events, 256,
                                   timeout_ns < 0 ? nullptr : &ts, nullptr, 0));
    } else {
      const int ms = timeout_ns < 0
                         ? -1
                         : static_cast<int>((timeout_ns + 999'999) / 1'000'000);
      n = epoll_wait(epfd_, events, 256, ms);
    }
    if (n < 0 && errno != EINTR) Log("epoll_wait: %s", strerror(errno));
    bool woken = false;
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_fd_) {
        uint64_t value;
        [[maybe_unused]] ssize_t r = read(wake_fd_, &value, sizeof(value));
        woken = true;
        continue;
      }
      auto it = fds_.find(fd);
      if (it == fds_.end()) continue;  // a stale registration: nothing waits
      const uint32_t ev = events[i].events;
      // A hang-up or error: an EOF may wait behind the data, raising no
      // further edge, so receives on this fd always try first from now on.
      if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) it->second.hung_up = true;
      if (ev & kInputReady) {
        if (it->second.in.op != nullptr) {
          Retry(fd, &it->second.in);
        } else {
          // An edge with no receive waiting: the next one must try.
          it->second.drained = false;
        }
      }
      // Retry() may complete and its completion will run later: the map
      // entry is still valid here (only ForgetFd erases, never Wait).
      if ((ev & kOutputReady) && it->second.out.op != nullptr) {
        Retry(fd, &it->second.out);
      }
    }
    if (woken) Woken();
    std::vector<Finished> done;
    done.swap(done_);
    for (const Finished& f : done) Complete(f.op, f.res, 0);
  }

  void Wake() override {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
  }

  void ForgetFd(int fd, bool closing) override {
    listeners_.erase(fd);
    auto it = fds_.find(fd);
    if (it == fds_.end()) return;
    if (it->second.in.op != nullptr) parked_.erase(it->second.in.op);
    if (it->second.out.op != nullptr) parked_.erase(it->second.out.op);
    const bool registered = it->second.registered;
    fds_.erase(it);
    // A closed descriptor leaves the epoll set by itself once its file has
    // no other reference; one that lives on (handed to another reactor or
    // process) must be taken out.
    if (!closing && registered) epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  }

 private:
  struct Parked {
    Operation* op = nullptr;
    IoRequest request;
    bool connecting = false;
  };
  struct FdState {
    Parked in, out;
    bool registered = false;
    // The last receive read less than it asked for and no input edge came
    // since: the socket is known empty.
    bool drained = false;
    bool hung_up = false;  // an RDHUP, HUP or ERR event was seen
  };
  struct Finished {
    Operation* op;
    int32_t res;
  };

  void Done(Operation* op, int32_t res) {
    if (op != nullptr) done_.push_back({op, res});
  }

  // The syscall, once; -EAGAIN if it would block.
  static int32_t Attempt(const IoRequest& r) {
    while (true) {
      ssize_t n = 0;
      switch (r.kind) {
        case IoRequest::Kind::kAccept:
          n = accept4(r.fd, nullptr, nullptr, SOCK_CLOEXEC);
          if (n < 0 && (errno == ECONNABORTED || errno == EPROTO)) continue;
          break;
        case IoRequest::Kind::kRecv:
          n = recv(r.fd, r.buf, r.len, MSG_DONTWAIT);
          break;
        case IoRequest::Kind::kSend:
          n = send(r.fd, r.buf, r.len, MSG_DONTWAIT | MSG_NOSIGNAL);
          break;
        case IoRequest::Kind::kPoll: {
          pollfd p{r.fd, static_cast<short>(r.events), 0};
          n = poll(&p, 1, 0);
          if (n == 0) return -EAGAIN;
          if (n > 0) return p.revents;
          break;
        }
        default:
          return -EINVAL;
      }
      if (n >= 0) return static_cast<int32_t>(n);
      if (errno == EINTR) continue;
      if (errno == EWOULDBLOCK) return -EAGAIN;
      return Err();
    }
  }

  void StartConnect(Operation* op, const IoRequest& r) {
    SetNonBlocking(r.fd, true);
    int ret;
    do {
      ret = connect(r.fd, r.addr, r.addr_len);
    } while (ret < 0 && errno == EINTR);
    if (ret == 0 || errno != EINPROGRESS) {
      const int32_t res = ret == 0 ? 0 : Err();
      SetNonBlocking(r.fd, false);
      Done(op, res);
      return;
    }
    Park(op, r, /*connecting=*/true);
  }

  // A receive that got less than it asked for emptied the socket of data.
  // An EOF can still be pending behind it (its edge came with the data's):
  // either its RDHUP edge was seen (hung_up) or it is still to be reported
  // (registration reports it too).
  void NoteReceived(const IoRequest& r, int32_t res) {
    if (r.kind == IoRequest::Kind::kRecv && res > 0 &&
        static_cast<size_t>(res) < r.len) {
      FdState& st = fds_[r.fd];
      st.drained = !st.hung_up;
    }
  }

  void Park(Operation* op, const IoRequest& r, bool connecting = false) {
    auto it = fds_.try_emplace(r.fd).first;
    if (!it->second.registered) {
      // Registering reports the fd's current readiness too (an edge that
      // happened before is not lost).
      epoll_event ev{};
      ev.events = kEvents;
      ev.data.fd = r.fd;
      if (epoll_ctl(epfd_, EPOLL_CTL_ADD, r.fd, &ev) != 0 && errno != EEXIST) {
        const int32_t res = Err();
        fds_.erase(it);
        Done(op, res);
        return;
      }
      it->second.registered = true;
    }
    Parked& slot = IsInput(r) ? it->second.in : it->second.out;
    if (slot.op != nullptr) {
      Done(op, -EBUSY);  // two operations in one direction: a caller's bug
      return;
    }
    slot = Parked{op, r, connecting};
    if (op != nullptr) parked_[op] = r.fd;
  }

  void Retry(int fd, Parked* p) {
    int32_t res;
    if (p->connecting) {
      int err = 0;
      socklen_t len = sizeof(err);
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      pollfd pfd{fd, POLLOUT, 0};
      if (err == 0 && poll(&pfd, 1, 0) == 0) return;  // not yet
      SetNonBlocking(fd, false);
      res = -err;
    } else {
      res = Attempt(p->request);
      if (res == -EAGAIN) return;
    }
    Operation* op = std::exchange(p->op, nullptr);
    const IoRequest request = p->request;
    parked_.erase(op);
    NoteReceived(request, res);  // may add to fds_: `p` is not used after
    Done(op, res);
  }

  // Completes a parked `target` with -ECANCELED; false if none is parked.
  bool CancelParked(Operation* target) {
    auto it = parked_.find(target);
    if (it == parked_.end()) return false;
    FdState& st = fds_[it->second];
    Parked& slot = st.in.op == target ? st.in : st.out;
    if (slot.connecting) SetNonBlocking(it->second, false);
    slot = Parked{};
    parked_.erase(it);
    Done(target, -ECANCELED);
    return true;
  }

  int epfd_ = -1;
  int wake_fd_ = -1;
  bool pwait2_ = false;
  absl::flat_hash_map<int, FdState> fds_;        // fds with a registration
  absl::flat_hash_map<Operation*, int> parked_;  // parked record -> fd
  absl::flat_hash_set<int> listeners_;           // made O_NONBLOCK
  std::vector<Finished> done_;  // completions for the next dispatch
};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> Create(
    const ReactorOptions& /*options*/, Backend::Sink sink, void* reactor,
    absl::AnyInvocable<void()> on_wake) {
  auto backend =
      std::make_unique<EpollBackend>(sink, reactor, std::move(on_wake));
  if (absl::Status s = backend->Init(); !s.ok()) return s;
  return backend;
}

}  // namespace epoll
}  // namespace baton
