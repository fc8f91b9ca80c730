#include "support/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

extern char** environ;

namespace baton::test_support {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

namespace {

// The complete lines of a file (a last line still being written, with no
// '\n' yet, is left out).
std::vector<std::string> ReadLines(const std::string& path) {
  std::string text = ReadFile(path);
  const size_t end = text.rfind('\n');
  text.resize(end == std::string::npos ? 0 : end);
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    lines.emplace_back(line);
  }
  return lines;
}

// The message of a "baton[PID] message" line ("" if it is not one).
std::string Message(const std::string& line) {
  size_t close = line.find("] ");
  if (!absl::StartsWith(line, "baton[") || close == std::string::npos) {
    return "";
  }
  return line.substr(close + 2);
}

bool IsRollbackLine(const std::string& line) {
  return absl::StrContains(line, "rolled back");
}

bool IsCleanExit(int status) {
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Whether /proc/PID names a process that looks like ours (guards the
// destructor's SIGKILL against a recycled pid).
bool LooksLike(pid_t pid, const std::string& binary) {
  std::string cmdline = ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
  std::string base = binary.substr(binary.rfind('/') + 1);
  return !cmdline.empty() && absl::StrContains(cmdline, base);
}

}  // namespace

void BecomeSubreaper() {
  static const bool done = [] {
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
      std::fprintf(stderr,
                   "prctl(PR_SET_CHILD_SUBREAPER): %s; exit statuses of "
                   "replaced processes will not be checked\n",
                   strerror(errno));
    }
    return true;
  }();
  (void)done;
}

namespace {

// How a process is started: stdin from /dev/null; stdout and stderr to
// `output_fd`, or to the files `stdout_path` and `stderr_path` (appended
// to by every writer; "" = the same as stdout); no other descriptor of the
// test; an empty signal mask and default dispositions for the signals a
// server or a tool cares about.
struct SpawnSpec {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // the whole environment
  bool search_path = false;      // argv[0] is looked up on $PATH
  int output_fd = -1;
  std::string stdout_path;
  std::string stderr_path;
  // Passed as fd 3 (systemd's socket activation), or -1.
  int fd3 = -1;
};

absl::StatusOr<pid_t> Spawn(SpawnSpec spec) {
  if (spec.argv.empty()) return absl::InvalidArgumentError("empty argv");
  std::vector<char*> argv, envp;
  for (std::string& a : spec.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (std::string& e : spec.env) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  constexpr int kAppend = O_WRONLY | O_CREAT | O_TRUNC | O_APPEND;
  if (spec.output_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, spec.output_fd, 1);
  } else {
    posix_spawn_file_actions_addopen(&actions, 1, spec.stdout_path.c_str(),
                                     kAppend, 0644);
  }
  if (spec.output_fd < 0 && !spec.stderr_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, 2, spec.stderr_path.c_str(),
                                     kAppend, 0644);
  } else {
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
  }
  if (spec.fd3 >= 0) posix_spawn_file_actions_adddup2(&actions, spec.fd3, 3);
  // Nothing of the test process (sockets, rings, pipes) leaks into it.
  posix_spawn_file_actions_addclosefrom_np(&actions, spec.fd3 >= 0 ? 4 : 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGUSR2, SIGHUP, SIGTERM, SIGINT, SIGPIPE, SIGCHLD}) {
    sigaddset(&defaults, s);
  }
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int err = spec.search_path ? posix_spawnp(&pid, argv[0], &actions, &attr,
                                            argv.data(), envp.data())
                             : posix_spawn(&pid, argv[0], &actions, &attr,
                                           argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (err != 0) {
    return absl::ErrnoToStatus(err, absl::StrCat("posix_spawn ", argv[0]));
  }
  return pid;
}

// The test's environment, minus handoff variables (a test may run inside
// a handoff test harness of its own) and systemd's, plus `extra`.
std::vector<std::string> ServerEnvironment(
    const std::vector<std::string>& extra) {
  auto overridden = [&](absl::string_view kv) {
    absl::string_view name = kv.substr(0, kv.find('='));
    // Nor systemd's, should the tests themselves run under systemd.
    for (absl::string_view own :
         {"BATON_HANDOFF_FD", "BATON_HANDOFF_FAULT", "NOTIFY_SOCKET",
          "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"}) {
      if (name == own) return true;
    }
    for (const std::string& e : extra) {
      if (absl::string_view(e).substr(0, e.find('=')) == name) return true;
    }
    return false;
  };
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!overridden(*e)) env.emplace_back(*e);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

}  // namespace

