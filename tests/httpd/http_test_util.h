// Helpers for the baton-httpd process tests (header-only): run the real
// binary as a subprocess and drive its restarts, and a blocking HTTP/1.1
// client on a plain socket.
//
// Every wait polls against a deadline; none is a fixed sleep. The test
// process makes itself a child subreaper so that processes started by a
// handoff (whose parent exits) are re-parented to it and reaped here; the
// destructor stops whichever process serves and kills every process of the
// lineage that is left.
//
//   HttpdProcess server({"--threads=2"});
//   ASSERT_TRUE(server.Start().ok());
//   HttpClient c = *HttpClient::Connect(server.port());
//   c.Send("GET /json HTTP/1.1\r\nHost: x\r\n\r\n");
//   absl::StatusOr<HttpResponse> r = c.Read();
#ifndef BATON_TESTS_HTTPD_HTTP_TEST_UTIL_H_
#define BATON_TESTS_HTTPD_HTTP_TEST_UTIL_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

#ifndef ASSERT_OK
#define ASSERT_OK(expr)                          \
  do {                                           \
    const absl::Status _s = (expr);              \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s; \
  } while (0)
#endif

// `auto lhs = *expr` once `expr` (a StatusOr) is known to be OK.
#define ASSERT_OK_AND_ASSIGN(lhs, expr)                             \
  auto lhs##_or = (expr);                                           \
  ASSERT_TRUE(lhs##_or.ok()) << #expr << ": " << lhs##_or.status(); \
  auto lhs = *std::move(lhs##_or)

namespace baton::httpd_test {

inline std::string HttpdPath() {
  return BATON_BINARY_DIR "/apps/httpd/baton-httpd";
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

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Whether an executable named `name` is on PATH.
inline bool HaveTool(const std::string& name) {
  const char* path = getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (!dir.empty() && access((dir + "/" + name).c_str(), X_OK) == 0) {
      return true;
    }
  }
  return false;
}

// Runs argv with stdout and stderr to `output`; returns the exit status
// (waitpid format) or -1.
inline int RunTool(const std::vector<std::string>& argv,
                   const std::string& output) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fd = open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> args;
    for (const std::string& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// --- The server process ------------------------------------------------------

class HttpdProcess {
 public:
  explicit HttpdProcess(std::vector<std::string> args = {})
      : args_(std::move(args)) {
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    std::string templ = ::testing::TempDir() + "/baton_httpd_XXXXXX";
    if (mkdtemp(templ.data()) != nullptr) dir_ = templ;
  }
  ~HttpdProcess() {
    pid_t serving = ReadPidFile();
    if (serving > 0) kill(serving, SIGTERM);
    if (serving > 0 &&
        !PollUntil([&] { return Exited(serving); }, absl::Seconds(10))) {
      ADD_FAILURE() << "baton-httpd pid " << serving
                    << " did not stop on SIGTERM";
    }
    for (pid_t pid : lineage_) {
      if (!Exited(pid)) {
        kill(pid, SIGKILL);
        killed_.insert(pid);
        PollUntil([&] { return Exited(pid); }, absl::Seconds(5));
      }
    }
    // Every process of the lineage we could reap exited cleanly (0 after a
    // handoff or a SIGTERM; a sanitizer report makes it non-zero), and none
    // logged a sanitizer report.
    for (const auto& [pid, status] : statuses_) {
      if (killed_.count(pid) != 0) continue;
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << "baton-httpd pid " << pid << " ended with wait status " << status;
    }
    const std::string log = Stderr();
    for (const char* bad : {"Sanitizer", "runtime error:"}) {
      EXPECT_EQ(log.find(bad), std::string::npos)
          << "baton-httpd logged \"" << bad << "\":\n"
          << log;
    }
    if (::testing::Test::HasFailure()) {
      std::fprintf(stderr, "baton-httpd logs kept in %s; last lines:\n%s\n",
                   dir_.c_str(), LogTail(30).c_str());
    } else if (!dir_.empty()) {
      for (const char* f : {"/stdout", "/stderr", "/pid"}) {
        unlink((dir_ + f).c_str());
      }
      rmdir(dir_.c_str());
    }
  }
  HttpdProcess(const HttpdProcess&) = delete;
  HttpdProcess& operator=(const HttpdProcess&) = delete;

  // Starts the binary and waits for "listening on 127.0.0.1:PORT" and for
  // the pid file to name it.
  absl::Status Start(absl::Duration timeout = absl::Seconds(20)) {
    if (dir_.empty()) return absl::InternalError("mkdtemp failed");
    std::vector<std::string> argv = {HttpdPath(), "--listen=127.0.0.1:0",
                                     "--pid-file=" + pid_file()};
    argv.insert(argv.end(), args_.begin(), args_.end());
    pid_t pid = fork();
    if (pid < 0) return absl::ErrnoToStatus(errno, "fork");
    if (pid == 0) {
      int in = open("/dev/null", O_RDONLY);
      int out =
          open((dir_ + "/stdout").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      int err =
          open((dir_ + "/stderr").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (in < 0 || out < 0 || err < 0) _exit(126);
      dup2(in, 0);
      dup2(out, 1);
      dup2(err, 2);
      for (int fd = 3; fd < 1024; ++fd) close(fd);
      std::vector<char*> args;
      for (std::string& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    lineage_.insert(pid);
    first_pid_ = pid;
    const std::string marker = "listening on 127.0.0.1:";
    bool up = PollUntil(
        [&] {
          if (Exited(pid)) return true;
          std::string out = ReadFile(dir_ + "/stdout");
          size_t at = out.find(marker);
          if (at == std::string::npos ||
              out.find('\n', at) == std::string::npos) {
            return false;
          }
          port_ =
              static_cast<uint16_t>(std::stoi(out.substr(at + marker.size())));
          return ReadPidFile() == pid;
        },
        timeout);
    if (Exited(pid)) {
      return absl::InternalError("baton-httpd exited at start-up:\n" +
                                 LogTail(20));
    }
    if (!up) {
      return absl::DeadlineExceededError(
          "baton-httpd did not report its address:\n" + LogTail(20));
    }
    return absl::OkStatus();
  }

  // SIGUSR2 to the serving process; waits until the pid file names a new
  // process and the old one has exited. Returns the new pid.
  absl::StatusOr<pid_t> Restart(absl::Duration timeout = absl::Seconds(15)) {
    pid_t old = ReadPidFile();
    if (old <= 0) return absl::FailedPreconditionError("no pid file");
    if (kill(old, SIGUSR2) != 0) return absl::ErrnoToStatus(errno, "kill");
    pid_t now = 0;
    if (!PollUntil(
            [&] {
              now = ReadPidFile();
              return now > 0 && now != old;
            },
            timeout)) {
      return absl::DeadlineExceededError(absl::StrFormat(
          "pid file still names %d after SIGUSR2:\n%s", old, LogTail(20)));
    }
    lineage_.insert(now);
    if (!PollUntil([&] { return Exited(old); }, timeout)) {
      return absl::DeadlineExceededError(
          absl::StrFormat("pid %d did not exit after handing over", old));
    }
    ++restarts_;
    return now;
  }

  uint16_t port() const { return port_; }
  int restarts() const { return restarts_; }
  pid_t first_pid() const { return first_pid_; }
  const std::string& dir() const { return dir_; }
  std::string pid_file() const { return dir_ + "/pid"; }
  std::string Stderr() const { return ReadFile(dir_ + "/stderr"); }

  // The pid the pid file names (0 if absent or unreadable).
  pid_t ReadPidFile() const {
    std::string s = ReadFile(pid_file());
    if (s.empty() || s.back() != '\n') return 0;  // written atomically
    return static_cast<pid_t>(std::atoi(s.c_str()));
  }

  std::string LogTail(size_t n) const {
    std::string log = Stderr();
    size_t pos = log.size();
    for (size_t i = 0; i <= n && pos != std::string::npos && pos > 0; ++i) {
      pos = log.rfind('\n', pos - 1);
    }
    return pos == std::string::npos ? log : log.substr(pos + 1);
  }

 private:
  // Whether `pid` has exited; reaps it (and any other finished child).
  bool Exited(pid_t pid) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      gone_.insert(pid);
      statuses_[pid] = status;
      return true;
    }
    if (gone_.count(pid) != 0) return true;
    if (r < 0 && errno == ECHILD) return kill(pid, 0) != 0 && errno == ESRCH;
    return false;
  }

  std::vector<std::string> args_;
  std::string dir_;
  uint16_t port_ = 0;
  pid_t first_pid_ = -1;
  int restarts_ = 0;
  std::set<pid_t> lineage_;
  std::set<pid_t> gone_;
  std::set<pid_t> killed_;
  std::map<pid_t, int> statuses_;  // wait statuses of the ones we reaped
};

// --- The client --------------------------------------------------------------

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string raw;  // the whole response as received

  // The value of the first header named `name` (case-insensitive), or "".
  std::string Header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (n.size() == name.size() &&
          strncasecmp(n.data(), name.data(), n.size()) == 0) {
        return v;
      }
    }
    return "";
  }
};

class HttpClient {
 public:
  static absl::StatusOr<HttpClient> Connect(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      int e = errno;
      close(fd);
      return absl::ErrnoToStatus(e, "connect");
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return HttpClient(fd);
  }
  HttpClient(HttpClient&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)),
        buf_(std::move(other.buf_)),
        start_(other.start_),
        eof_(other.eof_) {}
  HttpClient& operator=(HttpClient&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) close(fd_);
      fd_ = std::exchange(other.fd_, -1);
      buf_ = std::move(other.buf_);
      start_ = other.start_;
      eof_ = other.eof_;
    }
    return *this;
  }
  ~HttpClient() {
    if (fd_ >= 0) close(fd_);
  }

  int fd() const { return fd_; }
  uint16_t local_port() const {
    sockaddr_in addr{};
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    return ntohs(addr.sin_port);
  }

  absl::Status Send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return absl::ErrnoToStatus(errno, "send");
      }
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }

  // Reads one response. `head`: the request was HEAD (no body follows).
  // Interim (1xx) responses are returned like any other.
  absl::StatusOr<HttpResponse> Read(
      bool head = false, absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    size_t end;
    while ((end = Pending().find("\r\n\r\n")) == std::string::npos) {
      if (absl::Status s = Fill(deadline); !s.ok()) return s;
    }
    HttpResponse r;
    std::string_view head_bytes = Pending().substr(0, end + 2);
    size_t line_end = head_bytes.find("\r\n");
    std::string_view status_line = head_bytes.substr(0, line_end);
    if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/") {
      return absl::DataLossError("bad status line: " +
                                 std::string(status_line));
    }
    r.status = std::atoi(std::string(status_line.substr(9, 3)).c_str());
    size_t pos = line_end + 2;
    while (pos < head_bytes.size()) {
      size_t e = head_bytes.find("\r\n", pos);
      std::string_view line = head_bytes.substr(pos, e - pos);
      pos = e + 2;
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) {
        return absl::DataLossError("bad header line: " + std::string(line));
      }
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      r.headers.emplace_back(std::string(line.substr(0, colon)),
                             std::string(value));
    }
    size_t length = 0;
    if (r.status >= 200 && !head) {
      std::string cl = r.Header("Content-Length");
      if (cl.empty()) return absl::DataLossError("no Content-Length");
      length = std::stoul(cl);
    }
    while (Pending().size() < end + 4 + length) {
      if (absl::Status s = Fill(deadline); !s.ok()) return s;
    }
    r.body = std::string(Pending().substr(end + 4, length));
    r.raw = std::string(Pending().substr(0, end + 4 + length));
    Consume(end + 4 + length);
    return r;
  }

  // OK if the server closes the connection (EOF or reset) within `timeout`
  // without sending anything more.
  absl::Status ExpectClosed(absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      if (!Pending().empty()) {
        return absl::DataLossError("unexpected bytes before close: " +
                                   std::string(Pending()));
      }
      absl::Status s = Fill(deadline);
      if (absl::IsUnavailable(s)) return absl::OkStatus();  // closed
      if (!s.ok()) return s;
    }
  }

  // OK if nothing arrives within `wait` (and the connection stays open).
  absl::Status ExpectSilence(absl::Duration wait) {
    if (!Pending().empty()) {
      return absl::DataLossError("unexpected bytes: " + std::string(Pending()));
    }
    absl::Status s = Fill(absl::Now() + wait);
    if (absl::IsDeadlineExceeded(s)) return absl::OkStatus();
    if (s.ok()) {
      return absl::DataLossError("unexpected bytes: " + std::string(Pending()));
    }
    return s;
  }

  // Everything until the server closes the connection (within `timeout`).
  absl::StatusOr<std::string> ReadUntilClosed(
      absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      absl::Status s = Fill(deadline);
      if (absl::IsUnavailable(s)) break;
      if (!s.ok()) return s;
    }
    std::string all(Pending());
    Consume(all.size());
    return all;
  }

  std::string_view Pending() const {
    return std::string_view(buf_).substr(start_);
  }

 private:
  explicit HttpClient(int fd) : fd_(fd) {}

  // Appends what arrives before `deadline`. Unavailable at EOF or reset.
  absl::Status Fill(absl::Time deadline) {
    if (eof_) return absl::UnavailableError("connection closed");
    while (true) {
      absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return absl::DeadlineExceededError(
            "timed out waiting for the server; have: " +
            std::string(Pending().substr(0, 200)));
      }
      pollfd p{fd_, POLLIN, 0};
      int ready =
          poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (ready < 0 && errno == EINTR) continue;
      if (ready < 0) return absl::ErrnoToStatus(errno, "poll");
      if (ready == 0) continue;
      char chunk[65536];
      ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0 || (n < 0 && errno == ECONNRESET)) {
        eof_ = true;
        return absl::UnavailableError(n == 0 ? "connection closed"
                                             : "connection reset");
      }
      if (n < 0) return absl::ErrnoToStatus(errno, "recv");
      buf_.append(chunk, static_cast<size_t>(n));
      return absl::OkStatus();
    }
  }

  int fd_ = -1;
  // Drops `n` received bytes (compacting now and then, not every time).
  void Consume(size_t n) {
    start_ += n;
    if (start_ == buf_.size()) {
      buf_.clear();
      start_ = 0;
    } else if (start_ > (1 << 16) && start_ > buf_.size() / 2) {
      buf_.erase(0, start_);
      start_ = 0;
    }
  }

  std::string buf_;  // received bytes; those before start_ are read
  size_t start_ = 0;
  bool eof_ = false;
};

// "GET <path> HTTP/1.1" with a Host field and `extra` header lines.
inline std::string Get(std::string_view path, std::string_view extra = "") {
  return absl::StrFormat("GET %s HTTP/1.1\r\nHost: test\r\n%s\r\n",
                         std::string(path), std::string(extra));
}

// "POST /echo" with a Content-Length body.
inline std::string PostEcho(std::string_view body,
                            std::string_view extra = "") {
  return absl::StrFormat(
      "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n%s\r\n%s",
      body.size(), std::string(extra), std::string(body));
}

}  // namespace baton::httpd_test

#endif  // BATON_TESTS_HTTPD_HTTP_TEST_UTIL_H_
