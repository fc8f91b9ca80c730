// Fuzzes the HTTP/1.1 request parser (apps/httpd/http_parser.h).
//
// Input: byte 0 picks the limits (default or small ones, to reach 413/431),
// byte 1 a split step; the rest is the connection's bytes. Properties:
//   - a complete request occupies 1..input size bytes, at most
//     MaxRequestBytes(limits), its body at most max_body_bytes, and its
//     method and target view the input;
//   - an error carries one of the documented status codes;
//   - feeding the bytes as a growing prefix with one ParseState (as the
//     server does while they arrive) gives the same answer as parsing them
//     at once: same status, size, error and request;
//   - parsing exactly the `size` bytes of a complete request gives the same
//     request (nothing after it mattered).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "httpd/http_parser.h"

namespace {

using baton::http::Limits;
using baton::http::ParseRequest;
using baton::http::ParseResult;
using baton::http::ParseState;
using baton::http::ParseStatus;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "http_parser_fuzzer: property failed: %s\n", what);
    std::abort();
  }
}

bool SameRequest(const baton::http::Request& a, const baton::http::Request& b) {
  if (a.method != b.method || a.target != b.target ||
      a.minor_version != b.minor_version || a.body != b.body ||
      a.chunked != b.chunked || a.keep_alive != b.keep_alive ||
      a.expect_continue != b.expect_continue ||
      a.headers.size() != b.headers.size()) {
    return false;
  }
  for (size_t i = 0; i < a.headers.size(); ++i) {
    if (a.headers[i].name != b.headers[i].name ||
        a.headers[i].value != b.headers[i].value) {
      return false;
    }
  }
  return true;
}

bool SameResult(const ParseResult& a, const ParseResult& b) {
  if (a.status != b.status) return false;
  switch (a.status) {
    case ParseStatus::kComplete:
      return a.size == b.size && SameRequest(a.request, b.request);
    case ParseStatus::kError:
      return a.error == b.error;
    case ParseStatus::kNeedMore:
      return a.head_complete == b.head_complete &&
             a.expect_continue == b.expect_continue;
  }
  return false;
}

bool Inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() &&
          part.data() + part.size() <= whole.data() + whole.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  Limits limits;
  if (data[0] & 1) {
    limits.max_header_bytes = 64 + data[0];
    limits.max_body_bytes = 16 + (data[0] >> 1);
  }
  size_t step = 1 + data[1] % 64;
  std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);

  ParseResult whole = ParseRequest(in, limits);
  switch (whole.status) {
    case ParseStatus::kComplete:
      Check(whole.size >= 1 && whole.size <= in.size(), "size within input");
      Check(whole.size <= baton::http::MaxRequestBytes(limits),
            "size within MaxRequestBytes");
      Check(whole.request.body.size() <= limits.max_body_bytes,
            "body within max_body_bytes");
      Check(
          Inside(whole.request.method, in) && Inside(whole.request.target, in),
          "method and target view the input");
      Check(!whole.request.method.empty() && !whole.request.target.empty(),
            "method and target are non-empty");
      break;
    case ParseStatus::kError:
      Check(whole.error == 400 || whole.error == 413 || whole.error == 431 ||
                whole.error == 501 || whole.error == 505,
            "documented error status");
      Check(!whole.reason.empty(), "an error has a reason");
      break;
    case ParseStatus::kNeedMore:
      break;
  }

  // The same bytes arriving `step` at a time.
  ParseState state;
  ParseResult last;
  for (size_t n = std::min(step, in.size());;
       n = std::min(n + step, in.size())) {
    last = ParseRequest(in.substr(0, n), limits, &state);
    if (last.status != ParseStatus::kNeedMore || n == in.size()) break;
  }
  Check(SameResult(whole, last), "incremental parse agrees with one-shot");

  if (whole.status == ParseStatus::kComplete) {
    ParseResult exact = ParseRequest(in.substr(0, whole.size), limits);
    Check(SameResult(whole, exact), "the request's own bytes parse the same");
  }
  return 0;
}