absl::StatusOr<pid_t> SpawnServerWithOutput(std::vector<std::string> argv,
                                            int output_fd,
                                            std::vector<std::string> env) {
  SpawnSpec spec;
  spec.argv = std::move(argv);
  spec.env = ServerEnvironment(env);
  spec.output_fd = output_fd;
  return Spawn(std::move(spec));
}

namespace {

std::vector<std::string> TestEnvironment() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  return env;
}

}  // namespace

std::string AppBinaryPath(std::string_view app) {
  const std::string name(app);
  return absl::StrCat(BATON_BINARY_DIR, "/apps/", name, "/baton-", name);
}

ServerProcess::Options AppServer(std::string_view app,
                                 std::vector<std::string> args,
                                 std::vector<std::string> env) {
  ServerProcess::Options options;
  options.binary = AppBinaryPath(app);
  options.args.push_back("--listen=127.0.0.1:0");
  options.args.insert(options.args.end(), args.begin(), args.end());
  options.env = std::move(env);
  return options;
}

// --- TestDirectory
// ---------------------------------------------------------------

TestDirectory::TestDirectory() {
  const ::testing::UnitTest* unit = ::testing::UnitTest::GetInstance();
  const ::testing::TestInfo* info = unit->current_test_info();
  const ::testing::TestSuite* suite = unit->current_test_suite();
  std::string name =
      info != nullptr ? absl::StrCat(info->test_suite_name(), ".", info->name())
                      : (suite != nullptr ? suite->name() : "unknown");
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  path_ = absl::StrCat(::testing::TempDir(), "baton_", name, ".", getpid());
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  std::filesystem::create_directories(path_, ec);
  if (ec) ADD_FAILURE() << "cannot create " << path_ << ": " << ec.message();
}

