// Channel: the parent<->child control socket of a handoff.
//
// A SOCK_SEQPACKET Unix socketpair: one datagram per Message, descriptors
// attached with SCM_RIGHTS (plain sendmsg/recvmsg; at most kMaxFds each).
// Received descriptors are CLOEXEC (MSG_CMSG_CLOEXEC); a truncated control
// message (MSG_CTRUNC) is an error and whatever did arrive is closed.
// Waiting for the socket is done on the reactor's ring (poll), so a process
// keeps serving its connections while it waits; waits are cancellable, which
// is how deadlines (WithTimeout) apply. A closed peer (EOF on receive,
// EPIPE or ECONNRESET on send) is absl::UnavailableError.
//
//   absl::StatusOr<ChannelPair> pair = Channel::CreatePair();
//   co_await pair->parent.Send({.type = MessageType::kReady});
//   absl::StatusOr<Message> m = co_await pair->parent.Receive();
#ifndef BATON_HANDOFF_CHANNEL_H_
#define BATON_HANDOFF_CHANNEL_H_

#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "baton/handoff/wire.h"
#include "baton/runtime/task.h"

namespace baton::handoff {

class Channel {
 public:
  explicit Channel(int fd, uint32_t version = kWireVersion)
      : fd_(fd), version_(version) {}
  Channel(Channel&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), version_(other.version_) {}
  Channel& operator=(Channel&&) = delete;
  ~Channel();

  int fd() const { return fd_; }
  // The protocol version this side writes and expects.
  uint32_t version() const { return version_; }

  Task<absl::Status> Send(Message message);
  Task<absl::StatusOr<Message>> Receive();

 private:
  int fd_;
  uint32_t version_;
};

struct ChannelPair {
  Channel parent;
  int child_fd;  // CLOEXEC like every fd; the spawner clears it in the child
};
absl::StatusOr<ChannelPair> CreateChannelPair();

// Closes every fd in `fds` (for messages dropped on an error path).
void CloseAll(std::vector<int>& fds);

}  // namespace baton::handoff

#endif  // BATON_HANDOFF_CHANNEL_H_
