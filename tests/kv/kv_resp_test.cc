// RESP2 parser and encoders of baton-kv (apps/kv/resp.h).
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kv/resp.h"

namespace baton::kv {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<std::string> Args(const Command& c) {
  return std::vector<std::string>(c.args.begin(), c.args.end());
}

struct Parsed {
  ParseResult result;
  std::vector<std::string> args;
};

Parsed Parse(std::string_view input, const ParseLimits& limits = {}) {
  Command c;
  Parsed p;
  p.result = ParseCommand(input, limits, &c);
  p.args = Args(c);
  return p;
}

std::string Multibulk(const std::vector<std::string>& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const std::string& a : args) {
    out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  }
  return out;
}

// Parses every complete command of `input`, in order; stops at the first
// incomplete one (its bytes are left) or error.
struct Drained {
  std::vector<std::vector<std::string>> commands;
  size_t consumed = 0;
  bool error = false;
};

Drained ParseAll(std::string_view input, const ParseLimits& limits = {}) {
  Drained d;
  Command c;
  while (d.consumed < input.size()) {
    ParseResult r = ParseCommand(input.substr(d.consumed), limits, &c);
    if (r.status == ParseStatus::kIncomplete) break;
    if (r.status == ParseStatus::kError) {
      d.error = true;
      break;
    }
    EXPECT_GT(r.consumed, 0u);
    d.consumed += r.consumed;
    if (!c.args.empty()) d.commands.push_back(Args(c));
  }
  return d;
}

TEST(KvRespParse, MultibulkCommand) {
  Parsed p = Parse("*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n");
  ASSERT_EQ(p.result.status, ParseStatus::kComplete);
  EXPECT_EQ(p.result.consumed, 22u);
  EXPECT_THAT(p.args, ElementsAre("GET", "key"));
}

TEST(KvRespParse, BulkStringsAreBinarySafe) {
  std::string value("a\r\nb\0c*$\n", 9);
  Parsed p = Parse(Multibulk({"SET", "k", value, ""}));
  ASSERT_EQ(p.result.status, ParseStatus::kComplete);
  EXPECT_THAT(p.args, ElementsAre("SET", "k", value, ""));
}

TEST(KvRespParse, ConsumesExactlyOneCommandOfAPipeline) {
  const std::string first = Multibulk({"SET", "a", "1"});
  const std::string second = Multibulk({"GET", "a"});
  Parsed p = Parse(first + second + "*1\r\n$4\r\nPI");
  ASSERT_EQ(p.result.status, ParseStatus::kComplete);
  EXPECT_EQ(p.result.consumed, first.size());
  Drained d = ParseAll(first + second + "*1\r\n$4\r\nPI");
  EXPECT_FALSE(d.error);
  EXPECT_EQ(d.consumed, first.size() + second.size());
  ASSERT_EQ(d.commands.size(), 2u);
  EXPECT_THAT(d.commands[1], ElementsAre("GET", "a"));
}

TEST(KvRespParse, EmptyArraysAreSkippedAsRedisDoes) {
  for (std::string_view input : {"*0\r\n", "*-1\r\n"}) {
    Parsed p = Parse(input);
    ASSERT_EQ(p.result.status, ParseStatus::kComplete) << input;
    EXPECT_EQ(p.result.consumed, input.size());
    EXPECT_THAT(p.args, IsEmpty());
  }
}

// Every proper prefix of a command is "need more", never an error and
// never a command; the whole is exactly one command.
TEST(KvRespParse, EveryPrefixIsIncompleteAndTheWholeIsComplete) {
  const std::vector<std::string> cases = {
      Multibulk({"SET", "key", "value"}),
      Multibulk({"SET", "k", std::string("\r\n\r\n\0", 5)}),
      Multibulk({""}),
      Multibulk({"LPUSH", "list", "a", "bb", "ccc", std::string(300, 'x')}),
      "PING\r\n",
      "set k \"a b\\x41\\n\" 'it\\'s'\r\n",
      "GET key\n",
  };
  for (const std::string& cmd : cases) {
    for (size_t n = 0; n < cmd.size(); ++n) {
      Parsed p = Parse(std::string_view(cmd).substr(0, n));
      EXPECT_EQ(p.result.status, ParseStatus::kIncomplete)
          << "prefix of " << n << " bytes of " << cmd << ": " << p.result.error;
    }
    Parsed p = Parse(cmd);
    ASSERT_EQ(p.result.status, ParseStatus::kComplete) << cmd;
    EXPECT_EQ(p.result.consumed, cmd.size()) << cmd;
  }
}

