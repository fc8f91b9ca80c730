// One-line diagnostics on stderr.
//
// Each call writes one line, `baton[PID] message`, with a single write(2), so
// lines from a parent and its child never interleave mid-line during a
// handoff. Meant for notable events (start, restart summaries, rollbacks),
// never for per-request or per-byte paths.
//
//   Log("listening on %s", address.ToString());
#ifndef BATON_RUNTIME_LOG_H_
#define BATON_RUNTIME_LOG_H_

#include <string_view>

#include "absl/strings/str_format.h"

namespace baton {

void LogLine(std::string_view message);

template <typename... Args>
void Log(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(absl::StrFormat(format, args...));
}

}  // namespace baton

#endif  // BATON_RUNTIME_LOG_H_
