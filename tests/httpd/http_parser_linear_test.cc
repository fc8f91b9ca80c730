// Parse work linear in the bytes received (apps/httpd/http_parser.h): a
// request arriving in many pieces is parsed through one ParseState, as
// baton-httpd's connection loop does, and the parser's own count of the
// bytes it examined (ParseState::bytes_examined) stays within a small
// constant of the bytes fed: the search for the end of the header section
// resumes where it stopped, and decoded chunks are not decoded again. The
// result equals parsing the whole request at once.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "httpd/http_parser.h"

namespace baton::http {
namespace {

// What a complete request said, as owned strings.
struct Seen {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool operator==(const Seen&) const = default;
};

struct Fed {
  std::vector<Seen> requests;
  int error = 0;
  size_t left = 0;
  uint64_t calls = 0;
  uint64_t examined = 0;
};

// Feeds `wire` in pieces of `piece` bytes as baton-httpd's ServeHttp()
// does: after each piece, every complete request at the front is parsed
// and consumed, and the state reset for the next; an unfinished one stays
// at the front with its state. With `move_buffer`, the bytes move to a
// fresh allocation after every piece (the old one overwritten).
Fed Feed(std::string_view wire, size_t piece, const Limits& limits,
         bool move_buffer = false) {
  Fed fed;
  ParseState state;
  std::string inbound;
  for (size_t sent = 0; sent < wire.size() && fed.error == 0;) {
    const size_t n = std::min(piece, wire.size() - sent);
    inbound.append(wire.substr(sent, n));
    sent += n;
    while (!inbound.empty()) {
      ++fed.calls;
      ParseResult r = ParseRequest(inbound, limits, &state);
      if (r.status == ParseStatus::kNeedMore) break;
      if (r.status == ParseStatus::kError) {
        fed.error = r.error;
        break;
      }
      Seen seen{std::string(r.request.method),
                std::string(r.request.target),
                {},
                r.request.body};
      for (const Header& h : r.request.headers) {
        seen.headers.emplace_back(h.name, h.value);
      }
      fed.requests.push_back(std::move(seen));
      inbound.erase(0, r.size);
      fed.examined += state.bytes_examined;
      state = ParseState();
    }
    if (move_buffer) {
      std::string fresh(inbound);
      std::fill(inbound.begin(), inbound.end(), 'X');
      inbound.swap(fresh);
    }
  }
  fed.examined += state.bytes_examined;
  fed.left = inbound.size();
  return fed;
}

// Each byte is examined a few times at most (the LF search, the check of
// an unfinished line, parsing the line, parsing the head once more when the
// body completes in a later read), plus a few bytes per call.
void ExpectLinear(const Fed& fed, size_t wire_bytes) {
  EXPECT_LE(fed.examined, 8 * wire_bytes + 8 * fed.calls)
      << "bytes fed: " << wire_bytes << ", calls: " << fed.calls;
}

Limits BigLimits() {
  Limits limits;
  limits.max_header_bytes = 128 * 1024;
  limits.max_body_bytes = 2 * 1024 * 1024;
  return limits;
}

// A header section of about 64 KiB: `fields` fields of `value_bytes`.
std::string BigHead(size_t fields, size_t value_bytes) {
  std::string head = "POST /upload?x=1 HTTP/1.1\r\nHost: example.com\r\n";
  for (size_t i = 0; i < fields; ++i) {
    head += "X-Field-" + std::to_string(i) + ": " +
            std::string(value_bytes, static_cast<char>('a' + i % 26)) + "\r\n";
  }
  return head;
}

TEST(HttpParserLinear, SixtyFourKiBHeaderSectionInSmallPieces) {
  const Limits limits = BigLimits();
  for (const auto& [fields, value_bytes] :
       {std::pair<size_t, size_t>{90, 700}, {1, 65000}}) {
    const std::string wire = BigHead(fields, value_bytes) + "\r\n";
    ASSERT_GE(wire.size(), 64000u);
    const Fed whole = Feed(wire, wire.size(), limits);
    ASSERT_EQ(whole.error, 0);
    ASSERT_EQ(whole.requests.size(), 1u);
    for (size_t piece : {size_t{1400}, size_t{64}, size_t{1}}) {
      SCOPED_TRACE(piece);
      const Fed fed = Feed(wire, piece, limits, /*move_buffer=*/piece == 64);
      EXPECT_EQ(fed.error, 0);
      EXPECT_EQ(fed.left, 0u);
      EXPECT_EQ(fed.requests, whole.requests);
      ExpectLinear(fed, wire.size());
    }
  }
}

TEST(HttpParserLinear, ChunkedBodyInSmallPieces) {
  const Limits limits = BigLimits();
  std::string wire = BigHead(4, 100) + "Transfer-Encoding: chunked\r\n\r\n";
  std::string body;
  for (size_t i = 0; body.size() < 512 * 1024; ++i) {
    const std::string chunk(100 + i % 50, static_cast<char>('A' + i % 26));
    char size[16];
    snprintf(size, sizeof(size), "%zx", chunk.size());
    wire += std::string(size) + (i % 7 == 0 ? ";ext=1" : "") + "\r\n" + chunk +
            "\r\n";
    body += chunk;
  }
  wire += "0\r\nTrailer-One: 1\r\nTrailer-Two: 2\r\n\r\n";
  const Fed whole = Feed(wire, wire.size(), limits);
  ASSERT_EQ(whole.error, 0);
  ASSERT_EQ(whole.requests.size(), 1u);
  EXPECT_EQ(whole.requests[0].body, body);
  for (size_t piece : {size_t{1400}, size_t{7}, size_t{1}}) {
    SCOPED_TRACE(piece);
    const Fed fed = Feed(wire, piece, limits, /*move_buffer=*/piece == 1400);
    EXPECT_EQ(fed.error, 0);
    EXPECT_EQ(fed.requests, whole.requests);
    ExpectLinear(fed, wire.size());
  }
}

TEST(HttpParserLinear, ContentLengthBodyInSmallPieces) {
  const Limits limits = BigLimits();
  const std::string body(1024 * 1024, 'b');
  const std::string wire = BigHead(3, 10) +
                           "Content-Length: " + std::to_string(body.size()) +
                           "\r\n\r\n" + body;
  const Fed fed = Feed(wire, 1400, limits);
  ASSERT_EQ(fed.error, 0);
  ASSERT_EQ(fed.requests.size(), 1u);
  EXPECT_EQ(fed.requests[0].body, body);
  ExpectLinear(fed, wire.size());
}

TEST(HttpParserLinear, PipelineOneByteAtATime) {
  std::string wire;
  for (int i = 0; i < 300; ++i) {
    const std::string target = "/item/" + std::to_string(i);
    if (i % 3 == 0) {
      wire += "GET " + target + " HTTP/1.1\r\nHost: h\r\n\r\n";
    } else if (i % 3 == 1) {
      wire += "POST " + target +
              " HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
    } else {
      wire += "PUT " + target +
              " HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
              "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    }
  }
  const Fed whole = Feed(wire, wire.size(), Limits());
  ASSERT_EQ(whole.error, 0);
  ASSERT_EQ(whole.requests.size(), 300u);
  for (size_t piece : {size_t{1}, size_t{5}, size_t{1400}}) {
    SCOPED_TRACE(piece);
    const Fed fed = Feed(wire, piece, Limits(), /*move_buffer=*/piece == 5);
    EXPECT_EQ(fed.error, 0);
    EXPECT_EQ(fed.left, 0u);
    EXPECT_EQ(fed.requests, whole.requests);
    ExpectLinear(fed, wire.size());
  }
}

TEST(HttpParserLinear, OversizedHeaderRefusedAtTheLimitWithLinearWork) {
  Limits limits;  // 8 KiB of header section
  const std::string wire = "GET / HTTP/1.1\r\nX: " + std::string(20000, 'x');
  const Fed fed = Feed(wire, 1, limits);
  EXPECT_EQ(fed.error, 431);
  // Refused once the 8 KiB were there, not at the end of the input.
  EXPECT_LE(fed.calls, limits.max_header_bytes + 1);
  ExpectLinear(fed, limits.max_header_bytes);
}

}  // namespace
}  // namespace baton::http
