#include "baton/runtime/log.h"

#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace baton {

void LogLine(std::string_view message) {
  std::string line = absl::StrCat("baton[", getpid(), "] ");
  line.append(message);
  line.push_back('\n');
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = write(STDERR_FILENO, line.data() + done, line.size() - done);
    if (n <= 0) return;  // stderr gone: nothing better to do with a log line
    done += static_cast<size_t>(n);
  }
}

}  // namespace baton