TestDirectory::~TestDirectory() {
  if (::testing::Test::HasFailure()) {
    std::fprintf(stderr, "test files kept in %s\n", path_.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

// --- Log lines
// -------------------------------------------------------------------

pid_t LinePid(const std::string& line) {
  if (!absl::StartsWith(line, "baton[")) return 0;
  size_t close = line.find(']');
  int pid = 0;
  if (close == std::string::npos ||
      !absl::SimpleAtoi(line.substr(6, close - 6), &pid)) {
    return 0;
  }
  return pid;
}

std::optional<HandoffLine> ParseHandoffLine(const std::string& line) {
  std::string msg = Message(line);
  HandoffLine h;
  unsigned long long in = 0, out = 0;
  int n = std::sscanf(msg.c_str(),
                      "handoff to pid %d complete: %d connections (%d with "
                      "unread bytes), %llu inbound bytes, %llu outbound "
                      "bytes, %d listeners",
                      &h.child, &h.connections, &h.with_unread, &in, &out,
                      &h.listeners);
  if (n != 6) return std::nullopt;
  h.parent = LinePid(line);
  h.inbound_bytes = in;
  h.outbound_bytes = out;
  if (size_t p = msg.find("total "); p != std::string::npos) {
    std::sscanf(msg.c_str() + p, "total %lf ms", &h.total_ms);
  }
  h.text = line;
  return h;
}

std::optional<TakeoverLine> ParseTakeoverLine(const std::string& line) {
  std::string msg = Message(line);
  TakeoverLine t;
  unsigned long long in = 0, out = 0;
  int n = std::sscanf(msg.c_str(),
                      "handoff: took over %d connections (%llu inbound "
                      "bytes, %llu outbound bytes), %d listeners",
                      &t.connections, &in, &out, &t.listeners);
  if (n != 4) return std::nullopt;
  t.pid = LinePid(line);
  t.inbound_bytes = in;
  t.outbound_bytes = out;
  if (size_t p = msg.find("clients paused "); p != std::string::npos) {
    std::sscanf(msg.c_str() + p, "clients paused %lf ms", &t.paused_ms);
  }
  t.text = line;
  return t;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(status));
  }
  return absl::StrCat("wait status ", status);
}

// --- ServerProcess
// ---------------------------------------------------------------

ServerProcess::ServerProcess(Options options) : options_(std::move(options)) {
  if (options_.dir.empty()) {
    own_dir_.emplace();
    dir_ = own_dir_->path();
  } else {
    dir_ = options_.dir;
  }
}

std::string ServerProcess::stdout_path() const {
  return dir_ + "/server.stdout";
}
std::string ServerProcess::stderr_path() const {
  return dir_ + "/server.stderr";
}
std::string ServerProcess::pid_file() const { return dir_ + "/server.pid"; }

pid_t ServerProcess::ReadPidFile() const {
  int pid = 0;
  std::string text(absl::StripAsciiWhitespace(ReadFile(pid_file())));
  if (!absl::SimpleAtoi(text, &pid)) return 0;
  return pid;
}

std::string ServerProcess::Log() const { return ReadFile(stderr_path()); }

std::vector<std::string> ServerProcess::LogLines() const {
  return ReadLines(stderr_path());
}

std::vector<std::string> ServerProcess::StdoutLines() const {
  return ReadLines(stdout_path());
}

std::vector<HandoffLine> ServerProcess::Handoffs() const {
  std::vector<HandoffLine> out;
  for (const std::string& line : LogLines()) {
    if (std::optional<HandoffLine> h = ParseHandoffLine(line)) {
      out.push_back(*std::move(h));
    }
  }
  return out;
}

std::string ServerProcess::LogTail(size_t n) const {
  std::vector<std::string> lines = LogLines();
  size_t from = lines.size() > n ? lines.size() - n : 0;
  return absl::StrCat(
      "server log (", stderr_path(), "), last lines:\n  ",
      absl::StrJoin(lines.begin() + static_cast<std::ptrdiff_t>(from),
                    lines.end(), "\n  "));
}

void ServerProcess::Track(pid_t pid) {
  if (pid > 0) lineage_.insert(pid);
}

bool ServerProcess::Exited(pid_t pid) {
  if (pid <= 0 || gone_.count(pid) > 0) return true;
  int status = 0;
  pid_t r = waitpid(pid, &status, WNOHANG);
  if (r == pid) {
    wait_statuses_[pid] = status;
    gone_.insert(pid);
    return true;
  }
  if (r == 0) return false;  // our child, still running
  // Not our child (yet): ask the kernel, and count a zombie as exited.
  if (kill(pid, 0) != 0 && errno == ESRCH) {
    gone_.insert(pid);
    return true;
  }
  std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  size_t paren = stat.rfind(')');
  if (stat.empty()) {
    gone_.insert(pid);
    return true;
  }
  if (paren != std::string::npos && paren + 2 < stat.size() &&
      (stat[paren + 2] == 'Z' || stat[paren + 2] == 'X')) {
    return true;  // not added to gone_: we may still reap it later
  }
  return false;
}

std::string ServerProcess::UncleanExit(pid_t pid) const {
  auto it = wait_statuses_.find(pid);
  if (it == wait_statuses_.end() || IsCleanExit(it->second)) return "";
  return absl::StrCat(" (", DescribeWaitStatus(it->second), ")");
}

void ServerProcess::WaitForChange(const std::vector<pid_t>& pids,
                                  absl::Time deadline) {
  std::vector<pollfd> fds;
  if (watch_fd_ >= 0) fds.push_back(pollfd{watch_fd_, POLLIN, 0});
  bool gone = false;
  for (pid_t pid : pids) {
    // Through syscall(): glibc 2.36's <sys/pidfd.h> lacks C linkage in C++.
    int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (fd >= 0) {
      fds.push_back(pollfd{fd, POLLIN, 0});
    } else if (errno == ESRCH) {
      gone = true;  // exited and reaped meanwhile: re-check at once
    }
  }
  // Without inotify nothing wakes us for a file: poll often instead.
  const absl::Duration cap =
      watch_fd_ >= 0 ? absl::Milliseconds(50) : absl::Milliseconds(2);
  const absl::Duration wait =
      std::max(absl::ZeroDuration(), std::min(cap, deadline - absl::Now()));
  if (!gone) {
    poll(fds.data(), fds.size(),
         static_cast<int>(absl::ToInt64Milliseconds(
             absl::Ceil(wait, absl::Milliseconds(1)))));
  }
  if (watch_fd_ >= 0) {
    alignas(inotify_event) char events[4096];
    while (read(watch_fd_, events, sizeof(events)) > 0) {
    }
  }
  for (const pollfd& p : fds) {
    if (p.fd != watch_fd_) close(p.fd);
  }
}

template <typename Condition>
bool ServerProcess::WaitFor(Condition condition,
                            const std::vector<pid_t>& pids) {
  const absl::Time deadline = absl::Now() + options_.timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) return condition();
    std::vector<pid_t> running;
    for (pid_t pid : pids) {
      if (!Exited(pid)) running.push_back(pid);
    }
    WaitForChange(running, deadline);
  }
  return true;
}

