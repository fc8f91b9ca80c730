// Hot restarts of fiber-served connections: 100 connections stream seeded
// random bytes through `baton-echo --fibers --consume_chunk=64` (each
// connection echoed by a blocking-style handler in its own fiber) while it
// is restarted 8 times in a row, at 1 and 2 threads, with multishot and with
// single-shot receives (BATON_DISABLE=multishot_recv; scripts/test.sh also
// runs the suite on the epoll backend). Every handoff must move every
// connection with its unread inbound bytes (parked fiber reads return
// CancelledError on quiesce like coroutine ones); every echoed byte is
// verified; after each restart the new process holds exactly the expected
// descriptors (std streams, listeners, one socket per connection, one
// event queue and eventfd per thread, the signalfd).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/stream_check.h"
#include "handoff/handoff_test_util.h"
#include "support/process.h"

namespace baton::test_support {
namespace {

constexpr int kConnections = 100;
constexpr int kRestarts = 8;
constexpr uint64_t kProgressBytes = kSanitized ? 4 * 1024 : 16 * 1024;
constexpr size_t kWindow = kSanitized ? 64 * 1024 : 256 * 1024;
constexpr absl::Duration kWait = absl::Seconds(60);
constexpr absl::Duration kFinishWait = absl::Seconds(120);

// (threads, multishot receives)
class FiberRestartTest
    : public ::testing::TestWithParam<std::tuple<int, bool>> {};

void ExpectDescriptors(pid_t pid, int threads) {
  const int expected = 3 + 2 * threads + 1 + threads + kConnections;
  // A replaced process's last closes may still be landing: poll, then check.
  PollUntil(
      [&] {
        absl::StatusOr<FdCensus> census = TakeFdCensus(pid);
        return census.ok() && census->total() <= expected;
      },
      absl::Seconds(5));
  absl::StatusOr<FdCensus> census = TakeFdCensus(pid);
  ASSERT_OK(census);
  SCOPED_TRACE(census->ToString());
  EXPECT_EQ(census->event_queues, threads);
  EXPECT_EQ(census->eventfd, threads);
  EXPECT_EQ(census->signalfd, 1);
  EXPECT_EQ(static_cast<int>(census->sockets.size()), threads + kConnections);
  EXPECT_EQ(census->total(), expected);
}

TEST_P(FiberRestartTest, EveryByteSurvivesRestartsOfAFiberServer) {
  const auto [threads, multishot] = GetParam();
  const uint32_t seed =
      TestSeed(7100 + static_cast<uint32_t>(threads) + (multishot ? 10 : 0));
  SCOPED_TRACE(SeedTrace(seed));
  TestDirectory dir;
  std::vector<std::string> env;
  if (!multishot) env.push_back("BATON_DISABLE=multishot_recv");
  ServerProcess server(EchoServer(
      dir.path(), EchoArgs(threads, {"--fibers", "--consume_chunk=64"}), env));
  ASSERT_OK(server.Start());

  app::StreamClientOptions load = Streams(server.address(), kConnections, seed);
  load.window = kWindow;
  app::StreamClient client(load);
  ASSERT_OK(client.Start());
  ASSERT_OK(client.WaitForProgress(kProgressBytes, kWait));

  uint64_t inbound = 0;
  int with_unread = 0;
  for (int i = 0; i < kRestarts; ++i) {
    SCOPED_TRACE(absl::StrCat("restart ", i + 1, " of ", kRestarts));
    absl::StatusOr<RestartResult> r = server.Restart();
    ASSERT_OK(r);
    ExpectCleanExit(*r);
    EXPECT_EQ(r->handoff.connections, kConnections) << r->handoff.text;
    EXPECT_EQ(r->handoff.listeners, threads) << r->handoff.text;
    EXPECT_EQ(r->takeover.connections, r->handoff.connections);
    EXPECT_EQ(r->takeover.inbound_bytes, r->handoff.inbound_bytes);
    EXPECT_EQ(r->takeover.outbound_bytes, r->handoff.outbound_bytes);
    inbound += r->handoff.inbound_bytes;
    if (r->handoff.with_unread > 0) ++with_unread;
    ExpectDescriptors(server.pid(), threads);
    ASSERT_OK(client.WaitForProgress(kProgressBytes, kWait));
  }
  ASSERT_OK(client.Finish(kFinishWait));
  ExpectStreamsIntact(client);
  // --consume_chunk leaves unconsumed inbound bytes to move.
  EXPECT_GT(inbound, 0u);
  EXPECT_GT(with_unread, 0);

  absl::StatusOr<int> stopped = server.Stop();
  EXPECT_OK(stopped);
  if (stopped.ok() && *stopped != -1) {
    EXPECT_TRUE(WIFEXITED(*stopped) && WEXITSTATUS(*stopped) == 0)
        << DescribeWaitStatus(*stopped);
  }
  std::printf(
      "fibers, threads=%d, multishot=%d: %d of %d restarts moved "
      "unread inbound (%llu bytes)\n%s\n",
      threads, multishot ? 1 : 0, with_unread, kRestarts,
      static_cast<unsigned long long>(inbound), client.Summary().c_str());
}

INSTANTIATE_TEST_SUITE_P(
    Modes, FiberRestartTest,
    ::testing::Combine(::testing::Values(1, 2), ::testing::Bool()),
    [](const ::testing::TestParamInfo<std::tuple<int, bool>>& info) {
      return absl::StrCat(std::get<0>(info.param), "Threads",
                          std::get<1>(info.param) ? "Multishot" : "SingleShot");
    });

}  // namespace
}  // namespace baton::test_support
