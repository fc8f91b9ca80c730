#include "httpd/http_parser.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

namespace baton::http {
namespace {

constexpr uint64_t kSaturated = std::numeric_limits<uint64_t>::max();

// Plain helpers: the system's Abseil is built with its own string_view, so
// its string functions do not take std::string_view.
bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(unsigned char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
char Lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() &&
         EqualsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

// Calls f(element) for each comma-separated element of `list`.
template <typename F>
void ForEachElement(std::string_view list, F f) {
  while (true) {
    size_t comma = list.find(',');
    f(list.substr(0, comma));
    if (comma == std::string_view::npos) return;
    list.remove_prefix(comma + 1);
  }
}

bool IsTchar(unsigned char c) {
  if (IsAlnum(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool IsVchar(unsigned char c) { return c >= 0x21 && c <= 0x7E; }

// A byte allowed in a field value (VCHAR, obs-text, SP, HTAB).
bool IsFieldValueByte(unsigned char c) {
  return IsVchar(c) || c >= 0x80 || c == ' ' || c == '\t';
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!IsTchar(c)) return false;
  }
  return true;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

ParseResult Error(int status, std::string_view reason) {
  ParseResult r;
  r.status = ParseStatus::kError;
  r.error = status;
  r.reason = reason;
  return r;
}

ParseResult NeedMore(const ParseState& st) {
  ParseResult r;
  r.status = ParseStatus::kNeedMore;
  r.head_complete = st.head_size != 0;
  r.expect_continue = st.expect_continue;
  return r;
}

struct RequestLine {
  std::string_view method;
  std::string_view target;
  int minor_version = 1;
};

// "METHOD SP TARGET SP HTTP/D.D" (without the CRLF). Returns 0 or the
// status code to answer, with `reason`.
int ParseRequestLine(std::string_view line, RequestLine* out,
                     std::string_view* reason) {
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) {
    *reason = "malformed request line";
    return 400;
  }
  std::string_view method = line.substr(0, sp1);
  if (!IsToken(method)) {
    *reason = "malformed method";
    return 400;
  }
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) {
    *reason = "malformed request line";
    return 400;
  }
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  for (unsigned char c : target) {
    if (!IsVchar(c)) {
      *reason = "malformed request target";
      return 400;
    }
  }
  std::string_view version = line.substr(sp2 + 1);
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" ||
      !IsDigit(static_cast<unsigned char>(version[5])) || version[6] != '.' ||
      !IsDigit(static_cast<unsigned char>(version[7]))) {
    *reason = "malformed HTTP version";
    return 400;
  }
  if (version[5] != '1') {
    *reason = "unsupported HTTP version";
    return 505;
  }
  out->method = method;
  out->target = target;
  out->minor_version = version[7] == '0' ? 0 : 1;
  return 0;
}

// "NAME: VALUE" (without the CRLF); 0 or 400.
int ParseFieldLine(std::string_view line, Header* out,
                   std::string_view* reason) {
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    *reason = "malformed header field";
    return 400;
  }
  std::string_view name = line.substr(0, colon);
  if (!IsToken(name)) {
    // Also catches whitespace before the colon and obs-fold (a line that
    // starts with whitespace).
    *reason = "malformed header field name";
    return 400;
  }
  std::string_view value = line.substr(colon + 1);
  for (unsigned char c : value) {
    if (!IsFieldValueByte(c)) {
      *reason = "invalid character in header field value";
      return 400;
    }
  }
  out->name = name;
  out->value = TrimOws(value);
  return 0;
}

// Checks the bytes [from, to) of a line that has no LF yet: a control
// character (other than HTAB, or CR as the last byte looked at) can never
// become valid, so there is no need to wait for the rest.
bool PartialLineOk(std::string_view in, size_t from, size_t to,
                   bool request_line) {
  for (size_t i = from; i < to; ++i) {
    auto c = static_cast<unsigned char>(in[i]);
    if (c == '\r' && i + 1 == to) continue;  // LF may follow
    if (c == '\t' && !request_line) continue;
    if (c < 0x20 || c == 0x7F) return false;
    if (request_line && c >= 0x80) return false;
  }
  return true;
}

// Where PartialLineOk resumes on a line starting at `line_start` whose
// bytes below `scanned` were checked: one byte back, since a CR that was
// the last byte then may be followed by something other than LF now.
size_t RecheckFrom(size_t line_start, size_t scanned) {
  return scanned > line_start ? scanned - 1 : line_start;
}

// Finds the LF ending the line that starts at `line_start`, looking only
// below `end`; resumes at `*scanned`. Counts the bytes searched in
// `*examined`.
size_t FindLineEnd(std::string_view in, size_t line_start, size_t end,
                   size_t* scanned, uint64_t* examined) {
  size_t from = std::max(line_start, *scanned);
  if (from >= end) return std::string_view::npos;
  const void* p = std::memchr(in.data() + from, '\n', end - from);
  if (p == nullptr) {
    *examined += end - from;
    *scanned = end;
    return std::string_view::npos;
  }
  const auto nl = static_cast<size_t>(static_cast<const char*>(p) - in.data());
  *examined += nl + 1 - from;
  return nl;
}

// Scans the header section line by line; sets state->head_size when the
// empty line arrives. Returns an error or kNeedMore (also when complete:
// the caller checks head_size).
ParseResult ScanHead(std::string_view in, const Limits& limits,
                     ParseState* st) {
  while (true) {
    const size_t start = st->line_start;
    const size_t end = std::min(in.size(), limits.max_header_bytes);
    const size_t unchecked = RecheckFrom(start, st->scanned);
    size_t nl = FindLineEnd(in, start, end, &st->scanned, &st->bytes_examined);
    if (nl == std::string_view::npos) {
      st->bytes_examined += end > unchecked ? end - unchecked : 0;
      if (!PartialLineOk(in, unchecked, end, !st->have_request_line)) {
        return Error(400, st->have_request_line
                              ? "invalid character in header field"
                              : "invalid character in request line");
      }
      if (in.size() >= limits.max_header_bytes) {
        return Error(431, "header section too large");
      }
      return NeedMore(*st);
    }
    if (nl == start || in[nl - 1] != '\r') {
      return Error(400, "line not terminated by CRLF");
    }
    std::string_view line = in.substr(start, nl - 1 - start);
    st->bytes_examined += line.size();  // parsed below
    st->line_start = nl + 1;
    st->scanned = nl + 1;
    std::string_view reason;
    if (!st->have_request_line) {
      if (line.empty()) continue;  // empty lines before the request line
      RequestLine rl;
      if (int status = ParseRequestLine(line, &rl, &reason); status != 0) {
        return Error(status, reason);
      }
      st->have_request_line = true;
      continue;
    }
    if (line.empty()) {
      st->head_size = nl + 1;
      return NeedMore(*st);
    }
    Header h;
    if (ParseFieldLine(line, &h, &reason) != 0) return Error(400, reason);
    if (++st->fields > kMaxHeaderFields) {
      return Error(431, "too many header fields");
    }
  }
}

// Parses "N" or "N, N, ..." (all equal) into `*value`; false if malformed
// or the values differ. Saturates at kSaturated.
bool ParseContentLength(std::string_view field, uint64_t* value, bool* have) {
  bool ok = true;
  ForEachElement(field, [&](std::string_view part) {
    part = TrimOws(part);
    if (part.empty()) ok = false;
    uint64_t v = 0;
    for (char c : part) {
      if (!IsDigit(static_cast<unsigned char>(c))) ok = false;
      auto d = static_cast<uint64_t>(c - '0');
      v = v > (kSaturated - d) / 10 ? kSaturated : v * 10 + d;
    }
    if (*have && v != *value) ok = false;
    *value = v;
    *have = true;
  });
  return ok;
}

// Builds the request from a complete header section `head` and works out
// the body's framing into `st`. 0 or an error status with `reason`.
int ParseHead(std::string_view head, const Limits& limits, Request* req,
              ParseState* st, std::string_view* reason) {
  st->bytes_examined += 2 * head.size();  // the LF search and the lines
  req->headers.clear();
  req->headers.reserve(std::min<size_t>(st->fields, kMaxHeaderFields));
  size_t pos = 0;
  bool have_request_line = false;
  int hosts = 0;
  bool have_length = false;
  uint64_t length = 0;
  bool have_te = false;
  std::vector<std::string_view> codings;
  bool close = false;
  bool keep_alive_token = false;
  bool expect_continue = false;
  while (pos < head.size()) {
    size_t nl = head.find('\n', pos);
    // ScanHead guarantees CRLF-terminated lines.
    std::string_view line = head.substr(pos, nl - 1 - pos);
    pos = nl + 1;
    if (!have_request_line) {
      if (line.empty()) continue;
      RequestLine rl;
      if (int status = ParseRequestLine(line, &rl, reason); status != 0) {
        return status;
      }
      req->method = rl.method;
      req->target = rl.target;
      req->minor_version = rl.minor_version;
      have_request_line = true;
      continue;
    }
    if (line.empty()) break;
    Header h;
    if (int status = ParseFieldLine(line, &h, reason); status != 0) {
      return status;
    }
    req->headers.push_back(h);
    if (EqualsIgnoreCase(h.name, "host")) {
      ++hosts;
    } else if (EqualsIgnoreCase(h.name, "content-length")) {
      if (!ParseContentLength(h.value, &length, &have_length)) {
        *reason = "invalid Content-Length";
        return 400;
      }
    } else if (EqualsIgnoreCase(h.name, "transfer-encoding")) {
      have_te = true;
      ForEachElement(h.value, [&](std::string_view c) {
        c = TrimOws(c);
        if (!c.empty()) codings.push_back(c);
      });
    } else if (EqualsIgnoreCase(h.name, "connection")) {
      ForEachElement(h.value, [&](std::string_view t) {
        t = TrimOws(t);
        if (EqualsIgnoreCase(t, "close")) close = true;
        if (EqualsIgnoreCase(t, "keep-alive")) keep_alive_token = true;
      });
    } else if (EqualsIgnoreCase(h.name, "expect")) {
      if (EqualsIgnoreCase(h.value, "100-continue")) {
        expect_continue = true;
      }
    }
  }
  if (req->minor_version >= 1 ? hosts != 1 : hosts > 1) {
    *reason = hosts == 0 ? "missing Host" : "more than one Host";
    return 400;
  }
  st->body = ParseState::Body::kNone;
  if (have_te) {
    if (req->minor_version == 0) {
      *reason = "Transfer-Encoding in an HTTP/1.0 request";
      return 400;
    }
    if (have_length) {
      *reason = "both Transfer-Encoding and Content-Length";
      return 400;
    }
    if (codings.empty() || !EqualsIgnoreCase(codings.back(), "chunked")) {
      *reason = "chunked is not the final transfer coding";
      return 400;
    }
    for (size_t i = 0; i + 1 < codings.size(); ++i) {
      if (EqualsIgnoreCase(codings[i], "chunked")) {
        *reason = "chunked applied more than once";
        return 400;
      }
    }
    if (codings.size() > 1) {
      *reason = "unsupported transfer coding";
      return 501;
    }
    st->body = ParseState::Body::kChunked;
    req->chunked = true;
  } else if (have_length) {
    if (length > limits.max_body_bytes) {
      *reason = "body too large";
      return 413;
    }
    if (length > 0) st->body = ParseState::Body::kLength;
    st->content_length = length;
  }
  req->keep_alive = !close && (req->minor_version >= 1 || keep_alive_token);
  req->expect_continue = expect_continue;
  st->expect_continue = expect_continue && req->minor_version >= 1 &&
                        st->body != ParseState::Body::kNone;
  return 0;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes the chunked body from st->pos on. On kComplete, `size` is set.
ParseResult DecodeChunked(std::string_view in, const Limits& limits,
                          ParseState* st) {
  const size_t max_framing = limits.max_body_bytes + kChunkFramingAllowance;
  while (true) {
    switch (st->chunk) {
      case ParseState::Chunk::kSizeLine: {
        const size_t end = std::min(in.size(), st->pos + kMaxChunkLine);
        size_t nl =
            FindLineEnd(in, st->pos, end, &st->scanned, &st->bytes_examined);
        if (nl == std::string_view::npos) {
          if (in.size() - st->pos >= kMaxChunkLine) {
            return Error(400, "chunk size line too long");
          }
          return NeedMore(*st);
        }
        if (nl == st->pos || in[nl - 1] != '\r') {
          return Error(400, "chunk size line not terminated by CRLF");
        }
        std::string_view line = in.substr(st->pos, nl - 1 - st->pos);
        st->bytes_examined += line.size();
        uint64_t size = 0;
        size_t i = 0;
        for (; i < line.size(); ++i) {
          int d = HexDigit(line[i]);
          if (d < 0) break;
          if (size > (kSaturated >> 4)) return Error(413, "chunk too large");
          size = size * 16 + static_cast<uint64_t>(d);
        }
        if (i == 0) return Error(400, "malformed chunk size");
        std::string_view rest = TrimOws(line.substr(i));
        if (!rest.empty()) {
          if (rest.front() != ';') return Error(400, "malformed chunk size");
          for (unsigned char c : rest) {
            if (!IsFieldValueByte(c)) {
              return Error(400, "invalid character in chunk extension");
            }
          }
        }
        st->framing += nl + 1 - st->pos;
        if (st->framing > max_framing) {
          return Error(413, "chunk framing too large");
        }
        if (size > limits.max_body_bytes - st->decoded.size()) {
          return Error(413, "body too large");
        }
        st->pos = nl + 1;
        st->scanned = st->pos;
        if (size == 0) {
          st->chunk = ParseState::Chunk::kTrailer;
        } else {
          st->chunk_left = size;
          st->chunk = ParseState::Chunk::kData;
        }
        break;
      }
      case ParseState::Chunk::kData: {
        size_t n = static_cast<size_t>(
            std::min<uint64_t>(st->chunk_left, in.size() - st->pos));
        if (n == 0) return NeedMore(*st);
        st->decoded.append(in.substr(st->pos, n));
        st->bytes_examined += n;
        st->pos += n;
        st->chunk_left -= n;
        st->scanned = st->pos;
        if (st->chunk_left > 0) return NeedMore(*st);
        st->chunk = ParseState::Chunk::kDataEnd;
        break;
      }
      case ParseState::Chunk::kDataEnd: {
        size_t avail = in.size() - st->pos;
        ++st->bytes_examined;
        if (avail >= 1 && in[st->pos] != '\r') {
          return Error(400, "chunk data not followed by CRLF");
        }
        if (avail < 2) return NeedMore(*st);
        if (in[st->pos + 1] != '\n') {
          return Error(400, "chunk data not followed by CRLF");
        }
        st->pos += 2;
        st->scanned = st->pos;
        st->framing += 2;
        if (st->framing > max_framing) {
          return Error(413, "chunk framing too large");
        }
        st->chunk = ParseState::Chunk::kSizeLine;
        break;
      }
      case ParseState::Chunk::kTrailer: {
        const size_t room = limits.max_header_bytes > st->trailer_bytes
                                ? limits.max_header_bytes - st->trailer_bytes
                                : 0;
        const size_t end = std::min(in.size(), st->pos + room);
        const size_t unchecked = RecheckFrom(st->pos, st->scanned);
        size_t nl =
            FindLineEnd(in, st->pos, end, &st->scanned, &st->bytes_examined);
        if (nl == std::string_view::npos) {
          st->bytes_examined += end > unchecked ? end - unchecked : 0;
          if (!PartialLineOk(in, unchecked, end, false)) {
            return Error(400, "invalid character in trailer field");
          }
          if (in.size() - st->pos >= room) {
            return Error(431, "trailer section too large");
          }
          return NeedMore(*st);
        }
        if (nl == st->pos || in[nl - 1] != '\r') {
          return Error(400, "line not terminated by CRLF");
        }
        std::string_view line = in.substr(st->pos, nl - 1 - st->pos);
        st->bytes_examined += line.size();
        st->trailer_bytes += nl + 1 - st->pos;
        st->pos = nl + 1;
        st->scanned = st->pos;
        if (line.empty()) {
          ParseResult r;
          r.status = ParseStatus::kComplete;
          r.size = st->pos;
          return r;
        }
        Header h;
        std::string_view reason;
        if (ParseFieldLine(line, &h, &reason) != 0) return Error(400, reason);
        if (++st->trailer_fields > kMaxHeaderFields) {
          return Error(431, "too many trailer fields");
        }
        break;
      }
    }
  }
}

}  // namespace

std::optional<std::string_view> Request::Find(std::string_view name) const {
  for (const Header& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) return h.value;
  }
  return std::nullopt;
}