absl::Status ServerProcess::Start() {
  if (first_pid_ > 0) return absl::FailedPreconditionError("already started");
  BecomeSubreaper();
  unlink(pid_file().c_str());
  watch_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (watch_fd_ >= 0 && inotify_add_watch(watch_fd_, dir_.c_str(),
                                          IN_MODIFY | IN_CLOSE_WRITE |
                                              IN_CREATE | IN_MOVED_TO) < 0) {
    close(watch_fd_);
    watch_fd_ = -1;
  }

  SpawnSpec spec;
  if (options_.activated_socket >= 0) {
    // LISTEN_PID must name the server itself: a shell learns its pid and
    // execs the server in its place, as systemd does between fork and exec.
    spec.argv = {"/bin/sh", "-c", "LISTEN_PID=$$ exec \"$@\"", "sh"};
    spec.fd3 = options_.activated_socket;
  }
  spec.argv.push_back(options_.binary);
  spec.argv.insert(spec.argv.end(), options_.args.begin(), options_.args.end());
  spec.argv.push_back(absl::StrCat("--pid-file=", pid_file()));
  std::vector<std::string> env = options_.env;
  if (options_.activated_socket >= 0) {
    env.push_back("LISTEN_FDS=1");
    env.push_back("LISTEN_FDNAMES=" + options_.activated_name);
  }
  spec.env = ServerEnvironment(env);
  spec.stdout_path = stdout_path();
  spec.stderr_path = stderr_path();
  absl::StatusOr<pid_t> pid = Spawn(std::move(spec));
  if (!pid.ok()) return pid.status();
  first_pid_ = *pid;
  Track(first_pid_);

  std::string listening;
  const bool ready = WaitFor(
      [&] {
        for (const std::string& line : StdoutLines()) {
          if (absl::StartsWith(line, "listening on ")) {
            listening = line;
            break;
          }
        }
        return (!listening.empty() && ReadPidFile() == first_pid_) ||
               Exited(first_pid_);
      },
      {first_pid_});
  if (!ready || listening.empty() || ReadPidFile() != first_pid_ ||
      Exited(first_pid_)) {
    std::string why =
        ready ? "exited"
              : absl::StrCat("did not report its address within ",
                             absl::FormatDuration(options_.timeout));
    if (auto it = wait_statuses_.find(first_pid_); it != wait_statuses_.end()) {
      why = DescribeWaitStatus(it->second);
    }
    return absl::UnavailableError(absl::StrCat(
        options_.binary, " (pid ", first_pid_, ") ", why, "; ", LogTail()));
  }
  absl::StatusOr<Address> address =
      Address::Parse(listening.substr(std::strlen("listening on ")));
  if (!address.ok()) return address.status();
  address_ = *address;
  pid_ = first_pid_;
  served_.insert(pid_);
  return absl::OkStatus();
}

