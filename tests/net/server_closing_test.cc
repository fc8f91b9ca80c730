// How a Server ends connections, and what a freeze does with one that is
// ending: Connection::CloseWhenFlushed() (flush, then close), Closing::kLinger
// (flush, shut the write side, drop input a while, then close),
// ShutdownWrite(), and Connection::set_max_inbound().
//
// Each test serves one connection on an in-process Server (one shard, on
// the test's reactor) to a blocking client on its own thread, so what the
// client observes (every byte, then end of stream, never a reset) is what a
// real peer would. Runs in both receive modes.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "baton/net/server.h"
#include "baton/runtime/event.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task.h"
#include "net/net_test_util.h"

namespace baton {
namespace {

using app::PatternStream;

// What a blocking client read before end of stream or an error.
struct Received {
  std::string bytes;
  int error = 0;  // errno of the failed recv; 0 if it ended with EOF
};

Received ReadToEnd(int fd) {
  Received r;
  char buf[64 * 1024];
  while (true) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      r.bytes.append(buf, static_cast<size_t>(n));
    } else {
      r.error = n == 0 ? 0 : errno;
      return r;
    }
  }
}

bool SendAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

class ServerClosingTest
    : public ::testing::TestWithParam<net_test::ReceiveMode> {
 protected:
  void SetUp() override {
    std::string skip;
    // A small buffer ring, so that a multishot receive cannot deliver a whole
    // test message past the back-pressure bound at once.
    ReactorOptions ring;
    ring.buffer_count = 16;
    ring.buffer_size = 4096;
    reactor_ = net_test::CreateReactor(GetParam(), ring, &skip);
    if (reactor_ == nullptr) GTEST_SKIP() << skip;
  }

  // Serves `handler` on one shard while `client` (given the address) runs on
  // its own thread; `middle` runs on the reactor meanwhile. Shuts down when
  // both are done.
  void Run(ServerOptions options, ConnectionHandler handler,
           std::function<void(const Address&)> client,
           std::function<Task<void>(Server&)> middle = nullptr) {
    options.address = *Address::Parse("127.0.0.1:0");
    options.threads = 1;
    options.reactor = net_test::OptionsFor(GetParam());
    Server server(options, std::move(handler));
    ASSERT_TRUE(server.Open().ok());
    reactor_->BlockOn(Drive(server, std::move(client), std::move(middle)));
  }

 private:
  Task<void> Drive(Server& server, std::function<void(const Address&)> client,
                   std::function<Task<void>(Server&)> middle) {
    absl::Status started = co_await server.Start();
    EXPECT_TRUE(started.ok()) << started;
    Event client_done;
    Reactor* reactor = Reactor::Current();
    std::thread thread([&] {
      client(server.address());
      reactor->Schedule([&] { client_done.Set(); });
    });
    if (middle) co_await middle(server);
    (void)co_await client_done.Wait();
    thread.join();
    co_await server.Shutdown(absl::Seconds(1));
  }

  std::unique_ptr<Reactor> reactor_;
};

// Connects, sends `request`, reads to the end.
Received Exchange(const Address& to, std::string_view request) {
  int fd = net_test::RawConnect(to);
  EXPECT_GE(fd, 0) << strerror(errno);
  if (fd < 0) return {};
  net_test::SetIoTimeout(fd, absl::Seconds(30));
  EXPECT_TRUE(SendAll(fd, request));
  Received r = ReadToEnd(fd);
  close(fd);
  return r;
}

TEST_P(ServerClosingTest, CloseWhenFlushedSendsEverythingThenEndOfStream) {
  const std::string payload = PatternStream(1).Bytes(0, 4 << 20);
  int calls = 0;
  Received got;
  Run(
      {},
      [&](Connection& c) -> Task<void> {
        ++calls;
        absl::StatusOr<size_t> n = co_await c.Read();
        EXPECT_TRUE(n.ok()) << n.status();
        c.Write(payload);
        c.CloseWhenFlushed();
        EXPECT_EQ(c.closing(), Closing::kWhenFlushed);
      },
      [&](const Address& to) { got = Exchange(to, "go"); });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(got.error, 0) << strerror(got.error);
  EXPECT_EQ(got.bytes.size(), payload.size());
  EXPECT_TRUE(got.bytes == payload) << "the payload arrived altered";
}

