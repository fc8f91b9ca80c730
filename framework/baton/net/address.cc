#include "baton/net/address.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace baton {
namespace {

absl::Status Invalid(std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrFormat(
      "bad address \"%s\": %s (expected HOST:PORT or [IPV6]:PORT)", text, why));
}

}  // namespace

absl::StatusOr<Address> Address::Parse(std::string_view text) {
  std::string host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return Invalid(text, "missing ']'");
    host = std::string(text.substr(1, close - 1));
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      return Invalid(text, "missing ':PORT' after ']'");
    }
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return Invalid(text, "missing ':PORT'");
    host = std::string(text.substr(0, colon));
    if (host.find(':') != std::string::npos) {
      return Invalid(text, "an IPv6 host must be in brackets");
    }
    port_text = text.substr(colon + 1);
  }
  uint32_t port = 0;
  if (port_text.empty() ||
      !absl::SimpleAtoi(absl::string_view(port_text.data(), port_text.size()),
                        &port) ||
      port > 65535) {
    return Invalid(text, "port must be a number from 0 to 65535");
  }
  // The C library would stop at a NUL and ignore what follows it.
  if (host.find('\0') != std::string::npos) {
    return Invalid(text, "NUL byte in host");
  }
  if (host.empty() || host == "*") host = "0.0.0.0";

  Address out;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage_);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage_);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    out.length_ = sizeof(sockaddr_in);
    return out;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    out.length_ = sizeof(sockaddr_in6);
    return out;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int err = getaddrinfo(host.c_str(), nullptr, &hints, &found); err != 0) {
    return Invalid(text, absl::StrFormat("cannot resolve host \"%s\": %s", host,
                                         gai_strerror(err)));
  }
  std::memcpy(&out.storage_, found->ai_addr, found->ai_addrlen);
  out.length_ = found->ai_addrlen;
  freeaddrinfo(found);
  if (out.family() == AF_INET) {
    v4->sin_port = htons(static_cast<uint16_t>(port));
  } else {
    v6->sin6_port = htons(static_cast<uint16_t>(port));
  }
  return out;
}

absl::StatusOr<Address> Address::OfSocket(int fd, bool peer) {
  Address out;
  out.length_ = sizeof(out.storage_);
  auto* sa = reinterpret_cast<struct sockaddr*>(&out.storage_);
  int rc = peer ? getpeername(fd, sa, &out.length_)
                : getsockname(fd, sa, &out.length_);
  if (rc != 0) {
    return absl::ErrnoToStatus(errno, peer ? "getpeername" : "getsockname");
  }
  return out;
}

uint16_t Address::port() const {
  if (family() == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  }
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  }
  return 0;
}

std::string Address::ToString() const {
  char host[INET6_ADDRSTRLEN] = "?";
  if (family() == AF_INET) {
    inet_ntop(AF_INET,
              &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, host,
              sizeof(host));
    return absl::StrFormat("%s:%d", host, port());
  }
  if (family() == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
    // Keep the zone ("[fe80::1%eth0]:80"), so that the text parses back to
    // the same address. The C library resolves interface names only for
    // link-local addresses: other zones are printed as numbers.
    std::string zone;
    if (v6->sin6_scope_id != 0) {
      char name[IF_NAMESIZE];
      const bool link_local = IN6_IS_ADDR_LINKLOCAL(&v6->sin6_addr) ||
                              IN6_IS_ADDR_MC_LINKLOCAL(&v6->sin6_addr);
      zone = link_local && if_indextoname(v6->sin6_scope_id, name) != nullptr
                 ? absl::StrCat("%", name)
                 : absl::StrCat("%", v6->sin6_scope_id);
    }
    return absl::StrFormat("[%s%s]:%d", host, zone, port());
  }
  return "(unknown address family)";
}

}  // namespace baton
