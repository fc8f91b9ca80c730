// A RESP client for the baton-kv tests (header-only): Encode() a command,
// ReplyLength() of a reply in a byte stream, and KvClient, a blocking TCP
// client with a deadline on every read that splits what it receives into
// complete RESP replies. Starting the server is tests/support/process.h's
// job (ServerProcess with AppServer("kv")), and so is running redis-cli
// (RunTool).
//
//   KvClient client;
//   ASSERT_OK(client.Connect(server.port()));
//   absl::StatusOr<std::string> reply = client.Call({"GET", "key"});
#ifndef BATON_TESTS_KV_KV_TEST_UTIL_H_
#define BATON_TESTS_KV_KV_TEST_UTIL_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace baton::kv_test {

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