std::string_view Request::Path() const {
  std::string_view t = target;
  for (std::string_view scheme : {"http://", "https://"}) {
    if (StartsWithIgnoreCase(t, scheme)) {
      t.remove_prefix(scheme.size());
      size_t slash = t.find('/');
      t = slash == std::string_view::npos ? std::string_view("/")
                                          : t.substr(slash);
      break;
    }
  }
  size_t q = t.find_first_of("?#");
  if (q != std::string_view::npos) t = t.substr(0, q);
  return t;
}

ParseResult ParseRequest(std::string_view in, const Limits& limits,
                         ParseState* st) {
  // A state that belongs to a longer input than this one is stale.
  if (in.size() <
      std::max({st->line_start, st->scanned, st->pos, st->head_size})) {
    const uint64_t examined = st->bytes_examined;
    *st = ParseState();
    st->bytes_examined = examined;
  }
  Request request;
  bool have_request = false;
  if (st->head_size == 0) {
    ParseResult r = ScanHead(in, limits, st);
    if (r.status == ParseStatus::kError || st->head_size == 0) return r;
    std::string_view reason;
    if (int status = ParseHead(in.substr(0, st->head_size), limits, &request,
                               st, &reason);
        status != 0) {
      return Error(status, reason);
    }
    have_request = true;
    st->pos = st->head_size;
    st->scanned = st->pos;
  }
  size_t size = 0;
  switch (st->body) {
    case ParseState::Body::kNone:
      size = st->head_size;
      break;
    case ParseState::Body::kLength:
      if (in.size() - st->head_size < st->content_length) return NeedMore(*st);
      size = st->head_size + static_cast<size_t>(st->content_length);
      break;
    case ParseState::Body::kChunked: {
      ParseResult r = DecodeChunked(in, limits, st);
      if (r.status != ParseStatus::kComplete) return r;
      size = r.size;
      break;
    }
  }
  if (!have_request) {
    std::string_view reason;
    ParseState again;  // the head parsed before; it parses the same again
    (void)ParseHead(in.substr(0, st->head_size), limits, &request, &again,
                    &reason);
    st->bytes_examined += again.bytes_examined;
  }
  if (st->body == ParseState::Body::kLength) {
    request.body.assign(in.substr(st->head_size, st->content_length));
    st->bytes_examined += st->content_length;
  } else if (st->body == ParseState::Body::kChunked) {
    request.body = std::move(st->decoded);
  }
  ParseResult r;
  r.status = ParseStatus::kComplete;
  r.size = size;
  r.request = std::move(request);
  return r;
}

ParseResult ParseRequest(std::string_view in, const Limits& limits) {
  ParseState state;
  return ParseRequest(in, limits, &state);
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

}  // namespace baton::http
