// Failed handoffs roll back: the old process keeps serving every connection
// (bytes and all), the failed new process is gone, and a later restart
// succeeds. Each test streams verified bytes through the whole sequence:
// rollback, more traffic, successful restart, more traffic; no byte may be
// lost, duplicated or reordered and no connection may fail.
//
// Failures: (a) the binary on disk replaced by a script that exits 1;
// (b) a new process that never says READY (BATON_HANDOFF_FAULT=
// child:hang_before_ready, short --handoff_ready_timeout); (c) a new
// process killed (SIGKILL) at each step of the protocol
// (BATON_HANDOFF_FAULT=child:STEP), before and after the old process froze
// its connections.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/stream_check.h"
#include "handoff/handoff_test_util.h"
#include "support/process.h"

namespace baton::test_support {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kWait = absl::Seconds(60);
constexpr uint64_t kProgressBytes = 16 * 1024;

// The pid in "handoff to pid C failed".
pid_t FailedChild(const std::string& rollback_line) {
  int pid = 0;
  size_t at = rollback_line.find("handoff to pid ");
  if (at == std::string::npos ||
      std::sscanf(rollback_line.c_str() + at, "handoff to pid %d failed",
                  &pid) != 1) {
    return 0;
  }
  return pid;
}

// The failed new process must be gone: killed and reaped by the old one.
void ExpectChildGone(const std::string& rollback_line) {
  pid_t child = FailedChild(rollback_line);
  ASSERT_GT(child, 0) << rollback_line;
  errno = 0;
  EXPECT_EQ(kill(child, 0), -1) << "pid " << child << " still exists";
  EXPECT_EQ(errno, ESRCH);
}

app::StreamClientOptions Load(const Address& server, int connections,
                              uint32_t seed) {
  app::StreamClientOptions options = Streams(server, connections, seed);
  options.max_write = 16 * 1024;
  options.window = 64 * 1024;
  return options;
}

// After a rollback: traffic flows, a restart succeeds and moves every
// connection, traffic flows again, and every byte checks out.
void ExpectRecoveryAndIntegrity(ServerProcess& server,
                                app::StreamClient& client, int connections) {
  ASSERT_OK(client.WaitForProgress(kProgressBytes, kWait));
  absl::StatusOr<RestartResult> r = server.Restart();
  ASSERT_OK(r);
  ExpectCleanExit(*r);
  EXPECT_EQ(r->handoff.connections, connections) << r->handoff.text;
  ASSERT_OK(client.WaitForProgress(kProgressBytes, kWait));
  ASSERT_OK(client.Finish(kWait));
  ExpectStreamsIntact(client);
  EXPECT_OK(server.Stop());
}

absl::Status WriteExecutable(const std::string& path,
                             const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  out.close();
  if (!out) return absl::InternalError("writing " + path);
  if (chmod(path.c_str(), 0755) != 0) {
    return absl::ErrnoToStatus(errno, "chmod " + path);
  }
  return absl::OkStatus();
}

// Replaces `path` atomically with a copy of `from` (or with `contents`).
absl::Status ReplaceWithCopy(const std::string& path, const std::string& from) {
  const std::string tmp = path + ".new";
  std::error_code ec;
  std::filesystem::copy_file(
      from, tmp, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) return absl::InternalError("copy " + from + ": " + ec.message());
  if (chmod(tmp.c_str(), 0755) != 0) {
    return absl::ErrnoToStatus(errno, "chmod " + tmp);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::ErrnoToStatus(errno, "rename " + tmp);
  }
  return absl::OkStatus();
}

absl::Status ReplaceWithContents(const std::string& path,
                                 const std::string& contents) {
  const std::string tmp = path + ".new";
  if (absl::Status s = WriteExecutable(tmp, contents); !s.ok()) return s;
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::ErrnoToStatus(errno, "rename " + tmp);
  }
  return absl::OkStatus();
}

// (a) The binary was replaced by one that cannot start.
TEST(RollbackTest, BinaryReplacedByFailingScript) {
  constexpr int kConnections = 32;
  const uint32_t seed = TestSeed(6401);
  SCOPED_TRACE(SeedTrace(seed));
  TestDirectory dir;
  const std::string binary = dir.path() + "/baton-echo";
  ASSERT_OK(ReplaceWithCopy(binary, AppBinaryPath("echo")));
  ServerProcess::Options options =
      EchoServer(dir.path(), EchoArgs(2, {"--consume_chunk=64"}));
  options.binary = binary;
  ServerProcess server(options);
  ASSERT_OK(server.Start());
  app::StreamClient client(Load(server.address(), kConnections, seed));
  ASSERT_OK(client.Start());
  ASSERT_OK(client.WaitForProgress(kProgressBytes, kWait));

  ASSERT_OK(ReplaceWithContents(binary, "#!/bin/sh\nexit 1\n"));
  absl::StatusOr<std::string> rollback = server.RestartExpectRollback();
  ASSERT_OK(rollback);
  EXPECT_THAT(*rollback, HasSubstr("exited with status 1"));
  EXPECT_THAT(*rollback, HasSubstr("waiting for HELLO"));
  // Failed before the old process froze anything.
  EXPECT_THAT(*rollback, Not(HasSubstr("resumed")));
  ExpectChildGone(*rollback);

  // The real binary back in place: the next restart succeeds.
  ASSERT_OK(ReplaceWithCopy(binary, AppBinaryPath("echo")));
  ExpectRecoveryAndIntegrity(server, client, kConnections);
}

