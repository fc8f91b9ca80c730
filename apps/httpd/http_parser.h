// HTTP/1.1 request parsing for baton-httpd: pure functions over bytes, no
// I/O, so every case can be unit-tested and fuzzed.
//
// ParseRequest() looks at the request at the front of `in` (the unconsumed
// bytes of a connection) and says one of three things:
//   kComplete  the whole request is there; `size` bytes belong to it (the
//              caller answers it and consumes exactly that many bytes);
//   kNeedMore  not all of it has arrived; nothing is to be consumed;
//   kError     it can never become a valid request: answer `error` (400, 413,
//              431, 501, 505) and close the connection.
// Errors are reported as early as the bytes allow: a malformed request line
// as soon as its line ends, a header section over the limit as soon as it
// is over, a body over the limit as soon as its size is known.
//
// What is accepted (RFC 9112, strictly, because a lenient parser in front of
// another parser is how requests get smuggled):
//   - lines end with CRLF; a bare CR or LF, a control character in a field
//     value, whitespace before a colon or at the start of a line (obs-fold)
//     are errors (400); empty lines before the request line are skipped;
//   - "METHOD SP TARGET SP HTTP/1.x"; another major version is 505;
//   - HTTP/1.1 needs exactly one Host field, HTTP/1.0 at most one (400);
//   - Content-Length: digits; repeated (in one field or several) only with
//     identical values (400); above max_body_bytes is 413;
//   - Transfer-Encoding: exactly "chunked" (HTTP/1.1 only). Other codings
//     are 501, "chunked" not last is 400, together with Content-Length 400;
//   - chunked bodies: hex sizes, chunk extensions and trailer fields are
//     tolerated and ignored; the decoded size is limited by max_body_bytes
//     (413), trailers by max_header_bytes (431), a chunk-size line by
//     kMaxChunkLine (400) and all chunk framing together by
//     max_body_bytes + kChunkFramingAllowance (413), so that a body of tiny
//     chunks cannot make the encoded request arbitrarily large;
//   - at most kMaxHeaderFields fields (431).
//
// Re-parsing a growing prefix: pass the same ParseState to each call while
// the front of `in` stays the same request (bytes are only appended). It
// remembers how far scanning got, so each byte is examined a bounded number
// of times however the input is split. Reset it (`*state = {}`) whenever
// the front of the input changes (after consuming a request); a state is
// finished once its request is complete. `bytes_examined` counts the bytes
// the parser read for it (searched, checked, parsed or copied), so tests can
// check that the total is linear in the request's size (at most a few
// times its bytes plus a few per call; tests/httpd/http_parser_linear_test).
#ifndef APPS_HTTPD_HTTP_PARSER_H_
#define APPS_HTTPD_HTTP_PARSER_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace baton::http {

inline constexpr size_t kMaxHeaderFields = 100;
inline constexpr size_t kMaxChunkLine = 4096;
inline constexpr size_t kChunkFramingAllowance = 64 * 1024;

struct Limits {
  size_t max_header_bytes = 8 * 1024;   // request line + fields + CRLFs
  size_t max_body_bytes = 1024 * 1024;  // decoded body
};

// No request ParseRequest() accepts under `limits` is larger than this (head,
// body with its chunk framing, trailers); one that would be is refused before
// it grows past it.
inline size_t MaxRequestBytes(const Limits& limits) {
  return 2 * limits.max_header_bytes + limits.max_body_bytes +
         kChunkFramingAllowance;
}

struct Header {
  std::string_view name;
  std::string_view value;  // without surrounding whitespace
};

struct Request {
  std::string_view method;  // views into the parsed input
  std::string_view target;
  int minor_version = 1;  // HTTP/1.<minor_version> (1 for any minor >= 1)
  std::vector<Header> headers;
  std::string body;  // decoded (chunked framing removed)
  bool chunked = false;
  bool keep_alive = true;  // from the version and the Connection field
  bool expect_continue = false;

  // The value of the first field named `name` (case-insensitive).
  std::optional<std::string_view> Find(std::string_view name) const;
  // The target's path: without the query, and without scheme and authority
  // for an absolute-form target ("http://host/x?y" -> "/x").
  std::string_view Path() const;
};

enum class ParseStatus { kComplete, kNeedMore, kError };

// Progress over the request at the front of the input (see above).
struct ParseState {
  // Header section.
  size_t line_start = 0;  // next line to examine
  size_t scanned = 0;     // bytes below this were searched for LF already
  size_t fields = 0;      // field lines seen
  bool have_request_line = false;
  size_t head_size = 0;  // != 0 once the header section is complete
  // Body framing, known once head_size != 0.
  enum class Body { kNone, kLength, kChunked };
  Body body = Body::kNone;
  uint64_t content_length = 0;
  bool expect_continue = false;
  // Chunked decoding.
  enum class Chunk { kSizeLine, kData, kDataEnd, kTrailer };
  Chunk chunk = Chunk::kSizeLine;
  size_t pos = 0;           // next byte of `in` to decode
  uint64_t chunk_left = 0;  // data bytes left in the current chunk
  size_t framing = 0;       // size lines, extensions and CRLFs so far
  size_t trailer_bytes = 0;
  size_t trailer_fields = 0;
  std::string decoded;  // body bytes decoded so far
  // Work done so far (one add per scan; see above).
  uint64_t bytes_examined = 0;
};

struct ParseResult {
  ParseStatus status = ParseStatus::kNeedMore;
  size_t size = 0;  // kComplete: bytes of the input the request occupies
  int error = 0;    // kError: the status code to answer
  std::string_view reason;  // kError: what was wrong (a static string)
  // kNeedMore: whether the header section is complete (the body is what is
  // missing), and whether the client waits for "100 Continue".
  bool head_complete = false;
  bool expect_continue = false;
  Request request;  // kComplete
};

ParseResult ParseRequest(std::string_view in, const Limits& limits,
                         ParseState* state);
ParseResult ParseRequest(std::string_view in, const Limits& limits);

// The standard reason phrase of a status code ("Not Found"), or "Unknown".
std::string_view ReasonPhrase(int status);

}  // namespace baton::http

#endif  // APPS_HTTPD_HTTP_PARSER_H_
