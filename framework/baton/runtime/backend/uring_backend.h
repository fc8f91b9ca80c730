// UringBackend: the io_uring Backend (see backend.h), the default.
//
// One ring per reactor. Setup flags are tried newest first and dropped one by
// one where the kernel refuses them (SUBMIT_ALL, COOP_TASKRUN, TASKRUN_FLAG,
// SINGLE_ISSUER, DEFER_TASKRUN); multishot accept and multishot receive with
// a provided-buffer ring are used only where a real probe succeeds. Each
// operation is one SQE whose user_data is its Operation record; Wait() is one
// io_uring_enter that submits and waits, bounded by the timeout (EXT_ARG).
// Cross-thread wake-ups are an eventfd read kept armed on the ring.
//
//   int err = 0;
//   auto backend = UringBackend::Create(options, sink, reactor, on_wake, &err);
//   if (!backend.ok() && (err == EPERM || err == ENOSYS)) { ...epoll... }
#ifndef BATON_RUNTIME_BACKEND_URING_BACKEND_H_
#define BATON_RUNTIME_BACKEND_URING_BACKEND_H_

#include <memory>

#include "absl/status/statusor.h"
#include "baton/runtime/backend/backend.h"

namespace baton {

struct ReactorOptions;

namespace uring {

// Creates the ring; on failure `*setup_errno` is io_uring_setup's errno (0 if
// the failure was elsewhere).
absl::StatusOr<std::unique_ptr<Backend>> Create(
    const ReactorOptions& options, Backend::Sink sink, void* reactor,
    absl::AnyInvocable<void()> on_wake, int* setup_errno);

// io_uring's setup flag names ("SUBMIT_ALL|COOP_TASKRUN|..."), for logs and
// tests.
std::string SetupFlagNames(unsigned flags);

}  // namespace uring
}  // namespace baton

#endif  // BATON_RUNTIME_BACKEND_URING_BACKEND_H_
