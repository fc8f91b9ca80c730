// Fiber connection handlers in-process (fiber/connection.h): an echo server
// whose handlers are blocking-style fibers (ServeInFiber) serves many
// verifying clients on the same reactor, in both receive modes; a quiesce
// makes a fiber parked in Read return CancelledError like a coroutine, and
// the connection then detaches with its unread bytes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <random>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "baton/fiber/connection.h"
#include "baton/fiber/fiber.h"
#include "baton/net/address.h"
#include "baton/net/listener.h"
#include "baton/runtime/event.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task_group.h"
#include "net/net_test_util.h"

namespace baton::fiber {
namespace {

// The blocking-style twin of net_test::EchoConnection's loop.
void FiberEcho(Connection& c, net_test::EchoServerStats* stats) {
  while (true) {
    absl::StatusOr<size_t> n = Read(c);
    if (!n.ok() && !absl::IsResourceExhausted(n.status())) {
      stats->Error(n.status());
      return;
    }
    if (n.ok() && *n == 0) {
      if (absl::Status s = Flush(c); s.ok()) {
        ++stats->ended_at_eof;
      } else {
        stats->Error(s);
      }
      return;
    }
    ++stats->reads;
    const size_t len = c.inbound().size();
    c.Write(c.inbound());
    c.Consume(len);
    stats->bytes += len;
    if (absl::Status s = Drain(c, 64 * 1024); !s.ok()) {
      stats->Error(s);
      return;
    }
  }
}

Task<void> Serve(Connection c, ConnectionHandler* handler,
                 net_test::EchoServerStats* stats) {
  co_await (*handler)(c);
  co_await c.Close();
  ++stats->finished;
}

Task<void> AcceptFibers(Listener* listener, TaskGroup* handlers,
                        ConnectionHandler* handler,
                        net_test::EchoServerStats* stats) {
  while (true) {
    absl::StatusOr<Connection> c = co_await listener->Accept();
    if (!c.ok()) co_return;
    ++stats->accepted;
    handlers->Spawn(Serve(*std::move(c), handler, stats));
  }
}

Task<void> RunFiberEcho(net_test::EchoLoad* load, bool* bound) {
  absl::StatusOr<Listener> listener =
      Listener::Bind(*Address::Parse("127.0.0.1:0"));
  if (!listener.ok()) {
    ADD_FAILURE() << listener.status();
    co_return;
  }
  *bound = true;
  net_test::EchoServerStats* stats = &load->server;
  ConnectionHandler handler =
      ServeInFiber([stats](Connection& c) { FiberEcho(c, stats); });
  TaskGroup accept, handlers, clients;
  net_test::Watchdog watchdog(load->deadline);
  watchdog.Guard(&accept);
  watchdog.Guard(&handlers);
  watchdog.Guard(&clients);
  watchdog.Start();
  accept.Spawn(AcceptFibers(&*listener, &handlers, &handler, stats));
  std::mt19937_64 rng(load->seed);
  std::uniform_int_distribution<size_t> total(load->min_bytes, load->max_bytes);
  const Address address = *listener->local_address();
  for (int i = 0; i < load->clients; ++i) {
    net_test::EchoClientSpec spec;
    spec.id = i;
    spec.stream_key = rng();
    spec.write_seed = rng();
    spec.total = total(rng);
    load->bytes_expected += spec.total;
    clients.Spawn(net_test::EchoClient(address, spec, &load->client));
  }
  co_await clients.Join();
  co_await listener->StopAccepting();
  co_await accept.Join();
  co_await handlers.Join();
  co_await watchdog.Stop();
}

class FiberConnectionTest
    : public ::testing::TestWithParam<net_test::ReceiveMode> {
 protected:
  void SetUp() override {
    std::string skip;
    reactor_ = net_test::CreateReactor(GetParam(), {}, &skip);
    if (reactor_ == nullptr) GTEST_SKIP() << skip;
  }
  void TearDown() override {
    if (reactor_ == nullptr) return;
    EXPECT_EQ(reactor_->inflight(), 0);
    EXPECT_EQ(LiveFibers(), 0u);
  }
  std::unique_ptr<Reactor> reactor_;
};

TEST_P(FiberConnectionTest, FiberEchoEveryByteVerified) {
  net_test::EchoLoad load;
  load.clients = 200;
  load.min_bytes = 16 * 1024;
  load.max_bytes = 128 * 1024;
  load.seed = test_support::TestSeed(7001);
  SCOPED_TRACE(test_support::SeedTrace(load.seed));
  bool bound = false;
  reactor_->BlockOn(RunFiberEcho(&load, &bound));
  ASSERT_TRUE(bound);
  EXPECT_EQ(load.client.completed, load.clients);
  for (const std::string& f : load.client.failures) ADD_FAILURE() << f;
  EXPECT_EQ(load.client.bytes_verified, load.bytes_expected);
  EXPECT_EQ(load.server.accepted, load.clients);
  EXPECT_EQ(load.server.finished, load.clients);
  EXPECT_EQ(load.server.ended_at_eof, load.clients);
  EXPECT_EQ(load.server.errors, 0) << load.server.first_error;
  EXPECT_EQ(load.server.bytes, load.bytes_expected);
}

struct QuiesceResult {
  absl::Status parked_read;
  std::string moved_inbound;
  bool detached = false;
};

Task<void> QuiesceParkedFiber(QuiesceResult* r) {
  absl::StatusOr<Listener> listener =
      Listener::Bind(*Address::Parse("127.0.0.1:0"));
  if (!listener.ok()) {
    ADD_FAILURE() << listener.status();
    co_return;
  }
  const int client = net_test::RawConnect(*listener->local_address());
  EXPECT_GE(client, 0);
  EXPECT_EQ(write(client, "hello", 5), 5);
  absl::StatusOr<Connection> c = co_await listener->Accept();
  if (!c.ok()) {
    ADD_FAILURE() << c.status();
    co_return;
  }
  Event got_hello;
  ConnectionHandler handler = ServeInFiber([&](Connection& conn) {
    while (conn.inbound().size() < 5) {
      if (!Read(conn).ok()) return;
    }
    got_hello.Set();
    r->parked_read = Read(conn).status();  // parks: nothing new arrives
  });
  TaskGroup group;
  group.Spawn(handler(*c));
  EXPECT_TRUE((co_await got_hello.Wait()).ok());
  co_await baton::Yield();  // the fiber is parked in its second Read by now
  c->Quiesce();
  co_await group.Join();
  absl::StatusOr<DetachedConnection> d = co_await c->Detach();
  if (d.ok()) {
    r->detached = true;
    r->moved_inbound = d->inbound;
    close(d->fd);
  }
  close(client);
  co_await listener->StopAccepting();
}

TEST_P(FiberConnectionTest, QuiesceEndsAParkedReadAndUnreadBytesMove) {
  QuiesceResult r;
  reactor_->BlockOn(QuiesceParkedFiber(&r));
  EXPECT_TRUE(absl::IsCancelled(r.parked_read)) << r.parked_read;
  EXPECT_TRUE(r.detached);
  EXPECT_EQ(r.moved_inbound, "hello");
}

INSTANTIATE_TEST_SUITE_P(ReceiveModes, FiberConnectionTest,
                         ::testing::ValuesIn(net_test::kReceiveModes),
                         net_test::ReceiveModeName);

}  // namespace
}  // namespace baton::fiber
