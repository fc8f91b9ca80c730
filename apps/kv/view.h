// Debian's Abseil is built with its own absl::string_view (not an alias of
// std::string_view), so the two do not convert implicitly. baton-kv speaks
// std::string_view (as baton's Connection does) and converts at Abseil's
// edges with these.
#ifndef APPS_KV_VIEW_H_
#define APPS_KV_VIEW_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace baton::kv {

inline absl::string_view Av(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

inline std::string_view Sv(absl::string_view s) {
  return std::string_view(s.data(), s.size());
}

}  // namespace baton::kv

#endif  // APPS_KV_VIEW_H_
