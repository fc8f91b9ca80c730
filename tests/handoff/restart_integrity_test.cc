// Hot restarts under load: 200 connections stream seeded random bytes
// through baton-echo while it is restarted (SIGUSR2) 20 times in a row.
// The server consumes at most 64 bytes per loop turn (--consume_chunk 64),
// so most handoffs find unconsumed inbound bytes that must move with the
// connection. Every echoed byte is compared with the byte sent; no
// connection may see an error, and each handoff must move every connection.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/stream_check.h"
#include "handoff/handoff_test_util.h"
#include "support/process.h"

namespace baton::test_support {
namespace {

constexpr int kConnections = 200;
constexpr int kRestarts = 20;
// Every connection must move this many more bytes between two restarts, so
// each restart happens under load and each new process really serves.
// Under ASan (an unoptimised, instrumented server) the connections count
// and the restarts stay; the bytes in flight per connection (the client's
// window, which sets how much unread inbound each handoff moves) and the
// progress between restarts are scaled down to keep the test near 30 s.
constexpr uint64_t kProgressBytes = kSanitized ? 4 * 1024 : 16 * 1024;
constexpr size_t kWindow = kSanitized ? 64 * 1024 : 256 * 1024;
// Deadlines, not delays: generous so that a loaded machine (the server
// drains each connection's backlog 64 bytes per loop turn) slows the test
// down instead of failing it.
constexpr absl::Duration kWait = absl::Seconds(60);
constexpr absl::Duration kFinishWait = absl::Seconds(120);
// The longest a client may wait for its echo (a handoff takes ~0.3 s here,
// ~1.5 s under ASan, a few seconds on a heavily loaded machine).
constexpr absl::Duration kMaxPause = absl::Seconds(kSanitized ? 20 : 10);

class RestartIntegrityTest : public ::testing::TestWithParam<int> {};

TEST_P(RestartIntegrityTest, EveryByteSurvivesConsecutiveRestarts) {
  const int threads = GetParam();
  const uint32_t seed = TestSeed(4100 + static_cast<uint32_t>(threads));
  SCOPED_TRACE(SeedTrace(seed));
  TestDirectory dir;
  ServerProcess server(
      EchoServer(dir.path(), EchoArgs(threads, {"--consume_chunk=64"})));
  ASSERT_OK(server.Start());

  app::StreamClientOptions load = Streams(server.address(), kConnections, seed);
  load.window = kWindow;
  app::StreamClient client(load);
  ASSERT_OK(client.Start());
  ASSERT_OK(client.WaitForProgress(kProgressBytes, kWait));

  std::vector<RestartResult> restarts;
  for (int i = 0; i < kRestarts; ++i) {
    SCOPED_TRACE(absl::StrCat("restart ", i + 1, " of ", kRestarts));
    absl::StatusOr<RestartResult> r = server.Restart();
    ASSERT_OK(r);
    ExpectCleanExit(*r);
    // Every connection moves, on every listener; the new process received
    // exactly what the old one sent.
    EXPECT_EQ(r->handoff.connections, kConnections) << r->handoff.text;
    EXPECT_EQ(r->handoff.listeners, threads) << r->handoff.text;
    EXPECT_EQ(r->takeover.connections, r->handoff.connections);
    EXPECT_EQ(r->takeover.inbound_bytes, r->handoff.inbound_bytes);
    EXPECT_EQ(r->takeover.outbound_bytes, r->handoff.outbound_bytes);
    EXPECT_EQ(r->takeover.listeners, r->handoff.listeners);
    restarts.push_back(*r);
    ASSERT_OK(client.WaitForProgress(kProgressBytes, kWait));
  }
  ASSERT_OK(client.Finish(kFinishWait));
  ExpectStreamsIntact(client);

  uint64_t inbound = 0, outbound = 0;
  int with_unread = 0;
  double max_total_ms = 0, max_paused_ms = 0;
  absl::Duration max_restart;
  for (const RestartResult& r : restarts) {
    inbound += r.handoff.inbound_bytes;
    outbound += r.handoff.outbound_bytes;
    if (r.handoff.with_unread > 0) ++with_unread;
    max_total_ms = std::max(max_total_ms, r.handoff.total_ms);
    max_paused_ms = std::max(max_paused_ms, r.takeover.paused_ms);
    // The pause spans both processes (freeze there, resume here): it is
    // positive and inside the time the restart took as this test saw it.
    EXPECT_GT(r.takeover.paused_ms, 0) << r.takeover.text;
    EXPECT_LT(r.takeover.paused_ms, absl::ToDoubleMilliseconds(r.took))
        << r.takeover.text;
    max_restart = std::max(max_restart, r.took);
  }
  absl::Duration max_gap;
  for (const app::StreamResult& r : client.Results()) {
    max_gap = std::max(max_gap, r.max_gap);
  }
  EXPECT_LT(max_gap, kMaxPause) << "a client waited that long for its echo";
  // The point of --consume_chunk: unconsumed inbound bytes did move.
  EXPECT_GT(inbound, 0u);
  EXPECT_GT(with_unread, 0);

  absl::StatusOr<int> stopped = server.Stop();
  EXPECT_OK(stopped);
  if (stopped.ok() && *stopped != -1) {
    EXPECT_TRUE(WIFEXITED(*stopped) && WEXITSTATUS(*stopped) == 0)
        << DescribeWaitStatus(*stopped);
  }
  std::printf(
      "%d restarts, threads=%d: %d moved unread inbound bytes; moved %llu "
      "inbound + %llu outbound bytes in all; handoff max %.2f ms (clients "
      "paused "
      "max %.2f ms); SIGUSR2 to old pid gone max %s\n%s\n",
      kRestarts, threads, with_unread, static_cast<unsigned long long>(inbound),
      static_cast<unsigned long long>(outbound), max_total_ms, max_paused_ms,
      absl::FormatDuration(max_restart).c_str(), client.Summary().c_str());
}

INSTANTIATE_TEST_SUITE_P(Threads, RestartIntegrityTest, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return absl::StrCat(info.param, "Threads");
                         });

}  // namespace
}  // namespace baton::test_support