absl::StatusOr<pid_t> ServerProcess::SignalServing(int signo) {
  const pid_t pid = pid_;
  if (pid <= 0 || Exited(pid)) {
    return absl::FailedPreconditionError(
        absl::StrCat("no serving process (pid ", pid, ")"));
  }
  if (kill(pid, signo) != 0) {
    return absl::ErrnoToStatus(errno,
                               absl::StrCat("kill(", pid, ", ", signo, ")"));
  }
  return pid;
}

absl::StatusOr<RestartResult> ServerProcess::Restart(int signo) {
  size_t lines_before = LogLines().size();
  const absl::Time t0 = absl::Now();
  absl::StatusOr<pid_t> signalled = SignalServing(signo);
  if (!signalled.ok()) return signalled.status();
  const pid_t old = *signalled;
  RestartResult result;
  result.old_pid = old;
  std::string failure;
  bool done = WaitFor(
      [&] {
        // Exit first, log second: a process logs before it exits, so a
        // success line is never missed for an exit already seen. The pid
        // file may be rewritten after the old process exited.
        const bool exited = Exited(old);
        const pid_t now = ReadPidFile();
        std::vector<std::string> lines = LogLines();
        bool logged = false;
        for (size_t i = lines_before; i < lines.size(); ++i) {
          if (LinePid(lines[i]) != old) continue;
          if (IsRollbackLine(lines[i])) {
            failure = lines[i];
            return true;
          }
          if (std::optional<HandoffLine> h = ParseHandoffLine(lines[i])) {
            result.handoff = *h;
            logged = true;
          }
        }
        if (exited && !logged) {
          failure = "the serving process exited without handing over";
          return true;
        }
        if (now != old && now > 0) Track(now);
        return logged && exited && now != old && now > 0;
      },
      {old});
  result.took = absl::Now() - t0;
  if (!failure.empty()) {
    return absl::AbortedError(absl::StrCat("restart of pid ", old,
                                           " failed: ", failure,
                                           UncleanExit(old), "; ", LogTail()));
  }
  if (!done) {
    return absl::DeadlineExceededError(absl::StrFormat(
        "restart of pid %d: after %s the pid file names %d, old pid %s; %s",
        old, absl::FormatDuration(options_.timeout), ReadPidFile(),
        Exited(old) ? "exited" : "still running", LogTail()));
  }
  if (std::string unclean = UncleanExit(old); !unclean.empty()) {
    return absl::InternalError(absl::StrCat(
        "pid ", old, " handed over but then ended", unclean, "; ", LogTail()));
  }
  result.new_pid = ReadPidFile();
  if (result.new_pid != result.handoff.child) {
    return absl::InternalError(
        absl::StrFormat("pid file names %d but pid %d handed over to pid %d",
                        result.new_pid, old, result.handoff.child));
  }
  if (Exited(result.new_pid)) {
    return absl::InternalError(
        absl::StrFormat("the new process %d exited right after taking over; %s",
                        result.new_pid, LogTail()));
  }
  bool found = false;
  for (const std::string& line : LogLines()) {
    if (LinePid(line) != result.new_pid) continue;
    if (std::optional<TakeoverLine> t = ParseTakeoverLine(line)) {
      result.takeover = *t;
      found = true;
    }
  }
  if (!found) {
    return absl::InternalError(absl::StrCat(
        "pid ", result.new_pid, " serves but logged no takeover; ", LogTail()));
  }
  if (auto it = wait_statuses_.find(old); it != wait_statuses_.end()) {
    result.old_wait_status = it->second;
  }
  pid_ = result.new_pid;
  served_.insert(pid_);
  ++restarts_;
  return result;
}

