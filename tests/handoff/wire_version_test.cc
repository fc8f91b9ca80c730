// A new process that speaks another handoff protocol version is refused:
// BATON_HANDOFF_FAULT=child:wire_version makes the child claim version
// kWireVersion + 1 in its HELLO; the old process must refuse it with a
// "version mismatch" naming both versions, roll back before freezing
// anything, and keep serving. The fault is one-shot: the next restart (same
// binary, same version) succeeds. Verified traffic flows throughout.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "baton/handoff/wire.h"
#include "common/stream_check.h"
#include "handoff/handoff_test_util.h"
#include "support/process.h"

namespace baton::test_support {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kConnections = 16;
constexpr absl::Duration kWait = absl::Seconds(60);

TEST(WireVersionTest, MismatchedChildIsRefusedThenNextRestartSucceeds) {
  const uint32_t seed = TestSeed(6700);
  SCOPED_TRACE(SeedTrace(seed));
  TestDirectory dir;
  ServerProcess server(EchoServer(dir.path(),
                                  EchoArgs(2, {"--consume_chunk=64"}),
                                  {"BATON_HANDOFF_FAULT=child:wire_version"}));
  ASSERT_OK(server.Start());
  app::StreamClient client(Streams(server.address(), kConnections, seed));
  ASSERT_OK(client.Start());
  ASSERT_OK(client.WaitForProgress(16 * 1024, kWait));

  const pid_t serving = server.pid();
  absl::StatusOr<std::string> rollback = server.RestartExpectRollback();
  ASSERT_OK(rollback);
  EXPECT_EQ(LinePid(*rollback), serving);
  EXPECT_THAT(*rollback, HasSubstr("version mismatch"));
  EXPECT_THAT(*rollback, HasSubstr(absl::StrCat("peer speaks version ",
                                                handoff::kWireVersion + 1)));
  EXPECT_THAT(*rollback, HasSubstr(absl::StrCat("this binary speaks version ",
                                                handoff::kWireVersion)));
  EXPECT_THAT(*rollback, HasSubstr("waiting for HELLO"));
  EXPECT_THAT(*rollback, Not(HasSubstr("resumed")));
  EXPECT_EQ(server.ReadPidFile(), serving);

  ASSERT_OK(client.WaitForProgress(16 * 1024, kWait));
  absl::StatusOr<RestartResult> r = server.Restart();
  ASSERT_OK(r);
  ExpectCleanExit(*r);
  EXPECT_EQ(r->old_pid, serving);
  EXPECT_EQ(r->handoff.connections, kConnections) << r->handoff.text;
  ASSERT_OK(client.WaitForProgress(16 * 1024, kWait));
  ASSERT_OK(client.Finish(kWait));
  ExpectStreamsIntact(client);
  EXPECT_OK(server.Stop());
}

}  // namespace
}  // namespace baton::test_support
