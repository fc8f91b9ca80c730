#include <gtest/gtest.h>

#include <random>
#include <string>

#include "baton/net/listener.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task_group.h"

namespace baton {
namespace {

Task<void> Echo(Connection c) {
  while (true) {
    absl::StatusOr<size_t> n = co_await c.Read();
    if (!n.ok() || *n == 0) break;
    c.Write(c.inbound());
    c.Consume(c.inbound().size());
    if (!(co_await c.Drain(1 << 20)).ok()) break;
  }
  co_await c.Flush();
  co_await c.Close();
}

Task<void> AcceptLoop(Listener* l, TaskGroup* g) {
  while (true) {
    absl::StatusOr<Connection> c = co_await l->Accept();
    if (!c.ok()) break;
    g->Spawn(Echo(*std::move(c)));
  }
}

Task<bool> Client(Address addr, int seed, size_t total) {
  absl::StatusOr<Connection> c = co_await Connect(addr);
  if (!c.ok()) co_return false;
  std::mt19937 rng(seed);
  std::string sent;
  for (size_t i = 0; i < total; ++i) sent.push_back(static_cast<char>(rng()));
  size_t off = 0;
  std::string got;
  while (got.size() < total) {
    if (off < total) {
      size_t n = std::min<size_t>(1 + rng() % 65536, total - off);
      c->Write(std::string_view(sent).substr(off, n));
      off += n;
    }
    absl::StatusOr<size_t> n = co_await c->Read();
    if (!n.ok() || *n == 0) break;
    got.append(c->inbound());
    c->Consume(c->inbound().size());
  }
  co_await c->Close();
  co_return got == sent;
}

Task<int> RunEcho(int clients) {
  auto l = Listener::Bind(*Address::Parse("127.0.0.1:0"));
  if (!l.ok()) co_return -1;
  Address addr = *l->local_address();
  TaskGroup servers, accept, cl;
  accept.Spawn(AcceptLoop(&*l, &servers));
  int ok = 0;
  for (int i = 0; i < clients; ++i) {
    cl.Spawn([](Address a, int seed, int* ok) -> Task<void> {
      if (co_await Client(a, seed, 200000)) ++*ok;
    }(addr, i, &ok));
  }
  co_await cl.Join();
  co_await l->StopAccepting();
  co_await accept.Join();
  co_await servers.Join();
  co_return ok;
}

TEST(EchoSmoke, ManyClients) {
  ReactorOptions o;
  o.buffer_count = 8;
  o.buffer_size = 512;
  auto r = Reactor::Create(o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->BlockOn(RunEcho(200)), 200);
  EXPECT_EQ((*r)->inflight(), 0);
}

}  // namespace
}  // namespace baton
