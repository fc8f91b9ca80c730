// RESP2, the Redis wire protocol: a parser for requests and encoders for
// replies. Pure functions on std::string_view; no I/O, no allocation beyond
// the Command they fill.
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
// ParseCommand looks at the start of `input` and reports one of three
// things: a complete command (its arguments, viewing `input` where possible,
// and how many bytes it took), "need more bytes" (nothing is consumed: the
// caller keeps the bytes and calls again when more arrived), or a protocol
// error worded as Redis words it ("Protocol error: invalid bulk length"),
// after which the connection is unusable (the server replies and closes).
//
//   Command cmd;
//   ParseResult r = ParseCommand(conn.inbound(), limits, &cmd);
//   if (r.status == ParseStatus::kComplete) { Execute(cmd);
//   Consume(r.consumed); }
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

// Parses the command at the start of `input` into `*command` (cleared
// first).
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
