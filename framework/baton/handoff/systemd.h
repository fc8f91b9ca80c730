// systemd integration without libsystemd: the sd_notify protocol and socket
// activation, both plain environment-and-socket protocols.
//
// Notify: where $NOTIFY_SOCKET is set (a path, or "@name" for the abstract
// namespace), Notify() sends one datagram of "KEY=VALUE\n" lines to it; where
// it is not, Notify() does nothing. The variable is left in the environment
// on purpose: a handoff child inherits it and reports its own pid as
// MAINPID (the unit needs NotifyAccess=all). A failure to send is logged
// once and otherwise ignored: systemd being gone must not stop a server.
//
// Socket activation: TakeActivatedSockets() returns the listening sockets
// systemd passed ($LISTEN_PID must be this process, $LISTEN_FDS of them from
// fd 3 on, named by $LISTEN_FDNAMES), makes each CLOEXEC (only the handoff
// channel is ever inherited) and removes the three variables, so a handoff
// child, which gets its listeners over the channel, never reads them.
//
//   std::vector<ActivatedSocket> sockets = *TakeActivatedSockets();
//   Notify("READY=1\nSTATUS=serving");
//   Notify(absl::StrCat("RELOADING=1\nMONOTONIC_USEC=", MonotonicUsec()));
#ifndef BATON_HANDOFF_SYSTEMD_H_
#define BATON_HANDOFF_SYSTEMD_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace baton::handoff {

inline constexpr const char* kNotifySocketEnv = "NOTIFY_SOCKET";

// Sends `state` to $NOTIFY_SOCKET, if set.
void Notify(std::string_view state);

// CLOCK_MONOTONIC in microseconds, as RELOADING=1 wants MONOTONIC_USEC.
uint64_t MonotonicUsec();

struct ActivatedSocket {
  int fd = -1;
  std::string name;  // from $LISTEN_FDNAMES; "unknown" when not given
};

// The sockets systemd passed to this process (none if $LISTEN_PID is unset
// or names another process). An error for malformed variables or an fd that
// is not a socket.
absl::StatusOr<std::vector<ActivatedSocket>> TakeActivatedSockets();

}  // namespace baton::handoff

#endif  // BATON_HANDOFF_SYSTEMD_H_
