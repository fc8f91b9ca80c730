// Helpers for the baton-kv tests that run the real binary (header-only).
//
// - KvServer: starts baton-kv (fork/exec; stdout and stderr to files in a
//   per-test directory; --pid-file added), waits for "listening on
//   127.0.0.1:PORT" by polling with a deadline, restarts it with SIGUSR2
//   (waits until the pid file names a new process and the old one exited),
//   stops it, and kills whatever is left in its destructor. The test process
//   is a child subreaper, so every process of the lineage can be reaped.
// - KvClient: a blocking TCP client with a deadline on every read that
//   splits the byte stream into RESP replies.
// - RunTool / StartTool: redis-cli and redis-benchmark as child processes.
//
// Every wait polls against a deadline; nothing sleeps a fixed time.
#ifndef BATON_TESTS_KV_KV_TEST_UTIL_H_
#define BATON_TESTS_KV_KV_TEST_UTIL_H_

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace baton::kv_test {

inline std::string KvBinary() { return BATON_BINARY_DIR "/apps/kv/baton-kv"; }

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Polls `condition` every `every` until it holds or `timeout` passes.
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

// The full path of `tool` on $PATH, or "" if it is not installed.
inline std::string FindTool(const std::string& tool) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/" + tool;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

// fork + exec `argv` with stdin from /dev/null and stdout+stderr appended to
// the given files ("" = /dev/null). Returns the pid.
inline pid_t Spawn(const std::vector<std::string>& argv,
                   const std::string& out_path, const std::string& err_path) {
  std::vector<char*> args;
  for (const std::string& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string out = out_path.empty() ? "/dev/null" : out_path;
  const std::string err = err_path.empty() ? "/dev/null" : err_path;
  pid_t pid = fork();
  if (pid == 0) {
    int in = open("/dev/null", O_RDONLY);
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int e =
        out == err ? o : open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || o < 0 || e < 0) _exit(126);
    dup2(in, 0);
    dup2(o, 1);
    dup2(e, 2);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

// Runs a tool to completion; its output (stdout and stderr) in *output.
// Returns the exit code (-1 if it did not exit normally).
inline int RunTool(const std::vector<std::string>& argv, std::string* output,
                   absl::Duration timeout = absl::Seconds(20)) {
  char path[] = "/tmp/baton_kv_tool.XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return -1;
  close(fd);
  pid_t pid = Spawn(argv, path, path);
  int status = 0;
  bool done =
      PollUntil([&] { return waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!done) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  *output = ReadFile(path);
  unlink(path);
  if (!done || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

// --- The server
// ---------------------------------------------------------------

class KvServer {
 public:
  // `args` come after the binary; --listen, --pid-file are added.
  explicit KvServer(std::vector<std::string> args = {})
      : args_(std::move(args)) {
    // Handed-over processes are re-parented to us when their parent exits,
    // so we can reap them (and not leave zombies that look alive).
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    const ::testing::TestInfo* info =
        ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ =
        absl::StrCat(::testing::TempDir(), "baton_kv_", info->test_suite_name(),
                     ".", info->name(), ".", getpid());
    mkdir(dir_.c_str(), 0755);
  }

  ~KvServer() {
    for (pid_t pid : lineage_) {
      if (gone_.count(pid) == 0) kill(pid, SIGKILL);
    }
    for (pid_t pid : lineage_) {
      if (gone_.count(pid) == 0) waitpid(pid, nullptr, 0);
    }
    if (!::testing::Test::HasFailure()) {
      for (const char* f : {"/out", "/err", "/kv.pid"}) {
        unlink((dir_ + f).c_str());
      }
      rmdir(dir_.c_str());
    } else {
      std::fprintf(stderr, "baton-kv logs kept in %s\n", dir_.c_str());
    }
  }

  KvServer(const KvServer&) = delete;
  KvServer& operator=(const KvServer&) = delete;

  absl::Status Start() {
    std::vector<std::string> argv = {KvBinary(), "--listen=127.0.0.1:0",
                                     "--pid-file=" + pid_file()};
    argv.insert(argv.end(), args_.begin(), args_.end());
    pid_ = Spawn(argv, dir_ + "/out", dir_ + "/err");
    if (pid_ < 0) return absl::InternalError("fork failed");
    lineage_.insert(pid_);
    bool up = PollUntil(
        [&] {
          port_ = ParsePort(ReadFile(dir_ + "/out"));
          return (port_ != 0 && ReadPidFile() == pid_) || Exited(pid_);
        },
        absl::Seconds(20));
    if (!up || port_ == 0 || Exited(pid_)) {
      return absl::UnavailableError(
          absl::StrCat("baton-kv did not start: ", LogTail()));
    }
    return absl::OkStatus();
  }

  // SIGUSR2; waits until the pid file names a new process and the old one
  // is gone. Returns the new pid.
  absl::StatusOr<pid_t> Restart(absl::Duration timeout = absl::Seconds(20)) {
    const pid_t old = pid_;
    if (kill(old, SIGUSR2) != 0) {
      return absl::InternalError(absl::StrCat("kill ", old, ": ", errno));
    }
    pid_t fresh = 0;
    bool done = PollUntil(
        [&] {
          fresh = ReadPidFile();
          return fresh != 0 && fresh != old && Exited(old);
        },
        timeout, absl::Milliseconds(1));
    if (!done) {
      return absl::DeadlineExceededError(absl::StrCat(
          "restart of pid ", old, " did not complete: ", LogTail()));
    }
    pid_ = fresh;
    lineage_.insert(fresh);
    ++restarts_;
    // A process that handed over exits 0 (under ASan: with no report).
    if (auto it = statuses_.find(old);
        it != statuses_.end() &&
        !(WIFEXITED(it->second) && WEXITSTATUS(it->second) == 0)) {
      return absl::InternalError(
          absl::StrCat("pid ", old, " exited with wait status ", it->second,
                       " after handing over: ", LogTail()));
    }
    return fresh;
  }

  // SIGTERM; waits for the serving process to exit, which must be with
  // status 0 (under ASan: no error and no leak report).
  absl::Status Stop() {
    kill(pid_, SIGTERM);
    if (!PollUntil([&] { return Exited(pid_); }, absl::Seconds(20))) {
      return absl::DeadlineExceededError("baton-kv did not stop");
    }
    if (auto it = statuses_.find(pid_);
        it != statuses_.end() &&
        !(WIFEXITED(it->second) && WEXITSTATUS(it->second) == 0)) {
      return absl::InternalError(absl::StrCat(
          "baton-kv exited with wait status ", it->second, ": ", LogTail()));
    }
    return absl::OkStatus();
  }

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  int restarts() const { return restarts_; }
  std::string pid_file() const { return dir_ + "/kv.pid"; }
  std::string log() const { return ReadFile(dir_ + "/err"); }
  std::string LogTail(size_t lines = 20) const {
    std::string text = log();
    size_t pos = text.size();
    for (size_t i = 0; i <= lines && pos != std::string::npos && pos > 0; ++i) {
      pos = text.rfind('\n', pos - 1);
    }
    return pos == std::string::npos ? text : text.substr(pos + 1);
  }

  pid_t ReadPidFile() const {
    std::string text = ReadFile(pid_file());
    return static_cast<pid_t>(std::atoi(text.c_str()));
  }

 private:
  static uint16_t ParsePort(const std::string& out) {
    constexpr std::string_view kPrefix = "listening on 127.0.0.1:";
    size_t at = out.find(kPrefix);
    if (at == std::string::npos) return 0;
    size_t end = out.find('\n', at);
    if (end == std::string::npos) return 0;  // the line is not complete yet
    return static_cast<uint16_t>(
        std::atoi(out.substr(at + kPrefix.size()).c_str()));
  }

  // Whether `pid` has exited (reaps it: every process of the lineage is our
  // child or re-parented to us).
  bool Exited(pid_t pid) {
    if (gone_.count(pid) != 0) return true;
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      statuses_[pid] = status;
      gone_.insert(pid);
      return true;
    }
    if (r < 0 && errno == ECHILD && kill(pid, 0) != 0) {
      gone_.insert(pid);  // not ours to reap: no status
      return true;
    }
    return false;
  }

  std::vector<std::string> args_;
  std::string dir_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  int restarts_ = 0;
  std::set<pid_t> lineage_;
  std::set<pid_t> gone_;
  std::map<pid_t, int> statuses_;  // wait statuses of the ones we reaped
};

// --- A RESP client
// --------------------------------------------------------------

// Length of the complete RESP reply at the start of `s`, or 0 if incomplete.
inline size_t ReplyLength(std::string_view s) {
  if (s.empty()) return 0;
  size_t eol = s.find("\r\n");
  if (eol == std::string_view::npos) return 0;
  const size_t line = eol + 2;
  switch (s[0]) {
    case '+':
    case '-':
    case ':':
      return line;
    case '$': {
      long n = std::atol(std::string(s.substr(1, eol - 1)).c_str());
      if (n < 0) return line;
      const size_t total = line + static_cast<size_t>(n) + 2;
      return s.size() >= total ? total : 0;
    }
    case '*': {
      long n = std::atol(std::string(s.substr(1, eol - 1)).c_str());
      size_t pos = line;
      for (long i = 0; i < n; ++i) {
        size_t len = ReplyLength(s.substr(pos));
        if (len == 0) return 0;
        pos += len;
      }
      return pos;
    }
    default:
      return line;  // not RESP; one line
  }
}

// "*N\r\n$..." for a command.
inline std::string Encode(const std::vector<std::string>& args) {
  std::string out = absl::StrCat("*", args.size(), "\r\n");
  for (const std::string& a : args) {
    absl::StrAppend(&out, "$", a.size(), "\r\n", a, "\r\n");
  }
  return out;
}

class KvClient {
 public:
  KvClient() = default;
  ~KvClient() {
    if (fd_ >= 0) close(fd_);
  }
  KvClient(const KvClient&) = delete;
  KvClient& operator=(const KvClient&) = delete;

  absl::Status Connect(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return absl::UnavailableError(absl::StrCat("connect: ", strerror(errno)));
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return absl::OkStatus();
  }

  absl::Status Send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return absl::UnavailableError(strerror(errno));
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }

  // Receives until `count` complete replies are buffered; returns them.
  absl::StatusOr<std::vector<std::string>> Replies(
      size_t count, absl::Duration timeout = absl::Seconds(20)) {
    std::vector<std::string> replies;
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      while (replies.size() < count) {
        size_t len = ReplyLength(buffer_);
        if (len == 0) break;
        replies.push_back(buffer_.substr(0, len));
        buffer_.erase(0, len);
      }
      if (replies.size() == count) return replies;
      absl::StatusOr<size_t> n = ReceiveSome(deadline);
      if (!n.ok()) {
        return absl::Status(
            n.status().code(),
            absl::StrCat(n.status().message(), " after ", replies.size(),
                         " of ", count, " replies"));
      }
      if (*n == 0) {
        return absl::UnavailableError(absl::StrCat("connection closed after ",
                                                   replies.size(), " of ",
                                                   count, " replies"));
      }
    }
  }

  absl::StatusOr<std::string> Reply(
      absl::Duration timeout = absl::Seconds(20)) {
    absl::StatusOr<std::vector<std::string>> r = Replies(1, timeout);
    if (!r.ok()) return r.status();
    return (*r)[0];
  }

  absl::StatusOr<std::string> Call(const std::vector<std::string>& args) {
    if (absl::Status s = Send(Encode(args)); !s.ok()) return s;
    return Reply();
  }

  // True if the server closed the connection (EOF) within `timeout`, with
  // no bytes before it beyond what is already buffered.
  bool ClosedByPeer(absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      absl::StatusOr<size_t> n = ReceiveSome(deadline);
      if (!n.ok()) return absl::IsUnavailable(n.status());  // reset counts
      if (*n == 0) return true;
    }
  }

  // Bytes received and not yet returned as replies.
  const std::string& pending() const { return buffer_; }
  // Waits up to `quiet` for more bytes; returns what arrived.
  std::string Extra(absl::Duration quiet) {
    absl::StatusOr<size_t> n = ReceiveSome(absl::Now() + quiet);
    (void)n;
    return buffer_;
  }

 private:
  absl::StatusOr<size_t> ReceiveSome(absl::Time deadline) {
    while (true) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return absl::DeadlineExceededError("no reply before the deadline");
      }
      pollfd p{fd_, POLLIN, 0};
      int r =
          poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) continue;
      char buf[65536];
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return absl::UnavailableError(strerror(errno));
      buffer_.append(buf, static_cast<size_t>(n));
      return static_cast<size_t>(n);
    }
  }

  int fd_ = -1;
  std::string buffer_;
};

}  // namespace baton::kv_test

#endif  // BATON_TESTS_KV_KV_TEST_UTIL_H_