absl::StatusOr<std::string> ServerProcess::RestartExpectRollback() {
  size_t lines_before = LogLines().size();
  absl::StatusOr<pid_t> signalled = SignalServing(SIGUSR2);
  if (!signalled.ok()) return signalled.status();
  const pid_t old = *signalled;
  std::string rollback, failure;
  bool done = WaitFor(
      [&] {
        const bool exited = Exited(old);
        std::vector<std::string> lines = LogLines();
        for (size_t i = lines_before; i < lines.size(); ++i) {
          if (LinePid(lines[i]) != old) continue;
          if (IsRollbackLine(lines[i])) {
            rollback = lines[i];
            return true;
          }
          if (ParseHandoffLine(lines[i])) {
            failure = "the handoff succeeded: " + lines[i];
            return true;
          }
        }
        if (exited) {
          failure =
              absl::StrCat("the serving process exited", UncleanExit(old));
          return true;
        }
        return false;
      },
      {old});
  for (const std::string& line : LogLines()) Track(LinePid(line));
  if (!failure.empty()) {
    return absl::AbortedError(absl::StrCat("expected a rollback of pid ", old,
                                           ": ", failure, "; ", LogTail()));
  }
  if (!done) {
    return absl::DeadlineExceededError(
        absl::StrCat("no rollback logged by pid ", old, " within ",
                     absl::FormatDuration(options_.timeout), "; ", LogTail()));
  }
  if (ReadPidFile() != old || Exited(old)) {
    return absl::InternalError(absl::StrFormat(
        "after the rollback the pid file names %d (expected %d, %s); %s",
        ReadPidFile(), old, Exited(old) ? "exited" : "alive", LogTail()));
  }
  return rollback;
}

absl::StatusOr<pid_t> ServerProcess::RestartParentKilled() {
  size_t lines_before = LogLines().size();
  absl::StatusOr<pid_t> signalled = SignalServing(SIGUSR2);
  if (!signalled.ok()) return signalled.status();
  const pid_t old = *signalled;
  pid_t orphan = 0;
  bool done = WaitFor(
      [&] {
        const bool exited = Exited(old);
        std::vector<std::string> lines = LogLines();
        for (size_t i = lines_before; i < lines.size(); ++i) {
          if (absl::StrContains(lines[i], "the old process died mid-handoff")) {
            orphan = LinePid(lines[i]);
          }
        }
        if (orphan > 0) Track(orphan);
        return exited && orphan > 0 && ReadPidFile() == orphan;
      },
      {old});
  if (!done) {
    return absl::DeadlineExceededError(absl::StrFormat(
        "after SIGUSR2 to pid %d (%s) no new process served what it received "
        "(pid file names %d); %s",
        old, Exited(old) ? "exited" : "still running", ReadPidFile(),
        LogTail()));
  }
  auto it = wait_statuses_.find(old);
  if (it != wait_statuses_.end() &&
      !(WIFSIGNALED(it->second) && WTERMSIG(it->second) == SIGKILL)) {
    return absl::InternalError(
        absl::StrCat("pid ", old, " was expected to die of SIGKILL but ",
                     DescribeWaitStatus(it->second), "; ", LogTail()));
  }
  if (Exited(orphan)) {
    return absl::InternalError(absl::StrCat(
        "the new process ", orphan, " exited after taking over; ", LogTail()));
  }
  served_.erase(old);  // killed on purpose
  served_.insert(orphan);
  pid_ = orphan;
  return orphan;
}

absl::StatusOr<int> ServerProcess::Stop() {
  absl::StatusOr<pid_t> signalled = SignalServing(SIGTERM);
  if (!signalled.ok()) return signalled.status();
  const pid_t pid = *signalled;
  if (!WaitFor([&] { return Exited(pid); }, {pid})) {
    return absl::DeadlineExceededError(absl::StrCat(
        "pid ", pid, " still running ", absl::FormatDuration(options_.timeout),
        " after SIGTERM; ", LogTail()));
  }
  if (std::string unclean = UncleanExit(pid); !unclean.empty()) {
    return absl::InternalError(
        absl::StrCat("pid ", pid, " stopped", unclean, "; ", LogTail()));
  }
  auto it = wait_statuses_.find(pid);
  return it == wait_statuses_.end() ? -1 : it->second;
}

