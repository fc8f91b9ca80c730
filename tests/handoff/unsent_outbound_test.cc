// Unsent outbound bytes survive a handoff: a client sends megabytes to
// baton-echo without reading (small SO_RCVBUF), so the server's echo piles
// up in its unsent queue; the server is restarted twice in that state; then
// the client reads, and must receive every byte it sent, in order, and then
// the server's end of stream.
//
// When to restart is decided from kernel counters, not from timing: every
// byte the client handed to its kernel is, at any moment, in one of: the
// client's send queue (SIOCOUTQ), the server's receive queue (/proc/net/tcp
// rx_queue), the server process's memory (unconsumed inbound or unsent
// outbound), the server's send queue (tx_queue), or the client's receive
// queue (SIOCINQ). So
//   held by the server process >= sent - SIOCOUTQ - rx_queue - tx_queue -
//                                  SIOCINQ
// (counting a byte in flight twice only lowers the bound). The client never
// reads, so the server's send queue is full and whatever the echo handler
// writes stays in the process; the handler consumes its inbound bytes at
// once unless it waits in Drain() with more than 1 MiB unsent. Hence, with
// the client held back, any amount the server holds is unsent outbound
// bytes (possibly besides inbound ones); the test waits for 512 KiB, far
// more than a send in progress could account for.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "handoff/handoff_test_util.h"
#include "support/process.h"

namespace baton::test_support {
namespace {

constexpr size_t kTotal = 48u << 20;           // bytes the client sends
constexpr int64_t kHeldThreshold = 512 << 10;  // see the file comment
constexpr int kRcvBuf = 4096;                  // the client's SO_RCVBUF
constexpr absl::Duration kWait = absl::Seconds(60);

uint64_t Mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::string Payload(uint32_t seed, size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t w = Mix((uint64_t{seed} << 40) ^ i);
    std::memcpy(s.data() + i, &w, std::min<size_t>(8, n - i));
  }
  return s;
}

uint16_t LocalPort(int fd) {
  sockaddr_in sin{};
  socklen_t len = sizeof(sin);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len);
  return ntohs(sin.sin_port);
}

// The lower bound of the file comment, or an error.
absl::StatusOr<int64_t> HeldByServer(int fd, uint64_t sent,
                                     uint16_t server_port,
                                     uint16_t client_port) {
  int outq = 0, inq = 0;
  if (ioctl(fd, SIOCOUTQ, &outq) != 0 || ioctl(fd, SIOCINQ, &inq) != 0) {
    return absl::ErrnoToStatus(errno, "ioctl(SIOCOUTQ/SIOCINQ)");
  }
  absl::StatusOr<std::vector<TcpSocket>> sockets = ReadTcpSockets();
  if (!sockets.ok()) return sockets.status();
  for (const TcpSocket& s : *sockets) {
    if (s.state == kTcpEstablished && s.local_port == server_port &&
        s.remote_port == client_port) {
      return static_cast<int64_t>(sent) - outq - inq -
             static_cast<int64_t>(s.rx_queue) -
             static_cast<int64_t>(s.tx_queue);
    }
  }
  return absl::NotFoundError(
      "the server's end of the connection is not in "
      "/proc/net/tcp");
}

