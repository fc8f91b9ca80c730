// Detach / Adopt: a connection leaves with exactly its unconsumed inbound and
// unsent outbound bytes, and an adopted connection continues the byte
// streams in both directions. Also the Quiesce() contract (waits end with
// CancelledError) and Read() cancellation.
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "baton/net/address.h"
#include "baton/net/connection.h"
#include "baton/net/listener.h"
#include "baton/runtime/event.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task_group.h"
#include "baton/runtime/timer.h"
#include "net/net_test_util.h"

namespace baton {
namespace {

using net_test::PollUntil;

int IoctlInt(int fd, unsigned long request) {
  int value = -1;
  if (ioctl(fd, request, &value) != 0) return -1;
  return value;
}

class DetachAdoptTest : public net_test::ListenerFixture {};

// --- The full handoff ---

struct HandoffRun {
  std::string first_in;  // client -> server before the detach
  size_t consumed_before = 0;
  std::string s1;  // server -> client before the detach (several MB)
  std::string p2;  // client -> server after the adopt
  std::string s2;  // server -> client after the adopt
  int client_fd = -1;
  Event first_in_flushed;
  Event adopted;

  // Observations.
  int original_fd = -1;
  bool stalled = false;
  uint64_t bytes_sent_at_detach = 0;
  int server_unsent_in_kernel = -1;  // SIOCOUTQNSD on the server socket
  int client_unread_in_kernel = -1;  // SIOCINQ on the client socket
  absl::Status pending_read;         // the handler's Read() when quiesced
  absl::Status drain_while_quiescing;
  absl::Status read_while_quiescing;
  std::optional<DetachedConnection> detached;
  bool old_connection_closed = false;
  std::optional<size_t> first_adopted_read;
  std::string inbound_after_adopt_first_read;
  std::string inbound_after_fresh;
  uint32_t adopted_service = 0;
  std::string adopted_state;
  size_t adopted_outbound = 0;
  absl::Status adopted_flush;
  absl::Status adopted_eof;
  std::string client_received;
  absl::Status client_status;
  std::string server_failure;
};

// Waits on the connection until the handoff asks it to stop.
Task<void> PendingReader(Connection* c, absl::Status* status) {
  absl::StatusOr<size_t> n = co_await c->Read();
  *status = n.ok() ? absl::InternalError(absl::StrFormat(
                         "Read returned %d instead of ending", *n))
                   : n.status();
}

Task<void> HandoffServer(Listener* listener, HandoffRun* run) {
  absl::StatusOr<Connection> accepted = co_await listener->Accept();
  if (!accepted.ok()) {
    run->server_failure = accepted.status().ToString();
    co_return;
  }
  Connection& c = *accepted;
  run->original_fd = c.fd();
  // A small send buffer so the several-MB write backs up quickly.
  int sndbuf = 32 * 1024;
  setsockopt(c.fd(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
  c.set_service(7);
  c.set_handoff_state("handoff-state");

  // Receive the client's first bytes, consume only a prefix.
  while (c.inbound().size() < run->first_in.size()) {
    absl::StatusOr<size_t> n = co_await c.Read();
    if (!n.ok() || *n == 0) {
      run->server_failure = "first read: " + n.status().ToString();
      co_await c.Close();
      co_return;
    }
  }
  c.Consume(run->consumed_before);

  // Write several MB to a client that does not read, until the socket
  // buffers are full: nothing more leaves for 20 consecutive polls.
  c.Write(run->s1);
  uint64_t last_sent = c.bytes_sent();
  int unchanged = 0;
  run->stalled = co_await PollUntil(
      [&] {
        unchanged = c.bytes_sent() == last_sent ? unchanged + 1 : 0;
        last_sent = c.bytes_sent();
        return unchanged >= 20 && c.outbound_size() > 0;
      },
      absl::Seconds(10));
  run->server_unsent_in_kernel = IoctlInt(c.fd(), SIOCOUTQNSD);
  run->client_unread_in_kernel = IoctlInt(run->client_fd, SIOCINQ);

  // The handler waits in Read(); Quiesce() ends that wait.
  TaskGroup handler;
  handler.Spawn(PendingReader(&c, &run->pending_read));
  co_await Yield();  // let it start waiting
  co_await Yield();
  c.Quiesce();
  co_await handler.Join();
  run->drain_while_quiescing = co_await c.Drain(0);
  absl::StatusOr<size_t> again = co_await c.Read();
  run->read_while_quiescing = again.ok() ? absl::OkStatus() : again.status();

  absl::StatusOr<DetachedConnection> detached = co_await c.Detach();
  run->bytes_sent_at_detach = c.bytes_sent();
  run->old_connection_closed = c.fd() < 0;
  if (!detached.ok()) {
    run->server_failure = "Detach: " + detached.status().ToString();
    co_return;
  }
  run->detached = *detached;

  // Adopt and continue.
  Connection adopted = Connection::Adopt(*std::move(detached));
  run->adopted_service = adopted.service();
  run->adopted_state = adopted.handoff_state();
  run->adopted_outbound = adopted.outbound_size();
  absl::StatusOr<size_t> first = co_await adopted.Read();
  if (first.ok()) run->first_adopted_read = *first;
  run->inbound_after_adopt_first_read = std::string(adopted.inbound());
  run->adopted.Set();  // the client may now send more and start reading

  // Fresh bytes are appended after the unconsumed ones.
  const size_t want =
      run->inbound_after_adopt_first_read.size() + run->p2.size();
  while (adopted.inbound().size() < want) {
    absl::StatusOr<size_t> n = co_await adopted.Read();
    if (!n.ok() || *n == 0) {
      run->server_failure = "adopted read: " + n.status().ToString();
      break;
    }
  }
  run->inbound_after_fresh = std::string(adopted.inbound());
  adopted.Consume(adopted.inbound().size());

  // New writes go after the old unsent bytes.
  adopted.Write(run->s2);
  run->adopted_flush = co_await adopted.Flush();
  absl::StatusOr<size_t> eof = co_await adopted.Read();
  run->adopted_eof =
      !eof.ok()   ? eof.status()
      : *eof == 0 ? absl::OkStatus()
                  : absl::InternalError(absl::StrFormat("%d more bytes", *eof));
  co_await adopted.Close();
}

Task<void> HandoffClient(Address to, HandoffRun* run) {
  // A small receive buffer (before connecting) so the server's write backs
  // up into its own outbound buffer.
  int fd = net_test::RawConnect(to, /*rcvbuf=*/16 * 1024);
  if (fd < 0) {
    run->client_status = absl::ErrnoToStatus(errno, "connect");
    run->first_in_flushed.Set();
    co_return;
  }
  run->client_fd = fd;
  Connection c(fd);
  c.Write(run->first_in);
  absl::Status s = co_await c.Flush();
  run->first_in_flushed.Set();
  // Not reading yet: the connection receives nothing before its first Read.
  if (s.ok()) s = co_await run->adopted.Wait();
  if (s.ok()) {
    c.Write(run->p2);
    const size_t want = run->s1.size() + run->s2.size();
    while (run->client_received.size() < want) {
      absl::StatusOr<size_t> n = co_await c.Read();
      if (!n.ok() || *n == 0) {
        s = n.ok() ? absl::DataLossError("early end of stream") : n.status();
        break;
      }
      run->client_received.append(c.inbound());
      c.Consume(c.inbound().size());
    }
  }
  run->client_status = s;
  co_await c.Close();
}

TEST_P(DetachAdoptTest, HandoffKeepsEveryByteInOrder) {
  const uint32_t seed = test_support::TestSeed(4001);
  SCOPED_TRACE(test_support::SeedTrace(seed));
  const app::PatternStream stream(seed);
  HandoffRun run;
  run.first_in = stream.Bytes(0, 10000);
  run.consumed_before = 1234;
  run.s1 = stream.Bytes(1 << 20, 4 << 20);
  run.p2 = stream.Bytes(10 << 20, 5000);
  run.s2 = stream.Bytes(20 << 20, 300000);

  reactor_->BlockOn([](Listener* l, Address to, HandoffRun* run) -> Task<void> {
    TaskGroup server, client;
    net_test::Watchdog watchdog(absl::Seconds(30));
    watchdog.Guard(&server);
    watchdog.Guard(&client);
    watchdog.Start();
    server.Spawn(HandoffServer(l, run));
    client.Spawn(HandoffClient(to, run));
    co_await server.Join();
    co_await client.Join();
    co_await watchdog.Stop();
  }(&*listener_, address_, &run));

  EXPECT_EQ(run.server_failure, "");
  EXPECT_TRUE(run.client_status.ok()) << run.client_status;
  ASSERT_TRUE(run.stalled) << "the server's writes never backed up";

  // Quiesce ended the handler's wait and every later wait.
  EXPECT_TRUE(absl::IsCancelled(run.pending_read)) << run.pending_read;
  EXPECT_TRUE(absl::IsCancelled(run.drain_while_quiescing))
      << run.drain_while_quiescing;
  EXPECT_TRUE(absl::IsCancelled(run.read_while_quiescing))
      << run.read_while_quiescing;

  // The detached connection holds exactly the unconsumed and unsent bytes.
  ASSERT_TRUE(run.detached.has_value());
  const DetachedConnection& d = *run.detached;
  EXPECT_EQ(d.fd, run.original_fd);
  EXPECT_TRUE(run.old_connection_closed);
  EXPECT_EQ(d.service, 7u);
  EXPECT_EQ(d.state, "handoff-state");
  EXPECT_EQ(d.inbound, run.first_in.substr(run.consumed_before));
  ASSERT_LE(run.bytes_sent_at_detach, run.s1.size());
  EXPECT_GT(d.outbound.size(), 0u);
  EXPECT_EQ(d.outbound.size(), run.s1.size() - run.bytes_sent_at_detach);
  EXPECT_TRUE(d.outbound == run.s1.substr(run.bytes_sent_at_detach))
      << "the unsent bytes are not the tail of what was written";
  // The kernel agrees on what was handed over: with the windows closed, the
  // bytes the connection says it sent are exactly those not yet sent from
  // the server's socket plus those waiting unread at the client.
  EXPECT_EQ(static_cast<uint64_t>(run.server_unsent_in_kernel) +
                static_cast<uint64_t>(run.client_unread_in_kernel),
            run.bytes_sent_at_detach);

  // The adopted connection carries the same state and continues.
  EXPECT_EQ(run.adopted_service, 7u);
  EXPECT_EQ(run.adopted_state, "handoff-state");
  EXPECT_EQ(run.adopted_outbound, d.outbound.size());
  ASSERT_TRUE(run.first_adopted_read.has_value());
  EXPECT_EQ(*run.first_adopted_read, d.inbound.size());
  EXPECT_EQ(run.inbound_after_adopt_first_read, d.inbound);
  EXPECT_TRUE(run.inbound_after_fresh == d.inbound + run.p2)
      << "inbound after fresh reads: " << run.inbound_after_fresh.size()
      << " bytes, expected " << d.inbound.size() + run.p2.size();
  EXPECT_TRUE(run.adopted_flush.ok()) << run.adopted_flush;
  EXPECT_TRUE(run.adopted_eof.ok()) << run.adopted_eof;

  // The client got the whole stream in order: old unsent bytes, then new.
  ASSERT_EQ(run.client_received.size(), run.s1.size() + run.s2.size());
  const size_t bad =
      std::mismatch(run.client_received.begin(), run.client_received.end(),
                    (run.s1 + run.s2).begin())
          .first -
      run.client_received.begin();
  EXPECT_EQ(bad, run.client_received.size())
      << "first differing byte at offset " << bad;
}

// --- Detach under load ---

struct LoadRun {
  size_t total = 64 << 20;  // the peer sends up to this much
  std::atomic<size_t> sent{0};
  std::atomic<bool> stop{false};
  size_t consumed = 0;  // by the server before detaching
  std::optional<DetachedConnection> detached;
  std::string server_failure;
};

// Consumes some of a continuous stream, then detaches while the peer is still
// sending.
Task<void> DetachUnderLoad(Listener* listener, LoadRun* run) {
  absl::StatusOr<Connection> accepted = co_await listener->Accept();
  if (!accepted.ok()) {
    run->server_failure = accepted.status().ToString();
    co_return;
  }
  Connection& c = *accepted;
  while (run->consumed < (1 << 20)) {
    absl::StatusOr<size_t> n = co_await c.Read();
    if (!n.ok() || *n == 0) {
      run->server_failure = "read: " + n.status().ToString();
      co_await c.Close();
      co_return;
    }
    // Leave some bytes unconsumed.
    size_t take = c.inbound().size() / 2;
    run->consumed += take;
    c.Consume(take);
  }
  absl::StatusOr<DetachedConnection> detached = co_await c.Detach();
  if (!detached.ok()) {
    run->server_failure = "Detach: " + detached.status().ToString();
    co_return;
  }
  run->detached = *std::move(detached);
}

// A busy connection detaches promptly, and no byte is lost or duplicated:
// consumed + detached inbound + what is still in the socket is exactly the
// stream the peer sent.
TEST_P(DetachAdoptTest, DetachWhilePeerKeepsSending) {
  const uint32_t seed = test_support::TestSeed(4002);
  SCOPED_TRACE(test_support::SeedTrace(seed));
  const app::PatternStream stream(seed);
  LoadRun run;
  // Receiving never pauses here (a pause can hang in multishot mode, see
  // ReceivingResumesWhenConsumedBeforePauseCompletes in
  // slow_reader_test.cc); this test is about detaching.
  ListenerOptions options;
  options.connection.max_inbound = size_t{1} << 30;
  absl::StatusOr<Listener> listener =
      Listener::Bind(*Address::Parse("127.0.0.1:0"), options);
  ASSERT_TRUE(listener.ok()) << listener.status();
  int fd = net_test::RawConnect(*listener->local_address());
  ASSERT_GE(fd, 0) << strerror(errno);
  net_test::SetIoTimeout(fd, absl::Seconds(30));
  std::thread sender([&] {
    std::string chunk;
    while (!run.stop && run.sent < run.total) {
      chunk = stream.Bytes(run.sent, 16 * 1024);
      ssize_t n = send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      run.sent += static_cast<size_t>(n);
    }
  });

  reactor_->BlockOn([](Listener* l, LoadRun* run) -> Task<void> {
    TaskGroup server;
    net_test::Watchdog watchdog(absl::Seconds(20));
    watchdog.Guard(&server);
    watchdog.Start();
    server.Spawn(DetachUnderLoad(l, run));
    co_await server.Join();
    co_await l->StopAccepting();
    co_await watchdog.Stop();
  }(&*listener, &run));
  run.stop = true;
  shutdown(fd, SHUT_WR);  // the sender's last send returns; EOF follows
  sender.join();

  EXPECT_EQ(run.server_failure, "");
  ASSERT_TRUE(run.detached.has_value());
  // Read the rest of the stream from the detached socket.
  const int detached_fd = run.detached->fd;
  std::string rest;
  {
    net_test::SetIoTimeout(detached_fd, absl::Seconds(30));
    char buf[64 * 1024];
    while (true) {
      ssize_t n = recv(detached_fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        EXPECT_EQ(n, 0) << strerror(errno);
        break;
      }
      rest.append(buf, static_cast<size_t>(n));
    }
  }
  close(detached_fd);
  close(fd);
  const std::string& inbound = run.detached->inbound;
  EXPECT_EQ(run.consumed + inbound.size() + rest.size(), run.sent.load());
  EXPECT_EQ(stream.Mismatch(run.consumed, inbound), std::string::npos)
      << "detached inbound is not the stream after the consumed bytes";
  EXPECT_EQ(stream.Mismatch(run.consumed + inbound.size(), rest),
            std::string::npos)
      << "the socket's remaining bytes do not follow the detached inbound";
}

// --- Quiesce and Detach edge cases ---

struct QuiesceRun {
  absl::Status pending_read;
  absl::Status read_with_data;
  absl::Status drain;
  bool quiescing = false;
  std::string inbound_kept;
};

TEST_P(DetachAdoptTest, QuiesceCancelsPendingAndLaterWaits) {
  QuiesceRun run;
  reactor_->BlockOn([](Listener* l, Address to, QuiesceRun* run) -> Task<void> {
    absl::StatusOr<Connection> client = co_await Connect(to);
    absl::StatusOr<Connection> server = co_await l->Accept();
    if (!client.ok() || !server.ok()) {
      ADD_FAILURE() << client.status() << " " << server.status();
      co_return;
    }
    TaskGroup handler;
    handler.Spawn(PendingReader(&*server, &run->pending_read));
    co_await Yield();
    co_await Yield();
    server->Quiesce();
    run->quiescing = server->quiescing();
    co_await handler.Join();
    // Data that arrives afterwards is kept, but Read() still says Cancelled.
    client->Write("after quiesce");
    if ((co_await client->Flush()).ok()) {
      co_await PollUntil([&] { return server->inbound().size() == 13; },
                         absl::Seconds(5));
    }
    absl::StatusOr<size_t> n = co_await server->Read();
    run->read_with_data = n.ok() ? absl::OkStatus() : n.status();
    server->Write(std::string(1 << 20, 'w'));
    run->drain = co_await server->Drain(0);
    run->inbound_kept = std::string(server->inbound());
    co_await server->Close();
    co_await client->Close();
  }(&*listener_, address_, &run));
  EXPECT_TRUE(run.quiescing);
  EXPECT_TRUE(absl::IsCancelled(run.pending_read)) << run.pending_read;
  EXPECT_TRUE(absl::IsCancelled(run.read_with_data)) << run.read_with_data;
  EXPECT_TRUE(absl::IsCancelled(run.drain)) << run.drain;
  EXPECT_EQ(run.inbound_kept, "after quiesce");
}

TEST_P(DetachAdoptTest, DetachAfterCloseFails) {
  absl::Status after_close, second_detach;
  bool first_detach_ok = false;
  reactor_->BlockOn([](Listener* l, Address to, absl::Status* after_close,
                       bool* first_ok, absl::Status* second) -> Task<void> {
    absl::StatusOr<Connection> a = co_await Connect(to);
    absl::StatusOr<Connection> b = co_await l->Accept();
    if (!a.ok() || !b.ok()) {
      ADD_FAILURE() << a.status() << " " << b.status();
      co_return;
    }
    co_await a->Close();
    absl::StatusOr<DetachedConnection> d = co_await a->Detach();
    *after_close = d.status();
    // Detaching twice: the second has nothing left to detach.
    absl::StatusOr<DetachedConnection> first = co_await b->Detach();
    *first_ok = first.ok();
    if (first.ok()) close(first->fd);
    absl::StatusOr<DetachedConnection> again = co_await b->Detach();
    *second = again.status();
  }(&*listener_, address_, &after_close, &first_detach_ok, &second_detach));
  EXPECT_TRUE(absl::IsFailedPrecondition(after_close)) << after_close;
  EXPECT_TRUE(first_detach_ok);
  EXPECT_TRUE(absl::IsFailedPrecondition(second_detach)) << second_detach;
}

// An adopted connection with nothing unsent and nothing unconsumed behaves
// like a fresh one.
TEST_P(DetachAdoptTest, AdoptEmptyDetachedConnection) {
  std::string echoed;
  reactor_->BlockOn(
      [](Listener* l, Address to, std::string* echoed) -> Task<void> {
        absl::StatusOr<Connection> client = co_await Connect(to);
        absl::StatusOr<Connection> server = co_await l->Accept();
        if (!client.ok() || !server.ok()) {
          ADD_FAILURE() << client.status() << " " << server.status();
          co_return;
        }
        absl::StatusOr<DetachedConnection> d = co_await server->Detach();
        if (!d.ok()) {
          ADD_FAILURE() << d.status();
          co_await client->Close();
          co_return;
        }
        EXPECT_EQ(d->inbound, "");
        EXPECT_EQ(d->outbound, "");
        Connection adopted = Connection::Adopt(*std::move(d));
        client->Write("ping");
        while (adopted.inbound().size() < 4) {
          absl::StatusOr<size_t> n = co_await adopted.Read();
          if (!n.ok() || *n == 0) break;
        }
        adopted.Write(adopted.inbound());
        adopted.Consume(adopted.inbound().size());
        co_await adopted.Flush();
        while (client->inbound().size() < 4) {
          absl::StatusOr<size_t> n = co_await client->Read();
          if (!n.ok() || *n == 0) break;
        }
        *echoed = std::string(client->inbound());
        co_await adopted.Close();
        co_await client->Close();
      }(&*listener_, address_, &echoed));
  EXPECT_EQ(echoed, "ping");
}

// --- Regressions ---

// An adopted connection's unsent bytes go out on its first wait, even when the
// handler writes nothing new (here it only flushes).
TEST_P(DetachAdoptTest, AdoptedOutboundIsSentWithoutNewWrites) {
  struct Run {
    absl::Status flush;
    std::string received;
    size_t unsent = 0;
  } run;
  reactor_->BlockOn([](Listener* l, Address to, Run* run) -> Task<void> {
    int fd = net_test::RawConnect(to, /*rcvbuf=*/16 * 1024);
    if (fd < 0) {
      ADD_FAILURE() << strerror(errno);
      co_return;
    }
    Connection client(fd);
    absl::StatusOr<Connection> server = co_await l->Accept();
    if (!server.ok()) {
      ADD_FAILURE() << server.status();
      co_await client.Close();
      co_return;
    }
    int sndbuf = 32 * 1024;
    setsockopt(server->fd(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    const std::string payload(2 << 20, 'p');
    server->Write(payload);
    // Wait until the client's window is closed and bytes are left unsent.
    uint64_t last = 0;
    int unchanged = 0;
    co_await PollUntil(
        [&] {
          unchanged = server->bytes_sent() == last ? unchanged + 1 : 0;
          last = server->bytes_sent();
          return unchanged >= 20;
        },
        absl::Seconds(5));
    absl::StatusOr<DetachedConnection> d = co_await server->Detach();
    if (!d.ok()) {
      ADD_FAILURE() << d.status();
      co_await client.Close();
      co_return;
    }
    run->unsent = d->outbound.size();
    const size_t sent_before = payload.size() - run->unsent;
    Connection adopted = Connection::Adopt(*std::move(d));
    TaskGroup work;
    net_test::Watchdog watchdog(absl::Seconds(5));
    watchdog.Guard(&work);
    watchdog.Start();
    work.Spawn([](Connection* adopted, Run* run) -> Task<void> {
      run->flush = co_await adopted->Flush();  // no new Write()
    }(&adopted, run));
    work.Spawn([](Connection* client, size_t want, Run* run) -> Task<void> {
      while (run->received.size() < want) {
        absl::StatusOr<size_t> n = co_await client->Read();
        if (!n.ok() || *n == 0) break;
        run->received.append(client->inbound());
        client->Consume(client->inbound().size());
      }
    }(&client, sent_before + run->unsent, run));
    co_await work.Join();
    co_await watchdog.Stop();
    co_await adopted.Close();
    co_await client.Close();
  }(&*listener_, address_, &run));
  EXPECT_GT(run.unsent, 0u);
  EXPECT_TRUE(run.flush.ok()) << run.flush;
  EXPECT_EQ(run.received.size(), 2u << 20);
}

Task<absl::StatusOr<size_t>> ReadOnce(Connection* c) {
  co_return co_await c->Read();
}

// A Read() cancelled by a timeout must not poison the next Read(), which finds
// bytes already there (the idle-timeout pattern: time out, ping, read again).
TEST_P(DetachAdoptTest, ReadAfterTimedOutReadReturnsData) {
  absl::Status timed_out;
  absl::StatusOr<size_t> next = absl::UnknownError("not run");
  reactor_->BlockOn([](Listener* l, Address to, absl::Status* timed_out,
                       absl::StatusOr<size_t>* next) -> Task<void> {
    absl::StatusOr<Connection> client = co_await Connect(to);
    absl::StatusOr<Connection> server = co_await l->Accept();
    if (!client.ok() || !server.ok()) {
      ADD_FAILURE() << client.status() << " " << server.status();
      co_return;
    }
    absl::StatusOr<size_t> idle =
        co_await WithTimeout(ReadOnce(&*server), absl::Milliseconds(20));
    *timed_out = idle.status();
    client->Write("late data");
    co_await client->Flush();
    co_await PollUntil([&] { return server->inbound().size() == 9; },
                       absl::Seconds(5));
    *next = co_await server->Read();
    co_await server->Close();
    co_await client->Close();
  }(&*listener_, address_, &timed_out, &next));
  EXPECT_TRUE(absl::IsDeadlineExceeded(timed_out)) << timed_out;
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(*next, 9u);
}

INSTANTIATE_TEST_SUITE_P(ReceiveModes, DetachAdoptTest,
                         ::testing::ValuesIn(net_test::kReceiveModes),
                         net_test::ReceiveModeName);

}  // namespace
}  // namespace baton
