// baton-kv's dataset survives hot restarts: 10,000 keys with their TTLs,
// and redis-benchmark running while the server restarts again and again.
#include <signal.h>
#include <sys/wait.h>

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kv/kv_test_util.h"
#include "support/process.h"
#include "support/status_macros.h"

namespace baton::kv_test {
namespace {

using ::baton::test_support::AppBinaryPath;
using ::baton::test_support::AppServer;
using ::baton::test_support::FindTool;
using ::baton::test_support::PollUntil;
using ::baton::test_support::ReadFile;
using ::baton::test_support::RestartResult;
using ::baton::test_support::RunTool;
using ::baton::test_support::ServerProcess;
using ::baton::test_support::SpawnTool;
using ::testing::HasSubstr;

// The integer of a ":N\r\n" reply.
int64_t IntReply(const std::string& reply) {
  EXPECT_EQ(reply[0], ':') << reply;
  return std::atoll(reply.c_str() + 1);
}

class KvRestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(AppBinaryPath("kv").c_str(), X_OK) != 0) {
      GTEST_SKIP() << AppBinaryPath("kv") << " is not built";
    }
  }
};

TEST_F(KvRestartTest, TenThousandKeysAndTheirTtlsSurviveARestart) {
  constexpr int kKeys = 10000;
  constexpr int kTtlSeconds = 1000;
  ServerProcess server(AppServer("kv", {"--threads=2"}));
  ASSERT_OK(server.Start());
  auto key = [](int i) { return absl::StrCat("user:", i); };
  auto value = [](int i) { return absl::StrCat("value-", i, "-", i * 7919); };
  auto volatile_key = [](int i) { return i % 3 == 0; };  // every third
  {
    KvClient client;
    ASSERT_OK(client.Connect(server.port()));
    std::string batch;
    for (int i = 0; i < kKeys; ++i) {
      if (volatile_key(i)) {
        batch += Encode(
            {"SET", key(i), value(i), "EX", std::to_string(kTtlSeconds)});
      } else {
        batch += Encode({"SET", key(i), value(i)});
      }
    }
    batch += Encode({"RPUSH", "list", "a", "b", "c"});
    ASSERT_OK(client.Send(batch));
    absl::StatusOr<std::vector<std::string>> replies =
        client.Replies(kKeys + 1);
    ASSERT_TRUE(replies.ok()) << replies.status();
    for (int i = 0; i < kKeys; ++i) ASSERT_EQ((*replies)[i], "+OK\r\n");
  }

  const pid_t before = server.pid();
  absl::StatusOr<RestartResult> restart = server.Restart();
  ASSERT_TRUE(restart.ok()) << restart.status();
  const pid_t after = restart->new_pid;
  ASSERT_NE(after, before);
  EXPECT_THAT(server.Log(), HasSubstr("kv: restored 10001 keys"));

  KvClient client;
  ASSERT_OK(client.Connect(server.port()));
  std::string batch;
  for (int i = 0; i < kKeys; ++i) {
    batch += Encode({"GET", key(i)});
    batch += Encode({"PTTL", key(i)});
  }
  batch += Encode({"DBSIZE"});
  batch += Encode({"LRANGE", "list", "0", "-1"});
  batch += Encode({"INFO", "server", "handoff"});
  ASSERT_OK(client.Send(batch));
  absl::StatusOr<std::vector<std::string>> replies =
      client.Replies(2 * kKeys + 3);
  ASSERT_TRUE(replies.ok()) << replies.status();
  int volatile_count = 0;
  for (int i = 0; i < kKeys; ++i) {
    const std::string v = value(i);
    ASSERT_EQ((*replies)[2 * i], absl::StrCat("$", v.size(), "\r\n", v, "\r\n"))
        << key(i);
    const int64_t pttl = IntReply((*replies)[2 * i + 1]);
    if (volatile_key(i)) {
      ++volatile_count;
      ASSERT_GT(pttl, 0) << key(i);
      ASSERT_LE(pttl, kTtlSeconds * 1000) << key(i);
      // Written a moment ago: most of the TTL is left.
      ASSERT_GT(pttl, (kTtlSeconds - 60) * 1000) << key(i);
    } else {
      ASSERT_EQ(pttl, -1) << key(i);
    }
  }
  EXPECT_EQ(volatile_count, 3334);
  EXPECT_EQ((*replies)[2 * kKeys], ":10001\r\n");
  EXPECT_EQ((*replies)[2 * kKeys + 1],
            "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n");
  const std::string& info = (*replies)[2 * kKeys + 2];
  EXPECT_THAT(info, HasSubstr(absl::StrCat("process_id:", after, "\r\n")));
  EXPECT_THAT(info, HasSubstr("restarts:1\r\n"));
  EXPECT_THAT(info, ::testing::ContainsRegex("last_app_state_bytes:[1-9]"));
  ASSERT_OK(server.Stop());
}

