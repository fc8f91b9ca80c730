// Supervisor: runs a Server for its whole life, across hot restarts.
//
// It reads SIGUSR2 and SIGHUP (hand the server over to a new process: the
// reload of systemd and of nginx/HAProxy habits), SIGTERM/SIGINT (graceful
// stop) from a signalfd, ignores SIGPIPE (a closed stdout or stderr pipe is
// an EPIPE, not a death), and plays either side of the handoff:
//
// Parent (on SIGUSR2, SIGHUP or RequestHandoff()): start the binary at the path
// this process was started from, with the same arguments and one inherited fd
// (the channel) named by BATON_HANDOFF_FD; wait for HELLO; send the listening
// sockets; wait for READY (deadline: rollback if the child dies, refuses or
// stays silent); freeze the server (stop accepting, let handlers return,
// detach every connection, reaping every final CQE); save the application
// state; send the snapshot in a sealed memfd and the connection fds in
// batches of at most 253, each acknowledged; then close our copies (close(),
// never shutdown()) and return so the process can exit. Any failure before
// the last acknowledgement resumes every connection here (rollback).
//
// Child (BATON_HANDOFF_FD set): say HELLO, take the listeners, start without
// accepting, say READY, read the snapshot, restore the application state,
// collect every batch, acknowledge, and only then serve: each connection's
// inbound bytes first, its unsent bytes sent first, fresh reads appended.
//
// A child whose old process dies after READY (any receive or send on the
// channel finds it closed) serves what it received: the listeners and every
// connection of every batch that arrived.
//
// The pid file (SupervisorOptions::pid_file, see pid_file.h) is prepared
// before serving, so a path that cannot be written fails the start (or,
// in a child, rolls the handoff back), and committed once this process
// serves. With $NOTIFY_SOCKET set it speaks systemd's notify protocol
// (Type=notify-reload, NotifyAccess=all): READY=1 once serving;
// RELOADING=1 with MONOTONIC_USEC when a handoff starts; the new process
// MAINPID=<pid> and READY=1 before the old one exits; READY=1 again after a
// rollback; STOPPING=1 on a stop. Sockets passed by systemd (LISTEN_FDS)
// are served instead of binding; one whose name (LISTEN_FDNAMES) is that of
// a named listener is that listener. See systemd.h.
//
// Each side logs one summary line per handoff. See docs/restart.md.
//
//   Supervisor supervisor(server, options, hooks);
//   int exit_code = reactor->BlockOn(supervisor.Run());
#ifndef BATON_HANDOFF_SUPERVISOR_H_
#define BATON_HANDOFF_SUPERVISOR_H_

#include <sys/types.h>

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "baton/handoff/channel.h"
#include "baton/handoff/pid_file.h"
#include "baton/handoff/wire.h"
#include "baton/net/server.h"
#include "baton/runtime/signals.h"
#include "baton/runtime/task.h"
#include "baton/runtime/task_group.h"

namespace baton::handoff {

inline constexpr const char* kChannelEnv = "BATON_HANDOFF_FD";
// Set (to anything): each new process runs the other reactor backend than
// its parent (BATON_BACKEND=epoll after io_uring and back), to test and show
// handoffs across backends.
inline constexpr const char* kAlternateBackendEnv =
    "BATON_HANDOFF_ALTERNATE_BACKEND";

// Application-wide state that moves with a handoff.
struct AppHooks {
  // Parent, after every handler has returned: the state to move.
  std::function<absl::StatusOr<std::string>()> save_state;
  // Child, before any connection is served. An error aborts the handoff
  // (the parent keeps serving).
  std::function<absl::Status(std::string_view)> restore_state;
  // Work of the application's own while this process serves (expiring
  // keys, flushing logs): runs on the main reactor from when serving starts
  // (in a new process: after restore_state) until it returns or is
  // cancelled (its waits end with CancelledError), which happens before a
  // handoff freezes the server, so save_state never races it, and before a
  // stop. Started again if a handoff rolls back.
  std::function<Task<void>()> background;
};

struct SupervisorOptions {
  std::string pid_file;  // rewritten atomically by whichever process serves
  absl::Duration ready_timeout = absl::Seconds(10);
  absl::Duration grace = absl::Seconds(1);  // for busy handlers to return
  absl::Duration ack_timeout = absl::Seconds(10);
  // The binary to start and its arguments (argv[0] included).
  std::string executable;
  std::vector<std::string> argv;
  // Listening sockets beside the Server's (an admin endpoint, ...), by
  // name. Run() takes each from the old process when it carried one under
  // that name (the same kernel socket and port; no new bind), else binds
  // `address` (no SO_REUSEPORT); prints "NAME listening on HOST:PORT" after
  // "listening on"; and every handoff carries them. Inherited names not
  // asked for are closed. The connections accepted on them are the app's.
  struct NamedListener {
    std::string name;
    Address address;
  };
  std::vector<NamedListener> named_listeners;
};

// Counters of the last handoff, for logs and /stats-like endpoints.
struct HandoffStats {
  int restarts =
      0;  // successful handoffs this lineage of processes went through
  size_t connections = 0;
  size_t listeners = 0;
  uint64_t inbound_bytes = 0;
  uint64_t outbound_bytes = 0;
  uint64_t app_state_bytes = 0;
};

class Supervisor {
 public:
  Supervisor(Server& server, SupervisorOptions options, AppHooks hooks = {});
  ~Supervisor();

