// baton-kv's data and commands (apps/kv/store.h, apps/kv/commands.h), driven
// through the Dispatcher with a hand-advanced clock: no sleeps.
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kv/commands.h"
#include "kv/resp.h"
#include "kv/store.h"

namespace baton::kv {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

class KvCommandsTest : public ::testing::Test {
 protected:
  KvCommandsTest()
      : dispatcher_(&store_, [this] { return info_; }),
        now_(absl::FromUnixSeconds(1700000000)) {}

  // Runs one command given as separate arguments; returns the raw reply.
  std::string RunArgs(std::vector<std::string> args) {
    std::vector<std::string_view> views(args.begin(), args.end());
    std::string out;
    last_action_ = dispatcher_.Execute(views, now_, &out);
    return out;
  }
  // Runs "CMD a b c" (words split on spaces).
  std::string Run(std::string_view line) {
    std::vector<std::string> args;
    size_t start = 0;
    while (true) {
      const size_t space = line.find(' ', start);
      args.emplace_back(line.substr(start, space - start));
      if (space == std::string_view::npos) break;
      start = space + 1;
    }
    return RunArgs(std::move(args));
  }
  void Advance(absl::Duration d) { now_ += d; }

  Store store_;
  ServerInfo info_;
  Dispatcher dispatcher_;
  absl::Time now_;
  Action last_action_ = Action::kContinue;
};

constexpr std::string_view kOk = "+OK\r\n";
constexpr std::string_view kNil = "$-1\r\n";
constexpr std::string_view kWrongType =
    "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
constexpr std::string_view kNotInteger =
    "-ERR value is not an integer or out of range\r\n";
constexpr std::string_view kSyntax = "-ERR syntax error\r\n";

std::string Bulk(std::string_view s) {
  return "$" + std::to_string(s.size()) + "\r\n" + std::string(s) + "\r\n";
}
std::string Int(int64_t v) { return ":" + std::to_string(v) + "\r\n"; }

// --- Connection, server, errors ---

TEST_F(KvCommandsTest, PingEchoSelectQuit) {
  EXPECT_EQ(Run("PING"), "+PONG\r\n");
  EXPECT_EQ(Run("ping hello"), Bulk("hello"));
  EXPECT_EQ(Run("PING a b"),
            "-ERR wrong number of arguments for 'ping' command\r\n");
  EXPECT_EQ(RunArgs({"ECHO", "a b\r\nc"}), Bulk("a b\r\nc"));
  EXPECT_EQ(Run("SELECT 0"), kOk);
  EXPECT_EQ(Run("SELECT 1"), "-ERR DB index is out of range\r\n");
  EXPECT_EQ(Run("SELECT x"), kNotInteger);
  EXPECT_EQ(last_action_, Action::kContinue);
  EXPECT_EQ(Run("QUIT"), kOk);
  EXPECT_EQ(last_action_, Action::kClose);
}

TEST_F(KvCommandsTest, UnknownCommandAndArityAreWordedAsRedis) {
  EXPECT_EQ(Run("foo a b"),
            "-ERR unknown command 'foo', with args beginning with: 'a' 'b' "
            "\r\n");
  EXPECT_EQ(Run("foo"),
            "-ERR unknown command 'foo', with args beginning with: \r\n");
  // User bytes cannot break the reply's framing.
  EXPECT_EQ(RunArgs({"fo\r\no", "x\ny"}),
            "-ERR unknown command 'fo  o', with args beginning with: 'x y' "
            "\r\n");
  // Arguments are listed up to 128 characters.
  std::string reply = RunArgs({"nope", std::string(200, 'a'), "b"});
  EXPECT_EQ(reply, "-ERR unknown command 'nope', with args beginning with: '" +
                       std::string(128, 'a') + "' \r\n");
  EXPECT_EQ(Run("GET"), "-ERR wrong number of arguments for 'get' command\r\n");
  EXPECT_EQ(Run("get a b"),
            "-ERR wrong number of arguments for 'get' command\r\n");
  EXPECT_EQ(Run("SET k"),
            "-ERR wrong number of arguments for 'set' command\r\n");
  EXPECT_EQ(Run("MSET a 1 b"),
            "-ERR wrong number of arguments for 'mset' command\r\n");
  EXPECT_EQ(Run("LPOP l 1 2"),
            "-ERR wrong number of arguments for 'lpop' command\r\n");
  EXPECT_EQ(Run("sEt K v"), kOk);  // names are case-insensitive
  EXPECT_EQ(Run("GeT K"), Bulk("v"));
}

TEST_F(KvCommandsTest, CommandAndConfigAnswerWhatClientsAsk) {
  EXPECT_EQ(Run("COMMAND"), "*0\r\n");
  EXPECT_EQ(Run("COMMAND DOCS"), "*0\r\n");
  EXPECT_EQ(Run("command docs get"), "*0\r\n");
  EXPECT_EQ(Run("COMMAND COUNT"), Int(Dispatcher::CommandCount()));
  EXPECT_GE(Dispatcher::CommandCount(), 35);
  EXPECT_EQ(Run("CONFIG GET save"), "*2\r\n" + Bulk("save") + Bulk(""));
  EXPECT_EQ(Run("CONFIG GET appendonly"),
            "*2\r\n" + Bulk("appendonly") + Bulk("no"));
  EXPECT_EQ(Run("CONFIG GET maxmemory"), "*0\r\n");
  EXPECT_EQ(Run("config get *"), "*4\r\n" + Bulk("save") + Bulk("") +
                                     Bulk("appendonly") + Bulk("no"));
  EXPECT_EQ(Run("CONFIG GET"),
            "-ERR wrong number of arguments for 'config|get' command\r\n");
}

TEST_F(KvCommandsTest, InfoReportsServerClientsHandoffAndKeyspace) {
  info_.process_id = 4242;
  info_.uptime = absl::Seconds(90061);
  info_.connected_clients = 7;
  info_.handoff.restarts = 3;
  info_.handoff.connections = 5;
  info_.handoff.inbound_bytes = 100;
  info_.handoff.outbound_bytes = 20;
  info_.handoff.app_state_bytes = 3;
  Run("SET a 1");
  Run("SET b 2 EX 100");
  std::string info = Run("INFO");
  EXPECT_THAT(info, HasSubstr("# Server\r\nredis_version:7.0.0-baton\r\n"));
  EXPECT_THAT(info, HasSubstr("\r\nprocess_id:4242\r\n"));
  EXPECT_THAT(info, HasSubstr("\r\nuptime_in_seconds:90061\r\n"));
  EXPECT_THAT(info, HasSubstr("\r\nuptime_in_days:1\r\n"));
  EXPECT_THAT(info, HasSubstr("# Clients\r\nconnected_clients:7\r\n"));
  EXPECT_THAT(info, HasSubstr("# Handoff\r\nrestarts:3\r\n"));
  EXPECT_THAT(info, HasSubstr("\r\nlast_connections_moved:5\r\n"));
  EXPECT_THAT(info, HasSubstr("\r\nlast_bytes_moved:123\r\n"));
  EXPECT_THAT(info, HasSubstr("# Keyspace\r\ndb0:keys=2,expires=1"));
  // One bulk string whose length is right.
  ASSERT_EQ(info[0], '$');
  const size_t header = info.find("\r\n");
  EXPECT_EQ(std::stoul(info.substr(1, header - 1)), info.size() - header - 4);
  std::string handoff = Run("info HANDOFF");
  EXPECT_THAT(handoff, HasSubstr("# Handoff\r\n"));
  EXPECT_THAT(handoff, ::testing::Not(HasSubstr("# Server")));
  EXPECT_EQ(Run("INFO nosuchsection"), Bulk(""));
}

// --- Strings ---

TEST_F(KvCommandsTest, GetSetBasics) {
  EXPECT_EQ(Run("GET k"), kNil);
  EXPECT_EQ(Run("SET k v1"), kOk);
  EXPECT_EQ(Run("GET k"), Bulk("v1"));
  EXPECT_EQ(RunArgs({"SET", "bin", std::string("a\0\r\nb", 5)}), kOk);
  EXPECT_EQ(Run("GET bin"), Bulk(std::string("a\0\r\nb", 5)));
  EXPECT_EQ(Run("SET k v2 NX"), kNil);
  EXPECT_EQ(Run("GET k"), Bulk("v1"));
  EXPECT_EQ(Run("SET k v2 XX"), kOk);
  EXPECT_EQ(Run("SET other v XX"), kNil);
  EXPECT_EQ(Run("EXISTS other"), Int(0));
  EXPECT_EQ(Run("SET new v nx"), kOk);
  EXPECT_EQ(Run("SET k v3 GET"), Bulk("v2"));
  EXPECT_EQ(Run("SET fresh v GET"), kNil);
}

TEST_F(KvCommandsTest, SetOptionsSyntax) {
  EXPECT_EQ(Run("SET k v NX XX"), kSyntax);
  EXPECT_EQ(Run("SET k v EX"), kSyntax);
  EXPECT_EQ(Run("SET k v EX 10 PX 100"), kSyntax);
  EXPECT_EQ(Run("SET k v KEEPTTL EX 10"), kSyntax);
  EXPECT_EQ(Run("SET k v BOGUS"), kSyntax);
  EXPECT_EQ(Run("SET k v EX abc"), kNotInteger);
  EXPECT_EQ(Run("SET k v EX 0"),
            "-ERR invalid expire time in 'set' command\r\n");
  EXPECT_EQ(Run("SET k v PX -5"),
            "-ERR invalid expire time in 'set' command\r\n");
  EXPECT_EQ(Run("SET k v EX 9223372036854775807"),
            "-ERR invalid expire time in 'set' command\r\n");
  EXPECT_EQ(Run("EXISTS k"), Int(0));  // nothing was written
}

TEST_F(KvCommandsTest, SetWithTtlExpires) {
  EXPECT_EQ(Run("SET k v EX 10"), kOk);
  EXPECT_EQ(Run("TTL k"), Int(10));
  EXPECT_EQ(Run("PTTL k"), Int(10000));
  Advance(absl::Milliseconds(9999));
  EXPECT_EQ(Run("GET k"), Bulk("v"));
  EXPECT_EQ(Run("PTTL k"), Int(1));
  Advance(absl::Milliseconds(1));
  EXPECT_EQ(Run("GET k"), kNil);
  EXPECT_EQ(Run("TTL k"), Int(-2));
  EXPECT_EQ(Run("SET p v PX 1500"), kOk);
  EXPECT_EQ(Run("TTL p"), Int(2));  // Redis rounds to the nearest second
  Advance(absl::Milliseconds(1000));
  EXPECT_EQ(Run("TTL p"), Int(1));  // 500 ms left rounds up
  Advance(absl::Milliseconds(100));
  EXPECT_EQ(Run("TTL p"), Int(0));
  // Absolute forms.
  const int64_t at = absl::ToUnixSeconds(now_) + 100;
  EXPECT_EQ(Run("SET a v EXAT " + std::to_string(at)), kOk);
  EXPECT_EQ(Run("TTL a"), Int(100));
  EXPECT_EQ(Run("SET b v PXAT " + std::to_string(at * 1000)), kOk);
  EXPECT_EQ(Run("PTTL b"), Int(at * 1000 - absl::ToUnixMillis(now_)));
}

TEST_F(KvCommandsTest, SetClearsOrKeepsTheTtl) {
  Run("SET k v EX 100");
  EXPECT_EQ(Run("SET k v2 KEEPTTL"), kOk);
  EXPECT_EQ(Run("TTL k"), Int(100));
  EXPECT_EQ(Run("SET k v3"), kOk);
  EXPECT_EQ(Run("TTL k"), Int(-1));
  Advance(absl::Seconds(200));
  EXPECT_EQ(Run("GET k"), Bulk("v3"));
}

TEST_F(KvCommandsTest, GetSet) {
  EXPECT_EQ(Run("GETSET k a"), kNil);
  EXPECT_EQ(Run("GETSET k b"), Bulk("a"));
  Run("EXPIRE k 10");
  EXPECT_EQ(Run("GETSET k c"), Bulk("b"));
  EXPECT_EQ(Run("TTL k"), Int(-1));
  Run("RPUSH l x");
  EXPECT_EQ(Run("GETSET l y"), kWrongType);
  EXPECT_EQ(Run("GETSET"),
            "-ERR wrong number of arguments for 'getset' command\r\n");
}

TEST_F(KvCommandsTest, IncrDecrFamily) {
  EXPECT_EQ(Run("INCR n"), Int(1));
  EXPECT_EQ(Run("INCR n"), Int(2));
  EXPECT_EQ(Run("DECR n"), Int(1));
  EXPECT_EQ(Run("INCRBY n 41"), Int(42));
  EXPECT_EQ(Run("DECRBY n 50"), Int(-8));
  EXPECT_EQ(Run("GET n"), Bulk("-8"));
  EXPECT_EQ(Run("DECR fresh"), Int(-1));
  EXPECT_EQ(Run("INCRBY n abc"), kNotInteger);
  EXPECT_EQ(Run("INCRBY n 1.5"), kNotInteger);
  EXPECT_EQ(Run("DECRBY n 99999999999999999999"), kNotInteger);
  for (std::string_view bad : {"abc", " 1", "01", "1.0", "", "+1"}) {
    RunArgs({"SET", "s", std::string(bad)});
    EXPECT_EQ(Run("INCR s"), kNotInteger) << bad;
  }
  Run("RPUSH l x");
  EXPECT_EQ(Run("INCR l"), kWrongType);
  EXPECT_EQ(Run("DECRBY l 1"), kWrongType);
}

TEST_F(KvCommandsTest, IncrOverflowIsAnError) {
  const std::string overflow = "-ERR increment or decrement would overflow\r\n";
  Run("SET max 9223372036854775807");
  EXPECT_EQ(Run("INCR max"), overflow);
  EXPECT_EQ(Run("INCRBY max 1"), overflow);
  EXPECT_EQ(Run("GET max"), Bulk("9223372036854775807"));
  EXPECT_EQ(Run("DECRBY max -1"), overflow);
  Run("SET min -9223372036854775808");
  EXPECT_EQ(Run("DECR min"), overflow);
  EXPECT_EQ(Run("INCRBY min -1"), overflow);
  EXPECT_EQ(Run("INCRBY min 9223372036854775807"), Int(-1));
  EXPECT_EQ(Run("DECRBY zero -9223372036854775808"),
            "-ERR decrement would overflow\r\n");
}

TEST_F(KvCommandsTest, IncrKeepsTheTtl) {
  Run("SET n 5 EX 100");
  EXPECT_EQ(Run("INCR n"), Int(6));
  EXPECT_EQ(Run("TTL n"), Int(100));
  Advance(absl::Seconds(100));
  EXPECT_EQ(Run("INCR n"), Int(1));  // expired: starts again from 0
  EXPECT_EQ(Run("TTL n"), Int(-1));
}

TEST_F(KvCommandsTest, AppendAndStrlen) {
  EXPECT_EQ(Run("STRLEN k"), Int(0));
  EXPECT_EQ(Run("APPEND k hello"), Int(5));
  EXPECT_EQ(Run("APPEND k _world"), Int(11));
  EXPECT_EQ(Run("GET k"), Bulk("hello_world"));
  EXPECT_EQ(Run("STRLEN k"), Int(11));
  Run("LPUSH l a");
  EXPECT_EQ(Run("APPEND l x"), kWrongType);
  EXPECT_EQ(Run("STRLEN l"), kWrongType);
}

TEST_F(KvCommandsTest, MgetMset) {
  EXPECT_EQ(Run("MSET a 1 b 2 c 3"), kOk);
  Run("RPUSH l x");
  EXPECT_EQ(
      Run("MGET a missing c l"),
      "*4\r\n" + Bulk("1") + std::string(kNil) + Bulk("3") + std::string(kNil));
  Run("EXPIRE a 10");
  EXPECT_EQ(Run("MSET a 9 l now-a-string"), kOk);  // any type is replaced
  EXPECT_EQ(Run("TTL a"), Int(-1));
  EXPECT_EQ(Run("GET l"), Bulk("now-a-string"));
  EXPECT_EQ(Run("MGET"),
            "-ERR wrong number of arguments for 'mget' command\r\n");
}

TEST_F(KvCommandsTest, GetAndListOpsRespectTypes) {
  Run("SET s v");
  Run("RPUSH l a");
  EXPECT_EQ(Run("GET l"), kWrongType);
  EXPECT_EQ(Run("LPUSH s x"), kWrongType);
  EXPECT_EQ(Run("RPUSH s x"), kWrongType);
  EXPECT_EQ(Run("LPOP s"), kWrongType);
  EXPECT_EQ(Run("RPOP s 2"), kWrongType);
  EXPECT_EQ(Run("LRANGE s 0 -1"), kWrongType);
  EXPECT_EQ(Run("LLEN s"), kWrongType);
  EXPECT_EQ(Run("SET l v GET"), kWrongType);
  EXPECT_EQ(Run("SET l v"), kOk);  // plain SET replaces any type
  EXPECT_EQ(Run("TYPE l"), "+string\r\n");
  Run("RPUSH l2 a");
  EXPECT_EQ(Run("TYPE l2"), "+list\r\n");
  EXPECT_EQ(Run("TYPE none"), "+none\r\n");
}

// --- Keys ---

TEST_F(KvCommandsTest, DelAndExists) {
  Run("MSET a 1 b 2");
  Run("RPUSH l x");
  EXPECT_EQ(Run("EXISTS a b l missing"), Int(3));
  EXPECT_EQ(Run("EXISTS a a a"), Int(3));  // counted each time, as Redis
  EXPECT_EQ(Run("DEL a missing a"), Int(1));
  EXPECT_EQ(Run("DEL l b"), Int(2));
  EXPECT_EQ(Run("EXISTS a b l"), Int(0));
  Run("SET t v PX 10");
  Advance(absl::Milliseconds(10));
  EXPECT_EQ(Run("EXISTS t"), Int(0));
  EXPECT_EQ(Run("DEL t"), Int(0));  // expired keys are not deleted again
}

TEST_F(KvCommandsTest, ExpireTtlPersist) {
  EXPECT_EQ(Run("EXPIRE missing 10"), Int(0));
  EXPECT_EQ(Run("TTL missing"), Int(-2));
  EXPECT_EQ(Run("PTTL missing"), Int(-2));
  Run("SET k v");
  EXPECT_EQ(Run("TTL k"), Int(-1));
  EXPECT_EQ(Run("PTTL k"), Int(-1));
  EXPECT_EQ(Run("PERSIST k"), Int(0));
  EXPECT_EQ(Run("EXPIRE k 100"), Int(1));
  EXPECT_EQ(Run("TTL k"), Int(100));
  EXPECT_EQ(Run("PEXPIRE k 2500"), Int(1));
  EXPECT_EQ(Run("PTTL k"), Int(2500));
  EXPECT_EQ(Run("PERSIST k"), Int(1));
  EXPECT_EQ(Run("TTL k"), Int(-1));
  EXPECT_EQ(Run("EXPIRE k 1"), Int(1));
  Advance(absl::Seconds(1));
  EXPECT_EQ(Run("GET k"), kNil);
  EXPECT_EQ(Run("PERSIST k"), Int(0));
  // A deadline in the past deletes at once.
  Run("SET k v");
  EXPECT_EQ(Run("EXPIRE k -1"), Int(1));
  EXPECT_EQ(Run("EXISTS k"), Int(0));
  Run("SET k v");
  EXPECT_EQ(Run("PEXPIRE k 0"), Int(1));
  EXPECT_EQ(Run("EXISTS k"), Int(0));
  // Errors.
  EXPECT_EQ(Run("EXPIRE k abc"), kNotInteger);
  EXPECT_EQ(Run("EXPIRE k 9223372036854775807"),
            "-ERR invalid expire time in 'expire' command\r\n");
  EXPECT_EQ(Run("PEXPIRE k 9223372036854775807"),
            "-ERR invalid expire time in 'pexpire' command\r\n");
  EXPECT_EQ(Run("EXPIRE k 10 BOGUS"), "-ERR Unsupported option BOGUS\r\n");
}

TEST_F(KvCommandsTest, ExpireConditions) {
  Run("SET k v");
  EXPECT_EQ(Run("EXPIRE k 100 XX"), Int(0));
  EXPECT_EQ(Run("EXPIRE k 100 GT"), Int(0));  // no TTL counts as infinite
  EXPECT_EQ(Run("EXPIRE k 100 NX"), Int(1));
  EXPECT_EQ(Run("EXPIRE k 200 NX"), Int(0));
  EXPECT_EQ(Run("EXPIRE k 50 GT"), Int(0));
  EXPECT_EQ(Run("EXPIRE k 150 GT"), Int(1));
  EXPECT_EQ(Run("EXPIRE k 200 LT"), Int(0));
  EXPECT_EQ(Run("EXPIRE k 20 lt"), Int(1));
  EXPECT_EQ(Run("EXPIRE k 30 XX"), Int(1));
  EXPECT_EQ(Run("TTL k"), Int(30));
  EXPECT_EQ(Run("EXPIRE k 30 NX XX"),
            "-ERR NX and XX, GT or LT options at the same time are not "
            "compatible\r\n");
  EXPECT_EQ(Run("EXPIRE k 30 GT LT"),
            "-ERR GT and LT options at the same time are not compatible\r\n");
}

TEST_F(KvCommandsTest, DbsizeCountsOnlyLiveKeysAndFlushallEmpties) {
  EXPECT_EQ(Run("DBSIZE"), Int(0));
  Run("MSET a 1 b 2");
  Run("SET t v EX 5");
  Run("RPUSH l x");
  EXPECT_EQ(Run("DBSIZE"), Int(4));
  Advance(absl::Seconds(5));
  EXPECT_EQ(Run("DBSIZE"), Int(3));
  EXPECT_EQ(Run("FLUSHALL"), kOk);
  EXPECT_EQ(Run("DBSIZE"), Int(0));
  EXPECT_EQ(Run("FLUSHALL ASYNC"), kOk);
  EXPECT_EQ(Run("FLUSHALL NOW"), kSyntax);
}

TEST_F(KvCommandsTest, KeysMatchesGlobsAndSkipsExpired) {
  Run("MSET hello 1 hallo 2 hxllo 3 hllo 4 heeeello 5 hillo 6 h*llo 7");
  Run("SET gone v EX 1");
  auto keys = [&](const std::string& pattern) {
    std::string reply = RunArgs({"KEYS", pattern});
    std::vector<std::string> out;
    Command cmd;  // the reply has a request's shape
    ParseResult r = ParseCommand(reply, ParseLimits{}, &cmd);
    EXPECT_EQ(r.status, ParseStatus::kComplete) << reply;
    for (std::string_view k : cmd.args) out.emplace_back(k);
    return out;
  };
  EXPECT_EQ(keys("*").size(), 8u);
  EXPECT_THAT(keys("h?llo"), UnorderedElementsAre("hello", "hallo", "hxllo",
                                                  "hillo", "h*llo"));
  EXPECT_THAT(keys("h*llo"),
              UnorderedElementsAre("hello", "hallo", "hxllo", "hllo",
                                   "heeeello", "hillo", "h*llo"));
  EXPECT_THAT(keys("h[ae]llo"), UnorderedElementsAre("hello", "hallo"));
  EXPECT_THAT(keys("h[^e]llo"),
              UnorderedElementsAre("hallo", "hxllo", "hillo", "h*llo"));
  EXPECT_THAT(keys("h[a-f]llo"), UnorderedElementsAre("hello", "hallo"));
  EXPECT_THAT(keys("h\\*llo"), UnorderedElementsAre("h*llo"));
  EXPECT_THAT(keys("nothing*"), ::testing::IsEmpty());
  Advance(absl::Seconds(1));
  EXPECT_EQ(keys("*").size(), 7u);
}

TEST(KvGlob, MatchesAsRedisStringmatch) {
  struct Case {
    std::string_view pattern, s;
    bool match;
  };
  const Case cases[] = {
      {"*", "", true},
      {"*", "anything", true},
      {"", "", true},
      {"", "a", false},
      {"a*", "a", true},
      {"a*b", "axxb", true},
      {"a*b", "axxbc", false},
      {"*a*b*", "xxaxxbxx", true},
      {"**a", "ba", true},
      {"a?c", "abc", true},
      {"a?c", "ac", false},
      {"?", "", false},
      {"[abc]", "b", true},
      {"[abc]", "d", false},
      {"[^abc]", "d", true},
      {"[^abc]", "a", false},
      {"[a-c]x", "bx", true},
      {"[c-a]x", "bx", true},
      {"[a-c]x", "dx", false},
      {"[^a-c]", "z", true},
      {"\\*", "*", true},
      {"\\*", "a", false},
      {"\\?x", "?x", true},
      {"[\\]]", "]", true},
      {"[\\-]", "-", true},
      {"a\\", "a\\", true},
      {"[abc", "b", true},
      {"[]", "a", false},
      {"user:*:name", "user:42:name", true},
      {"user:*:name", "user:42:age", false},
      {"*x*y*z*", "..x..y..z..", true},
      {"*x*y*z*", "..x..z..y..", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(GlobMatch(c.pattern, c.s), c.match)
        << "pattern '" << c.pattern << "' string '" << c.s << "'";
  }
  // No exponential blow-up on patterns that defeat backtracking.
  EXPECT_FALSE(GlobMatch("*a*a*a*a*a*a*a*a*a*a*a*b", std::string(2000, 'a')));
}

// --- Lists ---

TEST_F(KvCommandsTest, PushPopRangeLen) {
  EXPECT_EQ(Run("RPUSH l a b c"), Int(3));
  EXPECT_EQ(Run("LPUSH l z y"), Int(5));  // each pushed to the head in turn
  EXPECT_EQ(Run("LRANGE l 0 -1"), "*5\r\n" + Bulk("y") + Bulk("z") + Bulk("a") +
                                      Bulk("b") + Bulk("c"));
  EXPECT_EQ(Run("LRANGE l 1 2"), "*2\r\n" + Bulk("z") + Bulk("a"));
  EXPECT_EQ(Run("LRANGE l -2 -1"), "*2\r\n" + Bulk("b") + Bulk("c"));
  EXPECT_EQ(Run("LRANGE l -100 0"), "*1\r\n" + Bulk("y"));
  EXPECT_EQ(Run("LRANGE l 3 100"), "*2\r\n" + Bulk("b") + Bulk("c"));
  EXPECT_EQ(Run("LRANGE l 5 10"), "*0\r\n");
  EXPECT_EQ(Run("LRANGE l 2 1"), "*0\r\n");
  EXPECT_EQ(Run("LRANGE l -1 -2"), "*0\r\n");
  EXPECT_EQ(Run("LRANGE missing 0 -1"), "*0\r\n");
  EXPECT_EQ(Run("LRANGE l a 1"), kNotInteger);
  EXPECT_EQ(Run("LLEN l"), Int(5));
  EXPECT_EQ(Run("LLEN missing"), Int(0));
  EXPECT_EQ(Run("LPOP l"), Bulk("y"));
  EXPECT_EQ(Run("RPOP l"), Bulk("c"));
  EXPECT_EQ(Run("LPOP l 2"), "*2\r\n" + Bulk("z") + Bulk("a"));
  EXPECT_EQ(Run("RPOP l 0"), "*0\r\n");
  EXPECT_EQ(Run("RPOP l 10"), "*1\r\n" + Bulk("b"));
  // The emptied list is gone.
  EXPECT_EQ(Run("EXISTS l"), Int(0));
  EXPECT_EQ(Run("LPOP l"), kNil);
  EXPECT_EQ(Run("LPOP l 3"), "*-1\r\n");
  EXPECT_EQ(Run("RPOP l 0"), "*-1\r\n");  // no such key comes first
  EXPECT_EQ(Run("LPOP l -1"),
            "-ERR value is out of range, must be positive\r\n");
  EXPECT_EQ(Run("LPUSH l"),
            "-ERR wrong number of arguments for 'lpush' command\r\n");
}

TEST_F(KvCommandsTest, ListsExpireToo) {
  Run("RPUSH l a b");
  EXPECT_EQ(Run("EXPIRE l 10"), Int(1));
  Advance(absl::Seconds(10));
  EXPECT_EQ(Run("LLEN l"), Int(0));
  EXPECT_EQ(Run("RPUSH l c"), Int(1));  // a new list, no TTL
  EXPECT_EQ(Run("TTL l"), Int(-1));
}

// --- Store: expiry, snapshot, threads ---

TEST(KvStore, ExpireDueDeletesEarliestFirstInBatches) {
  Store store;
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 10; ++i) {
    SetOptions o;
    o.deadline = t0 + absl::Seconds(i + 1);
    ASSERT_TRUE(store.Set("k" + std::to_string(i), "v", o, t0).ok());
  }
  ASSERT_TRUE(store.Set("forever", "v", {}, t0).ok());
  EXPECT_EQ(store.VolatileCount(), 10u);
  EXPECT_EQ(store.ExpireDue(t0 + absl::Seconds(5), 3), 3u);
  EXPECT_EQ(store.ExpireDue(t0 + absl::Seconds(5), 100), 2u);
  EXPECT_EQ(store.ExpireDue(t0 + absl::Seconds(5), 100), 0u);
  EXPECT_EQ(store.VolatileCount(), 5u);
  // Reading without deleting: k5 is alive, k4 gone.
  std::vector<std::string> keys = store.Keys("k*", t0 + absl::Seconds(5));
  EXPECT_THAT(keys, UnorderedElementsAre("k5", "k6", "k7", "k8", "k9"));
  EXPECT_EQ(store.ExpireDue(absl::InfiniteFuture(), 100), 5u);
  EXPECT_EQ(store.Size(t0), 1u);
  EXPECT_EQ(store.VolatileCount(), 0u);
}

TEST(KvStore, DeadlineIndexFollowsOverwritesAndDeletes) {
  Store store;
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  SetOptions ttl;
  ttl.deadline = t0 + absl::Seconds(1);
  ASSERT_TRUE(store.Set("a", "1", ttl, t0).ok());
  ASSERT_TRUE(store.Set("a", "2", {}, t0).ok());  // TTL cleared
  ASSERT_TRUE(store.Set("b", "1", ttl, t0).ok());
  const std::string_view b[] = {"b"};
  EXPECT_EQ(store.Del(b, t0), 1u);
  ASSERT_TRUE(store.Set("b", "again", {}, t0).ok());
  EXPECT_EQ(store.VolatileCount(), 0u);
  EXPECT_EQ(store.ExpireDue(t0 + absl::Hours(1), 100), 0u);
  EXPECT_EQ(*store.Get("a", t0 + absl::Hours(1)), "2");
  EXPECT_EQ(*store.Get("b", t0 + absl::Hours(1)), "again");
}

// A dataset with strings, lists, binary bytes and deadlines.
void Fill(Store* store, absl::Time now) {
  SetOptions ttl;
  ttl.deadline = now + absl::Seconds(1000);
  ASSERT_TRUE(store->Set("plain", "value", {}, now).ok());
  ASSERT_TRUE(store
                  ->Set(std::string("bin\0key", 7),
                        std::string("\0\r\n\xff", 4), ttl, now)
                  .ok());
  ASSERT_TRUE(store->Set("empty", "", {}, now).ok());
  SetOptions soon;
  soon.deadline = now + absl::Milliseconds(1500);
  ASSERT_TRUE(store->Set("soon", "x", soon, now).ok());
  const std::string_view items[] = {"a", "", std::string_view("\0", 1), "ccc"};
  ASSERT_TRUE(store->Push("list", items, false, now).ok());
  ASSERT_TRUE(store->Expire("list", now + absl::Seconds(50),
                            ExpireCondition::kAlways, now));
  SetOptions past;
  past.deadline = now + absl::Milliseconds(1);
  ASSERT_TRUE(store->Set("expired-before-save", "x", past, now).ok());
}

TEST(KvStoreSnapshot, RoundTripKeepsValuesAndAbsoluteDeadlines) {
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  Store a;
  Fill(&a, t0);
  const absl::Time saved_at = t0 + absl::Milliseconds(10);
  std::string blob = a.Serialize(saved_at);
  Store b;
  ASSERT_TRUE(b.Set("stale", "gone after restore", {}, t0).ok());
  // Restored 200 ms later: deadlines are absolute, so TTLs went down.
  const absl::Time restored_at = saved_at + absl::Milliseconds(200);
  ASSERT_TRUE(b.Deserialize(blob, restored_at).ok());
  EXPECT_EQ(b.Size(restored_at), 5u);
  EXPECT_EQ(*b.Get("stale", restored_at), std::nullopt);
  EXPECT_EQ(*b.Get("plain", restored_at), "value");
  EXPECT_EQ(*b.Get("empty", restored_at), "");
  EXPECT_EQ(*b.Get(std::string("bin\0key", 7), restored_at),
            std::string("\0\r\n\xff", 4));
  EXPECT_EQ(b.TimeToLive(std::string("bin\0key", 7), restored_at),
            absl::Seconds(1000) - absl::Milliseconds(210));
  EXPECT_EQ(b.TimeToLive("plain", restored_at), absl::InfiniteDuration());
  EXPECT_EQ(b.TimeToLive("list", restored_at),
            absl::Seconds(50) - absl::Milliseconds(210));
  EXPECT_THAT(*b.Range("list", 0, -1, restored_at),
              ::testing::ElementsAre("a", "", std::string("\0", 1), "ccc"));
  EXPECT_EQ(b.VolatileCount(), 3u);
  // The restored deadline index works: "soon" expires in the background.
  EXPECT_EQ(b.ExpireDue(t0 + absl::Milliseconds(1500), 10), 1u);
  EXPECT_EQ(b.Size(t0 + absl::Milliseconds(1500)), 4u);
  // A restore after a deadline passed drops the key.
  Store c;
  ASSERT_TRUE(c.Deserialize(blob, t0 + absl::Seconds(60)).ok());
  EXPECT_EQ(c.Size(t0 + absl::Seconds(60)), 3u);
  // Serializing again gives the same data (in another hash order).
  Store d;
  const std::string again = b.Serialize(restored_at);
  ASSERT_TRUE(d.Deserialize(again, restored_at).ok());
  EXPECT_EQ(d.Serialize(restored_at).size(), again.size());
  std::vector<std::string> keys = d.Keys("*", restored_at);
  EXPECT_THAT(keys, UnorderedElementsAre("plain", "empty", "list",
                                         std::string("bin\0key", 7)));
  for (const std::string& k : keys) {
    EXPECT_EQ(d.TimeToLive(k, restored_at), b.TimeToLive(k, restored_at));
    EXPECT_EQ(d.TypeName(k, restored_at), b.TypeName(k, restored_at));
  }
}

TEST(KvStoreSnapshot, EmptyStoreRoundTrips) {
  Store a;
  const absl::Time now = absl::FromUnixSeconds(1000);
  std::string blob = a.Serialize(now);
  Store b;
  ASSERT_TRUE(b.Set("x", "y", {}, now).ok());
  ASSERT_TRUE(b.Deserialize(blob, now).ok());
  EXPECT_EQ(b.Size(now), 0u);
}

TEST(KvStoreSnapshot, EveryTruncationIsRejectedAndLeavesTheStoreAlone) {
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  Store a;
  Fill(&a, now);
  const std::string blob = a.Serialize(now);
  Store b;
  ASSERT_TRUE(b.Set("mine", "kept", {}, now).ok());
  for (size_t n = 0; n < blob.size(); ++n) {
    absl::Status s = b.Deserialize(std::string_view(blob).substr(0, n), now);
    ASSERT_FALSE(s.ok()) << "a blob cut to " << n << " of " << blob.size()
                         << " bytes was accepted";
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("kv snapshot")) << s;
  }
  EXPECT_EQ(*b.Get("mine", now), "kept");
  EXPECT_EQ(b.Size(now), 1u);
  absl::Status trailing = b.Deserialize(blob + "x", now);
  EXPECT_TRUE(absl::IsDataLoss(trailing)) << trailing;
  EXPECT_THAT(std::string(b.Deserialize("", now).message()),
              HasSubstr("truncated"));
}

