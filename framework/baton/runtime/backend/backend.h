// Backend: the kernel interface under a Reactor, and the operations it runs.
//
// A Reactor (reactor.h) owns one Backend, chosen when it is created:
// io_uring (uring_backend.h), or epoll (epoll_backend.h) where io_uring is
// refused (seccomp, sysctl kernel.io_uring_disabled, RLIMIT_MEMLOCK) or asked
// for. Everything above the runtime describes an operation as an IoRequest
// and receives its result as a completion (res, flags) on the Operation record
// it named, exactly as io_uring reports a CQE: `res` is the syscall's result
// or a negative errno, `flags` carries kIoMore (more completions follow: a
// multishot operation) and kIoBuffer (a provided buffer was used; its id is
// flags >> kIoBufferShift). So Task, Connection, Listener, Server and the
// handoff do not know which backend runs.
//
// Contract for every backend:
// - Submit() never completes synchronously: completions are dispatched from
//   Wait(), on the reactor thread, through the sink given at construction.
// - Every submitted operation with a record completes exactly once finally
//   (a completion without kIoMore), also when cancelled: -ECANCELED, or the
//   result that beat the cancel. A record must outlive its final completion.
// - kCancel / kCancelFd complete with 0 (found), -ENOENT (nothing to cancel)
//   or -EALREADY (busy delivering; try again). A null record: no completion.
// - Sockets keep their blocking mode for connections (receives and sends
//   never depend on O_NONBLOCK), so a socket can move between processes of
//   either backend; a listener is made what its backend needs at its first
//   accept.
// - ForgetFd(fd) is called before an fd that had operations is closed
//   (closing = true) or handed elsewhere (false): an epoll registration must
//   not outlive the descriptor number's meaning.
//
//   backend->Submit(&op, IoRequest::Recv(fd, buf, len));
//   backend->Wait(/*timeout_ns=*/-1);   // dispatches op's completion
#ifndef BATON_RUNTIME_BACKEND_BACKEND_H_
#define BATON_RUNTIME_BACKEND_BACKEND_H_

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/functional/any_invocable.h"

namespace baton {

struct Operation;

enum class BackendKind { kIoUring, kEpoll };
const char* BackendName(BackendKind kind);

// Completion flags; the values are io_uring's CQE flags (static_asserted in
// uring_backend.cc), so that backend passes them through untouched.
inline constexpr uint32_t kIoBuffer = 1u << 0;  // IORING_CQE_F_BUFFER
inline constexpr uint32_t kIoMore = 1u << 1;    // IORING_CQE_F_MORE
inline constexpr unsigned kIoBufferShift = 16;  // IORING_CQE_BUFFER_SHIFT

// One operation, described without naming the backend.
struct IoRequest {
  enum class Kind : uint8_t {
    kNop,
    kAccept,    // res: the new socket (CLOEXEC); `multishot`: keeps accepting
    kRecv,      // res: bytes received, 0 at EOF; `multishot`: into the
                // reactor's buffer ring (kIoBuffer), until cancelled
    kSend,      // res: bytes sent (MSG_NOSIGNAL)
    kConnect,   // res: 0 or -errno
    kPoll,      // res: the ready poll(2) events
    kCancel,    // of `target`
    kCancelFd,  // of every operation on `fd`
  };
  Kind kind = Kind::kNop;
  int fd = -1;
  void* buf = nullptr;  // kRecv: destination, kSend: source
  size_t len = 0;
  const sockaddr* addr = nullptr;  // kConnect
  socklen_t addr_len = 0;
  unsigned events = 0;          // kPoll
  Operation* target = nullptr;  // kCancel
  bool multishot = false;       // kAccept, kRecv
  bool poll_first = false;      // kRecv: likely nothing to read yet (a hint)

  static IoRequest Nop() { return {}; }
  static IoRequest Accept(int fd, bool multishot) {
    return {.kind = Kind::kAccept, .fd = fd, .multishot = multishot};
  }
  static IoRequest Recv(int fd, void* buf, size_t len) {
    return {.kind = Kind::kRecv, .fd = fd, .buf = buf, .len = len};
  }
  static IoRequest RecvMultishot(int fd, bool poll_first) {
    return {.kind = Kind::kRecv,
            .fd = fd,
            .multishot = true,
            .poll_first = poll_first};
  }
  static IoRequest Send(int fd, const void* buf, size_t len) {
    return {.kind = Kind::kSend,
            .fd = fd,
            .buf = const_cast<void*>(buf),
            .len = len};
  }
  static IoRequest Connect(int fd, const sockaddr* addr, socklen_t len) {
    return {.kind = Kind::kConnect, .fd = fd, .addr = addr, .addr_len = len};
  }
  static IoRequest Poll(int fd, unsigned events) {
    return {.kind = Kind::kPoll, .fd = fd, .events = events};
  }
  static IoRequest Cancel(Operation* target) {
    return {.kind = Kind::kCancel, .target = target};
  }
  static IoRequest CancelFd(int fd) {
    return {.kind = Kind::kCancelFd, .fd = fd};
  }
};

class BufferRing;

// What a reactor's backend actually uses.
struct ReactorFeatures {
  BackendKind backend = BackendKind::kIoUring;
  unsigned setup_flags = 0;  // io_uring's IORING_SETUP_*; 0 for epoll
  bool multishot_accept = false;
  bool multishot_recv = false;  // with a provided-buffer ring
  bool nodrop = false;          // IORING_FEAT_NODROP
  std::string ToString() const;
};

class Backend {
 public:
  // Where completions go: the reactor's dispatch.
  using Sink = void (*)(void* reactor, Operation* op, int32_t res,
                        uint32_t flags);
  virtual ~Backend() = default;

  const ReactorFeatures& features() const { return features_; }
  // The provided-buffer ring of multishot receives, or null (then receives
  // are single-shot into the caller's buffer).
  virtual BufferRing* buffer_ring() { return nullptr; }

  virtual void Submit(Operation* op, const IoRequest& request) = 0;
  // Submits what is queued and waits up to `timeout_ns` (< 0: until
  // something completes; 0: not at all) for completions or a Wake(), then
  // dispatches every completion it has. A wake-up runs `on_wake`.
  virtual void Wait(int64_t timeout_ns) = 0;
  // Makes a Wait() under way (or the next one) return. Any thread.
  virtual void Wake() = 0;

  virtual void ForgetFd(int /*fd*/, bool /*closing*/) {}

 protected:
  Backend(Sink sink, void* reactor, absl::AnyInvocable<void()> on_wake)
      : sink_(sink), reactor_(reactor), on_wake_(std::move(on_wake)) {}
  void Complete(Operation* op, int32_t res, uint32_t flags) {
    sink_(reactor_, op, res, flags);
  }
  void Woken() { on_wake_(); }

  ReactorFeatures features_;

 private:
  Sink sink_;
  void* reactor_;
  absl::AnyInvocable<void()> on_wake_;
};

}  // namespace baton

#endif  // BATON_RUNTIME_BACKEND_BACKEND_H_
