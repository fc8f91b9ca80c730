// Parse work linear in the bytes received (apps/kv/resp.h, RespParser): a
// command arriving in many pieces is parsed through the same resumable API
// baton-kv's connection loop uses, and the parser's own count of the bytes
// it examined (ParseStats) stays within a small constant of the bytes fed,
// however they were split. Plus: resuming never changes the outcome (the
// same commands, the same protocol errors at the same byte) compared with
// parsing from scratch, which is what a process that received the
// connection in a hot restart does.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kv/resp.h"

namespace baton::kv {
namespace {

using Args = std::vector<std::string>;

std::string Multibulk(const Args& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const std::string& a : args) {
    out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  }
  return out;
}

// `n` times `$1\r\na\r\n` after "*n": the hostile shape of issue 13.
std::string ManyTinyArgs(size_t n) {
  std::string out = "*" + std::to_string(n) + "\r\n";
  out.reserve(out.size() + 7 * n);
  for (size_t i = 0; i < n; ++i) out += "$1\r\na\r\n";
  return out;
}

struct Fed {
  std::vector<Args> commands;
  bool error = false;
  std::string error_text;
  size_t error_after = 0;  // bytes fed when the error was reported
  size_t left = 0;         // unconsumed bytes at the end
  ParseStats stats;
};

// Feeds `wire` to one RespParser in pieces of `piece` bytes, as baton-kv's
// Serve() does: after each piece, every complete command at the front is
// parsed and consumed; an unfinished one stays, unconsumed, at the front.
// With `move_buffer`, the inbound bytes move to a fresh allocation after
// every piece and the old one is overwritten, as a compacting or growing
// connection buffer may do.
Fed Feed(std::string_view wire, size_t piece, const ParseLimits& limits = {},
         bool move_buffer = false) {
  Fed fed;
  RespParser parser(limits);
  Command cmd;
  std::string inbound;
  for (size_t sent = 0; sent < wire.size() && !fed.error;) {
    const size_t n = std::min(piece, wire.size() - sent);
    inbound.append(wire.substr(sent, n));
    sent += n;
    size_t pos = 0;
    while (pos < inbound.size()) {
      ParseResult r = parser.Parse(std::string_view(inbound).substr(pos), &cmd);
      if (r.status == ParseStatus::kIncomplete) break;
      if (r.status == ParseStatus::kError) {
        fed.error = true;
        fed.error_text = r.error;
        fed.error_after = sent;
        break;
      }
      pos += r.consumed;
      if (!cmd.args.empty()) {
        fed.commands.emplace_back(cmd.args.begin(), cmd.args.end());
      }
    }
    cmd.Clear();
    inbound.erase(0, pos);
    if (move_buffer) {
      std::string fresh(inbound);
      std::fill(inbound.begin(), inbound.end(), 'X');
      inbound.swap(fresh);
    }
  }
  fed.left = inbound.size();
  fed.stats = parser.stats();
  return fed;
}

// The bound every test asserts: each byte examined at most twice, plus a
// few bytes per call (re-looking at a CR that may now be followed by LF).
void ExpectLinear(const Fed& fed, size_t wire_bytes) {
  EXPECT_LE(fed.stats.bytes_examined, 2 * wire_bytes + 8 * fed.stats.calls)
      << "bytes fed: " << wire_bytes << ", calls: " << fed.stats.calls;
}

TEST(KvRespIncremental, HundredThousandTinyArgumentsIn1400BytePieces) {
  const std::string wire = ManyTinyArgs(100000);  // ~700 KB
  const Fed whole = Feed(wire, wire.size());
  ASSERT_EQ(whole.commands.size(), 1u);
  ASSERT_EQ(whole.commands[0].size(), 100000u);

  const Fed fed = Feed(wire, 1400);
  ASSERT_FALSE(fed.error) << fed.error_text;
  EXPECT_EQ(fed.left, 0u);
  EXPECT_EQ(fed.commands, whole.commands);
  EXPECT_GE(fed.stats.calls, wire.size() / 1400);
  ExpectLinear(fed, wire.size());
  // Re-parsing from the start on every read would examine ~250x the bytes.
}

TEST(KvRespIncremental, TinyArgumentsWhileTheBufferMoves) {
  const std::string wire = ManyTinyArgs(20000);
  const Fed whole = Feed(wire, wire.size());
  const Fed fed = Feed(wire, 1400, ParseLimits(), /*move_buffer=*/true);
  ASSERT_FALSE(fed.error) << fed.error_text;
  EXPECT_EQ(fed.commands, whole.commands);
  ExpectLinear(fed, wire.size());
}

TEST(KvRespIncremental, OneByteAtATime) {
  Args args;
  for (int i = 0; i < 1000; ++i) {
    args.push_back(std::string(static_cast<size_t>(i % 37), 'x') +
                   std::to_string(i));
  }
  const std::string wire = Multibulk(args);
  const Fed fed = Feed(wire, 1, ParseLimits(), /*move_buffer=*/true);
  ASSERT_FALSE(fed.error) << fed.error_text;
  ASSERT_EQ(fed.commands.size(), 1u);
  EXPECT_EQ(fed.commands[0], args);
  EXPECT_EQ(fed.stats.calls, wire.size());
  ExpectLinear(fed, wire.size());
}

TEST(KvRespIncremental, LargeBulkStringInSmallPieces) {
  std::string value(size_t{8} << 20, 'v');
  for (size_t i = 0; i < value.size(); i += 4096) value[i] = '\r';
  const Args args = {"SET", "key", value};
  const std::string wire = Multibulk(args);
  for (size_t piece : {size_t{1400}, size_t{1} << 16}) {
    const Fed fed = Feed(wire, piece);
    ASSERT_FALSE(fed.error) << fed.error_text;
    ASSERT_EQ(fed.commands.size(), 1u);
    EXPECT_EQ(fed.commands[0], args);
    ExpectLinear(fed, wire.size());
  }
}

TEST(KvRespIncremental, LongHeaderAndInlineLinesOneByteAtATime) {
  // A "$N" header padded to the 64 KiB line limit would be rescanned for its
  // CRLF on every byte without the remembered search position. Leading
  // zeros are invalid, so the long line is an inline command instead, and a
  // header line of maximal length is an error found at the same byte.
  std::string inline_cmd = "SET k " + std::string(60000, 'z') + "\r\n";
  Fed fed = Feed(inline_cmd, 1);
  ASSERT_FALSE(fed.error) << fed.error_text;
  ASSERT_EQ(fed.commands.size(), 1u);
  EXPECT_EQ(fed.commands[0], (Args{"SET", "k", std::string(60000, 'z')}));
  ExpectLinear(fed, inline_cmd.size());

  const std::string endless_header = "*1\r\n$" + std::string(70000, '1');
  fed = Feed(endless_header, 1);
  EXPECT_TRUE(fed.error);
  EXPECT_EQ(fed.error_text, "Protocol error: too big bulk count string");
  // The line is 64 KiB + 1 bytes without a CRLF: refused then, not later.
  EXPECT_EQ(fed.error_after, 4 + (size_t{64} << 10) + 1);
  ExpectLinear(fed, fed.error_after);
}

TEST(KvRespIncremental, SplitsInsideCrlfAndLengthHeaders) {
  const std::string value = "0123456789";
  const std::string wire = Multibulk({"SET", "k", value});
  // Every two-way split, and every three-way split, of the command.
  for (size_t i = 1; i < wire.size(); ++i) {
    for (size_t j = i; j < wire.size(); ++j) {
      RespParser parser;
      Command cmd;
      std::string inbound;
      ParseResult r;
      for (size_t end : {i, j, wire.size()}) {
        inbound.assign(wire, 0, end);
        r = parser.Parse(inbound, &cmd);
        if (end < wire.size()) {
          ASSERT_EQ(r.status, ParseStatus::kIncomplete) << i << " " << j;
        }
      }
      ASSERT_EQ(r.status, ParseStatus::kComplete) << i << " " << j;
      EXPECT_EQ(r.consumed, wire.size());
      EXPECT_EQ(Args(cmd.args.begin(), cmd.args.end()),
                (Args{"SET", "k", value}));
    }
  }
}

TEST(KvRespIncremental, InlineCommandsSplitAcrossReads) {
  const std::string wire =
      "SET k \"a b\\x41\"\r\nGET k\nPING\r\n  \r\nECHO 'it''s'\r\n";
  const Fed whole = Feed(wire, wire.size());
  for (size_t piece = 1; piece <= 7; ++piece) {
    const Fed fed = Feed(wire, piece, ParseLimits(), /*move_buffer=*/true);
    EXPECT_EQ(fed.error, whole.error) << piece;
    EXPECT_EQ(fed.error_text, whole.error_text) << piece;
    EXPECT_EQ(fed.commands, whole.commands) << piece;
  }
  EXPECT_EQ(whole.commands[0], (Args{"SET", "k", "a bA"}));
}

TEST(KvRespIncremental, PipelineOfManyCommands) {
  std::string wire;
  std::vector<Args> expected;
  for (int i = 0; i < 5000; ++i) {
    const std::string key = "key:" + std::to_string(i);
    if (i % 3 == 0) {
      wire += "GET " + key + "\r\n";
      expected.push_back({"GET", key});
    } else {
      Args set = {"SET", key, std::string(static_cast<size_t>(i % 200), 'p')};
      wire += Multibulk(set);
      expected.push_back(set);
    }
  }
  for (size_t piece : {size_t{1}, size_t{13}, size_t{1400}}) {
    const Fed fed = Feed(wire, piece);
    ASSERT_FALSE(fed.error) << fed.error_text;
    EXPECT_EQ(fed.left, 0u);
    EXPECT_EQ(fed.commands, expected) << piece;
    ExpectLinear(fed, wire.size());
  }
}

// For every prefix of `wire`, byte by byte, the resumed parser says what a
// fresh parse of the same bytes says (the status, the bytes taken, the
// arguments, the error), consuming complete commands as the server does.
void ExpectSameAsFromScratch(std::string_view wire, const ParseLimits& limits) {
  RespParser parser(limits);
  Command resumed;
  Command fresh;
  size_t start = 0;
  for (size_t end = start + 1; end <= wire.size(); ++end) {
    const std::string_view in = wire.substr(start, end - start);
    const ParseResult a = parser.Parse(in, &resumed);
    const ParseResult b = ParseCommand(in, limits, &fresh);
    ASSERT_EQ(a.status, b.status) << "after byte " << end << " of " << wire;
    ASSERT_EQ(a.error, b.error) << "after byte " << end;
    if (a.status == ParseStatus::kError) return;
    if (a.status == ParseStatus::kComplete) {
      ASSERT_EQ(a.consumed, b.consumed);
      ASSERT_EQ(resumed.args, fresh.args);
      start += a.consumed;
      end = start;  // the loop's ++end looks at the next byte
    }
  }
}

TEST(KvRespIncremental, ProtocolErrorsAtTheSameByteAsFromScratch) {
  ParseLimits small;
  small.max_inline_bytes = 16;
  small.max_bulk_bytes = 32;
  small.max_array = 4;
  const std::vector<std::string> inputs = {
      "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n",
      "*1\r\n$3\r\nGETX\r\n",          // bulk not terminated by CRLF
      "*2\r\n$3\r\nGET\r\n+oops\r\n",  // expected '$'
      "*x\r\n",
      "*01\r\n",
      "*5\r\n",         // over max_array
      "*1\r\n$33\r\n",  // over max_bulk_bytes
      "*1\r\n$-1\r\n",
      "*1\r\n$1234567890123456789\r\n",  // header line over 16 bytes
      "*12345678901234567890",           // no CRLF, over 16 bytes
      "*1\r\n$3\r\r\n",
      "*1\r\n$3\r\nabc\r",
      "*0\r\n*-1\r\nPING\r\n*1\r\n$4\r\nPING\r\n",
      "GET \"unbalanced\r\n",
      "SET k 'a'b\r\n",
      "01234567890123456789\r\n",  // inline over 16 bytes
      "0123456789012345\r\n",      // inline of exactly 16 bytes
      std::string("ECHO a\0b\r\nPING\n", 15),
      "\r\n\r\nPING\r\n",
  };
  for (const std::string& wire : inputs) {
    SCOPED_TRACE(wire);
    ExpectSameAsFromScratch(wire, small);
    ExpectSameAsFromScratch(wire, ParseLimits());
  }
  const std::string pipeline =
      Multibulk({"SET", "a", "1"}) + "PING\r\n" + Multibulk({"GET", "a"});
  ExpectSameAsFromScratch(pipeline + pipeline, small);
}

TEST(KvRespIncremental, ErrorsFedInPiecesMatchTheWhole) {
  const std::string wire = Multibulk({"SET", "k", "v"}) +
                           "*2\r\n$3\r\nGET\r\n" + "$3\r\nkeyX\r\n" +
                           Multibulk({"PING"});
  const Fed whole = Feed(wire, wire.size());
  ASSERT_TRUE(whole.error);
  EXPECT_EQ(whole.error_text,
            "Protocol error: bulk string not terminated by "
            "CRLF");
  for (size_t piece = 1; piece <= 9; ++piece) {
    const Fed fed = Feed(wire, piece);
    EXPECT_TRUE(fed.error);
    EXPECT_EQ(fed.error_text, whole.error_text);
    EXPECT_EQ(fed.commands, whole.commands);
    // Reported with the piece that brought the two bytes after the bulk.
    EXPECT_GE(fed.error_after, wire.find("keyX") + 5);
    EXPECT_LT(fed.error_after, wire.find("keyX") + 5 + piece);
  }
}

}  // namespace
}  // namespace baton::kv
