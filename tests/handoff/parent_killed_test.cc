// The old process dies (SIGKILL) after it sent a CONNECTIONS batch and before
// it read the acknowledgement: the new process's ACK then finds the channel
// closed (EPIPE), which must be treated like EOF: it serves the listeners
// and every connection it received, bytes and all, instead of exiting with
// them. The child waits for the parent's death before acknowledging
// (child:ack_after_parent_exit), so the send fails on every run.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/stream_check.h"
#include "handoff/handoff_test_util.h"
#include "support/process.h"

namespace baton::test_support {
namespace {

constexpr absl::Duration kWait = absl::Seconds(60);
constexpr int kConnections = 16;

class ParentKilledTest : public ::testing::TestWithParam<int> {};

TEST_P(ParentKilledTest, NewProcessServesWhatItReceivedWhenItsAckFails) {
  const int threads = GetParam();
  const uint32_t seed = TestSeed(7100 + static_cast<uint32_t>(threads));
  SCOPED_TRACE(SeedTrace(seed));
  TestDirectory dir;
  ServerProcess server(
      EchoServer(dir.path(), EchoArgs(threads),
                 {"BATON_HANDOFF_FAULT=parent:after_batch_sent,"
                  "child:ack_after_parent_exit"}));
  ASSERT_OK(server.Start());
  app::StreamClientOptions load = Streams(server.address(), kConnections, seed);
  load.max_write = 16 * 1024;
  load.window = 64 * 1024;
  app::StreamClient client(load);
  ASSERT_OK(client.Start());
  ASSERT_OK(client.WaitVerified(16 * 1024, kWait));

  absl::StatusOr<pid_t> orphan = server.RestartParentKilled();
  ASSERT_OK(orphan);
  bool took_over = false;
  for (const std::string& line : server.LogLines()) {
    if (LinePid(line) == *orphan &&
        absl::StrContains(line, "the old process died mid-handoff") &&
        absl::StrContains(
            line, absl::StrCat(kConnections, " connections received"))) {
      took_over = true;
    }
  }
  EXPECT_TRUE(took_over) << server.LogTail();

  // Every connection keeps flowing through the survivor, every byte intact.
  ASSERT_OK(client.WaitForProgress(64 * 1024, kWait));
  // And it hands over normally later (the faults were one-shot).
  absl::StatusOr<RestartResult> r = server.Restart();
  ASSERT_OK(r);
  ExpectCleanExit(*r);
  EXPECT_EQ(r->handoff.connections, kConnections) << r->handoff.text;
  ASSERT_OK(client.WaitForProgress(16 * 1024, kWait));
  ASSERT_OK(client.Finish(kWait));
  ExpectStreamsIntact(client);
  EXPECT_OK(server.Stop());
}

INSTANTIATE_TEST_SUITE_P(Threads, ParentKilledTest, ::testing::Values(1, 2),
                         [](const auto& info) {
                           return absl::StrCat(info.param, "Threads");
                         });

}  // namespace
}  // namespace baton::test_support
