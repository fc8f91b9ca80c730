#include "baton/handoff/fault.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "baton/runtime/log.h"

namespace baton::handoff {

std::string& Fault::armed() {
  static std::string* value = new std::string;
  return *value;
}

void Fault::Load() {
  const char* env = getenv(kFaultEnv);
  armed() = env == nullptr ? "" : env;
  unsetenv(kFaultEnv);
}

bool Fault::Take(Side side, std::string_view step) {
  std::string want = absl::StrCat(side == Side::kChild ? "child:" : "parent:",
                                  absl::string_view(step.data(), step.size()));
  if (armed() != want) return false;
  armed().clear();
  return true;
}

void Fault::Hit(Side side, std::string_view step) {
  if (!Take(side, step)) return;
  Log("fault injection: %s at %s", side == Side::kChild ? "child" : "parent",
      std::string(step));
  if (absl::StartsWith(absl::string_view(step.data(), step.size()), "hang")) {
    while (true) pause();
  }
  raise(SIGKILL);
}

std::string Fault::TakeForChild() {
  if (!absl::StartsWith(armed(), "child:")) return "";
  return std::exchange(armed(), "");
}

}  // namespace baton::handoff
