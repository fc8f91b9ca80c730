#include "baton/handoff/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "baton/handoff/fault.h"
#include "baton/handoff/systemd.h"
#include "baton/handoff/wire.h"
#include "baton/runtime/log.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/timer.h"

extern char** environ;

namespace baton::handoff {
namespace {

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

Message Make(MessageType type, std::string body = {},
             std::vector<int> fds = {}) {
  Message m;
  m.type = type;
  m.body = std::move(body);
  m.fds = std::move(fds);  // sent, not given away: the sender still owns them
  return m;
}

// Receives the next message, which must be `type`: an ABORT or anything
// else is an error naming what was expected.
Task<absl::StatusOr<Message>> Expect(Channel& channel, MessageType type,
                                     absl::Duration timeout) {
  absl::StatusOr<Message> m = co_await WithTimeout(channel.Receive(), timeout);
  if (!m.ok()) {
    co_return absl::Status(
        m.status().code(),
        absl::StrFormat("waiting for %s: %s", MessageTypeName(type),
                        std::string(m.status().message())));
  }
  if (m->type == MessageType::kAbort) {
    CloseAll(m->fds);
    co_return absl::AbortedError(
        absl::StrCat("the other process aborted the handoff: ", m->body));
  }
  if (m->type != type) {
    CloseAll(m->fds);
    co_return absl::DataLossError(absl::StrFormat("expected handoff %s, got %s",
                                                  MessageTypeName(type),
                                                  MessageTypeName(m->type)));
  }
  co_return m;
}

absl::StatusOr<pid_t> SpawnChild(const SupervisorOptions& options,
                                 int channel_fd, const std::string& fault) {
  std::vector<std::string> env;
  const bool alternate = getenv(kAlternateBackendEnv) != nullptr;
  for (char** e = environ; *e != nullptr; ++e) {
    absl::string_view kv(*e);
    if (absl::StartsWith(kv, absl::StrCat(kChannelEnv, "=")) ||
        absl::StartsWith(kv, absl::StrCat(kFaultEnv, "=")) ||
        (alternate && absl::StartsWith(kv, "BATON_BACKEND="))) {
      continue;
    }
    env.emplace_back(kv);
  }
  if (alternate) {
    // Each new process runs the other backend: handoffs across backends,
    // for tests and demos.
    env.push_back(Reactor::Current()->backend() == BackendKind::kEpoll
                      ? "BATON_BACKEND=io_uring"
                      : "BATON_BACKEND=epoll");
  }
  env.push_back(absl::StrCat(kChannelEnv, "=", channel_fd));
  if (!fault.empty()) env.push_back(absl::StrCat(kFaultEnv, "=", fault));
  std::vector<char*> envp, argv;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = options.argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 onto itself clears FD_CLOEXEC in the child only: the channel is the
  // one descriptor the new process inherits on purpose.
  posix_spawn_file_actions_adddup2(&actions, channel_fd, channel_fd);
  pid_t pid = -1;
  int err = posix_spawn(&pid, options.executable.c_str(), &actions, nullptr,
                        argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) {
    return absl::ErrnoToStatus(
        err, absl::StrCat("starting the new process ", options.executable));
  }
  return pid;
}

absl::StatusOr<int> WriteSealedMemfd(const std::string& bytes) {
  int fd =
      memfd_create("baton-handoff-snapshot", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return absl::ErrnoToStatus(errno, "memfd_create");
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      close(fd);
      return absl::ErrnoToStatus(err, "writing the handoff snapshot");
    }
    done += static_cast<size_t>(n);
  }
  if (fcntl(fd, F_ADD_SEALS,
            F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    int err = errno;
    close(fd);
    return absl::ErrnoToStatus(err, "sealing the handoff snapshot");
  }
  return fd;
}

absl::StatusOr<std::string> ReadSealedMemfd(int fd) {
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0 || !(seals & F_SEAL_WRITE) || !(seals & F_SEAL_SHRINK)) {
    return absl::FailedPreconditionError(
        "the handoff snapshot memfd is not sealed against writes");
  }
  struct stat st;
  if (fstat(fd, &st) != 0) return absl::ErrnoToStatus(errno, "fstat(memfd)");
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = pread(fd, bytes.data() + done, bytes.size() - done,
                      static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::ErrnoToStatus(errno, "reading the snapshot");
    done += static_cast<size_t>(n);
  }
  return bytes;
}

// Fault injection (child:ack_after_parent_exit): blocks until `parent`, the
// process that started this one (asked before it could die), has exited, so
// that a following send finds the channel closed.
void WaitForParentExit(pid_t parent) {
  if (getppid() != parent) return;  // already gone: we were re-parented
  const int fd = static_cast<int>(syscall(SYS_pidfd_open, parent, 0));
  if (fd < 0) return;  // already gone
  pollfd p{fd, POLLIN, 0};
  while (poll(&p, 1, 10'000) < 0 && errno == EINTR) {
  }
  close(fd);
}

// The record of a completed handoff, as either side counted it.
HandoffRecord CompletedRecord(HandoffRecord::Role role, int32_t peer,
                              const HandoffStats& stats) {
  return {.role = role,
          .ok = true,
          .peer_pid = peer,
          .restart = static_cast<uint32_t>(stats.restarts),
          .connections = static_cast<uint32_t>(stats.connections),
          .listeners = static_cast<uint32_t>(stats.listeners),
          .inbound_bytes = stats.inbound_bytes,
          .outbound_bytes = stats.outbound_bytes,
          .app_state_bytes = stats.app_state_bytes};
}

const char* SignalName(int signo) {
  return signo == SIGHUP ? "SIGHUP" : signo == SIGUSR2 ? "SIGUSR2" : "signal";
}

}  // namespace

// The started process, killed and reaped unless the handoff committed.
struct Supervisor::Child {
  pid_t pid = -1;
  bool committed = false;
  bool reaped = false;
  int wait_status = 0;