// Sends what the socket takes now (non-blocking). False on an error.
bool SendSome(int fd, const std::string& payload, size_t* sent,
              std::string* error) {
  while (*sent < payload.size()) {
    ssize_t n = send(fd, payload.data() + *sent,
                     std::min<size_t>(payload.size() - *sent, 256 * 1024),
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      *sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
    *error = absl::StrFormat("send after %d bytes: %s", *sent, strerror(errno));
    return false;
  }
  return true;
}

// Reads every byte of `payload` back from `fd` (sending the rest of it
// meanwhile), comparing each with what was sent, then half-closes and
// expects the server's end of stream. Records failures.
void ReadBack(int fd, const std::string& payload, size_t* sent_io,
              absl::Duration limit) {
  const size_t total = payload.size();
  size_t& sent = *sent_io;
  size_t received = 0;
  int64_t mismatch = -1;
  bool eof = false;
  std::string error;
  std::string buffer(256 * 1024, '\0');
  const absl::Time deadline = absl::Now() + limit;
  while (received < total && error.empty() && mismatch < 0 && !eof &&
         absl::Now() < deadline) {
    pollfd p{fd, static_cast<short>(POLLIN | (sent < total ? POLLOUT : 0)), 0};
    if (poll(&p, 1, 100) < 0 && errno != EINTR) break;
    if (p.revents & POLLOUT) SendSome(fd, payload, &sent, &error);
    if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
    ssize_t n = recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n == 0) {
      eof = true;
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
      error =
          absl::StrFormat("recv after %d bytes: %s", received, strerror(errno));
    } else if (n > 0) {
      const size_t len = static_cast<size_t>(n);
      if (received + len > sent) {
        mismatch = static_cast<int64_t>(sent);
      } else if (std::memcmp(buffer.data(), payload.data() + received, len) !=
                 0) {
        size_t i = 0;
        while (buffer[i] == payload[received + i]) ++i;
        mismatch = static_cast<int64_t>(received + i);
      }
      received += len;
    }
  }
  EXPECT_TRUE(error.empty()) << error;
  EXPECT_EQ(mismatch, -1) << "first wrong byte at stream offset " << mismatch;
  EXPECT_FALSE(eof) << "end of stream after " << received << " bytes";
  ASSERT_EQ(received, total)
      << "bytes received of " << total << " sent (" << sent
      << " handed to the kernel) within " << absl::FormatDuration(limit);
  ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
  timeval tv = absl::ToTimeval(limit);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ssize_t last = recv(fd, buffer.data(), buffer.size(), 0);
  EXPECT_EQ(last, 0) << (last < 0 ? strerror(errno) : "extra bytes");
}

// A blocking TCP socket with a small receive buffer, connected to `to`.
int ConnectSmallReceiveBuffer(const Address& to) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int rcvbuf = kRcvBuf;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) != 0 ||
      connect(fd, to.sa(), to.length()) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Param: whether each new process runs the other backend (io_uring ->
// epoll -> io_uring), so the unsent bytes cross backends too.
class UnsentOutboundTest : public ::testing::TestWithParam<bool> {};

TEST_P(UnsentOutboundTest, QueuedEchoMovesWithTheConnectionAndArrivesInOrder) {
  const uint32_t seed = TestSeed(5200);
  SCOPED_TRACE(SeedTrace(seed));
  const std::string payload = Payload(seed, kTotal);
  TestDirectory dir;
  std::vector<std::string> env;
  if (GetParam()) {
    env = {"BATON_BACKEND=io_uring", "BATON_HANDOFF_ALTERNATE_BACKEND=1"};
  }
  ServerProcess server(EchoServer(dir.path(), EchoArgs(1), env));
  ASSERT_OK(server.Start());

  int fd = ConnectSmallReceiveBuffer(server.address());
  ASSERT_GE(fd, 0) << strerror(errno);
  const uint16_t client_port = LocalPort(fd);

  // Phase 1: send without reading until the server provably holds bytes.
  size_t sent = 0;
  std::string error;
  int64_t held = 0;
  bool holding = PollUntil(
      [&] {
        if (!SendSome(fd, payload, &sent, &error)) return true;
        absl::StatusOr<int64_t> h =
            HeldByServer(fd, sent, server.port(), client_port);
        if (!h.ok()) {
          error = h.status().ToString();
          return true;
        }
        held = *h;
        return held > kHeldThreshold;
      },
      kWait);
  ASSERT_TRUE(error.empty()) << error;
  ASSERT_TRUE(holding) << "after sending " << sent << " of " << kTotal
                       << " bytes the server provably holds only " << held;

  // Two restarts while the echo waits unsent.
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(absl::StrCat("restart ", i + 1));
    absl::StatusOr<RestartResult> r = server.Restart();
    ASSERT_OK(r);
    ExpectCleanExit(*r);
    EXPECT_EQ(r->handoff.connections, 1) << r->handoff.text;
    EXPECT_GT(r->handoff.outbound_bytes, 0u) << r->handoff.text;
    EXPECT_EQ(r->takeover.outbound_bytes, r->handoff.outbound_bytes)
        << r->takeover.text;
    EXPECT_EQ(r->takeover.inbound_bytes, r->handoff.inbound_bytes)
        << r->takeover.text;
    std::printf("restart %d: %s\n", i + 1, r->handoff.text.c_str());
  }

  // Phase 2: read everything back (sending the rest meanwhile), in order,
  // then the server's end of stream.
  ReadBack(fd, payload, &sent, kWait);
  if (HasFailure()) std::printf("%s\n", server.LogTail().c_str());
  close(fd);
  absl::StatusOr<int> stopped = server.Stop();
  EXPECT_OK(stopped);
}