ServerProcess::~ServerProcess() {
  if (first_pid_ > 0) {
    // A graceful stop first, so that the serving process runs its exit path
    // (and a sanitizer its leak check).
    if (const pid_t serving = pid_; serving > 0 && !Exited(serving)) {
      kill(serving, SIGTERM);
      if (!WaitFor([&] { return Exited(serving); }, {serving})) {
        ADD_FAILURE() << options_.binary << " pid " << serving
                      << " did not stop within "
                      << absl::FormatDuration(options_.timeout)
                      << " of SIGTERM; " << LogTail();
      }
    }
    for (pid_t pid : served_) {
      EXPECT_EQ(UncleanExit(pid), "")
          << options_.binary << " pid " << pid << " served, then ended badly";
    }
    const std::string log = Log();
    for (const char* report : {"Sanitizer", "runtime error:"}) {
      EXPECT_FALSE(absl::StrContains(log, report))
          << options_.binary << " logged \"" << report << "\"; " << LogTail();
    }

    std::set<pid_t> pids = lineage_;
    pids.insert(ReadPidFile());
    for (const std::string& line : LogLines()) pids.insert(LinePid(line));
    pids.erase(0);
    for (pid_t pid : pids) {
      if (!Exited(pid) && LooksLike(pid, options_.binary)) kill(pid, SIGKILL);
    }
    // Reap what is ours; a killed process's orphans come to us too.
    bool all = PollUntil(
        [&] {
          bool done = true;
          for (pid_t pid : pids) done = Exited(pid) && done;
          return done;
        },
        absl::Seconds(10));
    if (!all) ADD_FAILURE() << "server processes survived SIGKILL";
    // Zombies we can still reap (their status no longer matters).
    for (pid_t pid : pids) {
      int status;
      waitpid(pid, &status, WNOHANG);
    }
    if (::testing::Test::HasFailure()) {
      std::fprintf(stderr, "%s\n", LogTail().c_str());
    }
  }
  if (watch_fd_ >= 0) close(watch_fd_);
}

// --- Other programs
// -------------------------------------------------------------