TEST_P(ServerClosingTest, LingerShutsWriteSideAndKeepsReadingUntilPeerCloses) {
  // The client keeps sending after the response: a server that closed at
  // once (input unread) would answer with a reset, failing these sends or
  // the final recv. Lingering, it reads and drops them until the client
  // closes its side, and the client sees a clean end of stream.
  Received response, after;
  bool sent_after_eof = false;
  Run(
      {},
      [&](Connection& c) -> Task<void> {
        absl::StatusOr<size_t> n = co_await c.Read();
        EXPECT_TRUE(n.ok()) << n.status();
        c.Consume(c.inbound().size());
        c.Write("bye");
        c.CloseWhenFlushed(Closing::kLinger);
      },
      [&](const Address& to) {
        int fd = net_test::RawConnect(to);
        ASSERT_GE(fd, 0) << strerror(errno);
        net_test::SetIoTimeout(fd, absl::Seconds(30));
        ASSERT_TRUE(SendAll(fd, "request"));
        response = ReadToEnd(fd);  // "bye", then the server's FIN
        const std::string more(16 * 1024, 'x');
        sent_after_eof = true;
        for (int i = 0; i < 16; ++i) sent_after_eof &= SendAll(fd, more);
        shutdown(fd, SHUT_WR);
        after = ReadToEnd(fd);
        close(fd);
      });
  EXPECT_EQ(response.bytes, "bye");
  EXPECT_EQ(response.error, 0) << strerror(response.error);
  EXPECT_TRUE(sent_after_eof) << "the server stopped reading (reset)";
  EXPECT_EQ(after.error, 0)
      << "expected a clean close, got " << strerror(after.error);
}

TEST_P(ServerClosingTest, LingerIsBoundedByTime) {
  ServerOptions options;
  options.linger_timeout = absl::Milliseconds(100);
  Received got;
  Run(
      options,
      [&](Connection& c) -> Task<void> {
        (void)co_await c.Read();
        c.Write("bye");
        c.CloseWhenFlushed(Closing::kLinger);
      },
      [&](const Address& to) {
        int fd = net_test::RawConnect(to);
        ASSERT_GE(fd, 0) << strerror(errno);
        net_test::SetIoTimeout(fd, absl::Seconds(30));
        ASSERT_TRUE(SendAll(fd, "request"));
        // Never closes its side: the server must give up after 100 ms.
        got = ReadToEnd(fd);
        close(fd);
      });
  EXPECT_EQ(got.bytes, "bye");
}

TEST_P(ServerClosingTest, ShutdownWriteSendsQueuedBytesThenEndOfStream) {
  const std::string payload = PatternStream(2).Bytes(0, 1 << 20);
  std::string reply_to_eof;
  Received got;
  Run(
      {},
      [&](Connection& c) -> Task<void> {
        c.Write(payload);
        absl::Status s = co_await c.ShutdownWrite();
        EXPECT_TRUE(s.ok()) << s;
        EXPECT_EQ(c.outbound_size(), 0u);
        // The read side stays open: the client answers our FIN.
        while (!c.eof()) {
          absl::StatusOr<size_t> n = co_await c.Read();
          if (!n.ok() || *n == 0) break;
        }
        reply_to_eof = std::string(c.inbound());
      },
      [&](const Address& to) {
        int fd = net_test::RawConnect(to);
        ASSERT_GE(fd, 0) << strerror(errno);
        net_test::SetIoTimeout(fd, absl::Seconds(30));
        got = ReadToEnd(fd);
        SendAll(fd, "got it");
        shutdown(fd, SHUT_WR);
        char c;
        recv(fd, &c, 1, 0);
        close(fd);
      });
  EXPECT_EQ(got.error, 0) << strerror(got.error);
  EXPECT_TRUE(got.bytes == payload);
  EXPECT_EQ(reply_to_eof, "got it");
}

