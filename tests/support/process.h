// ServerProcess: runs a baton server binary (baton-echo) as a real process
// for integration tests, and drives its hot restarts.
//
// The process is started with posix_spawn: stdin from /dev/null, stdout and
// stderr appended to files in a per-test directory (every process of the
// lineage writes to the same files), `--pid-file=<dir>/server.pid` added to
// its arguments, the test's environment plus `env`. Every wait polls a file
// or /proc every few milliseconds against a deadline; none is a fixed sleep.
//
// The test process makes itself a child subreaper (PR_SET_CHILD_SUBREAPER):
// a process that took over and whose parent then exited is re-parented to
// the test, so every replaced process can be reaped and its exit status
// checked (0 after a successful handoff).
//
//   ServerProcess server({.args = {"--threads=2", "--consume_chunk=64"}});
//   ASSERT_OK(server.Start());
//   absl::StatusOr<RestartResult> r = server.Restart();      // SIGUSR2
//   absl::StatusOr<std::string> line = server.RestartExpectRollback();
//   ASSERT_OK(server.Stop());                                  // SIGTERM
//
// /proc helpers: FdCensus (every descriptor of a process, classified) and
// ReadTcpSockets (/proc/net/tcp{,6}: states, queues and inodes).
#ifndef BATON_TESTS_SUPPORT_PROCESS_H_
#define BATON_TESTS_SUPPORT_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "baton/net/address.h"

namespace baton::test_support {

// BATON_BINARY_DIR "/apps/echo/baton-echo".
std::string EchoBinaryPath();

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
// "baton_<suite>.<test>.<pid>". Removed by the destructor unless the test
// failed (then its path is printed, logs and all).
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
  double paused_ms = 0;  // connections frozen
  double total_ms = 0;
  std::string text;
};

// The child's log line once it took over.
struct TakeoverLine {
  pid_t pid = 0;
  int connections = 0;
  uint64_t inbound_bytes = 0;
  uint64_t outbound_bytes = 0;
  int listeners = 0;
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
    std::string binary = EchoBinaryPath();
    std::vector<std::string> args;  // argv[1..]; --pid-file is appended
    std::vector<std::string> env;   // extra "NAME=VALUE" entries
    std::string dir;                // where logs and the pid file go
    absl::Duration timeout = absl::Seconds(30);  // bound of every wait
  };

  explicit ServerProcess(Options options);
  // SIGKILLs every process of the lineage that is still alive and reaps
  // those that are the test's children: no test leaks a process.
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Starts the binary and waits for "listening on HOST:PORT" and for the pid
  // file to name it.
  absl::Status Start();
  // SIGUSR2, then waits until the pid file names another process, the old
  // one has exited, and the old process logged its success line. Fails
  // early (with the line) if the old process rolls back.
  absl::StatusOr<RestartResult> Restart();
  // SIGUSR2, then waits for the serving process to log "rolled back"; the
  // pid file must still name it and it must be alive. Returns the line.
  absl::StatusOr<std::string> RestartExpectRollback();
  // SIGTERM to the serving process and waits for it to exit. Returns its
  // wait status if the test could reap it (else -1).
  absl::StatusOr<int> Stop();

  const Address& address() const { return address_; }
  uint16_t port() const { return address_.port(); }
  pid_t pid() const { return pid_; }  // the serving process, as last seen
  pid_t first_pid() const { return first_pid_; }
  const std::string& dir() const { return options_.dir; }
  std::string stdout_path() const;
  std::string stderr_path() const;
  std::string pid_file() const;

  // The pid the pid file names now (0 if absent or unreadable).
  pid_t ReadPidFile() const;
  std::vector<std::string> LogLines() const;     // stderr
  std::vector<std::string> StdoutLines() const;  // stdout
  std::vector<HandoffLine> Handoffs() const;     // every success line
  // The last `n` stderr lines, for failure messages.
  std::string LogTail(size_t n = 30) const;

 private:
  // Whether `pid` has exited (reaps it when it is our child and records
  // its status).
  bool Exited(pid_t pid);
  void Track(pid_t pid);

  Options options_;
  Address address_;
  pid_t first_pid_ = -1;
  pid_t pid_ = -1;
  std::set<pid_t> lineage_;             // every pid that ever served or
                                        // was started as a handoff child
  std::map<pid_t, int> wait_statuses_;  // reaped by us
  std::set<pid_t> gone_;                // known to have exited
};

// A readable description of a waitpid status ("exited 0", "killed by
// signal 9").
std::string DescribeWaitStatus(int status);

// --- /proc
// ---------------------------------------------------------------------

// Every descriptor of a process, classified by its /proc/PID/fd link.
struct FdCensus {
  std::map<int, std::string> links;  // fd -> readlink target
  std::multiset<uint64_t> sockets;   // "socket:[N]" inodes, per fd
  int io_uring = 0;                  // anon_inode:[io_uring]
  int eventfd = 0;                   // anon_inode:[eventfd]
  int signalfd = 0;                  // anon_inode:[signalfd]
  std::vector<std::string> other;    // "fd -> target" for everything else
  int total() const { return static_cast<int>(links.size()); }
  std::string ToString() const;
};
absl::StatusOr<FdCensus> TakeFdCensus(pid_t pid);

// Socket inodes of a process's descriptors (one entry per fd).
absl::StatusOr<std::vector<uint64_t>> SocketInodes(pid_t pid);
// Number of open descriptors of a process.
absl::StatusOr<int> CountFds(pid_t pid);

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
