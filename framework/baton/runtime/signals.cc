#include "baton/runtime/signals.h"

#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>

#include "baton/runtime/io.h"

namespace baton {

absl::StatusOr<std::unique_ptr<SignalReader>> SignalReader::Create(
    std::initializer_list<int> signals) {
  sigset_t mask;
  sigemptyset(&mask);
  for (int s : signals) sigaddset(&mask, s);
  if (int err = pthread_sigmask(SIG_BLOCK, &mask, nullptr); err != 0) {
    return absl::ErrnoToStatus(err, "pthread_sigmask");
  }
  // Non-blocking: read when poll says a signal is pending (the same on
  // every backend).
  int fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) return absl::ErrnoToStatus(errno, "signalfd");
  return std::unique_ptr<SignalReader>(new SignalReader(fd, mask));
}

SignalReader::~SignalReader() {
  if (Reactor* reactor = Reactor::Current()) reactor->ForgetFd(fd_, true);
  close(fd_);
  pthread_sigmask(SIG_UNBLOCK, &mask_, nullptr);
}

Task<absl::StatusOr<int>> SignalReader::Next() {
  while (true) {
    ssize_t n = read(fd_, &info_, sizeof(info_));
    if (n == sizeof(info_)) co_return static_cast<int>(info_.ssi_signo);
    if (n >= 0) co_return absl::InternalError("short signalfd read");
    if (errno == EINTR) continue;
    if (errno != EAGAIN) co_return absl::ErrnoToStatus(errno, "read(signalfd)");
    int res = co_await Io(IoRequest::Poll(fd_, POLLIN));
    if (res == -ECANCELED) {
      co_return absl::CancelledError("signal wait cancelled");
    }
    if (res < 0) co_return absl::ErrnoToStatus(-res, "poll(signalfd)");
  }
}

}  // namespace baton
