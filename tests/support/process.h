// ServerProcess: runs a baton app (baton-echo, baton-httpd, baton-kv: any
// binary built on apps/common) as a real process for integration tests,
// and drives its hot restarts. The one server-process helper of the tests.
//
// Contract:
// - The process is started with posix_spawn: stdin from /dev/null, stdout
//   and stderr to files in a per-test directory (every process of the
//   lineage writes to the same files, so the logs tell the whole story),
//   `--pid-file=<dir>/server.pid` appended to its arguments, the test's
//   environment plus `env`, default signal dispositions, no other
//   descriptor of the test.
// - Every wait is bounded by Options::timeout and ends with a status that
//   says what was awaited and shows the end of the server's log. Waits
//   block on events (inotify on the directory: a log line, the pid file
//   renamed; a pidfd: a process exited) and re-check at least every 50 ms;
//   none is a fixed sleep.
// - The test process makes itself a child subreaper (PR_SET_CHILD_SUBREAPER):
//   a process that took over and whose parent then exited is re-parented to
//   the test, so every replaced process can be reaped and its exit status
//   checked (0 after a successful handoff or a SIGTERM).
// - The destructor stops the serving process with SIGTERM (a failure if it
//   does not stop in time), expects every process that served to have
//   exited 0 and the log to hold no sanitizer report, then SIGKILLs and
//   reaps whatever of the lineage is left: no test leaks a process.
//
//   ServerProcess server(AppServer("kv", {"--threads=2"}));
//   ASSERT_OK(server.Start());                  // "listening on" + pid file
//   absl::StatusOr<RestartResult> r = server.Restart();      // SIGUSR2
//   absl::StatusOr<std::string> line = server.RestartExpectRollback();
//   ASSERT_OK(server.Stop());                   // SIGTERM, exit status 0
//
// Also here: other programs the tests run (curl, wrk, redis-cli: FindTool,
// RunTool, SpawnTool), and /proc helpers: FdCensus (every descriptor of a
// process, classified) and ReadTcpSockets (/proc/net/tcp{,6}: states,
// queues and inodes).
#ifndef BATON_TESTS_SUPPORT_PROCESS_H_
#define BATON_TESTS_SUPPORT_PROCESS_H_

#include <signal.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "baton/net/address.h"

namespace baton::test_support {

// Built with AddressSanitizer: processes start and hand over more slowly.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

// BATON_BINARY_DIR "/apps/<app>/baton-<app>", e.g. AppBinaryPath("kv").
std::string AppBinaryPath(std::string_view app);

// Polls `condition` every `every` until it holds (true) or `timeout` passes
// (false; the condition is evaluated once more at the deadline).
template <typename Condition>
bool PollUntil(Condition condition, absl::Duration timeout,
               absl::Duration every = absl::Milliseconds(2)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) return condition();
    absl::SleepFor(every);
  }
  return true;
}