TEST(KvStoreSnapshot, EveryFlippedByteIsRejected) {
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  Store a;
  Fill(&a, now);
  const std::string blob = a.Serialize(now);
  Store b;
  for (size_t i = 0; i < blob.size(); ++i) {
    std::string bad = blob;
    bad[i] = static_cast<char>(bad[i] ^ 0x41);
    absl::Status s = b.Deserialize(bad, now);
    EXPECT_FALSE(s.ok()) << "byte " << i << " flipped was accepted";
  }
  std::string wrong_magic = blob;
  wrong_magic[0] = 'X';
  EXPECT_THAT(std::string(b.Deserialize(wrong_magic, now).message()),
              HasSubstr("bad magic"));
  std::string wrong_version = blob;
  wrong_version[4] = 9;
  EXPECT_THAT(std::string(b.Deserialize(wrong_version, now).message()),
              HasSubstr("version 9 is not supported"));
  std::string wrong_body = blob;
  wrong_body.back() = static_cast<char>(wrong_body.back() ^ 1);
  EXPECT_THAT(std::string(b.Deserialize(wrong_body, now).message()),
              HasSubstr("checksum"));
}

TEST(KvStore, ConcurrentCommandsFromManyThreadsAreAtomic) {
  Store store;
  Dispatcher dispatcher(&store);
  constexpr int kThreads = 4;
  constexpr int kIncrements = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string out;
      const std::string own = "list" + std::to_string(t);
      for (int i = 0; i < kIncrements; ++i) {
        const std::string_view incr[] = {"INCR", "counter"};
        dispatcher.Execute(incr, absl::Now(), &out);
        const std::string_view push[] = {"RPUSH", "shared", own};
        dispatcher.Execute(push, absl::Now(), &out);
        out.clear();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(*store.Get("counter", absl::Now()),
            std::to_string(kThreads * kIncrements));
  EXPECT_EQ(*store.Length("shared", absl::Now()),
            static_cast<size_t>(kThreads * kIncrements));
  EXPECT_EQ(dispatcher.commands_processed(), 2 * kThreads * kIncrements);
}

}  // namespace
}  // namespace baton::kv