std::string FindTool(const std::string& tool) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(
           path != nullptr ? path : "/usr/bin:/bin", ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", tool);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

int RunTool(const std::vector<std::string>& argv, std::string* output,
            absl::Duration timeout) {
  output->clear();
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return -1;
  SpawnSpec spec;
  spec.argv = argv;
  spec.env = TestEnvironment();
  spec.search_path = true;
  spec.output_fd = pipe_fds[1];
  absl::StatusOr<pid_t> pid = Spawn(std::move(spec));
  close(pipe_fds[1]);
  if (!pid.ok()) {
    close(pipe_fds[0]);
    *output = pid.status().ToString();
    return -1;
  }
  // Read until the tool closes its output (end of file) or time is up.
  const absl::Time deadline = absl::Now() + timeout;
  bool eof = false;
  while (!eof && absl::Now() < deadline) {
    pollfd p{pipe_fds[0], POLLIN, 0};
    int ready = poll(&p, 1,
                     static_cast<int>(absl::ToInt64Milliseconds(absl::Ceil(
                         deadline - absl::Now(), absl::Milliseconds(1)))));
    if (ready <= 0) continue;  // EINTR, or the deadline: the loop decides
    char buf[65536];
    ssize_t n = read(pipe_fds[0], buf, sizeof(buf));
    if (n > 0) {
      output->append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      eof = true;
    }
  }
  close(pipe_fds[0]);
  int status = 0;
  // Its output closed: it is exiting (or gets a second to). Still writing
  // at the deadline: it is killed.
  const bool exited =
      eof && PollUntil([&] { return waitpid(*pid, &status, WNOHANG) == *pid; },
                       std::max(deadline - absl::Now(), absl::Seconds(1)));
  if (!exited) {
    kill(*pid, SIGKILL);
    waitpid(*pid, &status, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

absl::StatusOr<pid_t> SpawnTool(const std::vector<std::string>& argv,
                                const std::string& output_path) {
  SpawnSpec spec;
  spec.argv = argv;
  spec.env = TestEnvironment();
  spec.search_path = true;
  spec.stdout_path = output_path;
  return Spawn(std::move(spec));
}

// --- /proc
// -----------------------------------------------------------------------

std::string FdCensus::ToString() const {
  std::vector<std::string> parts;
  for (const auto& [fd, link] : links)
    parts.push_back(absl::StrCat(fd, "->", link));
  return absl::StrCat(total(), " fds: ", absl::StrJoin(parts, ", "));
}

absl::StatusOr<FdCensus> TakeFdCensus(pid_t pid) {
  std::string dir = absl::StrCat("/proc/", pid, "/fd");
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return absl::ErrnoToStatus(errno, "opendir " + dir);
  FdCensus census;
  while (dirent* e = readdir(d)) {
    int fd = 0;
    if (!absl::SimpleAtoi(e->d_name, &fd)) continue;
    char target[4096];
    ssize_t n = readlink(absl::StrCat(dir, "/", e->d_name).c_str(), target,
                         sizeof(target) - 1);
    if (n < 0) continue;  // closed meanwhile
    census.links[fd] = std::string(target, static_cast<size_t>(n));
  }
  closedir(d);
  // Classified in fd order.
  for (const auto& [fd, link] : census.links) {
    uint64_t inode = 0;
    if (absl::StartsWith(link, "socket:[") &&
        absl::SimpleAtoi(link.substr(8, link.size() - 9), &inode)) {
      census.sockets.insert(inode);
    } else if (link == "anon_inode:[io_uring]" ||
               link == "anon_inode:[eventpoll]") {
      ++census.event_queues;
    } else if (link == "anon_inode:[eventfd]") {
      ++census.eventfd;
    } else if (link == "anon_inode:[signalfd]") {
      ++census.signalfd;
    } else {
      census.other.push_back(absl::StrCat(fd, " -> ", link));
    }
  }
  return census;
}

absl::StatusOr<std::vector<TcpSocket>> ReadTcpSockets() {
  std::vector<TcpSocket> out;
  for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(path);
    if (!in) {
      if (std::string(path) == "/proc/net/tcp6") continue;  // no IPv6
      return absl::UnavailableError(absl::StrCat("cannot read ", path));
    }
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::vector<std::string> f =
          absl::StrSplit(line, ' ', absl::SkipWhitespace());
      if (f.size() < 10) continue;
      TcpSocket s;
      auto port = [](const std::string& addr) -> uint16_t {
        return static_cast<uint16_t>(
            std::stoul(addr.substr(addr.rfind(':') + 1), nullptr, 16));
      };
      s.local_port = port(f[1]);
      s.remote_port = port(f[2]);
      s.state = static_cast<int>(std::stoul(f[3], nullptr, 16));
      size_t colon = f[4].find(':');
      s.tx_queue = std::stoull(f[4].substr(0, colon), nullptr, 16);
      s.rx_queue = std::stoull(f[4].substr(colon + 1), nullptr, 16);
      s.inode = std::stoull(f[9]);
      out.push_back(s);
    }
  }
  return out;
}

absl::StatusOr<std::set<uint64_t>> ListeningInodes(uint16_t port) {
  absl::StatusOr<std::vector<TcpSocket>> sockets = ReadTcpSockets();
  if (!sockets.ok()) return sockets.status();
  std::set<uint64_t> out;
  for (const TcpSocket& s : *sockets) {
    if (s.state == kTcpListen && s.local_port == port) out.insert(s.inode);
  }
  return out;
}

}  // namespace baton::test_support
