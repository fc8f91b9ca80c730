// baton-kv as a real process: redis-cli against it, raw sockets for
// pipelining, protocol errors, limits, back-pressure, and commands split
// across a hot restart.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
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
using ::baton::test_support::RestartResult;
using ::baton::test_support::RunTool;
using ::baton::test_support::ServerProcess;
using ::testing::HasSubstr;

std::string Bulk(std::string_view s) {
  return absl::StrCat("$", s.size(), "\r\n", std::string(s), "\r\n");
}

class KvServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(AppBinaryPath("kv").c_str(), X_OK) != 0) {
      GTEST_SKIP() << AppBinaryPath("kv") << " is not built";
    }
  }
};

// redis-cli, one command per process: what a user does.
std::string Cli(uint16_t port, std::vector<std::string> args) {
  std::vector<std::string> argv = {FindTool("redis-cli"), "-p",
                                   std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out;
  int code = RunTool(argv, &out);
  EXPECT_EQ(code, 0) << "redis-cli " << args[0] << ": " << out;
  // redis-cli ends an error reply with an empty line.
  while (absl::EndsWith(out, "\n\n")) out.pop_back();
  return out;
}

TEST_F(KvServerTest, RedisCliDrivesEveryKindOfCommand) {
  if (FindTool("redis-cli").empty()) {
    GTEST_SKIP() << "redis-cli is not installed (bash scripts/setup.sh tools)";
  }
  ServerProcess server(AppServer("kv", {"--threads=2"}));
  ASSERT_OK(server.Start());
  const uint16_t p = server.port();
  EXPECT_EQ(Cli(p, {"PING"}), "PONG\n");
  EXPECT_EQ(Cli(p, {"SET", "greeting", "hello world"}), "OK\n");
  EXPECT_EQ(Cli(p, {"GET", "greeting"}), "hello world\n");
  EXPECT_EQ(Cli(p, {"INCR", "visits"}), "1\n");
  EXPECT_EQ(Cli(p, {"INCRBY", "visits", "41"}), "42\n");
  EXPECT_EQ(Cli(p, {"INCR", "greeting"}),
            "ERR value is not an integer or out of range\n");
  EXPECT_EQ(Cli(p, {"LPUSH", "queue", "c", "b", "a"}), "3\n");
  EXPECT_EQ(Cli(p, {"LRANGE", "queue", "0", "-1"}), "a\nb\nc\n");
  EXPECT_EQ(Cli(p, {"SET", "session", "x", "EX", "100"}), "OK\n");
  EXPECT_EQ(Cli(p, {"TTL", "session"}), "100\n");
  EXPECT_EQ(Cli(p, {"TTL", "greeting"}), "-1\n");
  std::string keys = Cli(p, {"KEYS", "*e*"});
  EXPECT_THAT(keys, HasSubstr("greeting\n"));
  EXPECT_THAT(keys, HasSubstr("queue\n"));
  EXPECT_THAT(keys, HasSubstr("session\n"));
  EXPECT_THAT(keys, ::testing::Not(HasSubstr("visits")));
  EXPECT_EQ(Cli(p, {"GET", "queue"}),
            "WRONGTYPE Operation against a key holding the wrong kind of "
            "value\n");
  EXPECT_EQ(Cli(p, {"NOSUCH", "x"}),
            "ERR unknown command 'NOSUCH', with args beginning with: 'x' \n");
  std::string info = Cli(p, {"INFO"});
  EXPECT_THAT(info, HasSubstr("redis_version:7.0.0-baton"));
  EXPECT_THAT(info, HasSubstr(absl::StrCat("process_id:", server.pid())));
  EXPECT_THAT(info, HasSubstr("connected_clients:1"));
  EXPECT_THAT(info, HasSubstr("# Handoff"));
  EXPECT_THAT(info, HasSubstr("restarts:0"));
  EXPECT_THAT(info, HasSubstr("db0:keys=4,expires=1"));
  EXPECT_EQ(Cli(p, {"DBSIZE"}), "4\n");
  ASSERT_OK(server.Stop());
}

TEST_F(KvServerTest, PipelinedCommandsAreAnsweredInOrder) {
  ServerProcess server(AppServer("kv", {"--threads=2"}));
  ASSERT_OK(server.Start());
  KvClient client;
  ASSERT_OK(client.Connect(server.port()));
  // One write with 3,000 commands of every shape, inline ones included.
  std::string batch;
  std::vector<std::string> expected;
  for (int i = 0; i < 1000; ++i) {
    const std::string key = absl::StrCat("key:", i);
    const std::string value = std::string(i % 50, 'v') + std::to_string(i);
    batch += Encode({"SET", key, value});
    expected.push_back("+OK\r\n");
    batch += Encode({"INCR", "counter"});
    expected.push_back(absl::StrCat(":", i + 1, "\r\n"));
    if (i % 2 == 0) {
      batch += absl::StrCat("GET ", key, "\r\n");
    } else {
      batch += Encode({"GET", key});
    }
    expected.push_back(Bulk(value));
  }
  ASSERT_OK(client.Send(batch));
  absl::StatusOr<std::vector<std::string>> replies =
      client.Replies(expected.size());
  ASSERT_TRUE(replies.ok()) << replies.status();
  EXPECT_EQ(*replies, expected);
  // Byte by byte works too.
  std::string slow = Encode({"ECHO", "one byte at a time"}) + "PING\r\n";
  for (char c : slow) ASSERT_OK(client.Send(std::string(1, c)));
  replies = client.Replies(2);
  ASSERT_TRUE(replies.ok()) << replies.status();
  EXPECT_EQ((*replies)[0], Bulk("one byte at a time"));
  EXPECT_EQ((*replies)[1], "+PONG\r\n");
  ASSERT_OK(server.Stop());
}

TEST_F(KvServerTest, InlineCommandsAsNcSendsThem) {
  ServerProcess server(AppServer("kv"));
  ASSERT_OK(server.Start());
  KvClient client;
  ASSERT_OK(client.Connect(server.port()));
  ASSERT_OK(client.Send("PING\r\nSET k \"two words\"\nGET k\r\n\r\nQUIT\r\n"));
  absl::StatusOr<std::vector<std::string>> replies = client.Replies(4);
  ASSERT_TRUE(replies.ok()) << replies.status();
  EXPECT_EQ((*replies)[0], "+PONG\r\n");
  EXPECT_EQ((*replies)[1], "+OK\r\n");
  EXPECT_EQ((*replies)[2], Bulk("two words"));
  EXPECT_EQ((*replies)[3], "+OK\r\n");  // QUIT: OK, then closed
  EXPECT_TRUE(client.ClosedByPeer());
  ASSERT_OK(server.Stop());
}

TEST_F(KvServerTest, ProtocolErrorIsAnsweredThenTheConnectionCloses) {
  ServerProcess server(AppServer("kv"));
  ASSERT_OK(server.Start());
  KvClient client;
  ASSERT_OK(client.Connect(server.port()));
  // The complete command before the garbage is still run.
  ASSERT_OK(client.Send(Encode({"SET", "a", "1"}) + "*1\r\n:oops\r\n"));
  absl::StatusOr<std::vector<std::string>> replies = client.Replies(2);
  ASSERT_TRUE(replies.ok()) << replies.status();
  EXPECT_EQ((*replies)[0], "+OK\r\n");
  EXPECT_EQ((*replies)[1], "-ERR Protocol error: expected '$', got ':'\r\n");
  EXPECT_TRUE(client.ClosedByPeer());
  KvClient other;  // the server itself is fine
  ASSERT_OK(other.Connect(server.port()));
  EXPECT_EQ(*other.Call({"GET", "a"}), Bulk("1"));
  ASSERT_OK(server.Stop());
}

TEST_F(KvServerTest, BulkAndArrayLimitsFollowTheFlags) {
  ServerProcess server(
      AppServer("kv", {"--max_bulk_bytes=1000", "--max_array=4"}));
  ASSERT_OK(server.Start());
  {
    KvClient client;
    ASSERT_OK(client.Connect(server.port()));
    EXPECT_EQ(*client.Call({"SET", "k", std::string(1000, 'x')}), "+OK\r\n");
    // Refused from the header alone, before any of the data is sent.
    ASSERT_OK(client.Send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1001\r\n"));
    EXPECT_EQ(*client.Reply(), "-ERR Protocol error: invalid bulk length\r\n");
    EXPECT_TRUE(client.ClosedByPeer());
  }
  {
    KvClient client;
    ASSERT_OK(client.Connect(server.port()));
    EXPECT_EQ(*client.Call({"MSET", "a", "1", "b"}),
              "-ERR wrong number of arguments for 'mset' command\r\n");
    ASSERT_OK(client.Send("*5\r\n"));
    EXPECT_EQ(*client.Reply(),
              "-ERR Protocol error: invalid multibulk length\r\n");
    EXPECT_TRUE(client.ClosedByPeer());
  }
  ASSERT_OK(server.Stop());
}

TEST_F(KvServerTest, RefusesABulkLimitAbove512MiB) {
  std::string out;
  int code = RunTool({AppBinaryPath("kv"), "--listen=127.0.0.1:0",
                      "--max_bulk_bytes=600000000"},
                     &out);
  EXPECT_EQ(code, 2) << out;
  EXPECT_THAT(out, HasSubstr("above the 512 MiB limit"));
}

TEST_F(KvServerTest, ValuesLargerThanTheInboundBufferAndBackPressure) {
  ServerProcess server(AppServer("kv", {"--threads=2"}));
  ASSERT_OK(server.Start());
  KvClient client;
  ASSERT_OK(client.Connect(server.port()));
  // 3 MiB: more than a connection buffers unconsumed (1 MiB).
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131);
  EXPECT_EQ(*client.Call({"SET", "big", big}), "+OK\r\n");
  EXPECT_EQ(*client.Call({"STRLEN", "big"}), ":3145728\r\n");
  // 12 GETs of it (36 MiB of replies) asked at once, read only afterwards:
  // the server waits for the client instead of buffering without bound.
  std::string batch;
  for (int i = 0; i < 12; ++i) batch += Encode({"GET", "big"});
  batch += "PING\r\n";
  ASSERT_OK(client.Send(batch));
  absl::StatusOr<std::vector<std::string>> replies = client.Replies(13);
  ASSERT_TRUE(replies.ok()) << replies.status();
  for (int i = 0; i < 12; ++i) {
    ASSERT_EQ((*replies)[i], Bulk(big)) << "reply " << i;
  }
  EXPECT_EQ((*replies)[12], "+PONG\r\n");
  ASSERT_OK(server.Stop());
}

TEST_F(KvServerTest, HalfReceivedCommandCompletesAcrossARestart) {
  // One reactor: the probe below is served by the same loop as `client`.
  ServerProcess server(AppServer("kv", {"--threads=1"}));
  ASSERT_OK(server.Start());
  KvClient client;
  ASSERT_OK(client.Connect(server.port()));
  ASSERT_EQ(*client.Call({"SET", "before", "restart"}), "+OK\r\n");
  const std::string command =
      Encode({"SET", "split", "hello"}) + Encode({"GET", "split"});
  const size_t cut = command.find("hel") + 3;  // inside the value
  ASSERT_OK(client.Send(command.substr(0, cut)));
  // Loopback delivers at send(); a round trip on a second connection of the
  // same reactor makes sure the old process has also read the first half
  // (the log check below proves it moved as unread inbound bytes).
  KvClient probe;
  ASSERT_OK(probe.Connect(server.port()));
  ASSERT_EQ(*probe.Call({"PING"}), "+PONG\r\n");
  const pid_t old_pid = server.pid();
  absl::StatusOr<RestartResult> fresh = server.Restart();
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  ASSERT_NE(fresh->new_pid, old_pid);
  ASSERT_OK(client.Send(command.substr(cut)));
  absl::StatusOr<std::vector<std::string>> replies = client.Replies(2);
  ASSERT_TRUE(replies.ok()) << replies.status() << "\n" << server.LogTail();
  EXPECT_EQ((*replies)[0], "+OK\r\n");
  EXPECT_EQ((*replies)[1], Bulk("hello"));
  // Exactly one reply per command: nothing else arrives.
  EXPECT_EQ(client.Extra(absl::Milliseconds(100)), "");
  EXPECT_EQ(*client.Call({"GET", "before"}), Bulk("restart"));
  // The new process says it received unread inbound bytes.
  EXPECT_THAT(server.Log(), ::testing::ContainsRegex(
                                "took over [0-9]+ connections \\([1-9]"));
  std::string info = *client.Call({"INFO", "handoff"});
  EXPECT_THAT(info, HasSubstr("restarts:1"));
  ASSERT_OK(server.Stop());
}

TEST_F(KvServerTest, ValueLargerThanTheInboundBufferSplitAcrossARestart) {
  ServerProcess server(AppServer("kv", {"--threads=1"}));
  ASSERT_OK(server.Start());
  KvClient client;
  ASSERT_OK(client.Connect(server.port()));
  // Half of it is more than the connection buffers unconsumed by default:
  // the handler raises its connection's bound, and those bytes travel as
  // ordinary unconsumed inbound bytes.
  std::string big(2 << 20, 'b');
  big[12345] = 'X';
  const std::string command = Encode({"SET", "big", big});
  const size_t cut = command.size() / 2 + 7;
  ASSERT_OK(client.Send(command.substr(0, cut)));
  KvClient probe;  // a round trip on the same reactor, as above
  ASSERT_OK(probe.Connect(server.port()));
  ASSERT_EQ(*probe.Call({"EXISTS", "big"}), ":0\r\n");
  absl::StatusOr<RestartResult> fresh = server.Restart();
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  ASSERT_OK(client.Send(command.substr(cut)));
  EXPECT_EQ(*client.Reply(), "+OK\r\n");
  EXPECT_EQ(client.Extra(absl::Milliseconds(50)), "");
  EXPECT_EQ(*client.Call({"GET", "big"}), Bulk(big));
  // The first half travelled as unconsumed inbound bytes.
  std::string info = *client.Call({"INFO", "handoff"});
  EXPECT_THAT(
      info, ::testing::ContainsRegex("last_inbound_bytes_moved:[1-9][0-9]{6}"));
  ASSERT_OK(server.Stop());
}

TEST_F(KvServerTest, CommandLargerThanTheQueryLimitIsRefused) {
  ServerProcess server(AppServer("kv", {"--threads=1", "--max_inbound=65536",
                                        "--max_query_bytes=262144"}));
  ASSERT_OK(server.Start());
  KvClient client;
  ASSERT_OK(client.Connect(server.port()));
  // Within the limit: the bound grows for it.
  EXPECT_EQ(*client.Call({"SET", "k", std::string(200000, 'v')}), "+OK\r\n");
  // Over it: refused with a clear error, and the connection closes.
  ASSERT_OK(client.Send(Encode({"SET", "k", std::string(300000, 'w')})));
  EXPECT_EQ(*client.Reply(),
            "-ERR Protocol error: command larger than the query buffer limit "
            "(262144 bytes)\r\n");
  EXPECT_TRUE(client.ClosedByPeer());
  KvClient other;
  ASSERT_OK(other.Connect(server.port()));
  EXPECT_EQ(*other.Call({"STRLEN", "k"}), ":200000\r\n");
  ASSERT_OK(server.Stop());
}

// Sets `count` keys "ttl:N" that expire after `ttl_ms`.
absl::Status SetKeysWithTtl(KvClient& client, int count,
                            const std::string& ttl_ms) {
  std::string batch;
  for (int i = 0; i < count; ++i) {
    batch += Encode({"SET", absl::StrCat("ttl:", i), "v", "PX", ttl_ms});
  }
  if (absl::Status s = client.Send(batch); !s.ok()) return s;
  return client.Replies(static_cast<size_t>(count)).status();
}

// "INFO stats" once it reports `expired` expired keys (it counts them
// without looking any key up), or after 20 s, whatever it says then.
std::string AwaitExpired(KvClient& client, int expired) {
  const std::string want = absl::StrCat("expired_keys:", expired, "\r\n");
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  std::string stats;
  while (absl::Now() < deadline) {
    stats = *client.Call({"INFO", "stats"});
    if (absl::StrContains(stats, want)) break;
    absl::SleepFor(absl::Milliseconds(20));  // polling a counter
  }
  return stats;
}

// Expiry runs as the app's background task: keys nobody touches are deleted
// by it, in the process that took over as well.
TEST_F(KvServerTest, KeysExpireInTheBackgroundAfterARestart) {
  ServerProcess server(
      AppServer("kv", {"--threads=1", "--expire_interval=10ms"}));
  ASSERT_OK(server.Start());
  KvClient client;
  ASSERT_OK(client.Connect(server.port()));
  ASSERT_OK(SetKeysWithTtl(client, 100, "300"));
  absl::StatusOr<RestartResult> fresh = server.Restart();
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_THAT(AwaitExpired(client, 100), HasSubstr("expired_keys:100\r\n"));
  EXPECT_EQ(*client.Call({"DBSIZE"}), ":0\r\n");
  ASSERT_OK(server.Stop());
}

// The background task is stopped before a handoff freezes the server; a
// handoff that then fails (the new process dies after receiving the state)
// must start it again in the process that keeps serving.
TEST_F(KvServerTest, BackgroundExpiryResumesAfterARolledBackHandoff) {
  ServerProcess::Options options =
      AppServer("kv", {"--threads=1", "--expire_interval=10ms"});
  options.env.push_back("BATON_HANDOFF_FAULT=child:after_state");
  ServerProcess server(options);
  ASSERT_OK(server.Start());
  KvClient client;
  ASSERT_OK(client.Connect(server.port()));
  ASSERT_OK(SetKeysWithTtl(client, 100, "1000"));
  absl::StatusOr<std::string> rollback = server.RestartExpectRollback();
  ASSERT_TRUE(rollback.ok()) << rollback.status();
  EXPECT_THAT(AwaitExpired(client, 100), HasSubstr("expired_keys:100\r\n"));
  ASSERT_OK(server.Stop());
}

}  // namespace
}  // namespace baton::kv_test
