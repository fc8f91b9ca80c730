#include "baton/net/listener.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "baton/runtime/io.h"

namespace baton {

Listener::Listener(int fd, const ListenerOptions& options)
    : fd_(fd), options_(options), reactor_(Reactor::Current()) {}

absl::StatusOr<Listener> Listener::Bind(const Address& address,
                                        const ListenerOptions& options) {
  int fd = socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  Listener listener(fd, options);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (options.reuse_port &&
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    return absl::ErrnoToStatus(errno, "setsockopt(SO_REUSEPORT)");
  }
  if (bind(fd, address.sa(), address.length()) != 0) {
    return absl::ErrnoToStatus(errno,
                               absl::StrCat("bind ", address.ToString()));
  }
  if (listen(fd, options.backlog) != 0) {
    return absl::ErrnoToStatus(errno,
                               absl::StrCat("listen ", address.ToString()));
  }
  return listener;
}

Listener Listener::FromFd(int fd, const ListenerOptions& options) {
  return Listener(fd, options);
}

Listener::Listener(Listener&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      options_(other.options_),
      reactor_(other.reactor_),
      queued_(std::move(other.queued_)) {
  assert(!other.armed_ && "a Listener moves only while not accepting");
}

Listener::~Listener() {
  assert(!armed_ && "Listener destroyed with an accept in flight");
  for (int fd : queued_) close(fd);
  if (fd_ >= 0) {
    if (reactor_ != nullptr) reactor_->ForgetFd(fd_, /*closing=*/true);
    close(fd_);
  }
}

void Listener::MaybeArm() {
  if (armed_ || stopping_ || fd_ < 0) return;
  reactor_->Submit(
      &accept_op_,
      IoRequest::Accept(fd_, reactor_->features().multishot_accept));
  armed_ = true;
}

void Listener::OnAccept(int32_t res, uint32_t flags) {
  if (res >= 0) {
    queued_.push_back(res);
  } else if (res != -ECANCELED) {
    // EMFILE, ENFILE, ENOMEM...: reported to the next Accept(), which
    // re-arms; the caller decides how long to back off.
    error_ = absl::ErrnoToStatus(-res, "accept");
  }
  if (!(flags & kIoMore)) armed_ = false;
  waiter_.Wake();
  if (!armed_ && stopper_) reactor_->Post(std::exchange(stopper_, {}));
}

bool Listener::AcceptAwaiter::await_ready() {
  return !l_->queued_.empty() || !l_->error_.ok() || l_->stopping_;
}

absl::StatusOr<Connection> Listener::AcceptAwaiter::await_resume() {
  if (!l_->queued_.empty()) {
    int fd = l_->queued_.front();
    l_->queued_.pop_front();
    return Connection(fd, l_->options_.connection);
  }
  if (!l_->error_.ok()) return std::exchange(l_->error_, absl::OkStatus());
  return absl::CancelledError(l_->stopping_ ? "listener stopped accepting"
                                            : "accept cancelled");
}

Task<void> Listener::StopAccepting() {
  stopping_ = true;
  waiter_.Wake();
  if (!armed_) co_return;
  reactor_->CancelOperation(&accept_op_);
  struct Awaiter {
    Listener* l;
    bool await_ready() const noexcept { return !l->armed_; }
    void await_suspend(std::coroutine_handle<> h) noexcept { l->stopper_ = h; }
    void await_resume() const noexcept {}
  };
  co_await Awaiter{this};
}

Task<absl::StatusOr<Connection>> Connect(const Address& address,
                                         const ConnectionOptions& options) {
  int fd = socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) co_return absl::ErrnoToStatus(errno, "socket");
  Connection conn(fd, options);
  int res = co_await Io(IoRequest::Connect(fd, address.sa(), address.length()));
  if (res < 0) {
    co_return absl::ErrnoToStatus(-res,
                                  absl::StrCat("connect ", address.ToString()));
  }
  if (options.no_delay) {
    // Re-applied: TCP_NODELAY set before connect() may not stick everywhere.
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  co_return std::move(conn);
}

}  // namespace baton
