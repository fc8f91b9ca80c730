// Signals as awaitable events, read from a signalfd on the reactor's ring.
//
// Construct a SignalReader before starting any thread: it blocks the given
// signals in the calling thread, and threads started afterwards inherit the
// mask, so the signals are only ever delivered through the signalfd (which
// is CLOEXEC). A new process started by exec gets the default mask back.
//
//   auto signals = SignalReader::Create({SIGTERM, SIGINT, SIGUSR2});
//   absl::StatusOr<int> signo = co_await (*signals)->Next();
#ifndef BATON_RUNTIME_SIGNALS_H_
#define BATON_RUNTIME_SIGNALS_H_

#include <signal.h>
#include <sys/signalfd.h>

#include <initializer_list>
#include <memory>

#include "absl/status/statusor.h"
#include "baton/runtime/task.h"

namespace baton {

class SignalReader {
 public:
  static absl::StatusOr<std::unique_ptr<SignalReader>> Create(
      std::initializer_list<int> signals);
  ~SignalReader();
  SignalReader(const SignalReader&) = delete;
  SignalReader& operator=(const SignalReader&) = delete;

  // The next signal; absl::CancelledError if the chain is stopped.
  Task<absl::StatusOr<int>> Next();
  int fd() const { return fd_; }

 private:
  SignalReader(int fd, sigset_t mask) : fd_(fd), mask_(mask) {}
  int fd_;
  sigset_t mask_;
  signalfd_siginfo info_{};
};

}  // namespace baton

#endif  // BATON_RUNTIME_SIGNALS_H_