// redis-benchmark's summary lines ("SET: 123.45 requests per second, ...");
// its progress lines end in \r and are dropped.
std::vector<std::string> BenchmarkResults(const std::string& output) {
  std::vector<std::string> lines;
  for (absl::string_view piece :
       absl::StrSplit(output, absl::ByAnyChar("\r\n"))) {
    std::string line(absl::StripAsciiWhitespace(piece));
    if (!line.empty() && !absl::StrContains(line, "rps=")) {
      lines.push_back(line);
    }
  }
  return lines;
}

TEST_F(KvRestartTest, RedisBenchmarkSeesNoErrorsWhileTheServerRestarts) {
  const std::string benchmark = FindTool("redis-benchmark");
  const std::string cli = FindTool("redis-cli");
  if (benchmark.empty() || cli.empty()) {
    GTEST_SKIP() << "redis-benchmark or redis-cli is not installed "
                    "(bash scripts/setup.sh tools)";
  }
  ServerProcess server(AppServer("kv", {"--threads=2"}));
  ASSERT_OK(server.Start());
  const std::string port = std::to_string(server.port());
  std::string out;
  ASSERT_EQ(
      RunTool({cli, "-p", port, "SET", "marker", "written-first", "EX", "3600"},
              &out),
      0)
      << out;

  // Runs of redis-benchmark follow each other until the server has been
  // restarted at least kRestarts times while one was running; each run must
  // succeed without a single error.
  constexpr int kRestarts = 5;
  const absl::Duration kInterval = absl::Milliseconds(300);
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  std::vector<std::string> results;
  int runs = 0;
  while (server.restarts() < kRestarts) {
    ASSERT_LT(absl::Now(), give_up)
        << "only " << server.restarts() << " restarts in " << runs << " runs";
    const std::string path = server.dir() + "/redis-benchmark.out";
    ASSERT_OK_AND_ASSIGN(bench, SpawnTool({benchmark, "-p", port, "-t",
                                           "set,get,incr,lpush,mset", "-P",
                                           "16", "-n", "200000", "-q"},
                                          path));
    ++runs;
    int status = 0;
    bool finished = false;
    while (!finished) {
      // Wait one interval (or until the benchmark ends), then restart.
      finished =
          PollUntil([&] { return waitpid(bench, &status, WNOHANG) == bench; },
                    kInterval, absl::Milliseconds(5));
      if (finished) break;
      absl::StatusOr<RestartResult> fresh = server.Restart();
      if (!fresh.ok()) {
        kill(bench, SIGKILL);
        waitpid(bench, nullptr, 0);
        FAIL() << fresh.status();
      }
    }
    const std::string output = ReadFile(path);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "redis-benchmark run " << runs << " failed (status " << status
        << "):\n"
        << output << "\n"
        << server.LogTail();
    std::vector<std::string> lines = BenchmarkResults(output);
    for (const std::string& line : lines) {
      EXPECT_FALSE(absl::StrContains(absl::AsciiStrToLower(line), "error"))
          << "run " << runs << ": " << line;
      results.push_back(line);
    }
    int with_results = 0;
    for (const std::string& line : lines) {
      with_results += absl::StrContains(line, "requests per second");
    }
    EXPECT_EQ(with_results, 5) << output;
  }
  for (const std::string& line : results) {
    std::fprintf(stderr, "redis-benchmark: %s\n", line.c_str());
  }
  std::fprintf(stderr, "%d restarts during %d redis-benchmark runs\n",
               server.restarts(), runs);

  // The key written before the first restart is still there, TTL and all.
  ASSERT_EQ(RunTool({cli, "-p", port, "GET", "marker"}, &out), 0);
  EXPECT_EQ(out, "written-first\n");
  ASSERT_EQ(RunTool({cli, "-p", port, "TTL", "marker"}, &out), 0);
  const int ttl = std::atoi(out.c_str());
  EXPECT_GT(ttl, 3500);
  EXPECT_LE(ttl, 3600);
  ASSERT_EQ(RunTool({cli, "-p", port, "INFO", "handoff"}, &out), 0);
  EXPECT_THAT(out, HasSubstr(absl::StrCat("restarts:", server.restarts())));
  EXPECT_THAT(server.Log(), ::testing::Not(HasSubstr("rolled back")));
  ASSERT_OK(server.Stop());
}

}  // namespace
}  // namespace baton::kv_test
