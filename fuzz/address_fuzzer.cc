// Fuzzes Address::Parse (framework/baton/net/address.h): arbitrary text must
// be refused or parsed, never crash, and a parsed address formats
// (ToString) to text that parses back to the same address, which formats the
// same again.
//
// Parse resolves host names with getaddrinfo(). So that the fuzzer is
// deterministic and never touches the network, this binary defines its own
// getaddrinfo(): "localhost" is 127.0.0.1, and everything else goes to the C
// library's resolver with AI_NUMERICHOST (numeric forms only, no lookups),
// which still exercises its results (e.g. "127.1", "fe80::1%lo").
#include <dlfcn.h>
#include <netdb.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "baton/net/address.h"

extern "C" int getaddrinfo(const char* node, const char* service,
                           const addrinfo* hints, addrinfo** res) {
  using Fn = int (*)(const char*, const char*, const addrinfo*, addrinfo**);
  static Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "getaddrinfo"));
  addrinfo h = hints != nullptr ? *hints : addrinfo{};
  h.ai_flags |= AI_NUMERICHOST;
  if (node != nullptr && std::strcmp(node, "localhost") == 0) {
    node = "127.0.0.1";
  }
  return real(node, service, &h, res);
}

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "address_fuzzer: property failed: %s\n", what);
    std::abort();
  }
}

bool Same(const baton::Address& a, const baton::Address& b) {
  return a.length() == b.length() &&
         std::memcmp(a.sa(), b.sa(), a.length()) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<baton::Address> a = baton::Address::Parse(text);
  if (!a.ok()) {
    Check(a.status().code() == absl::StatusCode::kInvalidArgument,
          "errors are InvalidArgument");
    return 0;
  }
  Check(a->family() == AF_INET || a->family() == AF_INET6, "IPv4 or IPv6");
  std::string formatted = a->ToString();
  absl::StatusOr<baton::Address> back = baton::Address::Parse(formatted);
  if (!back.ok()) {
    std::fprintf(stderr, "input \"%.*s\" formats as \"%s\", which is refused\n",
                 static_cast<int>(size), text.data(), formatted.c_str());
  }
  Check(back.ok(), "the formatted address parses");
  if (!Same(*a, *back)) {
    std::fprintf(stderr,
                 "input \"%.*s\" formats as \"%s\", a different address\n",
                 static_cast<int>(size), text.data(), formatted.c_str());
  }
  Check(Same(*a, *back), "the formatted address parses to the same address");
  Check(back->ToString() == formatted, "formatting is stable");
  return 0;
}
