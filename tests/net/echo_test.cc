// Echo integrity: many concurrent clients against an in-process echo server
// on the same reactor, every echoed byte compared.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

#include "absl/time/time.h"
#include "baton/net/address.h"
#include "baton/net/listener.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task_group.h"
#include "net/net_test_util.h"

namespace baton {
namespace {

using net_test::EchoClient;
using net_test::EchoClientSpec;
using net_test::EchoClientStats;
using net_test::EchoServerStats;

// An echo load on a listener of its own, bound with `listener` options.
struct EchoRun : net_test::EchoLoad {
  ListenerOptions listener;
  bool bound = false;
};

Task<void> RunEcho(EchoRun* run) {
  absl::StatusOr<Listener> listener =
      Listener::Bind(*Address::Parse("127.0.0.1:0"), run->listener);
  if (!listener.ok()) {
    ADD_FAILURE() << listener.status();
    co_return;
  }
  run->bound = true;
  co_await net_test::RunEchoLoad(&*listener, run);
}

class EchoTest : public ::testing::TestWithParam<net_test::ReceiveMode> {};

// 1,000 concurrent connections, 64-256 KiB each in writes of 1 B-64 KiB.
TEST_P(EchoTest, ThousandConnectionsEveryByteVerified) {
  std::string skip;
  std::unique_ptr<Reactor> reactor =
      net_test::CreateReactor(GetParam(), {}, &skip);
  if (reactor == nullptr) GTEST_SKIP() << skip;

  EchoRun run;
  run.clients = 1000;
  run.min_bytes = 64 * 1024;
  run.max_bytes = 256 * 1024;
  run.seed = test_support::TestSeed(1001);
  SCOPED_TRACE(test_support::SeedTrace(run.seed));

  reactor->BlockOn(RunEcho(&run));
  ASSERT_TRUE(run.bound);

  EXPECT_EQ(run.client.completed, run.clients);
  EXPECT_EQ(run.client.failed, 0);
  for (const std::string& f : run.client.failures) ADD_FAILURE() << f;
  EXPECT_EQ(run.client.bytes_verified, run.bytes_expected);
  EXPECT_EQ(run.server.accepted, run.clients);
  EXPECT_EQ(run.server.finished, run.clients);
  EXPECT_EQ(run.server.ended_at_eof, run.clients);
  EXPECT_EQ(run.server.errors, 0) << run.server.first_error;
  EXPECT_EQ(run.server.bytes, run.bytes_expected);
  EXPECT_EQ(reactor->inflight(), 0);
}

// The server's Drain() limit is smaller than most writes, so nearly every
// echo waits for the client to read: back-pressure on both sides.
TEST_P(EchoTest, TinyDrainLimit) {
  std::string skip;
  std::unique_ptr<Reactor> reactor =
      net_test::CreateReactor(GetParam(), {}, &skip);
  if (reactor == nullptr) GTEST_SKIP() << skip;

  EchoRun run;
  run.clients = 50;
  run.min_bytes = 256 * 1024;
  run.max_bytes = 1024 * 1024;
  run.drain_limit = 1024;
  run.seed = test_support::TestSeed(1002);
  SCOPED_TRACE(test_support::SeedTrace(run.seed));

  reactor->BlockOn(RunEcho(&run));
  ASSERT_TRUE(run.bound);

  EXPECT_EQ(run.client.completed, run.clients);
  for (const std::string& f : run.client.failures) ADD_FAILURE() << f;
  EXPECT_EQ(run.client.bytes_verified, run.bytes_expected);
  EXPECT_EQ(run.server.ended_at_eof, run.clients);
  EXPECT_EQ(run.server.errors, 0) << run.server.first_error;
  EXPECT_EQ(reactor->inflight(), 0);
}

INSTANTIATE_TEST_SUITE_P(ReceiveModes, EchoTest,
                         ::testing::ValuesIn(net_test::kReceiveModes),
                         net_test::ReceiveModeName);

}  // namespace
}  // namespace baton