// A freeze that finds a connection closing with unsent bytes detaches it
// with its intent; the process that resumes it (here: the same one, as after
// a rolled-back handoff) sends the bytes and closes without calling the
// handler again. A closing connection with nothing left is simply closed.
TEST_P(ServerClosingTest, FreezeMovesClosingConnectionAndResumeFinishesIt) {
  const std::string payload = PatternStream(3).Bytes(0, 8 << 20);
  std::atomic<int> calls{0};
  Event written;
  absl::Notification may_read;
  Received got;
  FrozenConnections frozen;
  Run(
      {},
      [&](Connection& c) -> Task<void> {
        calls.fetch_add(1);
        (void)co_await c.Read();
        // More than the socket buffers hold while the client is not reading.
        c.Write(payload);
        c.CloseWhenFlushed();
        written.Set();
      },
      [&](const Address& to) {
        int fd = net_test::RawConnect(to, /*rcvbuf=*/64 * 1024);
        ASSERT_GE(fd, 0) << strerror(errno);
        net_test::SetIoTimeout(fd, absl::Seconds(30));
        ASSERT_TRUE(SendAll(fd, "go"));
        may_read.WaitForNotification();
        got = ReadToEnd(fd);
        close(fd);
      },
      [&](Server& server) -> Task<void> {
        (void)co_await written.Wait();
        frozen = co_await server.Freeze(absl::Seconds(1));
        EXPECT_EQ(frozen.handlers_cancelled, 0);
        EXPECT_EQ(frozen.connections.size(), 1u);
        if (frozen.connections.size() == 1) {
          const DetachedConnection& d = frozen.connections[0];
          EXPECT_EQ(d.closing, Closing::kWhenFlushed);
          EXPECT_GT(d.outbound.size(), 0u);
          EXPECT_LT(d.outbound.size(), payload.size());
        }
        co_await server.Resume(std::move(frozen.connections));
        may_read.Notify();
      });
  EXPECT_EQ(calls.load(), 1) << "a closing connection went to the handler";
  EXPECT_EQ(got.error, 0) << strerror(got.error);
  EXPECT_EQ(got.bytes.size(), payload.size());
  EXPECT_TRUE(got.bytes == payload);
}

TEST_P(ServerClosingTest, FreezeClosesAClosingConnectionWithNothingToSend) {
  Event closing;
  Received got;
  FrozenConnections frozen;
  Run(
      {},
      [&](Connection& c) -> Task<void> {
        (void)co_await c.Read();
        c.Write("last words");
        absl::Status flushed = co_await c.Flush();
        EXPECT_TRUE(flushed.ok()) << flushed;
        c.CloseWhenFlushed();
        closing.Set();
        // Still here when the freeze comes: it ends this wait.
        absl::StatusOr<size_t> n = co_await c.Read();
        EXPECT_TRUE(absl::IsCancelled(n.status())) << n.status();
      },
      [&](const Address& to) { got = Exchange(to, "go"); },
      [&](Server& server) -> Task<void> {
        (void)co_await closing.Wait();
        frozen = co_await server.Freeze(absl::Seconds(1));
        EXPECT_TRUE(frozen.connections.empty())
            << "a finished connection was handed over";
        co_await server.Resume({});
      });
  EXPECT_EQ(got.bytes, "last words");
  EXPECT_EQ(got.error, 0) << strerror(got.error);
}

// A handler whose protocol needs a message larger than the server-wide
// bound raises its connection's bound; the paused receive resumes.
TEST_P(ServerClosingTest, RaisingMaxInboundResumesReceiving) {
  ServerOptions options;
  options.listener.connection.max_inbound = 16 * 1024;
  const std::string message = PatternStream(4).Bytes(0, 1 << 20);
  bool hit_limit = false;
  bool whole = false;
  Received got;
  Run(
      options,
      [&](Connection& c) -> Task<void> {
        while (c.inbound().size() < message.size()) {
          absl::StatusOr<size_t> n = co_await c.Read();
          if (absl::IsResourceExhausted(n.status())) {
            hit_limit = true;
            EXPECT_GE(c.inbound().size(), c.max_inbound());
            c.set_max_inbound(message.size());
            continue;
          }
          if (!n.ok() || *n == 0) co_return;
        }
        whole = c.inbound() == message;
        c.Write("ok");
        c.CloseWhenFlushed();
      },
      [&](const Address& to) { got = Exchange(to, message); });
  EXPECT_TRUE(hit_limit);
  EXPECT_TRUE(whole);
  EXPECT_EQ(got.bytes, "ok");
}

INSTANTIATE_TEST_SUITE_P(Modes, ServerClosingTest,
                         ::testing::ValuesIn(net_test::kReceiveModes),
                         net_test::ReceiveModeName);

}  // namespace
}  // namespace baton
