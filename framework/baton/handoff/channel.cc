#include "baton/handoff/channel.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "baton/runtime/io.h"

namespace baton::handoff {
namespace {

// Waits on the ring until `fd` is ready for `events`.
Task<absl::Status> WaitReady(int fd, unsigned events) {
  int res = co_await Io(IoRequest::Poll(fd, events));
  if (res == -ECANCELED) co_return absl::CancelledError("wait cancelled");
  if (res < 0) co_return absl::ErrnoToStatus(-res, "poll(handoff channel)");
  co_return absl::OkStatus();
}

}  // namespace

void CloseAll(std::vector<int>& fds) {
  for (int fd : fds) close(fd);
  fds.clear();
}

Channel::~Channel() {
  if (fd_ < 0) return;
  if (Reactor* reactor = Reactor::Current()) reactor->ForgetFd(fd_, true);
  close(fd_);
}

absl::StatusOr<ChannelPair> CreateChannelPair() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return absl::ErrnoToStatus(errno, "socketpair(handoff channel)");
  }
  return ChannelPair{Channel(sv[0]), sv[1]};
}

Task<absl::Status> Channel::Send(Message message) {
  if (message.fds.size() > kMaxFds) {
    co_return absl::InvalidArgumentError(
        absl::StrFormat("%d fds in one handoff message; at most %d",
                        message.fds.size(), kMaxFds));
  }
  message.version = version_;
  std::string bytes = EncodeMessage(message);
  iovec iov{bytes.data(), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control;
  if (!message.fds.empty()) {
    control.resize(CMSG_SPACE(sizeof(int) * message.fds.size()));
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * message.fds.size());
    std::memcpy(CMSG_DATA(cmsg), message.fds.data(),
                sizeof(int) * message.fds.size());
  }
  while (true) {
    ssize_t n = sendmsg(fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) co_return absl::OkStatus();
    if (errno == EINTR) continue;
    if (errno == EPIPE || errno == ECONNRESET) {
      co_return absl::UnavailableError(absl::StrFormat(
          "sending handoff %s: the other process closed the handoff channel "
          "(it exited or crashed)",
          MessageTypeName(message.type)));
    }
    if (errno != EAGAIN) {
      co_return absl::ErrnoToStatus(
          errno,
          absl::StrFormat("sending handoff %s", MessageTypeName(message.type)));
    }
    if (absl::Status s = co_await WaitReady(fd_, POLLOUT); !s.ok()) {
      co_return s;
    }
  }
}

Task<absl::StatusOr<Message>> Channel::Receive() {
  std::string buffer(kMaxMessageBody + 64, '\0');
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxFds));
  while (true) {
    iovec iov{buffer.data(), buffer.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    ssize_t n = recvmsg(fd_, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (absl::Status s = co_await WaitReady(fd_, POLLIN); !s.ok()) {
        co_return s;
      }
      continue;
    }
    if (n < 0)
      co_return absl::ErrnoToStatus(errno, "receiving handoff message");
    std::vector<int> fds;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
         c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        size_t at = fds.size();
        fds.resize(at + count);
        std::memcpy(fds.data() + at, CMSG_DATA(c), count * sizeof(int));
      }
    }
    if (n == 0 && fds.empty()) {
      co_return absl::UnavailableError(
          "the other process closed the handoff "
          "channel (it exited or crashed)");
    }
    if (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) {
      CloseAll(fds);
      co_return absl::DataLossError(
          "handoff message truncated (MSG_CTRUNC/MSG_TRUNC): descriptors "
          "were dropped by the kernel");
    }
    absl::StatusOr<Message> m = DecodeMessage(
        std::string_view(buffer.data(), static_cast<size_t>(n)), version_);
    if (!m.ok()) {
      CloseAll(fds);
      co_return m.status();
    }
    m->fds = std::move(fds);
    co_return m;
  }
}

}  // namespace baton::handoff