// A stream of pipelined commands split in two at every byte position
// parses to the same commands as the whole stream.
TEST(KvRespParse, SplitAtEveryBytePositionGivesTheSameCommands) {
  const std::string stream =
      Multibulk({"SET", "a", std::string("x\r\ny", 4)}) + "PING\r\n" +
      Multibulk({"MSET", "k1", "v1", "k2", ""}) + "\r\n" +
      "ECHO \"hi there\"\r\n" + Multibulk({"GET", "a"}) + "*0\r\n";
  Drained whole = ParseAll(stream);
  ASSERT_FALSE(whole.error);
  ASSERT_EQ(whole.consumed, stream.size());
  ASSERT_EQ(whole.commands.size(), 5u);
  EXPECT_THAT(whole.commands[3], ElementsAre("ECHO", "hi there"));
  for (size_t split = 0; split <= stream.size(); ++split) {
    // What a server holds after the first part arrived...
    Drained first = ParseAll(std::string_view(stream).substr(0, split));
    ASSERT_FALSE(first.error) << "split at " << split;
    // ... and after the rest arrived behind the unconsumed bytes.
    Drained rest = ParseAll(std::string_view(stream).substr(first.consumed));
    ASSERT_FALSE(rest.error) << "split at " << split;
    EXPECT_EQ(first.consumed + rest.consumed, stream.size());
    std::vector<std::vector<std::string>> all = first.commands;
    all.insert(all.end(), rest.commands.begin(), rest.commands.end());
    EXPECT_EQ(all, whole.commands) << "split at " << split;
  }
}

TEST(KvRespParse, InlineCommands) {
  EXPECT_THAT(Parse("PING\r\n").args, ElementsAre("PING"));
  EXPECT_THAT(Parse("PING\n").args, ElementsAre("PING"));
  EXPECT_THAT(Parse("  set   a \t b  \r\n").args, ElementsAre("set", "a", "b"));
  Parsed empty = Parse("\r\n");
  EXPECT_EQ(empty.result.status, ParseStatus::kComplete);
  EXPECT_EQ(empty.result.consumed, 2u);
  EXPECT_THAT(empty.args, IsEmpty());
  // Redis splits a C string: NUL ends the line's words.
  EXPECT_THAT(Parse(std::string("GET a\0b\r\n", 9)).args,
              ElementsAre("GET", "a"));
}

TEST(KvRespParse, InlineQuotesFollowRedis) {
  EXPECT_THAT(Parse("SET k \"hello world\"\r\n").args,
              ElementsAre("SET", "k", "hello world"));
  EXPECT_THAT(Parse("ECHO \"\\x41\\x62\\n\\t\\\\\\\"\"\r\n").args,
              ElementsAre("ECHO", "Ab\n\t\\\""));
  EXPECT_THAT(Parse("ECHO 'it\\'s \"raw\"'\r\n").args,
              ElementsAre("ECHO", "it's \"raw\""));
  EXPECT_THAT(Parse("ECHO \"\"\r\n").args, ElementsAre("ECHO", ""));
  EXPECT_THAT(Parse("ECHO a\"b c\"\r\n").args, ElementsAre("ECHO", "ab c"));
  for (std::string_view bad : {"ECHO \"abc\r\n", "ECHO 'abc\r\n",
                               "ECHO \"a\"b\r\n", "ECHO 'a'b\r\n"}) {
    Parsed p = Parse(bad);
    ASSERT_EQ(p.result.status, ParseStatus::kError) << bad;
    EXPECT_EQ(p.result.error, "Protocol error: unbalanced quotes in request");
  }
}

TEST(KvRespParse, ProtocolErrorsAreWordedAsRedis) {
  struct Case {
    std::string input;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"*abc\r\n", "Protocol error: invalid multibulk length"},
      {"*1x\r\n", "Protocol error: invalid multibulk length"},
      {"*+1\r\n", "Protocol error: invalid multibulk length"},
      {"*1\r\n:5\r\n", "Protocol error: expected '$', got ':'"},
      {"*2\r\n$1\r\na\r\n+b\r\n", "Protocol error: expected '$', got '+'"},
      {"*1\r\n$abc\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\n$99999999999999999999\r\n",
       "Protocol error: invalid bulk length"},
      {"*1\r\n$1\r\naXY", "Protocol error: bulk string not terminated by CRLF"},
  };
  for (const Case& c : cases) {
    Parsed p = Parse(c.input);
    ASSERT_EQ(p.result.status, ParseStatus::kError) << c.input;
    EXPECT_EQ(p.result.error, c.error) << c.input;
  }
}

TEST(KvRespParse, BulkLengthLimitIsCheckedBeforeTheDataArrives) {
  ParseLimits limits;
  limits.max_bulk_bytes = 1000;
  Parsed at_limit = Parse("*1\r\n$1000\r\n", limits);
  EXPECT_EQ(at_limit.result.status, ParseStatus::kIncomplete);
  Parsed over = Parse("*1\r\n$1001\r\n", limits);
  ASSERT_EQ(over.result.status, ParseStatus::kError);
  EXPECT_EQ(over.result.error, "Protocol error: invalid bulk length");
  // The default: 64 MiB.
  EXPECT_EQ(Parse("*1\r\n$67108864\r\n").result.status,
            ParseStatus::kIncomplete);
  EXPECT_EQ(Parse("*1\r\n$67108865\r\n").result.status, ParseStatus::kError);
  std::string big(1000, 'v');
  EXPECT_THAT(Parse(Multibulk({big}), limits).args, ElementsAre(big));
}