  // Opens (or inherits) the listeners, serves until stopped or handed over.
  // Returns the process exit code. Prints "listening on HOST:PORT" on stdout.
  Task<int> Run();
  // Starts a handoff as if SIGUSR2 had arrived (reactor thread only); `why`
  // names the cause in the log and in systemd's STATUS.
  void RequestHandoff(const char* why = "requested");
  // Stops as if SIGTERM had arrived (reactor thread only).
  void RequestStop();

  // What the last handoff moved (in the child: what it received). Callable
  // from any thread (handlers on every reactor report it).
  HandoffStats last_handoff() const {
    absl::MutexLock lock(&stats_mu_);
    return stats_;
  }
  // The last kHistorySize handoffs of this lineage, oldest first: the old
  // processes' records (carried in each handoff) and this one's, complete
  // or rolled back, from either side. Callable from any thread.
  static constexpr size_t kHistorySize = 16;
  std::vector<HandoffRecord> handoff_history() const {
    absl::MutexLock lock(&stats_mu_);
    return {history_.begin(), history_.end()};
  }
  // Handoffs this lineage rolled back (its restarts are
  // last_handoff().restarts). Callable from any thread.
  uint64_t handoffs_rolled_back() const {
    absl::MutexLock lock(&stats_mu_);
    return rolled_back_;
  }
  // The socket of SupervisorOptions::named_listeners `name` (owned by the
  // supervisor; -1 if none), once Run() has printed "listening on".
  // Reactor thread only.
  int named_listener_fd(std::string_view name) const;

 private:
  struct Child;
  Task<absl::Status> Inherit(std::vector<int>* listener_fds);
  Task<absl::Status> FinishInheriting();
  Task<absl::Status> ServeOrphaned(std::vector<DetachedConnection> received,
                                   absl::Status why);
  Task<absl::Status> Handoff();
  Task<absl::Status> Transfer(Channel& channel, Child& child,
                              std::vector<DetachedConnection>* frozen,
                              bool* is_frozen);
  Task<void> RunHandoff();
  Task<void> SignalLoop();
  void StartBackground();
  Task<void> StopBackground();
  // Commits the pid file and tells systemd (READY=1; a new process also
  // MAINPID). Called before the channel closes, so before the old process
  // exits.
  absl::Status AnnounceServing(bool took_over);
  absl::Status OpenNamedListeners();
  void Record(HandoffRecord record);

  Server& server_;
  SupervisorOptions options_;
  AppHooks hooks_;
  std::unique_ptr<SignalReader> signals_;
  std::unique_ptr<Channel> inherited_;  // child side, until adoption ends
  PidFile pid_file_;
  TaskGroup signal_loop_;
  TaskGroup handoffs_;
  TaskGroup background_;
  bool background_running_ = false;
  bool handoff_running_ = false;
  bool handed_off_ = false;
  bool stop_requested_ = false;
  void SetStats(const HandoffStats& stats) {
    absl::MutexLock lock(&stats_mu_);
    stats_ = stats;
  }

  mutable absl::Mutex stats_mu_;
  HandoffStats stats_ ABSL_GUARDED_BY(stats_mu_);
  std::deque<HandoffRecord> history_ ABSL_GUARDED_BY(stats_mu_);
  uint64_t rolled_back_ ABSL_GUARDED_BY(stats_mu_) = 0;
  // Named listeners: inherited (until claimed), and open.
  std::vector<std::pair<std::string, int>> inherited_named_;
  std::vector<std::pair<std::string, int>> named_;
};

}  // namespace baton::handoff

#endif  // BATON_HANDOFF_SUPERVISOR_H_