// The same with a client that has nothing more to send: a reply (here an
// echo the server has fully consumed, far below its drain limit, so the
// handler waits in Read() with nothing unconsumed) sits in the server's
// unsent queue when the handoff happens, and the client only waits for it.
//
// Regression test. It found that the new process put the adopted outbound
// bytes in the connection's queue but started no send (only Write() or a
// send completion did), so a reply queued for a slow client was stranded
// after a handoff until the client sent again (the test above passes
// either way: its client keeps sending). Fixed in 92e1a46 (Connection::
// PrepareToWait() calls MaybeSend()); see also
// DetachAdoptTest.AdoptedOutboundIsSentWithoutNewWrites.
INSTANTIATE_TEST_SUITE_P(Backends, UnsentOutboundTest, ::testing::Bool(),
                         [](const auto& info) {
                           return std::string(info.param ? "Alternating"
                                                         : "SameBackend");
                         });

TEST(UnsentOutboundReplyTest, QueuedReplyIsSentWithoutFurtherInput) {
  const uint32_t seed = TestSeed(5201);
  SCOPED_TRACE(SeedTrace(seed));
  const std::string payload = Payload(seed, 32u << 20);
  TestDirectory dir;
  ServerProcess server(EchoServer(dir.path(), EchoArgs(1)));
  ASSERT_OK(server.Start());
  int fd = ConnectSmallReceiveBuffer(server.address());
  ASSERT_GE(fd, 0) << strerror(errno);
  const uint16_t client_port = LocalPort(fd);

  // Send 64 KiB at a time; after each piece wait until the server has read
  // every byte (the client's send queue and the server's receive queue are
  // empty), so the bound of the file comment is exact: what the server
  // process holds. Stop once that is 256 KiB: far below baton-echo's 1 MiB
  // drain limit, so its handler has consumed everything and waits in
  // Read(); what it holds is unsent outbound bytes only.
  constexpr size_t kPiece = 64 * 1024;
  constexpr int64_t kQueued = 256 * 1024;
  size_t sent = 0;
  int64_t held = 0;
  std::string error;
  while (held < kQueued) {
    ASSERT_LT(sent + kPiece, payload.size())
        << "the server never held " << kQueued << " bytes unsent";
    const size_t target = sent + kPiece;
    std::string prefix = payload.substr(0, target);
    bool read_all = PollUntil(
        [&] {
          if (!SendSome(fd, prefix, &sent, &error)) return true;
          int outq = -1;
          ioctl(fd, SIOCOUTQ, &outq);
          if (sent < target || outq != 0) return false;
          absl::StatusOr<std::vector<TcpSocket>> sockets = ReadTcpSockets();
          if (!sockets.ok()) {
            error = sockets.status().ToString();
            return true;
          }
          for (const TcpSocket& t : *sockets) {
            if (t.state == kTcpEstablished && t.local_port == server.port() &&
                t.remote_port == client_port) {
              return t.rx_queue == 0;
            }
          }
          return false;
        },
        kWait);
    ASSERT_TRUE(error.empty()) << error;
    ASSERT_TRUE(read_all) << "the server did not read the " << sent
                          << " bytes sent";
    absl::StatusOr<int64_t> h =
        HeldByServer(fd, sent, server.port(), client_port);
    ASSERT_OK(h);
    held = *h;
  }

  absl::StatusOr<RestartResult> r = server.Restart();
  ASSERT_OK(r);
  ExpectCleanExit(*r);
  // The scenario: only unsent outbound bytes moved.
  ASSERT_EQ(r->handoff.inbound_bytes, 0u) << r->handoff.text;
  ASSERT_GT(r->handoff.outbound_bytes, 0u) << r->handoff.text;

  // The client sends nothing more; it only reads its reply.
  ReadBack(fd, payload.substr(0, sent), &sent, kWait);
  if (HasFailure()) std::printf("%s\n", server.LogTail().c_str());
  close(fd);
  EXPECT_OK(server.Stop());
}

}  // namespace
}  // namespace baton::test_support
