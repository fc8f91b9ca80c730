// Fuzzes the RESP2 request parser of baton-kv (apps/kv/resp.h: ParseCommand,
// ParseInt64).
//
// Input: byte 0 picks the limits (default or small ones, to reach the
// "invalid length" and "too big" errors); the rest is the connection's bytes.
// Properties:
//   - a complete command consumed 1..input size bytes; parsing exactly those
//     bytes gives the same command, and one byte fewer is incomplete (what
//     follows a command never changes it, and a command is not complete
//     before its last byte);
//   - an error is worded "Protocol error: ...";
//   - the arguments, re-encoded as a RESP array of bulk strings, parse back
//     to the same arguments, consuming exactly the encoding;
//   - ParseInt64 accepts only the canonical decimal form of its value.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "kv/resp.h"

namespace {

using baton::kv::Command;
using baton::kv::ParseCommand;
using baton::kv::ParseLimits;
using baton::kv::ParseResult;
using baton::kv::ParseStatus;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "resp_fuzzer: property failed: %s\n", what);
    std::abort();
  }
}

std::vector<std::string> Args(const Command& c) {
  return std::vector<std::string>(c.args.begin(), c.args.end());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  ParseLimits limits;
  if (data[0] & 1) {
    limits.max_bulk_bytes = data[0] >> 3;
    limits.max_array = 1 + (data[0] >> 5);
    limits.max_inline_bytes = 8 + (data[0] >> 1);
  }
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

  Command cmd;
  ParseResult r = ParseCommand(in, limits, &cmd);
  if (r.status == ParseStatus::kError) {
    Check(r.error.rfind("Protocol error: ", 0) == 0, "error wording");
    return 0;
  }
  if (r.status == ParseStatus::kIncomplete) return 0;
  Check(r.consumed >= 1 && r.consumed <= in.size(), "consumed within input");
  std::vector<std::string> args = Args(cmd);

  Command exact;
  ParseResult e = ParseCommand(in.substr(0, r.consumed), limits, &exact);
  Check(e.status == ParseStatus::kComplete && e.consumed == r.consumed &&
            Args(exact) == args,
        "the command's own bytes parse the same");
  Command shorter;
  ParseResult s = ParseCommand(in.substr(0, r.consumed - 1), limits, &shorter);
  Check(s.status == ParseStatus::kIncomplete,
        "one byte fewer is an incomplete command");

  std::string encoded;
  baton::kv::AppendArrayHeader(&encoded, args.size());
  for (const std::string& a : args) baton::kv::AppendBulkString(&encoded, a);
  Command again;
  ParseResult a = ParseCommand(encoded, ParseLimits{}, &again);
  Check(a.status == ParseStatus::kComplete && a.consumed == encoded.size() &&
            Args(again) == args,
        "re-encoded arguments parse back the same");

  for (const std::string& arg : args) {
    int64_t v = 0;
    if (baton::kv::ParseInt64(arg, &v)) {
      Check(std::to_string(v) == arg, "ParseInt64 accepts only canonical form");
    }
  }
  return 0;
}
