// RESP2, the Redis wire protocol: a parser for requests and encoders for
// replies. No I/O; the parser allocates only the Command it fills and, for
// an unfinished multibulk, the offsets of the elements parsed so far.
//
// A request is either an array of bulk strings (what every client library
// and redis-cli send):
//
//   *2\r\n$3\r\nGET\r\n$3\r\nkey\r\n
//
// or an inline command (what nc and telnet users type): one line, split on
// whitespace, with "double" (C escapes, \xHH) and 'single' quotes as Redis
// does:
//
//   GET key\r\n
//
// RespParser::Parse looks at the start of `input` and reports one of three
// things: a complete command (its arguments, viewing `input` where possible,
// and how many bytes it took), "need more bytes" (nothing is consumed: the
// caller keeps the bytes and calls again when more arrived), or a protocol
// error worded as Redis words it ("Protocol error: invalid bulk length"),
// after which the connection is unusable (the server replies and closes).
//
// Resuming: a RespParser remembers, between calls, how far it got in an
// unfinished command: the elements of a multibulk parsed so far (as offsets
// from the command's first byte, never pointers, so the caller's buffer may
// move or be compacted between calls), the pending bulk length, and where
// the search for a line's end stopped. So the total work on a command is
// linear in its bytes however they are split (stats().bytes_examined counts
// it). The contract: after kIncomplete, the next call's `input` must start
// with the same command (the same bytes, more appended). After kComplete or
// kError the parser starts afresh at the next call. The state is only a
// cache: the caller still consumes nothing of an unfinished command, and a
// fresh parser (e.g. in the process a hot restart moved the connection to)
// given the same bytes reaches the same result.
//
//   RespParser parser(limits);  // one per connection
//   Command cmd;
//   ParseResult r = parser.Parse(conn.inbound(), &cmd);
//   if (r.status == ParseStatus::kComplete) { Execute(cmd);
//   Consume(r.consumed); }
//
// ParseCommand() is the one-shot form (a fresh parser per call).
#ifndef APPS_KV_RESP_H_
#define APPS_KV_RESP_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace baton::kv {

// Redis's own ceiling for proto-max-bulk-len.
inline constexpr size_t kMaxBulkBytesCeiling = size_t{512} << 20;

struct ParseLimits {
  // Longest bulk string accepted ($N with N above: "invalid bulk length").
  size_t max_bulk_bytes = size_t{64} << 20;
  // Most elements in a request array (*N above: "invalid multibulk length").
  size_t max_array = size_t{1} << 20;
  // Longest inline request, and longest *N / $N header line, as in Redis.
  size_t max_inline_bytes = size_t{64} << 10;
};

// One request. `args` view either the parsed input or `owned` (inline
// arguments that needed unescaping); valid while both are.
struct Command {
  std::vector<std::string_view> args;
  std::deque<std::string> owned;  // deque: growing keeps earlier views valid
  void Clear() {
    args.clear();
    owned.clear();
  }
};

enum class ParseStatus {
  kComplete,    // `consumed` bytes form one command (args may be empty:
                // an empty line or "*0", which Redis ignores)
  kIncomplete,  // a prefix of a command: wait for more bytes
  kError,       // a protocol error: `error` says which
};

struct ParseResult {
  ParseStatus status = ParseStatus::kIncomplete;
  size_t consumed = 0;  // kComplete only
  std::string error;    // kError only: "Protocol error: ..."
};

// What a parser did, for tests and counters; cheap to keep (a few adds per
// call).
struct ParseStats {
  uint64_t calls = 0;           // Parse() calls
  uint64_t bytes_examined = 0;  // input bytes read (searched, compared, or
                                // split); bulk data is only viewed, not read
};

// The resumable parser (see the top of this file). Not thread-safe; one per
// connection.
class RespParser {
 public:
  explicit RespParser(const ParseLimits& limits = ParseLimits())
      : limits_(limits) {}

  // Parses the command at the start of `input` into `*command` (cleared
  // first), resuming where the previous kIncomplete call stopped.
  ParseResult Parse(std::string_view input, Command* command);

  // Forgets the unfinished command (stats are kept). Needed only if the
  // front of the input changed other than by Parse()'s contract.
  void Reset();

  const ParseStats& stats() const { return stats_; }

 private:
  // Where an element's bytes are, relative to the command's first byte.
  struct Span {
    size_t offset;
    size_t size;
  };
  enum class Stage {
    kStart,        // nothing parsed of this command yet
    kInline,       // an inline command: searching for its '\n'
    kArrayHeader,  // "*N\r\n"
    kBulkHeader,   // "$N\r\n" of element args_.size()
    kBulkData,     // its bulk_size_ bytes and CRLF
  };

  ParseResult ParseMultibulk(std::string_view input, Command* command);
  ParseResult ParseInline(std::string_view input, Command* command);
  // Finds the CRLF ending the "*N" / "$N" line at pos_, resuming at
  // scanned_; reads the number into *value. Returns false with *r set when
  // incomplete or invalid.
  bool ParseHeader(std::string_view input, std::string_view too_big,
                   std::string_view invalid, int64_t* value, ParseResult* r);

  ParseLimits limits_;
  Stage stage_ = Stage::kStart;
  size_t pos_ = 0;         // next byte to parse
  size_t scanned_ = 0;     // the current line was searched below this
  size_t seen_ = 0;        // input.size() at the previous call
  int64_t remaining_ = 0;  // elements still to parse
  size_t bulk_size_ = 0;   // kBulkData: the current element's length
  std::vector<Span> args_;
  ParseStats stats_;
};

// Parses the command at the start of `input` into `*command` (cleared
// first), from scratch.
ParseResult ParseCommand(std::string_view input, const ParseLimits& limits,
                         Command* command);

// Redis's string2ll: an optional '-', then digits without leading zeros
// ("0" alone is fine), no spaces, no '+', and it must fit in int64_t.
bool ParseInt64(std::string_view s, int64_t* out);

// --- Reply encoders: each appends one RESP2 value to *out. ---

void AppendSimpleString(std::string* out, std::string_view s);  // +OK
// `message` without the leading '-', e.g. "ERR syntax error". CR and LF in it
// are replaced by spaces, so user data in a message cannot break framing.
void AppendError(std::string* out, std::string_view message);
void AppendInteger(std::string* out, int64_t value);          // :42
void AppendBulkString(std::string* out, std::string_view s);  // $3\r\nabc
void AppendNullBulkString(std::string* out);                  // $-1
void AppendArrayHeader(std::string* out, size_t count);       // *N
void AppendNullArray(std::string* out);                       // *-1

}  // namespace baton::kv

#endif  // APPS_KV_RESP_H_
