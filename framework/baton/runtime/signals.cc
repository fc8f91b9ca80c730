#include "baton/runtime/signals.h"

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
  int fd = signalfd(-1, &mask, SFD_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, "signalfd");
  return std::unique_ptr<SignalReader>(new SignalReader(fd, mask));
}

SignalReader::~SignalReader() {
  close(fd_);
  pthread_sigmask(SIG_UNBLOCK, &mask_, nullptr);
}

Task<absl::StatusOr<int>> SignalReader::Next() {
  int res = co_await Io([this](io_uring_sqe* sqe) {
    io_uring_prep_read(sqe, fd_, &info_, sizeof(info_), 0);
  });
  if (res == -ECANCELED)
    co_return absl::CancelledError("signal wait cancelled");
  if (res < 0) co_return absl::ErrnoToStatus(-res, "read(signalfd)");
  if (res != sizeof(info_))
    co_return absl::InternalError("short signalfd read");
  co_return static_cast<int>(info_.ssi_signo);
}

}  // namespace baton
