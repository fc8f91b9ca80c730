// Tests for the HTTP/1.1 request parser of baton-httpd (pure functions: no
// sockets) and for the handler's pure parts (responses, handoff state).
#include "httpd/http_parser.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "httpd/handler.h"

namespace baton::http {
namespace {

const Limits kLimits;

ParseResult Parse(std::string_view in) { return ParseRequest(in, kLimits); }

// Feeds `in` one byte more at a time to one ParseState (as a connection
// receiving a byte per read would), stopping at the first result that is
// not kNeedMore; the last call sees all of `in`.
ParseResult ParseByteByByte(std::string_view in,
                            const Limits& limits = kLimits) {
  ParseState state;
  for (size_t n = 1; n < in.size(); ++n) {
    ParseResult r = ParseRequest(in.substr(0, n), limits, &state);
    if (r.status != ParseStatus::kNeedMore) return r;
  }
  return ParseRequest(in, limits, &state);
}

std::string Describe(const ParseResult& r) {
  switch (r.status) {
    case ParseStatus::kComplete:
      return "complete(" + std::to_string(r.size) + ")";
    case ParseStatus::kNeedMore:
      return "need more";
    case ParseStatus::kError:
      return "error " + std::to_string(r.error) + " (" + std::string(r.reason) +
             ")";
  }
  return "?";
}

constexpr std::string_view kGet =
    "GET /plaintext?x=1 HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "User-Agent: test/1.0\r\n"
    "Accept:   */*  \r\n"
    "\r\n";

constexpr std::string_view kChunked =
    "POST /echo HTTP/1.1\r\n"
    "Host: h\r\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n"
    "5;name=value;flag\r\n"
    "Hello\r\n"
    "0007 \r\n"
    ", World\r\n"
    "1\r\n"
    "!\r\n"
    "0\r\n"
    "X-Trailer: yes\r\n"
    "X-Other: also\r\n"
    "\r\n";

TEST(HttpParserTest, ParsesRequestLineAndHeaders) {
  ParseResult r = Parse(kGet);
  ASSERT_EQ(r.status, ParseStatus::kComplete) << Describe(r);
  EXPECT_EQ(r.size, kGet.size());
  const Request& q = r.request;
  EXPECT_EQ(q.method, "GET");
  EXPECT_EQ(q.target, "/plaintext?x=1");
  EXPECT_EQ(q.Path(), "/plaintext");
  EXPECT_EQ(q.minor_version, 1);
  ASSERT_EQ(q.headers.size(), 3u);
  EXPECT_EQ(q.headers[0].name, "Host");
  EXPECT_EQ(q.headers[0].value, "example.com");
  EXPECT_EQ(q.Find("accept"), "*/*");  // case-insensitive, OWS trimmed
  EXPECT_EQ(q.Find("USER-AGENT"), "test/1.0");
  EXPECT_FALSE(q.Find("Cookie").has_value());
  EXPECT_TRUE(q.keep_alive);
  EXPECT_FALSE(q.chunked);
  EXPECT_TRUE(q.body.empty());
}

TEST(HttpParserTest, EveryProperPrefixNeedsMore) {
  for (std::string_view in : {kGet, kChunked}) {
    for (size_t n = 0; n < in.size(); ++n) {
      ParseResult r = Parse(in.substr(0, n));
      EXPECT_EQ(r.status, ParseStatus::kNeedMore)
          << "prefix of " << n << " bytes: " << Describe(r);
    }
  }
}

TEST(HttpParserTest, SkipsEmptyLinesBeforeTheRequestLine) {
  std::string in = "\r\n\r\n" + std::string(kGet);
  ParseResult r = Parse(in);
  ASSERT_EQ(r.status, ParseStatus::kComplete) << Describe(r);
  EXPECT_EQ(r.size, in.size());
  EXPECT_EQ(r.request.method, "GET");
}

TEST(HttpParserTest, ContentLengthBody) {
  std::string in =
      "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n"
      "hello world";
  ParseResult r = Parse(in + "GET");  // the next request's bytes follow
  ASSERT_EQ(r.status, ParseStatus::kComplete) << Describe(r);
  EXPECT_EQ(r.size, in.size());
  EXPECT_EQ(r.request.body, "hello world");
  // A missing body byte: the header section is known to be complete.
  ParseResult partial = Parse(std::string_view(in).substr(0, in.size() - 1));
  EXPECT_EQ(partial.status, ParseStatus::kNeedMore);
  EXPECT_TRUE(partial.head_complete);
  EXPECT_FALSE(Parse(std::string_view(in).substr(0, 20)).head_complete);
}

TEST(HttpParserTest, RepeatedIdenticalContentLengthIsAccepted) {
  ParseResult r = Parse(
      "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n"
      "Content-Length: 3\r\n\r\nabc");
  ASSERT_EQ(r.status, ParseStatus::kComplete) << Describe(r);
  EXPECT_EQ(r.request.body, "abc");
}

TEST(HttpParserTest, ZeroContentLengthAndNoBody) {
  ParseResult r =
      Parse("POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete) << Describe(r);
  EXPECT_TRUE(r.request.body.empty());
}

TEST(HttpParserTest, ChunkedBodyWithExtensionsAndTrailers) {
  ParseResult r = Parse(kChunked);
  ASSERT_EQ(r.status, ParseStatus::kComplete) << Describe(r);
  EXPECT_EQ(r.size, kChunked.size());
  EXPECT_TRUE(r.request.chunked);
  EXPECT_EQ(r.request.body, "Hello, World!");
}

TEST(HttpParserTest, ChunkedSplitAtEveryBytePosition) {
  const std::string in = std::string(kChunked) + "GET / HTTP/1.1\r\n";
  for (size_t split = 0; split <= kChunked.size(); ++split) {
    // One state across the two halves, as the handler keeps it across
    // reads.
    ParseState state;
    ParseResult first =
        ParseRequest(std::string_view(in).substr(0, split), kLimits, &state);
    if (split < kChunked.size()) {
      ASSERT_EQ(first.status, ParseStatus::kNeedMore)
          << "split " << split << ": " << Describe(first);
    }
    // A state is done with once its request is complete.
    ParseResult r = first.status == ParseStatus::kComplete
                        ? std::move(first)
                        : ParseRequest(in, kLimits, &state);
    ASSERT_EQ(r.status, ParseStatus::kComplete)
        << "split " << split << ": " << Describe(r);
    EXPECT_EQ(r.size, kChunked.size()) << "split " << split;
    EXPECT_EQ(r.request.body, "Hello, World!") << "split " << split;
    EXPECT_EQ(r.request.method, "POST");
    EXPECT_EQ(r.request.Find("transfer-encoding"), "chunked");
  }
  // And a byte at a time.
  ParseResult r = ParseByteByByte(kChunked);
  ASSERT_EQ(r.status, ParseStatus::kComplete) << Describe(r);
  EXPECT_EQ(r.request.body, "Hello, World!");
}

TEST(HttpParserTest, PipelinedRequestsParseOneAfterAnother) {
  std::string in;
  std::vector<std::string> targets;
  for (int i = 0; i < 20; ++i) {
    targets.push_back("/r" + std::to_string(i));
    in += "GET " + targets.back() + " HTTP/1.1\r\nHost: h\r\n\r\n";
    if (i % 5 == 0) {
      in += "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi";
      targets.push_back("/echo");
    }
  }
  in += "GET /partial HTTP/1.1\r\nHo";
  std::string_view rest = in;
  size_t i = 0;
  while (true) {
    ParseResult r = Parse(rest);
    if (r.status == ParseStatus::kNeedMore) break;
    ASSERT_EQ(r.status, ParseStatus::kComplete) << Describe(r);
    ASSERT_LT(i, targets.size());
    EXPECT_EQ(r.request.target, targets[i]);
    ++i;
    rest.remove_prefix(r.size);
  }
  EXPECT_EQ(i, targets.size());
  EXPECT_EQ(rest, "GET /partial HTTP/1.1\r\nHo");
}

TEST(HttpParserTest, KeepAliveRules) {
  auto keep_alive = [](std::string_view in) {
    ParseResult r = Parse(in);
    EXPECT_EQ(r.status, ParseStatus::kComplete) << Describe(r);
    return r.request.keep_alive;
  };
  EXPECT_TRUE(keep_alive("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
  EXPECT_FALSE(
      keep_alive("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
  EXPECT_FALSE(
      keep_alive("GET / HTTP/1.1\r\nHost: h\r\nConnection: x, Close\r\n\r\n"));
  EXPECT_FALSE(keep_alive("GET / HTTP/1.0\r\n\r\n"));  // no Host needed
  EXPECT_TRUE(keep_alive("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
  EXPECT_FALSE(keep_alive(
      "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"));
  ParseResult r = Parse("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(r.request.minor_version, 0);
  // HTTP/1.x with x > 1 is served as 1.1.
  r = Parse("GET / HTTP/1.7\r\nHost: h\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete) << Describe(r);
  EXPECT_EQ(r.request.minor_version, 1);
}

TEST(HttpParserTest, ExpectContinueIsReportedWhileTheBodyIsMissing) {
  std::string_view in =
      "POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
      "Content-Length: 4\r\n\r\n";
  ParseResult r = Parse(in);
  EXPECT_EQ(r.status, ParseStatus::kNeedMore);
  EXPECT_TRUE(r.head_complete);
  EXPECT_TRUE(r.expect_continue);
  r = Parse(std::string(in) + "abcd");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_TRUE(r.request.expect_continue);
  // Without a body there is nothing to continue to.
  r = Parse("GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_EQ(r.status, ParseStatus::kComplete);
}

TEST(HttpParserTest, PathOfEveryTargetForm) {
  auto path = [](std::string target) {
    std::string in = "GET " + target + " HTTP/1.1\r\nHost: h\r\n\r\n";
    ParseResult r = Parse(in);
    EXPECT_EQ(r.status, ParseStatus::kComplete) << Describe(r);
    return std::string(r.request.Path());
  };
  EXPECT_EQ(path("/json"), "/json");
  EXPECT_EQ(path("/json?a=b&c"), "/json");
  EXPECT_EQ(path("http://example.com:80/json?q"), "/json");
  EXPECT_EQ(path("HTTPS://example.com"), "/");
  EXPECT_EQ(path("*"), "*");
}

struct ErrorCase {
  const char* name;
  std::string input;
  int status;
};

std::vector<ErrorCase> ErrorCases() {
  const std::string host = "Host: h\r\n";
  const std::string post = "POST /echo HTTP/1.1\r\n" + host;
  const std::string chunked = post + "Transfer-Encoding: chunked\r\n\r\n";
  std::vector<ErrorCase> cases = {
      // Request line.
      {"bare LF", "GET / HTTP/1.1\nHost: h\n\n", 400},
      {"bare CR", "GET / HTTP/1.1\r\rHost: h\r\n\r\n", 400},
      {"two spaces", "GET  / HTTP/1.1\r\n" + host + "\r\n", 400},
      {"trailing space", "GET / HTTP/1.1 \r\n" + host + "\r\n", 400},
      {"no version", "GET /\r\n\r\n", 400},
      {"bad method", "G(T / HTTP/1.1\r\n" + host + "\r\n", 400},
      {"bad target", "GET /a\x7f HTTP/1.1\r\n" + host + "\r\n", 400},
      {"bad version", "GET / HTTX/1.1\r\n" + host + "\r\n", 400},
      {"version letters", "GET / HTTP/a.b\r\n" + host + "\r\n", 400},
      {"HTTP/2", "GET / HTTP/2.0\r\n" + host + "\r\n", 505},
      {"HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", 505},
      {"binary (TLS hello)", std::string("\x16\x03\x01\x02\x00\x01", 6), 400},
      {"NUL in request line", std::string("GET /\0", 6), 400},
      // Header fields.
      {"no colon", "GET / HTTP/1.1\r\n" + host + "NoColon\r\n\r\n", 400},
      {"space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400},
      {"empty name", "GET / HTTP/1.1\r\n" + host + ": v\r\n\r\n", 400},
      {"obs-fold", "GET / HTTP/1.1\r\n" + host + "A: b\r\n c\r\n\r\n", 400},
      {"NUL in value",
       "GET / HTTP/1.1\r\n" + host + std::string("A: b\0c\r\n\r\n", 10), 400},
      {"missing Host", "GET / HTTP/1.1\r\n\r\n", 400},
      {"two Hosts", "GET / HTTP/1.1\r\n" + host + host + "\r\n", 400},
      {"two Hosts 1.0", "GET / HTTP/1.0\r\n" + host + host + "\r\n", 400},
      // Content-Length.
      {"CL not a number", post + "Content-Length: 1x\r\n\r\n", 400},
      {"CL negative", post + "Content-Length: -1\r\n\r\n", 400},
      {"CL empty", post + "Content-Length:\r\n\r\n", 400},
      {"CL list differs", post + "Content-Length: 1, 2\r\n\r\n", 400},
      {"CL fields differ",
       post + "Content-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
      {"CL over limit", post + "Content-Length: 1048577\r\n\r\n", 413},
      {"CL overflows", post + "Content-Length: 99999999999999999999999\r\n\r\n",
       413},
      // Transfer-Encoding.
      {"TE not chunked", post + "Transfer-Encoding: gzip\r\n\r\n", 400},
      {"TE chunked not last", post + "Transfer-Encoding: chunked, gzip\r\n\r\n",
       400},
      {"TE gzip, chunked", post + "Transfer-Encoding: gzip, chunked\r\n\r\n",
       501},
      {"TE chunked twice",
       post +
           "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
       400},
      {"TE and CL",
       post + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400},
      {"TE in HTTP/1.0",
       "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      // Chunked framing.
      {"chunk size not hex", chunked + "xyz\r\n", 400},
      {"chunk size missing", chunked + ";ext\r\n", 400},
      {"chunk size bare LF", chunked + "3\nabc\r\n0\r\n\r\n", 400},
      {"chunk junk after size", chunked + "3 x\r\nabc\r\n0\r\n\r\n", 400},
      {"chunk ext control char", chunked + "3;a\x01\r\nabc\r\n", 400},
      {"chunk data too long", chunked + "3\r\nabcd\r\n", 400},
      {"chunk data no CRLF", chunked + "3\r\nabc\n\n", 400},
      {"chunk size line too long",
       chunked + "1;" + std::string(kMaxChunkLine, 'x'), 400},
      {"chunk over limit", chunked + "100001\r\n", 413},
      {"chunk size overflows", chunked + "11111111111111111111\r\n", 413},
      {"chunks sum over limit",
       chunked + "80000\r\n" + std::string(0x80000, 'a') + "\r\n80001\r\n",
       413},
      {"trailer malformed", chunked + "0\r\nbad trailer\r\n\r\n", 400},
      {"trailer too large", chunked + "0\r\nX: " + std::string(9000, 'a'), 431},
      // Sizes.
      {"header section too large (incomplete)",
       "GET / HTTP/1.1\r\nX: " + std::string(9000, 'a'), 431},
      {"header section too large (complete)",
       "GET / HTTP/1.1\r\n" + host + "X: " + std::string(8200, 'a') +
           "\r\n\r\n",
       431},
      {"request line too large", "GET /" + std::string(9000, 'a'), 431},
  };
  std::string many = "GET / HTTP/1.1\r\n" + host;
  for (size_t i = 0; i < kMaxHeaderFields; ++i) many += "A: b\r\n";
  cases.push_back({"too many fields", many + "\r\n", 431});
  // Chunk framing: many one-byte chunks with long extensions, decoded size
  // far below the limit.
  std::string framing = chunked;
  const std::string ext = ";" + std::string(1000, 'e');
  while (framing.size() <
         kLimits.max_body_bytes + kChunkFramingAllowance + 8192) {
    framing += "1" + ext + "\r\nx\r\n";
  }
  cases.push_back({"chunk framing too large", framing, 413});
  return cases;
}

TEST(HttpParserTest, EveryErrorClass) {
  for (const ErrorCase& c : ErrorCases()) {
    ParseResult r = Parse(c.input);
    EXPECT_EQ(r.status, ParseStatus::kError) << c.name << ": " << Describe(r);
    EXPECT_EQ(r.error, c.status) << c.name << ": " << Describe(r);
    EXPECT_FALSE(r.reason.empty()) << c.name;
  }
}

// The handler sizes each connection's buffer by MaxRequestBytes(): a request
// that fits the limits fits in it, and input that reaches it without a
// complete request is already an error (never "need more").
TEST(HttpParserTest, MaxRequestBytesBoundsEveryRequest) {
  const size_t max = MaxRequestBytes(kLimits);
  std::string big = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                    std::to_string(kLimits.max_body_bytes) + "\r\nX: ";
  big += std::string(kLimits.max_header_bytes - big.size() - 4, 'h');
  big += "\r\n\r\n" + std::string(kLimits.max_body_bytes, 'b');
  ParseResult r = Parse(big);
  ASSERT_EQ(r.status, ParseStatus::kComplete) << Describe(r);
  EXPECT_LE(r.size, max);
  for (const ErrorCase& c : ErrorCases()) {
    if (c.input.size() < max) continue;
    ParseResult prefix = Parse(std::string_view(c.input).substr(0, max));
    EXPECT_EQ(prefix.status, ParseStatus::kError)
        << c.name << ": " << Describe(prefix);
  }
}

TEST(HttpParserTest, ErrorsAreTheSameHoweverTheInputIsSplit) {
  for (const ErrorCase& c : ErrorCases()) {
    if (c.input.size() > 20000) continue;  // byte-by-byte would be slow
    ParseResult r = ParseByteByByte(c.input);
    EXPECT_EQ(r.status, ParseStatus::kError) << c.name << ": " << Describe(r);
    EXPECT_EQ(r.error, c.status) << c.name << ": " << Describe(r);
  }
}

TEST(HttpParserTest, ErrorsAreReportedBeforeTheRequestEnds) {
  // A malformed request line is known when its line ends.
  EXPECT_EQ(Parse("GET / HTTP/9.9\r\nHost: partial").error, 505);
  EXPECT_EQ(Parse("NOT A REQUEST LINE\r\n").error, 400);
  // A body over the limit is known from the header section alone.
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000"
                  "\r\n\r\n")
                .error,
            413);
  // Header bytes over the limit are known before the header section ends.
  EXPECT_EQ(Parse("GET / HTTP/1.1\r\n" + std::string(8192, 'a')).error, 431);
}

TEST(HttpParserTest, LimitsAreConfigurable) {
  Limits small;
  small.max_header_bytes = 64;
  small.max_body_bytes = 4;
  std::string head = "POST /echo HTTP/1.1\r\nHost: h\r\n";
  EXPECT_EQ(ParseRequest(head + "Content-Length: 4\r\n\r\nabcd", small).status,
            ParseStatus::kComplete);
  EXPECT_EQ(ParseRequest(head + "Content-Length: 5\r\n\r\n", small).error, 413);
  EXPECT_EQ(
      ParseRequest(head + "X: " + std::string(40, 'x') + "\r\n\r\n", small)
          .error,
      431);
  // The limit is inclusive: a header section of exactly 64 bytes is fine.
  std::string exact = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
  exact += std::string(64 - exact.size() - 4, 'x') + "\r\n\r\n";
  ASSERT_EQ(exact.size(), 64u);
  EXPECT_EQ(ParseRequest(exact, small).status, ParseStatus::kComplete);
  EXPECT_EQ(ParseRequest(exact.substr(0, 40), small).status,
            ParseStatus::kNeedMore);
  // A CR that is the last byte within the limit: over the limit (431),
  // however the bytes arrive.
  Limits tight;
  tight.max_header_bytes = 47;
  const std::string cr_at_limit =
      "GET /plaintext?x=1 HTTP/1.1\r\nHost: cxample.com\r\nAccept: */*\r\n\r\n";
  ASSERT_EQ(cr_at_limit[46], '\r');
  EXPECT_EQ(ParseRequest(cr_at_limit, tight).error, 431);
  EXPECT_EQ(ParseByteByByte(cr_at_limit, tight).error, 431);
  // Chunked: exactly the limit decoded is fine, one more byte is not.
  std::string chunked = head + "Transfer-Encoding: chunked\r\n\r\n";
  EXPECT_EQ(
      ParseRequest(chunked + "2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n", small).status,
      ParseStatus::kComplete);
  EXPECT_EQ(ParseRequest(chunked + "2\r\nab\r\n3\r\n", small).error, 413);
}

TEST(HttpParserTest, BodyOfExactlyTheLimit) {
  std::string body(kLimits.max_body_bytes, 'b');
  std::string in = "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\n\r\n" + body;
  ParseResult r = Parse(in);
  ASSERT_EQ(r.status, ParseStatus::kComplete) << Describe(r);
  EXPECT_EQ(r.request.body, body);
}

TEST(HttpParserTest, StaleStateIsDiscarded) {
  ParseState state;
  ASSERT_EQ(ParseRequest(kGet.substr(0, 30), kLimits, &state).status,
            ParseStatus::kNeedMore);
  // A shorter input than the state has seen: parsed from scratch.
  ParseResult r =
      ParseRequest("GET / HTTP/1.1\r\nHost: h\r\n\r\n", kLimits, &state);
  EXPECT_EQ(r.status, ParseStatus::kComplete) << Describe(r);
}

TEST(HttpParserTest, ReasonPhrases) {
  EXPECT_EQ(ReasonPhrase(200), "OK");
  EXPECT_EQ(ReasonPhrase(404), "Not Found");
  EXPECT_EQ(ReasonPhrase(405), "Method Not Allowed");
  EXPECT_EQ(ReasonPhrase(408), "Request Timeout");
  EXPECT_EQ(ReasonPhrase(413), "Content Too Large");
  EXPECT_EQ(ReasonPhrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(ReasonPhrase(799), "Unknown");
}

// Random mutations of valid requests: the parser must never crash or read
// out of bounds (ASan checks), must agree with itself however the input is
// split, and a complete request must lie within the input.
TEST(HttpParserTest, MutatedInputsNeverCrashAndSplitsAgree) {
  const std::vector<std::string> seeds = {
      std::string(kGet), std::string(kChunked),
      "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
      "GET /json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"};
  static constexpr char kAlphabet[] =
      "\r\n :;,0123456789aAfF\t\x00\x7f\x80GET/";
  const std::string alphabet(kAlphabet, sizeof(kAlphabet) - 1);
  std::mt19937 rng(20240611);
  Limits small;
  small.max_header_bytes = 256;
  small.max_body_bytes = 64;
  for (int i = 0; i < 3000; ++i) {
    std::string in = seeds[rng() % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !in.empty(); ++e) {
      size_t at = rng() % in.size();
      char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 4) {
        case 0:
          in[at] = c;
          break;
        case 1:
          in.insert(in.begin() + static_cast<ptrdiff_t>(at), c);
          break;
        case 2:
          in.erase(at, 1);
          break;
        case 3:  // duplicate a piece (repeated fields, lines, chunks)
          in.insert(at, in.substr(rng() % in.size(), rng() % 48));
          break;
      }
    }
    for (const Limits& limits : {kLimits, small}) {
      ParseResult whole = ParseRequest(in, limits);
      ParseResult split = ParseByteByByte(in, limits);
      ASSERT_EQ(whole.status, split.status)
          << "input: " << testing::PrintToString(in) << "\n"
          << Describe(whole) << " vs " << Describe(split);
      if (whole.status == ParseStatus::kComplete) {
        EXPECT_LE(whole.size, in.size());
        EXPECT_EQ(whole.size, split.size);
        EXPECT_EQ(whole.request.body, split.request.body);
        EXPECT_LE(whole.request.body.size(), limits.max_body_bytes);
      } else if (whole.status == ParseStatus::kError) {
        EXPECT_EQ(whole.error, split.error) << testing::PrintToString(in);
      }
    }
  }
}

}  // namespace
}  // namespace baton::http

namespace baton::httpd {
namespace {

http::Request MustParse(std::string_view in) {
  http::ParseResult r = http::ParseRequest(in, http::Limits());
  EXPECT_EQ(r.status, http::ParseStatus::kComplete);
  return std::move(r.request);
}

// The status code and body of a serialized response.
std::pair<int, std::string> StatusAndBody(const std::string& response) {
  size_t end = response.find("\r\n\r\n");
  EXPECT_NE(end, std::string::npos);
  return {std::stoi(response.substr(9, 3)), response.substr(end + 4)};
}

TEST(HttpResponseTest, Routes) {
  std::string plain = "GET /plaintext HTTP/1.1\r\nHost: h\r\n\r\n";
  http::Request get = MustParse(plain);
  Response r = Respond(get);
  EXPECT_EQ(StatusAndBody(r.bytes),
            std::make_pair(200, std::string("Hello, World!")));
  EXPECT_NE(r.bytes.find("Content-Type: text/plain\r\n"), std::string::npos);
  EXPECT_NE(r.bytes.find("Content-Length: 13\r\n"), std::string::npos);
  EXPECT_NE(r.bytes.find("Server: baton\r\n"), std::string::npos);
  EXPECT_FALSE(r.close);

  std::string json = "GET /json HTTP/1.1\r\nHost: h\r\n\r\n";
  http::Request get_json = MustParse(json);
  EXPECT_EQ(StatusAndBody(Respond(get_json).bytes).second,
            R"({"message":"Hello, World!"})");

  std::string head = "HEAD /json HTTP/1.1\r\nHost: h\r\n\r\n";
  http::Request head_json = MustParse(head);
  r = Respond(head_json);
  EXPECT_EQ(StatusAndBody(r.bytes), std::make_pair(200, std::string()));
  EXPECT_NE(r.bytes.find("Content-Length: 27\r\n"), std::string::npos);

  std::string echo =
      "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nabcd";
  http::Request post = MustParse(echo);
  EXPECT_EQ(StatusAndBody(Respond(post).bytes),
            std::make_pair(200, std::string("abcd")));

  std::string missing = "GET /missing HTTP/1.1\r\nHost: h\r\n\r\n";
  http::Request not_found = MustParse(missing);
  r = Respond(not_found);
  EXPECT_EQ(StatusAndBody(r.bytes).first, 404);
  EXPECT_FALSE(r.close);

  std::string wrong = "DELETE /json HTTP/1.1\r\nHost: h\r\n\r\n";
  http::Request wrong_method = MustParse(wrong);
  r = Respond(wrong_method);
  EXPECT_EQ(StatusAndBody(r.bytes).first, 405);
  EXPECT_NE(r.bytes.find("Allow: GET, HEAD\r\n"), std::string::npos);
  std::string get_echo = "GET /echo HTTP/1.1\r\nHost: h\r\n\r\n";
  http::Request echo_get = MustParse(get_echo);
  EXPECT_NE(Respond(echo_get).bytes.find("Allow: POST\r\n"), std::string::npos);

  std::string stats = "GET /stats HTTP/1.1\r\nHost: h\r\n\r\n";
  http::Request get_stats = MustParse(stats);
  EXPECT_NE(
      StatusAndBody(Respond(get_stats).bytes).second.find("\"requests\":"),
      std::string::npos);
}

TEST(HttpResponseTest, ConnectionHeaderFollowsTheRequest) {
  std::string close =
      "GET /json HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  http::Request req = MustParse(close);
  Response r = Respond(req);
  EXPECT_TRUE(r.close);
  EXPECT_NE(r.bytes.find("Connection: close\r\n"), std::string::npos);
  std::string ka10 = "GET /json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
  http::Request req10 = MustParse(ka10);
  r = Respond(req10);
  EXPECT_FALSE(r.close);
  EXPECT_NE(r.bytes.find("Connection: keep-alive\r\n"), std::string::npos);
  std::string error = ErrorResponse(431);
  EXPECT_EQ(StatusAndBody(error).first, 431);
  EXPECT_NE(error.find("Connection: close\r\n"), std::string::npos);
}

TEST(HttpHandoffStateTest, RoundTrips) {
  ConnectionState s;
  s.continue_sent = true;
  s.deadline = absl::FromUnixNanos(1234567890123456789);
  ConnectionState back;
  ASSERT_TRUE(DecodeState(EncodeState(s), &back));
  EXPECT_TRUE(back.continue_sent);
  EXPECT_EQ(back.deadline, s.deadline);

  ConnectionState empty;
  ASSERT_TRUE(DecodeState(EncodeState(ConnectionState()), &empty));
  EXPECT_FALSE(empty.continue_sent);
  EXPECT_FALSE(empty.deadline.has_value());

  EXPECT_FALSE(DecodeState("", &back));
  EXPECT_FALSE(DecodeState("garbage that is long", &back));
  std::string bad_flags = EncodeState(ConnectionState());
  bad_flags[4] = '\x40';
  EXPECT_FALSE(DecodeState(bad_flags, &back));
  EXPECT_FALSE(DecodeState(EncodeState(s) + "x", &back));
}

}  // namespace
}  // namespace baton::httpd
