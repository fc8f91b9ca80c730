// A server where io_uring is refused (a seccomp filter like Docker's default
// profile: io_uring_setup fails with EPERM): it starts on epoll, says why in
// its log, serves, and hot-restarts (every new process inherits the filter)
// with every byte verified. And handoffs across backends: each new process
// runs the other one (BATON_HANDOFF_ALTERNATE_BACKEND), io_uring -> epoll ->
// io_uring -> ..., with unread inbound bytes moved each time.
#include <gmock/gmock.h>
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

using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(60);
constexpr int kConnections = 64;

// The backend pid `pid` logged it runs ("epoll on kernel ..."), or "".
std::string BackendOf(const ServerProcess& server, pid_t pid) {
  for (const std::string& line : server.LogLines()) {
    if (LinePid(line) != pid) continue;
    for (const char* name : {"epoll", "io_uring"}) {
      if (absl::StrContains(line, absl::StrCat(name, " on kernel"))) {
        return name;
      }
    }
  }
  return "";
}

TEST(EpollFallbackTest, ServesAndRestartsWhereIoUringIsRefused) {
  const uint32_t seed = TestSeed(7400);
  SCOPED_TRACE(SeedTrace(seed));
  TestDirectory dir;
  ServerProcess::Options options;
  options.binary = absl::StrCat(BATON_BINARY_DIR, "/tests/baton-deny-io-uring");
  options.args = {AppBinaryPath("echo"), "--listen=127.0.0.1:0", "--threads=2",
                  "--consume_chunk=64"};
  options.dir = dir.path();
  // The automatic choice, whatever backend the test itself was asked for.
  options.env = {"BATON_BACKEND=auto"};
  ServerProcess server(options);
  ASSERT_OK(server.Start());
  EXPECT_EQ(BackendOf(server, server.pid()), "epoll") << server.LogTail();
  EXPECT_THAT(server.Log(),
              HasSubstr("io_uring_setup failed with EPERM (Operation not "
                        "permitted): a seccomp profile or "
                        "kernel.io_uring_disabled refuses it, so epoll was "
                        "chosen"));

  app::StreamClientOptions load = Streams(server.address(), kConnections, seed);
  load.window = 64 * 1024;
  app::StreamClient client(load);
  ASSERT_OK(client.Start());
  ASSERT_OK(client.WaitForProgress(16 * 1024, kWait));
  uint64_t inbound = 0;
  for (int i = 0; i < 4; ++i) {
    SCOPED_TRACE(absl::StrCat("restart ", i + 1));
    absl::StatusOr<RestartResult> r = server.Restart();
    ASSERT_OK(r);
    ExpectCleanExit(*r);
    EXPECT_EQ(r->handoff.connections, kConnections) << r->handoff.text;
    EXPECT_EQ(r->takeover.inbound_bytes, r->handoff.inbound_bytes);
    inbound += r->handoff.inbound_bytes;
    EXPECT_EQ(BackendOf(server, r->new_pid), "epoll") << server.LogTail();
    ASSERT_OK(client.WaitForProgress(16 * 1024, kWait));
  }
  ASSERT_OK(client.Finish(kWait));
  ExpectStreamsIntact(client);
  EXPECT_GT(inbound, 0u) << "no handoff moved unread bytes";
  EXPECT_OK(server.Stop());
}

class MixedBackendTest : public ::testing::TestWithParam<int> {};

TEST_P(MixedBackendTest, HandoffsAlternateBetweenIoUringAndEpoll) {
  const int threads = GetParam();
  const uint32_t seed = TestSeed(7410 + static_cast<uint32_t>(threads));
  SCOPED_TRACE(SeedTrace(seed));
  TestDirectory dir;
  ServerProcess server(EchoServer(
      dir.path(), EchoArgs(threads, {"--consume_chunk=16"}),
      {"BATON_BACKEND=io_uring", "BATON_HANDOFF_ALTERNATE_BACKEND=1"}));
  absl::Status started = server.Start();
  if (!started.ok() && absl::StrContains(started.message(), "io_uring")) {
    GTEST_SKIP() << "io_uring unavailable here: " << started;
  }
  ASSERT_OK(started);
  ASSERT_EQ(BackendOf(server, server.pid()), "io_uring");

  app::StreamClientOptions load = Streams(server.address(), kConnections, seed);
  load.window = 256 * 1024;  // the server lags: unread bytes at each freeze
  app::StreamClient client(load);
  ASSERT_OK(client.Start());
  ASSERT_OK(client.WaitForProgress(16 * 1024, kWait));
  uint64_t inbound = 0;
  const char* expected[] = {"epoll",    "io_uring", "epoll",
                            "io_uring", "epoll",    "io_uring"};
  for (const char* backend : expected) {
    SCOPED_TRACE(absl::StrCat("restart to ", backend));
    absl::StatusOr<RestartResult> r = server.Restart();
    ASSERT_OK(r);
    ExpectCleanExit(*r);
    EXPECT_EQ(r->handoff.connections, kConnections) << r->handoff.text;
    EXPECT_EQ(r->takeover.inbound_bytes, r->handoff.inbound_bytes);
    EXPECT_EQ(r->takeover.outbound_bytes, r->handoff.outbound_bytes);
    inbound += r->handoff.inbound_bytes;
    EXPECT_EQ(BackendOf(server, r->new_pid), backend) << server.LogTail();
    ASSERT_OK(client.WaitForProgress(16 * 1024, kWait));
  }
  ASSERT_OK(client.Finish(kWait));
  ExpectStreamsIntact(client);
  EXPECT_GT(inbound, 0u) << "no handoff moved unread bytes";
  EXPECT_OK(server.Stop());
}

INSTANTIATE_TEST_SUITE_P(Threads, MixedBackendTest, ::testing::Values(1, 2),
                         [](const auto& info) {
                           return absl::StrCat(info.param, "Threads");
                         });

}  // namespace
}  // namespace baton::test_support
