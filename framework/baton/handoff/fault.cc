#include "baton/handoff/fault.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "baton/runtime/log.h"

namespace baton::handoff {

std::vector<std::string>& Fault::armed() {
  static auto* value = new std::vector<std::string>;
  return *value;
}

void Fault::Load() {
  const char* env = getenv(kFaultEnv);
  armed() = absl::StrSplit(env == nullptr ? "" : env, ',', absl::SkipEmpty());
  unsetenv(kFaultEnv);
}

bool Fault::Take(Side side, std::string_view step) {
  std::string want = absl::StrCat(side == Side::kChild ? "child:" : "parent:",
                                  absl::string_view(step.data(), step.size()));
  auto it = std::find(armed().begin(), armed().end(), want);
  if (it == armed().end()) return false;
  armed().erase(it);
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
  std::vector<std::string> child;
  auto is_child = [](const std::string& f) {
    return absl::StartsWith(f, "child:");
  };
  std::copy_if(armed().begin(), armed().end(), std::back_inserter(child),
               is_child);
  armed().erase(std::remove_if(armed().begin(), armed().end(), is_child),
                armed().end());
  return absl::StrJoin(child, ",");
}

}  // namespace baton::handoff