// (b) The new process never reports READY: the old one gives up after
// --handoff_ready_timeout, kills it and keeps serving.
TEST(RollbackTest, NewProcessThatNeverGetsReadyTimesOut) {
  constexpr int kConnections = 32;
  const uint32_t seed = TestSeed(6402);
  SCOPED_TRACE(SeedTrace(seed));
  TestDirectory dir;
  ServerProcess server(EchoServer(
      dir.path(),
      EchoArgs(2, {"--consume_chunk=64", "--handoff_ready_timeout=1s"}),
      {"BATON_HANDOFF_FAULT=child:hang_before_ready"}));
  ASSERT_OK(server.Start());
  app::StreamClient client(Load(server.address(), kConnections, seed));
  ASSERT_OK(client.Start());
  ASSERT_OK(client.WaitForProgress(kProgressBytes, kWait));

  const absl::Time t0 = absl::Now();
  absl::StatusOr<std::string> rollback = server.RestartExpectRollback();
  const absl::Duration took = absl::Now() - t0;
  ASSERT_OK(rollback);
  EXPECT_THAT(*rollback, HasSubstr("waiting for READY"));
  EXPECT_THAT(*rollback, HasSubstr("killed by signal 9"));
  EXPECT_THAT(*rollback, Not(HasSubstr("resumed")));
  // The deadline is the one configured: not ignored (at least 1 s), and
  // not the 10 s default (with slack for a slow start of the new process).
  EXPECT_GE(took, absl::Seconds(1));
  EXPECT_LT(took, absl::Seconds(9));
  ExpectChildGone(*rollback);
  // The old process kept serving while it waited.
  ExpectRecoveryAndIntegrity(server, client, kConnections);
}

// (c) The new process dies (SIGKILL) at a given step.
struct KillStep {
  const char* step;
  bool after_freeze;  // the old process had frozen its connections
  int connections;
};

void PrintTo(const KillStep& s, std::ostream* os) { *os << s.step; }

class ChildKilledTest : public ::testing::TestWithParam<KillStep> {};

TEST_P(ChildKilledTest, RollsBackKeepsEveryByteAndRestartsLater) {
  const KillStep& p = GetParam();
  const uint32_t seed = TestSeed(6500 + static_cast<uint32_t>(p.connections));
  SCOPED_TRACE(SeedTrace(seed));
  TestDirectory dir;
  ServerProcess server(
      EchoServer(dir.path(), EchoArgs(2, {"--consume_chunk=64"}),
                 {absl::StrCat("BATON_HANDOFF_FAULT=child:", p.step)}));
  ASSERT_OK(server.Start());
  app::StreamClientOptions load = Load(server.address(), p.connections, seed);
  if (p.connections > 100) {
    load.max_write = 4096;
    load.window = 16 * 1024;
  }
  app::StreamClient client(load);
  ASSERT_OK(client.Start());
  ASSERT_OK(client.WaitForProgress(kProgressBytes, kWait));

  absl::StatusOr<std::string> rollback = server.RestartExpectRollback();
  ASSERT_OK(rollback);
  EXPECT_THAT(*rollback, HasSubstr("killed by signal 9"));
  if (p.after_freeze) {
    // Every connection was detached and is served here again.
    EXPECT_THAT(*rollback, HasSubstr(absl::StrFormat("(%d connections resumed)",
                                                     p.connections)));
  } else {
    EXPECT_THAT(*rollback, Not(HasSubstr("resumed")));
  }
  ExpectChildGone(*rollback);
  // The fault hit where it was meant to (not some other failure).
  const pid_t child = FailedChild(*rollback);
  bool hit = false;
  for (const std::string& line : server.LogLines()) {
    hit = hit || (LinePid(line) == child &&
                  absl::StrContains(line, absl::StrCat("fault injection: "
                                                       "child at ",
                                                       p.step)));
  }
  EXPECT_TRUE(hit) << "pid " << child << " never logged the fault at " << p.step
                   << "; " << server.LogTail();
  ExpectRecoveryAndIntegrity(server, client, p.connections);
}

INSTANTIATE_TEST_SUITE_P(
    Steps, ChildKilledTest,
    ::testing::Values(KillStep{"after_hello", false, 32},
                      KillStep{"after_listeners", false, 32},
                      KillStep{"after_ready", true, 32},
                      KillStep{"after_state", true, 32},
                      KillStep{"before_final_ack", true, 32},
                      // Only reached with more than one batch (253 fds).
                      KillStep{"after_batch", true, 300}),
    [](const ::testing::TestParamInfo<KillStep>& info) {
      return std::string(info.param.step);
    });

}  // namespace
}  // namespace baton::test_support