  // What became of the child, for error messages.
  std::string Describe() {
    if (!reaped && waitpid(pid, &wait_status, WNOHANG) == pid) reaped = true;
    if (!reaped) return absl::StrFormat("child pid %d is still running", pid);
    if (WIFEXITED(wait_status)) {
      return absl::StrFormat("child pid %d exited with status %d", pid,
                             WEXITSTATUS(wait_status));
    }
    if (WIFSIGNALED(wait_status)) {
      return absl::StrFormat("child pid %d was killed by signal %d", pid,
                             WTERMSIG(wait_status));
    }
    return absl::StrFormat("child pid %d ended", pid);
  }
  void Kill() {
    if (committed || reaped || pid <= 0) return;
    kill(pid, SIGKILL);
    while (waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
    }
    reaped = true;
  }
  ~Child() { Kill(); }
};

Supervisor::Supervisor(Server& server, SupervisorOptions options,
                       AppHooks hooks)
    : server_(server), options_(std::move(options)), hooks_(std::move(hooks)) {}

Supervisor::~Supervisor() {
  for (auto& [name, fd] : inherited_named_) close(fd);
  for (auto& [name, fd] : named_) close(fd);
}

int Supervisor::named_listener_fd(std::string_view name) const {
  for (const auto& [n, fd] : named_) {
    if (n == name) return fd;
  }
  return -1;
}

absl::Status Supervisor::OpenNamedListeners() {
  for (const auto& want : options_.named_listeners) {
    int fd = -1;
    for (auto& [name, inherited] : inherited_named_) {
      if (name == want.name) fd = std::exchange(inherited, -1);
    }
    if (fd < 0) {
      ListenerOptions options;
      options.reuse_port = false;
      options.backlog = 64;
      absl::StatusOr<Listener> l = Listener::Bind(want.address, options);
      if (!l.ok()) {
        return absl::Status(
            l.status().code(),
            absl::StrCat(want.name, " listener: ", l.status().message()));
      }
      fd = l->ReleaseFd();
    }
    named_.emplace_back(want.name, fd);
  }
  for (auto& [name, fd] : inherited_named_) {
    if (fd < 0) continue;
    Log("handoff: closing the inherited %s listener (not configured here)",
        name);
    close(fd);
  }
  inherited_named_.clear();
  return absl::OkStatus();
}

void Supervisor::Record(HandoffRecord record) {
  record.pid = getpid();
  record.when = absl::Now();
  absl::MutexLock lock(&stats_mu_);
  if (!record.ok && record.role == HandoffRecord::Role::kParent) {
    ++rolled_back_;
  }
  history_.push_back(std::move(record));
  while (history_.size() > kHistorySize) history_.pop_front();
}

absl::Status Supervisor::AnnounceServing(bool took_over) {
  absl::Status s = pid_file_.Commit(getpid());
  const std::string status =
      absl::StrCat("STATUS=serving on ", server_.address().ToString(), " (",
                   server_.threads(), " threads)");
  Notify(took_over ? absl::StrCat("MAINPID=", getpid(), "\nREADY=1\n", status)
                   : absl::StrCat("READY=1\n", status));
  return s;
}

Task<int> Supervisor::Run() {
  Fault::Load();
  // A launcher that reads "listening on" and closes our stdout, or a closed
  // stderr pipe, must not kill a server (or a handoff child) that logs: a
  // write fails with EPIPE instead.
  signal(SIGPIPE, SIG_IGN);
  auto signals = SignalReader::Create({SIGUSR2, SIGHUP, SIGTERM, SIGINT});
  if (!signals.ok()) {
    Log("%s", signals.status().ToString());
    co_return 1;
  }
  signals_ = *std::move(signals);

  const bool child = getenv(kChannelEnv) != nullptr;
  std::vector<int> inherited;
  bool activated = false;
  if (child) {
    if (absl::Status s = co_await Inherit(&inherited); !s.ok()) {
      Log("handoff: cannot take over: %s", s.ToString());
      co_return 1;
    }
  } else {
    absl::StatusOr<std::vector<ActivatedSocket>> sockets =
        TakeActivatedSockets();
    if (!sockets.ok()) {
      Log("%s", sockets.status().ToString());
      co_return 1;
    }
    std::vector<std::string> names;
    for (const ActivatedSocket& a : *sockets) {
      // A socket named like a named listener (FileDescriptorName=admin) is
      // that listener; every other one serves the Server.
      const bool named = std::any_of(
          options_.named_listeners.begin(), options_.named_listeners.end(),
          [&](const SupervisorOptions::NamedListener& n) {
            return n.name == a.name;
          });
      if (named) {
        inherited_named_.emplace_back(a.name, a.fd);
      } else {
        inherited.push_back(a.fd);
      }
      names.push_back(a.name);
    }
    activated = !inherited.empty();
    if (!names.empty()) {
      Log("socket activation: serving the %d listening sockets systemd "
          "passed (%s) instead of binding",
          names.size(), absl::StrJoin(names, ", "));
    }
  }
  // Before serving (and, in a new process, before READY): a pid file that
  // cannot be written fails the start, or rolls the handoff back.
  absl::StatusOr<PidFile> pid_file = PidFile::Prepare(options_.pid_file);
  absl::Status opened =
      pid_file.ok() ? server_.Open(inherited) : pid_file.status();
  if (!opened.ok()) {
    Log("%s%s", opened.ToString(),
        activated && server_.threads() > static_cast<int>(inherited.size())
            ? " (socket activation: give the .socket unit ReusePort=yes, or "
              "pass one socket per thread)"
            : "");
    if (inherited_)
      co_await inherited_->Send(Make(MessageType::kAbort, opened.ToString()));
    co_return 1;
  }
  pid_file_ = *std::move(pid_file);
  if (absl::Status s = co_await server_.Start(/*accepting=*/!child); !s.ok()) {
    Log("%s", s.ToString());
    co_return 1;
  }
  if (absl::Status s = OpenNamedListeners(); !s.ok()) {
    Log("%s", s.ToString());
    if (inherited_)
      co_await inherited_->Send(Make(MessageType::kAbort, s.ToString()));
    co_await server_.Shutdown(absl::ZeroDuration());
    co_return 1;
  }
  std::printf("listening on %s\n", server_.address().ToString().c_str());
  for (const auto& [name, fd] : named_) {
    absl::StatusOr<Address> bound = Address::OfSocket(fd);
    std::printf("%s listening on %s\n", name.c_str(),
                bound.ok() ? bound->ToString().c_str() : "?");
  }
  std::fflush(stdout);

  if (child) {
    if (absl::Status s = co_await FinishInheriting(); !s.ok()) {
      Log("handoff: taking over failed, exiting (the old process keeps "
          "serving): %s",
          s.ToString());
      co_await server_.Shutdown(absl::ZeroDuration());
      co_return 1;
    }
  }
  // The pid file and systemd's MAINPID name this process before the old one
  // may exit, which it does once the channel closes.
  absl::Status announced = AnnounceServing(/*took_over=*/child);
  inherited_.reset();
  if (!announced.ok()) {
    Log("%s", announced.ToString());
    if (!child) {
      co_await server_.Shutdown(absl::ZeroDuration());
      co_return 1;
    }
  }
  StartBackground();

  signal_loop_.Spawn(SignalLoop());
  co_await signal_loop_.Join();
  co_await handoffs_.Join();
  co_await StopBackground();
  if (handed_off_) co_return 0;
  Notify("STOPPING=1");
  Log("stopping: %d connections", static_cast<int>(server_.connection_count()));
  co_await server_.Shutdown(options_.grace);
  co_return 0;
}

void Supervisor::StartBackground() {
  if (!hooks_.background || background_running_) return;
  background_running_ = true;
  background_.Spawn(hooks_.background());
}

Task<void> Supervisor::StopBackground() {
  if (!background_running_) co_return;
  background_.CancelAll();
  co_await background_.Join();
  background_running_ = false;
}

Task<void> Supervisor::SignalLoop() {
  while (true) {
    absl::StatusOr<int> signo = co_await signals_->Next();
    if (!signo.ok()) co_return;  // cancelled: handed off or stopping
    if (*signo == SIGUSR2 || *signo == SIGHUP) {
      RequestHandoff(SignalName(*signo));
    } else if (handoff_running_) {
      stop_requested_ = true;
      Log("signal %d during a handoff: stopping once it ends", *signo);
    } else {
      co_return;
    }
  }
}

void Supervisor::RequestHandoff(const char* why) {
  if (handoff_running_) {
    Log("%s ignored: a handoff is already in progress", why);
    return;
  }
  Notify(absl::StrCat("RELOADING=1\nMONOTONIC_USEC=", MonotonicUsec(),
                      "\nSTATUS=handing over to a new process (", why, ")"));
  handoff_running_ = true;
  handoffs_.Spawn(RunHandoff());
}

void Supervisor::RequestStop() {
  stop_requested_ = true;
  if (!handoff_running_) signal_loop_.CancelAll();
}

Task<void> Supervisor::RunHandoff() {
  absl::Status s = co_await Handoff();
  handoff_running_ = false;
  if (!s.ok()) {
    // The reload is over: this process still serves.
    Notify(absl::StrCat("READY=1\nSTATUS=handoff failed, still serving: ",
                        s.message()));
  }
  if (s.ok()) handed_off_ = true;
  if (s.ok() || stop_requested_) signal_loop_.CancelAll();
}

Task<absl::Status> Supervisor::Handoff() {
  absl::StatusOr<ChannelPair> pair = CreateChannelPair();
  if (!pair.ok()) {
    Log("handoff failed, still serving: %s", pair.status().ToString());
    co_return pair.status();
  }
  std::string fault = Fault::TakeForChild();
  absl::StatusOr<pid_t> pid = SpawnChild(options_, pair->child_fd, fault);
  close(pair->child_fd);
  if (!pid.ok()) {
    Log("handoff failed, still serving: %s", pid.status().ToString());
    Record({.role = HandoffRecord::Role::kParent,
            .reason = pid.status().ToString()});
    co_return pid.status();
  }
  Child child{.pid = *pid};
  std::vector<DetachedConnection> frozen;
  bool is_frozen = false;
  absl::Status s = co_await Transfer(pair->parent, child, &frozen, &is_frozen);
  if (s.ok()) {
    child.committed = true;
    co_return s;
  }
  // Rollback: tell the child (it may be gone), make sure it is, and serve
  // every connection here again, bytes and all.
  (void)co_await pair->parent.Send(Make(MessageType::kAbort, s.ToString()));
  child.Kill();
  size_t resumed = frozen.size();
  if (is_frozen) co_await server_.Resume(std::move(frozen));
  StartBackground();
  Log("handoff to pid %d failed (%s): %s; rolled back, this process keeps "
      "serving%s",
      *pid, child.Describe(), s.ToString(),
      is_frozen ? absl::StrFormat(" (%d connections resumed)", resumed) : "");
  Record({.role = HandoffRecord::Role::kParent,
          .reason = absl::StrCat(child.Describe(), ": ", s.ToString()),
          .peer_pid = *pid,
          .connections = static_cast<uint32_t>(resumed)});
  co_return s;
}

Task<absl::Status> Supervisor::Transfer(Channel& channel, Child& child,
                                        std::vector<DetachedConnection>* frozen,
                                        bool* is_frozen) {
  const absl::Time t_start = absl::Now();
  Fault::Hit(Side::kParent, "after_spawn");
  absl::StatusOr<Message> hello =
      co_await Expect(channel, MessageType::kHello, options_.ready_timeout);
  if (!hello.ok()) co_return hello.status();

  std::vector<int> listeners = server_.listener_fds();
  ListenersBody listeners_body;
  listeners_body.server_count = static_cast<uint32_t>(listeners.size());
  listeners_body.history = handoff_history();
  listeners_body.rolled_back = handoffs_rolled_back();
  for (const auto& [name, fd] : named_) {
    listeners_body.names.push_back(name);
    listeners.push_back(fd);
  }
  absl::Status s = co_await channel.Send(Make(
      MessageType::kListeners, EncodeListeners(listeners_body), listeners));
  if (!s.ok()) co_return s;
  Fault::Hit(Side::kParent, "after_listeners");
  absl::StatusOr<Message> ready =
      co_await Expect(channel, MessageType::kReady, options_.ready_timeout);
  if (!ready.ok()) co_return ready.status();
  const absl::Time t_ready = absl::Now();

  // From here on no byte of any connection is read by this process, and the
  // application's background work is stopped (save_state follows).
  co_await StopBackground();
  const absl::Duration freeze_start = MonotonicNow();
  FrozenConnections f = co_await server_.Freeze(options_.grace);
  const int handlers_cancelled = f.handlers_cancelled;
  *frozen = std::move(f.connections);
  *is_frozen = true;
  const absl::Time t_frozen = absl::Now();
  Fault::Hit(Side::kParent, "after_freeze");

  Snapshot snapshot;
  if (hooks_.save_state) {
    absl::StatusOr<std::string> state = hooks_.save_state();
    if (!state.ok()) co_return state.status();
    snapshot.app_state = *std::move(state);
  }
  snapshot.connections.swap(*frozen);
  std::string bytes = EncodeSnapshot(snapshot, channel.version());
  snapshot.connections.swap(*frozen);
  absl::StatusOr<int> memfd = WriteSealedMemfd(bytes);
  if (!memfd.ok()) co_return memfd.status();
  const auto count = static_cast<uint32_t>(frozen->size());
  const auto frozen_us =
      static_cast<uint64_t>(absl::ToInt64Microseconds(freeze_start));
  s = co_await channel.Send(
      Make(MessageType::kState,
           EncodeU32s(count, static_cast<uint32_t>(last_handoff().restarts + 1),
                      static_cast<uint32_t>(frozen_us),
                      static_cast<uint32_t>(frozen_us >> 32)),
           std::vector<int>(1, *memfd)));
  close(*memfd);
  if (!s.ok()) co_return s;
  Fault::Hit(Side::kParent, "after_state");

  for (uint32_t first = 0;; first += kMaxFds) {
    uint32_t n = std::min<uint32_t>(kMaxFds, count - first);
    std::vector<int> fds;
    for (uint32_t i = first; i < first + n; ++i) fds.push_back((*frozen)[i].fd);
    s = co_await channel.Send(
        Make(MessageType::kConnections, EncodeU32s(first, n), fds));
    if (!s.ok()) co_return s;
    Fault::Hit(Side::kParent, "after_batch_sent");
    absl::StatusOr<Message> ack =
        co_await Expect(channel, MessageType::kAck, options_.ack_timeout);
    if (!ack.ok()) co_return ack.status();
    absl::StatusOr<std::vector<uint32_t>> adopted = DecodeU32s(ack->body, 1);
    if (!adopted.ok()) co_return adopted.status();
    if ((*adopted)[0] != first + n) {
      co_return absl::DataLossError(
          absl::StrFormat("child acknowledged %d connections, %d were sent",
                          (*adopted)[0], first + n));
    }
    if (first + n >= count) break;
    Fault::Hit(Side::kParent, "after_batch");
  }
  Fault::Hit(Side::kParent, "before_commit");
  const absl::Time t_acked = absl::Now();

  // Commit: the child owns everything now. It closes its end of the channel
  // once it serves every connection; until then this process stays out of
  // its way (closing thousands of sockets takes milliseconds of a CPU the
  // child needs to end the pause).
  absl::StatusOr<Message> after =
      co_await WithTimeout(channel.Receive(), options_.ack_timeout);
  if (after.ok()) CloseAll(after->fds);  // nothing is expected; keep no fd
  const absl::Time t_child_serving = absl::Now();
  // close(), never shutdown(): the sockets live on in the child.
  HandoffStats stats;
  stats.restarts = last_handoff().restarts + 1;
  stats.connections = frozen->size();
  stats.listeners = listeners.size();
  stats.app_state_bytes = snapshot.app_state.size();
  size_t with_unread = 0;
  for (DetachedConnection& c : *frozen) {
    stats.inbound_bytes += c.inbound.size();
    stats.outbound_bytes += c.outbound.size();
    if (!c.inbound.empty()) ++with_unread;
    close(c.fd);
  }
  frozen->clear();
  co_await server_.Abandon();
  SetStats(stats);
  HandoffRecord done =
      CompletedRecord(HandoffRecord::Role::kParent, child.pid, stats);
  done.ready = t_ready - t_start;
  done.freeze = t_frozen - t_ready;
  done.transfer = t_acked - t_frozen;
  Record(std::move(done));
  const absl::Time t_end = absl::Now();
  // The pause clients see ends in the child, which logs it.
  Log("handoff to pid %d complete: %d connections (%d with unread bytes), "
      "%d inbound bytes, %d outbound bytes, %d listeners, app state %d bytes, "
      "%d busy handlers cancelled after the grace period; "
      "ready %.2f ms, freeze %.2f ms, transfer %.2f ms, child resuming %.2f "
      "ms, close %.2f ms, total %.2f ms",
      child.pid, stats.connections, with_unread, stats.inbound_bytes,
      stats.outbound_bytes, stats.listeners, stats.app_state_bytes,
      handlers_cancelled, Ms(t_ready - t_start), Ms(t_frozen - t_ready),
      Ms(t_acked - t_frozen), Ms(t_child_serving - t_acked),
      Ms(t_end - t_child_serving), Ms(t_end - t_start));
  co_return absl::OkStatus();
}

Task<absl::Status> Supervisor::Inherit(std::vector<int>* listener_fds) {
  const char* env = getenv(kChannelEnv);
  int fd = -1;
  if (!absl::SimpleAtoi(env, &fd) || fcntl(fd, F_GETFD) < 0) {
    co_return absl::InvalidArgumentError(absl::StrFormat(
        "%s=%s does not name an open descriptor", kChannelEnv, env));
  }
  unsetenv(kChannelEnv);
  fcntl(fd, F_SETFD, FD_CLOEXEC);  // not to be inherited any further
  const uint32_t version = Fault::Take(Side::kChild, "wire_version")
                               ? kWireVersion + 1
                               : kWireVersion;
  inherited_ = std::make_unique<Channel>(fd, version);
  absl::Status s = co_await inherited_->Send(
      Make(MessageType::kHello, EncodeU32s(static_cast<uint32_t>(getpid()))));
  if (!s.ok()) co_return s;
  Fault::Hit(Side::kChild, "after_hello");
  absl::StatusOr<Message> m = co_await Expect(
      *inherited_, MessageType::kListeners, options_.ready_timeout);
  if (!m.ok()) co_return m.status();
  absl::StatusOr<ListenersBody> body = DecodeListeners(m->body, m->fds.size());
  if (!body.ok()) {
    CloseAll(m->fds);
    co_return body.status();
  }
  listener_fds->assign(m->fds.begin(), m->fds.begin() + body->server_count);
  for (size_t i = 0; i < body->names.size(); ++i) {
    inherited_named_.emplace_back(body->names[i],
                                  m->fds[body->server_count + i]);
  }
  {
    absl::MutexLock lock(&stats_mu_);
    history_.assign(body->history.begin(), body->history.end());
    rolled_back_ = body->rolled_back;
  }
  Fault::Hit(Side::kChild, "after_listeners");
  co_return absl::OkStatus();
}

Task<absl::Status> Supervisor::ServeOrphaned(
    std::vector<DetachedConnection> received, absl::Status why) {
  // The parent died after READY: it can no longer serve anything, so the
  // service is better off with us serving what we hold than with nobody.
  Log("handoff: the old process died mid-handoff (%s); serving the listeners "
      "and the %d connections received",
      why.ToString(), received.size());
  co_await server_.Resume(std::move(received));
  co_return absl::OkStatus();
}

Task<absl::Status> Supervisor::FinishInheriting() {
  const absl::Time t_start = absl::Now();
  // Asked now: once the channel closes the old process exits, and this one
  // is re-parented.
  const pid_t parent = getppid();
  Channel& channel = *inherited_;
  Fault::Hit(Side::kChild, "hang_before_ready");
  absl::Status s = co_await channel.Send(Make(MessageType::kReady));
  if (absl::IsUnavailable(s)) co_return co_await ServeOrphaned({}, s);
  if (!s.ok()) co_return s;
  Fault::Hit(Side::kChild, "after_ready");

  // The parent freezes (up to its grace period) before it sends the state.
  absl::StatusOr<Message> state = co_await Expect(
      channel, MessageType::kState, options_.grace + options_.ack_timeout);
  if (!state.ok()) {
    if (!absl::IsUnavailable(state.status())) co_return state.status();
    co_return co_await ServeOrphaned({}, state.status());
  }
  absl::StatusOr<std::vector<uint32_t>> header = DecodeU32s(state->body, 4);
  if (!header.ok() || state->fds.size() != 1) {
    CloseAll(state->fds);
    co_return absl::DataLossError("malformed handoff STATE message");
  }
  absl::StatusOr<std::string> bytes = ReadSealedMemfd(state->fds[0]);
  CloseAll(state->fds);
  absl::StatusOr<Snapshot> snapshot =
      bytes.ok() ? DecodeSnapshot(*bytes, channel.version())
                 : absl::StatusOr<Snapshot>(bytes.status());
  if (snapshot.ok() && snapshot->connections.size() != (*header)[0]) {
    snapshot = absl::DataLossError("snapshot and STATE disagree on count");
  }
  if (snapshot.ok() && hooks_.restore_state) {
    if (absl::Status r = hooks_.restore_state(snapshot->app_state); !r.ok()) {
      snapshot = r;
    }
  }
  if (!snapshot.ok()) {
    (void)co_await channel.Send(
        Make(MessageType::kAbort, snapshot.status().ToString()));
    co_return snapshot.status();
  }
  Fault::Hit(Side::kChild, "after_state");

  std::vector<DetachedConnection>& conns = snapshot->connections;
  const auto count = static_cast<uint32_t>(conns.size());
  uint32_t adopted = 0;
  do {
    absl::StatusOr<Message> batch = co_await Expect(
        channel, MessageType::kConnections, options_.ack_timeout);
    if (!batch.ok()) {
      if (absl::IsUnavailable(batch.status())) {
        std::vector<DetachedConnection> received;
        for (auto& c : conns) {
          if (c.fd >= 0) received.push_back(std::move(c));
        }
        co_return co_await ServeOrphaned(std::move(received), batch.status());
      }
      for (auto& c : conns) {
        if (c.fd >= 0) close(c.fd);
      }
      co_return batch.status();
    }
    absl::StatusOr<std::vector<uint32_t>> range = DecodeU32s(batch->body, 2);
    if (!range.ok() || (*range)[0] != adopted ||
        (*range)[1] != batch->fds.size() || adopted + (*range)[1] > count) {
      CloseAll(batch->fds);
      co_return absl::DataLossError("handoff CONNECTIONS batch out of order");
    }
    for (size_t i = 0; i < batch->fds.size(); ++i) {
      conns[adopted + i].fd = batch->fds[i];
    }
    adopted += (*range)[1];
    if (adopted == count) Fault::Hit(Side::kChild, "before_final_ack");
    if (Fault::Take(Side::kChild, "ack_after_parent_exit"))
      WaitForParentExit(parent);
    s = co_await channel.Send(Make(MessageType::kAck, EncodeU32s(adopted)));
    if (absl::IsUnavailable(s)) {
      // The old process died after sending the batch: what arrived is ours.
      std::vector<DetachedConnection> received;
      for (auto& c : conns) {
        if (c.fd >= 0) received.push_back(std::move(c));
      }
      co_return co_await ServeOrphaned(std::move(received), s);
    }
    if (!s.ok()) co_return s;
    if (adopted < count) Fault::Hit(Side::kChild, "after_batch");
  } while (adopted < count);

  // Everything is ours: serve, inbound bytes first, unsent bytes first.
  HandoffStats stats;
  stats.restarts = static_cast<int>((*header)[1]);
  stats.connections = conns.size();
  stats.listeners = server_.listener_fds().size() + named_.size();
  stats.app_state_bytes = snapshot->app_state.size();
  for (const auto& c : conns) {
    stats.inbound_bytes += c.inbound.size();
    stats.outbound_bytes += c.outbound.size();
  }
  const absl::Duration resume_start = MonotonicNow();
  co_await server_.Resume(std::move(conns));
  const absl::Duration served = MonotonicNow();
  const absl::Duration freeze_start = absl::Microseconds(
      (static_cast<uint64_t>((*header)[3]) << 32) | (*header)[2]);
  SetStats(stats);
  HandoffRecord took = CompletedRecord(HandoffRecord::Role::kChild,
                                       static_cast<int32_t>(parent), stats);
  took.transfer = absl::Now() - t_start;
  took.paused = served - freeze_start;
  Record(std::move(took));
  Log("handoff: took over %d connections (%d inbound bytes, %d outbound "
      "bytes), %d listeners, app state %d bytes in %.2f ms; clients paused "
      "%.2f ms (freeze in the old process to every connection served here, "
      "of which resume %.2f ms) (restart #%d)",
      stats.connections, stats.inbound_bytes, stats.outbound_bytes,
      stats.listeners, stats.app_state_bytes, Ms(absl::Now() - t_start),
      Ms(served - freeze_start), Ms(served - resume_start), stats.restarts);
  co_return absl::OkStatus();
}

}  // namespace baton::handoff