TEST(KvRespParse, ArraySizeLimit) {
  ParseLimits limits;
  limits.max_array = 3;
  EXPECT_EQ(Parse("*3\r\n", limits).result.status, ParseStatus::kIncomplete);
  Parsed over = Parse("*4\r\n", limits);
  ASSERT_EQ(over.result.status, ParseStatus::kError);
  EXPECT_EQ(over.result.error, "Protocol error: invalid multibulk length");
  // The default: 1M elements; a huge count reserves nothing up front.
  EXPECT_EQ(Parse("*1048576\r\n$1\r\na\r\n").result.status,
            ParseStatus::kIncomplete);
  EXPECT_EQ(Parse("*1048577\r\n").result.status, ParseStatus::kError);
}

TEST(KvRespParse, LinesWithoutAnEndAreBounded) {
  ParseLimits limits;
  limits.max_inline_bytes = 100;
  EXPECT_EQ(Parse(std::string(100, 'a'), limits).result.status,
            ParseStatus::kIncomplete);
  Parsed inline_long = Parse(std::string(101, 'a'), limits);
  ASSERT_EQ(inline_long.result.status, ParseStatus::kError);
  EXPECT_EQ(inline_long.result.error, "Protocol error: too big inline request");
  Parsed count = Parse("*" + std::string(200, '1'), limits);
  ASSERT_EQ(count.result.status, ParseStatus::kError);
  EXPECT_EQ(count.result.error, "Protocol error: too big mbulk count string");
  Parsed bulk = Parse("*1\r\n$" + std::string(200, '1'), limits);
  ASSERT_EQ(bulk.result.status, ParseStatus::kError);
  EXPECT_EQ(bulk.result.error, "Protocol error: too big bulk count string");
  // The default: 64 KiB, as Redis.
  EXPECT_EQ(Parse(std::string(64 << 10, 'a')).result.status,
            ParseStatus::kIncomplete);
  EXPECT_EQ(Parse(std::string((64 << 10) + 1, 'a')).result.status,
            ParseStatus::kError);
}

TEST(KvRespParse, ParseInt64IsRedisStrict) {
  int64_t v = 0;
  EXPECT_TRUE(ParseInt64("0", &v));
  EXPECT_EQ(v, 0);
  EXPECT_TRUE(ParseInt64("-42", &v));
  EXPECT_EQ(v, -42);
  EXPECT_TRUE(ParseInt64("9223372036854775807", &v));
  EXPECT_EQ(v, std::numeric_limits<int64_t>::max());
  EXPECT_TRUE(ParseInt64("-9223372036854775808", &v));
  EXPECT_EQ(v, std::numeric_limits<int64_t>::min());
  for (std::string_view bad :
       {"", "-", "+1", " 1", "1 ", "01", "-0", "1.5", "abc",
        "9223372036854775808", "-9223372036854775809", "99999999999999999999",
        "184467440737095516160"}) {
    EXPECT_FALSE(ParseInt64(bad, &v)) << bad;
  }
}

TEST(KvRespEncode, EveryReplyType) {
  std::string out;
  AppendSimpleString(&out, "OK");
  EXPECT_EQ(out, "+OK\r\n");
  out.clear();
  AppendError(&out, "ERR syntax error");
  EXPECT_EQ(out, "-ERR syntax error\r\n");
  out.clear();
  AppendInteger(&out, -123);
  AppendInteger(&out, std::numeric_limits<int64_t>::max());
  EXPECT_EQ(out, ":-123\r\n:9223372036854775807\r\n");
  out.clear();
  AppendBulkString(&out, std::string("a\r\n\0", 4));
  AppendBulkString(&out, "");
  AppendNullBulkString(&out);
  EXPECT_EQ(out, std::string("$4\r\na\r\n\0\r\n$0\r\n\r\n$-1\r\n", 21));
  out.clear();
  AppendArrayHeader(&out, 2);
  AppendNullArray(&out);
  EXPECT_EQ(out, "*2\r\n*-1\r\n");
}

TEST(KvRespEncode, ErrorsCannotBreakFraming) {
  std::string out;
  AppendError(&out, "ERR unknown command 'a\r\nb'");
  EXPECT_EQ(out, "-ERR unknown command 'a  b'\r\n");
}

TEST(KvRespEncode, RepliesParseBackAsTheyWereEncoded) {
  // A reply array of bulk strings has the shape of a request: the parser
  // reads it back.
  std::string out;
  AppendArrayHeader(&out, 3);
  AppendBulkString(&out, "one");
  AppendBulkString(&out, "");
  AppendBulkString(&out, std::string(70000, 'z'));
  Parsed p = Parse(out);
  ASSERT_EQ(p.result.status, ParseStatus::kComplete) << p.result.error;
  EXPECT_THAT(p.args, ElementsAre("one", "", std::string(70000, 'z')));
}

}  // namespace
}  // namespace baton::kv
