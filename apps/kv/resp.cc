#include "kv/resp.h"

#include <algorithm>
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

void AppendLength(std::string* out, char type, int64_t n) {
  out->push_back(type);
  absl::StrAppend(out, n, Av(kCrlf));
}

}  // namespace

void RespParser::Reset() {
  stage_ = Stage::kStart;
  pos_ = 0;
  scanned_ = 0;
  seen_ = 0;
  remaining_ = 0;
  bulk_size_ = 0;
  // A huge command's element list is not kept for the next small one.
  if (args_.capacity() > 1024) {
    std::vector<Span>().swap(args_);
  } else {
    args_.clear();
  }
}

ParseResult RespParser::Parse(std::string_view input, Command* command) {
  command->Clear();
  ++stats_.calls;
  // Defensive: an input shorter than the one already parsed cannot be the
  // same command grown, so the state is stale.
  if (input.size() < seen_) Reset();
  seen_ = input.size();
  if (input.empty()) return Incomplete();
  if (stage_ == Stage::kStart) {
    ++stats_.bytes_examined;
    stage_ = input[0] == '*' ? Stage::kArrayHeader : Stage::kInline;
  }
  ParseResult r = stage_ == Stage::kInline ? ParseInline(input, command)
                                           : ParseMultibulk(input, command);
  if (r.status != ParseStatus::kIncomplete) Reset();
  return r;
}

bool RespParser::ParseHeader(std::string_view input, std::string_view too_big,
                             std::string_view invalid, int64_t* value,
                             ParseResult* r) {
  // Redis's check: a header line without its CRLF after 64 KiB is garbage.
  // So the CRLF is only looked for within max_inline_bytes + 2 bytes, from
  // where the previous call stopped (one byte back: a CR it saw last may be
  // followed by the LF now).
  const size_t limit =
      std::min(input.size(), pos_ + limits_.max_inline_bytes + kCrlf.size());
  const size_t from = scanned_ > pos_ ? scanned_ - 1 : pos_;
  size_t end = std::string_view::npos;
  if (from < limit) {
    end = input.substr(0, limit).find(kCrlf, from);
    stats_.bytes_examined +=
        (end == std::string_view::npos ? limit : end + kCrlf.size()) - from;
  }
  if (end == std::string_view::npos) {
    scanned_ = limit;
    *r = input.size() - pos_ > limits_.max_inline_bytes ? Error(too_big)
                                                        : Incomplete();
    return false;
  }
  const std::string_view digits = input.substr(pos_ + 1, end - pos_ - 1);
  stats_.bytes_examined += digits.size();
  if (!ParseInt64(digits, value)) {
    *r = Error(invalid);
    return false;
  }
  pos_ = end + kCrlf.size();
  scanned_ = pos_;
  return true;
}

ParseResult RespParser::ParseMultibulk(std::string_view input,
                                       Command* command) {
  ParseResult r;
  if (stage_ == Stage::kArrayHeader) {
    int64_t count = 0;
    if (!ParseHeader(input, "too big mbulk count string",
                     "invalid multibulk length", &count, &r)) {
      return r;
    }
    if (count > 0 && static_cast<uint64_t>(count) > limits_.max_array) {
      return Error("invalid multibulk length");
    }
    if (count <= 0) {  // "*0" and "*-1": nothing to run, as in Redis
      r.status = ParseStatus::kComplete;
      r.consumed = pos_;
      return r;
    }
    // Each element takes at least 6 bytes ("$0\r\n\r\n"): never reserve
    // more than the bytes at hand can hold (it grows as they arrive).
    args_.reserve(std::min<size_t>(static_cast<size_t>(count),
                                   (input.size() - pos_) / 6 + 1));
    remaining_ = count;
    stage_ = Stage::kBulkHeader;
  }
  while (remaining_ > 0) {
    if (stage_ == Stage::kBulkHeader) {
      if (pos_ >= input.size()) return Incomplete();
      if (scanned_ == pos_) {  // not looked at yet
        ++stats_.bytes_examined;
        if (input[pos_] != '$') {
          return Error(absl::StrCat("expected '$', got '",
                                    Av(input.substr(pos_, 1)), "'"));
        }
      }
      int64_t len = 0;
      if (!ParseHeader(input, "too big bulk count string",
                       "invalid bulk length", &len, &r)) {
        return r;
      }
      if (len < 0 || static_cast<uint64_t>(len) > limits_.max_bulk_bytes) {
        return Error("invalid bulk length");
      }
      bulk_size_ = static_cast<size_t>(len);
      stage_ = Stage::kBulkData;
    }
    // kBulkData: the data is only viewed; its CRLF is checked once whole.
    if (input.size() - pos_ < bulk_size_ + kCrlf.size()) return Incomplete();
    stats_.bytes_examined += kCrlf.size();
    if (input.substr(pos_ + bulk_size_, kCrlf.size()) != kCrlf) {
      return Error("bulk string not terminated by CRLF");
    }
    args_.push_back(Span{pos_, bulk_size_});
    pos_ += bulk_size_ + kCrlf.size();
    scanned_ = pos_;
    --remaining_;
    stage_ = Stage::kBulkHeader;
  }
  command->args.reserve(args_.size());
  for (const Span& a : args_) {
    command->args.push_back(input.substr(a.offset, a.size));
  }
  r.status = ParseStatus::kComplete;
  r.consumed = pos_;
  return r;
}

ParseResult RespParser::ParseInline(std::string_view input, Command* command) {
  // The '\n' is only looked for within max_inline_bytes + 1 bytes (a longer
  // line is an error either way), from where the previous call stopped.
  const size_t limit = std::min(input.size(), limits_.max_inline_bytes + 1);
  size_t newline = std::string_view::npos;
  if (scanned_ < limit) {
    newline = input.substr(0, limit).find('\n', scanned_);
    stats_.bytes_examined +=
        (newline == std::string_view::npos ? limit : newline + 1) - scanned_;
  }
  if (newline == std::string_view::npos) {
    scanned_ = limit;
    return input.size() > limits_.max_inline_bytes
               ? Error("too big inline request")
               : Incomplete();
  }
  std::string_view line = input.substr(0, newline);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // Redis splits a C string: a NUL ends the request line.
  line = line.substr(0, line.find('\0'));
  // The NUL search, the quote search, and the split: each reads the line.
  stats_.bytes_examined += 3 * line.size();
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

ParseResult ParseCommand(std::string_view input, const ParseLimits& limits,
                         Command* command) {
  RespParser parser(limits);
  return parser.Parse(input, command);
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