// A fresh directory for the current test: ::testing::TempDir() +
// "baton_<suite>.<test>.<pid>" (just the suite outside a test, e.g. in
// SetUpTestSuite). Removed by the destructor unless the test failed (then
// its path is printed, logs and all).
class TestDirectory {
 public:
  TestDirectory();
  ~TestDirectory();
  TestDirectory(const TestDirectory&) = delete;
  TestDirectory& operator=(const TestDirectory&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The parent's log line of a successful handoff.
struct HandoffLine {
  pid_t parent = 0;
  pid_t child = 0;
  int connections = 0;
  int with_unread = 0;  // connections that carried unconsumed inbound bytes
  uint64_t inbound_bytes = 0;
  uint64_t outbound_bytes = 0;
  int listeners = 0;
  double total_ms = 0;  // SIGUSR2 to the old process done
  std::string text;
};

// The child's log line once it took over.
struct TakeoverLine {
  pid_t pid = 0;
  int connections = 0;
  uint64_t inbound_bytes = 0;
  uint64_t outbound_bytes = 0;
  int listeners = 0;
  // From the old process's freeze to every connection served here: the
  // pause clients see.
  double paused_ms = 0;
  std::string text;
};

// Parses "baton[PID] handoff to pid C complete: ..." / "baton[PID] handoff:
// took over ...", or nullopt for any other line.
std::optional<HandoffLine> ParseHandoffLine(const std::string& line);
std::optional<TakeoverLine> ParseTakeoverLine(const std::string& line);
// The PID of a "baton[PID] ..." line, or 0.
pid_t LinePid(const std::string& line);

struct RestartResult {
  pid_t old_pid = 0;
  pid_t new_pid = 0;
  HandoffLine handoff;    // what the old process says it moved
  TakeoverLine takeover;  // what the new process says it received
  // waitpid status of the old process, when the test reaped it (always, as
  // long as the subreaper could be set); nullopt otherwise.
  std::optional<int> old_wait_status;
  absl::Duration took;  // SIGUSR2 to "old pid gone"
};

class ServerProcess {
 public:
  struct Options {
    std::string binary = AppBinaryPath("echo");
    std::vector<std::string> args;  // argv[1..]; --pid-file is appended
    std::vector<std::string> env;   // extra "NAME=VALUE" entries
    // Where the logs and the pid file go; empty: a TestDirectory of the
    // ServerProcess's own.
    std::string dir;
    // The bound of every wait.
    absl::Duration timeout = absl::Seconds(kSanitized ? 60 : 30);
    // A listening socket of the test's, passed the way systemd's socket
    // activation does (fd 3, LISTEN_FDS=1, LISTEN_PID=<the server's pid>,
    // LISTEN_FDNAMES=activated_name); -1 for none.
    int activated_socket = -1;
    std::string activated_name = "baton";
  };

  explicit ServerProcess(Options options);
  // See the contract at the top of this file.
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Starts the binary and waits for its "listening on HOST:PORT" line and
  // for the pid file to name it.
  absl::Status Start();
  // SIGUSR2, then waits until the pid file names another process, the old
  // one has exited (with status 0, when the test reaped it), the old
  // process logged its success line and the new one its takeover line.
  // Fails early (with the line) if the old process rolls back.
  // `signo`: SIGUSR2 or SIGHUP, both a handoff.
  absl::StatusOr<RestartResult> Restart(int signo = SIGUSR2);
  // For a parent fault that kills the old process mid-handoff: SIGUSR2,
  // then waits until the old process has died of SIGKILL and a new one
  // logged that it serves what it received and is named by the pid file.
  // Returns the new pid.
  absl::StatusOr<pid_t> RestartParentKilled();
  // SIGUSR2, then waits for the serving process to log "rolled back"; the
  // pid file must still name it and it must be alive. Returns the line.
  absl::StatusOr<std::string> RestartExpectRollback();
  // SIGTERM to the serving process and waits for it to exit, which must be
  // with status 0. Returns its wait status if the test could reap it (else
  // -1).
  absl::StatusOr<int> Stop();

  const Address& address() const { return address_; }
  uint16_t port() const { return address_.port(); }  // 0 before Start()
  pid_t pid() const { return pid_; }  // the serving process, as last seen
  pid_t first_pid() const { return first_pid_; }
  int restarts() const { return restarts_; }  // successful Restart() calls
  const std::string& dir() const { return dir_; }
  std::string stdout_path() const;
  std::string stderr_path() const;
  std::string pid_file() const;

  // The pid the pid file names now (0 if absent or unreadable).
  pid_t ReadPidFile() const;
  std::string Log() const;                       // stderr, all of it
  std::vector<std::string> LogLines() const;     // stderr, complete lines
  std::vector<std::string> StdoutLines() const;  // stdout, complete lines
  std::vector<HandoffLine> Handoffs() const;     // every success line
  // The last `n` stderr lines, for failure messages.
  std::string LogTail(size_t n = 30) const;

 private:
  // Sends `signo` to the serving process; its pid, or an error if none
  // serves.
  absl::StatusOr<pid_t> SignalServing(int signo);
  // Whether `pid` has exited (reaps it when it is our child and records
  // its status).
  bool Exited(pid_t pid);
  void Track(pid_t pid);
  // "" if `pid` was not reaped or exited 0, else " (killed by signal 9)".
  std::string UncleanExit(pid_t pid) const;
  // Evaluates `condition` whenever something may have changed (a file of
  // dir() written or renamed, a process of `pids` exited; at least every
  // 50 ms) until it holds or options_.timeout passes.
  template <typename Condition>
  bool WaitFor(Condition condition, const std::vector<pid_t>& pids);
  void WaitForChange(const std::vector<pid_t>& pids, absl::Time deadline);

  Options options_;
  std::optional<TestDirectory> own_dir_;  // when options_.dir is empty
  std::string dir_;
  int watch_fd_ = -1;  // inotify on dir_, -1 if unavailable
  Address address_;
  pid_t first_pid_ = -1;
  pid_t pid_ = -1;
  int restarts_ = 0;
  std::set<pid_t> lineage_;             // every pid that ever served or
                                        // was started as a handoff child
  std::set<pid_t> served_;              // first_pid_ and every new_pid
  std::map<pid_t, int> wait_statuses_;  // reaped by us
  std::set<pid_t> gone_;                // known to have exited
};

// Makes the test process a child subreaper (once): a process whose parent
// exits is re-parented to the test, which can then reap it.
void BecomeSubreaper();

// Starts a server binary the way ServerProcess does (stdin /dev/null,
// default signal dispositions, the test's environment plus `env`, no other
// descriptor) but with stdout and stderr both on `output_fd` (a pipe, say).
absl::StatusOr<pid_t> SpawnServerWithOutput(std::vector<std::string> argv,
                                            int output_fd,
                                            std::vector<std::string> env = {});

// Options for app `app` (AppBinaryPath) listening on 127.0.0.1:0, with
// `args` after --listen and extra environment `env`, logging into a
// directory of its own.
ServerProcess::Options AppServer(std::string_view app,
                                 std::vector<std::string> args = {},
                                 std::vector<std::string> env = {});

// A readable description of a waitpid status ("exited 0", "killed by
// signal 9").
std::string DescribeWaitStatus(int status);

// --- Other programs
// -------------------------------------------------------------

// The contents of a file ("" if it cannot be read).
std::string ReadFile(const std::string& path);

// The full path of `tool` on $PATH, or "" if it is not installed.
std::string FindTool(const std::string& tool);

// Runs `argv` (argv[0] looked up on $PATH) to completion with stdin from
// /dev/null; its stdout and stderr, interleaved, in *output. Returns its
// exit code, or -1 if it could not start, was killed, or did not end within
// `timeout` (then it is killed).
int RunTool(const std::vector<std::string>& argv, std::string* output,
            absl::Duration timeout = absl::Seconds(20));

// Starts `argv` (argv[0] looked up on $PATH) with stdin from /dev/null and
// stdout and stderr to `output_path` (truncated); the caller waits for it
// (waitpid). Returns its pid.
absl::StatusOr<pid_t> SpawnTool(const std::vector<std::string>& argv,
                                const std::string& output_path);

// --- /proc
// ---------------------------------------------------------------------

// Every descriptor of a process, classified by its /proc/PID/fd link.
struct FdCensus {
  std::map<int, std::string> links;  // fd -> readlink target
  std::multiset<uint64_t> sockets;   // "socket:[N]" inodes, per fd
  int event_queues = 0;  // a reactor's anon_inode:[io_uring] or [eventpoll]
  int eventfd = 0;       // anon_inode:[eventfd]
  int signalfd = 0;      // anon_inode:[signalfd]
  std::vector<std::string> other;  // "fd -> target" for everything else
  int total() const { return static_cast<int>(links.size()); }
  std::string ToString() const;
};
absl::StatusOr<FdCensus> TakeFdCensus(pid_t pid);

// One row of /proc/net/tcp or /proc/net/tcp6.
struct TcpSocket {
  uint16_t local_port = 0;
  uint16_t remote_port = 0;
  int state = 0;          // 0x01 ESTABLISHED, 0x0A LISTEN, ...
  uint64_t tx_queue = 0;  // established: unsent + unacked bytes
  uint64_t rx_queue = 0;  // established: received, unread bytes
  uint64_t inode = 0;
};
inline constexpr int kTcpEstablished = 0x01;
inline constexpr int kTcpListen = 0x0A;
absl::StatusOr<std::vector<TcpSocket>> ReadTcpSockets();
// Inodes of the sockets listening on `port` (in this network namespace).
absl::StatusOr<std::set<uint64_t>> ListeningInodes(uint16_t port);

}  // namespace baton::test_support

#endif  // BATON_TESTS_SUPPORT_PROCESS_H_
