// Address: an IPv4 or IPv6 socket address, parsed from "HOST:PORT".
//
// Accepted forms: "127.0.0.1:8080", "[::1]:8080", "localhost:8080",
// "0.0.0.0:0" (port 0 lets the kernel pick), ":8080" (all IPv4 interfaces).
// Host names are resolved once, at parse time (start-up, never on a hot
// path). Errors are absl::InvalidArgumentError naming the offending text.
//
//   absl::StatusOr<Address> a = Address::Parse("[::1]:0");
//   bind(fd, a->sa(), a->length());
#ifndef BATON_NET_ADDRESS_H_
#define BATON_NET_ADDRESS_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace baton {

class Address {
 public:
  Address() = default;
  static absl::StatusOr<Address> Parse(std::string_view text);
  // The local (or, with peer=true, remote) address of a socket.
  static absl::StatusOr<Address> OfSocket(int fd, bool peer = false);

  int family() const { return storage_.ss_family; }
  uint16_t port() const;
  const struct sockaddr* sa() const {
    return reinterpret_cast<const struct sockaddr*>(&storage_);
  }
  socklen_t length() const { return length_; }
  // "127.0.0.1:8080" or "[::1]:8080".
  std::string ToString() const;

 private:
  sockaddr_storage storage_{};
  socklen_t length_ = 0;
};

}  // namespace baton

#endif  // BATON_NET_ADDRESS_H_
