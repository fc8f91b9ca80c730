// EpollBackend: the Backend (see backend.h) for hosts that refuse io_uring.
//
// Readiness turned into the same completions io_uring gives: Submit() tries
// the syscall at once (recv and send with MSG_DONTWAIT, accept4 on a
// non-blocking listener, a non-blocking connect), and what would block is
// parked on its fd until epoll (edge-triggered, each fd registered once, for
// input and output) says it may progress, then retried. Every result, at
// once or later, is dispatched from Wait(), never from Submit(). One parked
// operation per direction per fd (a receive or accept or input poll; a send
// or connect or output poll), which is all the net layer ever has. No
// multishot operations and no buffer ring: receives are single-shot into the
// caller's buffer. Connection sockets keep their blocking mode (MSG_DONTWAIT
// is per call), so a socket moves between io_uring and epoll processes
// either way. A listener is made O_NONBLOCK at its first accept here (and
// blocking again at its first accept by the io_uring backend, for kernels
// that would answer -EAGAIN): a handoff child accepts only after the old
// process stopped, so the two never disagree while both accept.
//
// Timeouts have nanosecond precision with epoll_pwait2 (Linux 5.11, probed)
// and are rounded up to milliseconds without it.
#ifndef BATON_RUNTIME_BACKEND_EPOLL_BACKEND_H_
#define BATON_RUNTIME_BACKEND_EPOLL_BACKEND_H_

#include <memory>

#include "absl/status/statusor.h"
#include "baton/runtime/backend/backend.h"

namespace baton {

struct ReactorOptions;

namespace epoll {

absl::StatusOr<std::unique_ptr<Backend>> Create(
    const ReactorOptions& options, Backend::Sink sink, void* reactor,
    absl::AnyInvocable<void()> on_wake);

}  // namespace epoll
}  // namespace baton

#endif  // BATON_RUNTIME_BACKEND_EPOLL_BACKEND_H_
