#include "kv/resp.h"

#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "kv/view.h"

namespace baton::kv {
namespace {

constexpr std::string_view kCrlf = "\r\n";

ParseResult Incomplete() { return ParseResult{}; }

ParseResult Error(std::string_view what) {
  ParseResult r;
  r.status = ParseStatus::kError;
  r.error = absl::StrCat("Protocol error: ", Av(what));
  return r;
}

// Where the line starting at `pos` ends (the index of its "\r\n"), or npos.
size_t FindCrlf(std::string_view input, size_t pos) {
  return input.find(kCrlf, pos);
}

// A "*N" or "$N" header line at `pos`: sets *value and *next (the index after
// its CRLF). Returns false with *r set when incomplete or invalid.
bool ParseHeader(std::string_view input, size_t pos, const ParseLimits& limits,
                 std::string_view too_big, std::string_view invalid,
                 int64_t* value, size_t* next, ParseResult* r) {
  size_t end = FindCrlf(input, pos);
  if (end == std::string_view::npos) {
    // Redis's check: a header line without its CRLF after 64 KiB is garbage.
    *r = input.size() - pos > limits.max_inline_bytes ? Error(too_big)
                                                      : Incomplete();
    return false;
  }
  if (end - pos > limits.max_inline_bytes) {
    *r = Error(too_big);
    return false;
  }
  if (!ParseInt64(input.substr(pos + 1, end - pos - 1), value)) {
    *r = Error(invalid);
    return false;
  }
  *next = end + kCrlf.size();
  return true;
}

ParseResult ParseMultibulk(std::string_view input, const ParseLimits& limits,
                           Command* command) {
  ParseResult r;
  int64_t count = 0;
  size_t pos = 0;
  if (!ParseHeader(input, 0, limits, "too big mbulk count string",
                   "invalid multibulk length", &count, &pos, &r)) {
    return r;
  }
  if (count > 0 && static_cast<uint64_t>(count) > limits.max_array) {
    return Error("invalid multibulk length");
  }
  if (count <= 0) {  // "*0" and "*-1": nothing to run, as in Redis
    r.status = ParseStatus::kComplete;
    r.consumed = pos;
    return r;
  }
  // Each element takes at least 6 bytes ("$0\r\n\r\n"): never reserve more
  // than the bytes at hand can hold.
  command->args.reserve(std::min<size_t>(static_cast<size_t>(count),
                                         (input.size() - pos) / 6 + 1));
  for (int64_t i = 0; i < count; ++i) {
    if (pos >= input.size()) return Incomplete();
    if (input[pos] != '$') {
      return Error(
          absl::StrCat("expected '$', got '", Av(input.substr(pos, 1)), "'"));
    }
    int64_t len = 0;
    if (!ParseHeader(input, pos, limits, "too big bulk count string",
                     "invalid bulk length", &len, &pos, &r)) {
      return r;
    }
    if (len < 0 || static_cast<uint64_t>(len) > limits.max_bulk_bytes) {
      return Error("invalid bulk length");
    }
    const auto n = static_cast<size_t>(len);
    if (input.size() - pos < n + kCrlf.size()) return Incomplete();
    if (input.substr(pos + n, kCrlf.size()) != kCrlf) {
      return Error("bulk string not terminated by CRLF");
    }
    command->args.push_back(input.substr(pos, n));
    pos += n + kCrlf.size();
  }
  r.status = ParseStatus::kComplete;
  r.consumed = pos;
  return r;
}

bool IsSpace(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' ||
         c == '\f';
}

// What ends an unquoted word (isspace() without \v and \f, as in Redis).
bool EndsWord(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Redis's sdssplitargs: whitespace-separated words; "..." with \n \r \t \b
// \a \xHH and \<char> escapes; '...' with \' only; a closing quote must be
// followed by whitespace or the end. Returns false on unbalanced quotes.
bool SplitInline(std::string_view line, std::deque<std::string>* words) {
  size_t p = 0;
  const size_t n = line.size();
  while (true) {
    while (p < n && IsSpace(line[p])) ++p;
    if (p >= n) return true;
    std::string word;
    bool in_double = false;
    bool in_single = false;
    bool done = false;
    while (!done) {
      if (in_double) {
        if (p >= n) return false;
        if (line[p] == '\\' && p + 3 < n && line[p + 1] == 'x' &&
            HexDigit(line[p + 2]) >= 0 && HexDigit(line[p + 3]) >= 0) {
          word.push_back(static_cast<char>(HexDigit(line[p + 2]) * 16 +
                                           HexDigit(line[p + 3])));
          p += 3;
        } else if (line[p] == '\\' && p + 1 < n) {
          ++p;
          char c = line[p];
          switch (c) {
            case 'n':
              c = '\n';
              break;
            case 'r':
              c = '\r';
              break;
            case 't':
              c = '\t';
              break;
            case 'b':
              c = '\b';
              break;
            case 'a':
              c = '\a';
              break;
            default:
              break;
          }
          word.push_back(c);
        } else if (line[p] == '"') {
          if (p + 1 < n && !IsSpace(line[p + 1])) return false;
          done = true;
        } else {
          word.push_back(line[p]);
        }
      } else if (in_single) {
        if (p >= n) return false;
        if (line[p] == '\\' && p + 1 < n && line[p + 1] == '\'') {
          ++p;
          word.push_back('\'');
        } else if (line[p] == '\'') {
          if (p + 1 < n && !IsSpace(line[p + 1])) return false;
          done = true;
        } else {
          word.push_back(line[p]);
        }
      } else {
        if (p >= n) {
          done = true;
          break;
        }
        switch (line[p]) {
          case ' ':
          case '\n':
          case '\r':
          case '\t':
            done = true;
            break;
          case '"':
            in_double = true;
            break;
          case '\'':
            in_single = true;
            break;
          default:
            word.push_back(line[p]);
            break;
        }
      }
      if (p < n) ++p;
    }
    words->push_back(std::move(word));
  }
}

ParseResult ParseInline(std::string_view input, const ParseLimits& limits,
                        Command* command) {
  size_t newline = input.find('\n');
  if (newline == std::string_view::npos) {
    return input.size() > limits.max_inline_bytes
               ? Error("too big inline request")
               : Incomplete();
  }
  if (newline > limits.max_inline_bytes) {
    return Error("too big inline request");
  }
  std::string_view line = input.substr(0, newline);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // Redis splits a C string: a NUL ends the request line.
  line = line.substr(0, line.find('\0'));
  ParseResult r;
  r.status = ParseStatus::kComplete;
  r.consumed = newline + 1;
  if (line.find_first_of("\"'") == std::string_view::npos) {
    // Fast path: no quotes, the words are views of the input.
    size_t p = 0;
    while (true) {
      while (p < line.size() && IsSpace(line[p])) ++p;
      if (p >= line.size()) break;
      size_t start = p;
      while (p < line.size() && !EndsWord(line[p])) ++p;
      command->args.push_back(line.substr(start, p - start));
    }
    return r;
  }
  if (!SplitInline(line, &command->owned)) {
    return Error("unbalanced quotes in request");
  }
  for (const std::string& word : command->owned) command->args.push_back(word);
  return r;
}

void AppendLength(std::string* out, char type, int64_t n) {
  out->push_back(type);
  absl::StrAppend(out, n, Av(kCrlf));
}

}  // namespace

ParseResult ParseCommand(std::string_view input, const ParseLimits& limits,
                         Command* command) {
  command->Clear();
  if (input.empty()) return Incomplete();
  if (input[0] == '*') return ParseMultibulk(input, limits, command);
  return ParseInline(input, limits, command);
}

bool ParseInt64(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  if (s == "0") {
    *out = 0;
    return true;
  }
  size_t i = 0;
  bool negative = false;
  if (s[0] == '-') {
    negative = true;
    i = 1;
    if (s.size() == 1) return false;
  }
  if (s[i] < '1' || s[i] > '9') return false;
  uint64_t v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    const auto d = static_cast<uint64_t>(s[i] - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  constexpr auto kMax =
      static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (negative) {
    if (v > kMax + 1) return false;
    *out = v == kMax + 1 ? std::numeric_limits<int64_t>::min()
                         : -static_cast<int64_t>(v);
  } else {
    if (v > kMax) return false;
    *out = static_cast<int64_t>(v);
  }
  return true;
}

void AppendSimpleString(std::string* out, std::string_view s) {
  out->push_back('+');
  absl::StrAppend(out, Av(s), Av(kCrlf));
}

void AppendError(std::string* out, std::string_view message) {
  out->push_back('-');
  const size_t start = out->size();
  out->append(message);
  for (size_t i = start; i < out->size(); ++i) {
    if ((*out)[i] == '\r' || (*out)[i] == '\n') (*out)[i] = ' ';
  }
  out->append(kCrlf);
}

void AppendInteger(std::string* out, int64_t value) {
  AppendLength(out, ':', value);
}

void AppendBulkString(std::string* out, std::string_view s) {
  AppendLength(out, '$', static_cast<int64_t>(s.size()));
  out->append(s);
  out->append(kCrlf);
}

void AppendNullBulkString(std::string* out) { out->append("$-1\r\n"); }

void AppendArrayHeader(std::string* out, size_t count) {
  AppendLength(out, '*', static_cast<int64_t>(count));
}

void AppendNullArray(std::string* out) { out->append("*-1\r\n"); }

}  // namespace baton::kv
