// A blocking HTTP/1.1 client for the baton-httpd tests (header-only): one
// plain socket, requests sent as raw bytes, responses parsed one at a time
// (status, fields, a Content-Length body), and checks that the server
// closes the connection or stays silent. Every read has a deadline and
// fails with what was received so far. Starting the server is
// tests/support/process.h's job (ServerProcess with AppServer("httpd")).
//
//   HttpClient c = *HttpClient::Connect(server.port());
//   c.Send(Get("/json"));
//   absl::StatusOr<HttpResponse> r = c.Read();
#ifndef BATON_TESTS_HTTPD_HTTP_TEST_UTIL_H_
#define BATON_TESTS_HTTPD_HTTP_TEST_UTIL_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace baton::httpd_test {

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
