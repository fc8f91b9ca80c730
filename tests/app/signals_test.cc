// Signals an operator sends: SIGHUP hands the server over like SIGUSR2 (the
// reload systemd's Type=notify-reload sends, and nginx/HAProxy habits), and
// a closed stdout/stderr pipe (a launcher that read "listening on" and went
// away) kills neither the serving process nor the new one of a handoff:
// SIGPIPE is ignored and the writes fail with EPIPE.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/stream_check.h"
#include "handoff/handoff_test_util.h"
#include "support/process.h"

namespace baton::test_support {
namespace {

constexpr absl::Duration kWait = absl::Seconds(60);

TEST(SignalsTest, HupHandsTheServerOverLikeUsr2) {
  const uint32_t seed = TestSeed(7200);
  SCOPED_TRACE(SeedTrace(seed));
  TestDirectory dir;
  ServerProcess server(EchoServer(dir.path(), EchoArgs(2)));
  ASSERT_OK(server.Start());
  app::StreamClient client(Streams(server.address(), 8, seed));
  ASSERT_OK(client.Start());
  ASSERT_OK(client.WaitVerified(8 * 1024, kWait));
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<RestartResult> r = server.Restart(SIGHUP);
    ASSERT_OK(r);
    ExpectCleanExit(*r);
    EXPECT_EQ(r->handoff.connections, 8) << r->handoff.text;
    ASSERT_OK(client.WaitForProgress(8 * 1024, kWait));
  }
  ASSERT_OK(client.Finish(kWait));
  ExpectStreamsIntact(client);
  EXPECT_OK(server.Stop());
}

// Reads from `fd` until a line starting with `prefix`; returns it ("" after
// `timeout` or at EOF).
std::string ReadLineStartingWith(int fd, const std::string& prefix,
                                 absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string buffer;
  while (absl::Now() < deadline) {
    size_t start = 0;
    for (size_t nl; (nl = buffer.find('\n', start)) != std::string::npos;
         start = nl + 1) {
      std::string line = buffer.substr(start, nl - start);
      if (absl::StartsWith(line, prefix)) return line;
    }
    pollfd p{fd, POLLIN, 0};
    const auto left = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (poll(&p, 1, static_cast<int>(std::max<int64_t>(left, 1))) <= 0) {
      continue;
    }
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n <= 0) return "";
    buffer.append(chunk, static_cast<size_t>(n));
  }
  return "";
}

// waitpid status of `pid` once it exits (it is our child, or re-parented to
// us as the subreaper), or nullopt after `timeout`.
std::optional<int> WaitExit(pid_t pid, absl::Duration timeout) {
  int status = 0;
  bool exited = PollUntil([&] { return waitpid(pid, &status, WNOHANG) == pid; },
                          timeout, absl::Milliseconds(5));
  if (!exited) return std::nullopt;
  return status;
}

TEST(SignalsTest, ClosedOutputPipesKillNeitherTheServerNorItsRestarts) {
  const uint32_t seed = TestSeed(7201);
  SCOPED_TRACE(SeedTrace(seed));
  BecomeSubreaper();
  TestDirectory dir;
  const std::string pid_file = dir.path() + "/server.pid";
  int out[2];
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  absl::StatusOr<pid_t> first =
      SpawnServerWithOutput({AppBinaryPath("echo"), "--listen=127.0.0.1:0",
                             "--threads=2", "--pid-file=" + pid_file},
                            out[1]);
  close(out[1]);
  ASSERT_OK(first);
  const std::string listening =
      ReadLineStartingWith(out[0], "listening on ", kWait);
  // The launcher goes away: stdout and stderr are now pipes nobody reads.
  close(out[0]);
  ASSERT_FALSE(listening.empty()) << "no \"listening on\" line";
  absl::StatusOr<Address> address =
      Address::Parse(listening.substr(std::string("listening on ").size()));
  ASSERT_OK(address);
  auto pid_in_file = [&] {
    int pid = 0;
    return absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(pid_file)),
                            &pid)
               ? pid
               : 0;
  };
  ASSERT_TRUE(PollUntil([&] { return pid_in_file() == *first; }, kWait));

  app::StreamClient client(Streams(*address, 8, seed));
  ASSERT_OK(client.Start());
  ASSERT_OK(client.WaitVerified(8 * 1024, kWait));
  pid_t serving = *first;
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(absl::StrCat("restart ", i + 1));
    ASSERT_EQ(kill(serving, SIGUSR2), 0);
    std::optional<int> status = WaitExit(serving, kWait);
    ASSERT_TRUE(status.has_value()) << "pid " << serving << " still serves";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << "pid " << serving << " " << DescribeWaitStatus(*status);
    ASSERT_TRUE(PollUntil(
        [&] { return pid_in_file() != serving && pid_in_file() > 0; }, kWait))
        << "the pid file still names " << pid_in_file();
    serving = pid_in_file();
    ASSERT_EQ(kill(serving, 0), 0) << "new pid " << serving << " is gone";
    ASSERT_OK(client.WaitForProgress(8 * 1024, kWait));
  }
  ASSERT_OK(client.Finish(kWait));
  ExpectStreamsIntact(client);
  ASSERT_EQ(kill(serving, SIGTERM), 0);
  std::optional<int> status = WaitExit(serving, kWait);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << DescribeWaitStatus(*status);
}

}  // namespace
}  // namespace baton::test_support
