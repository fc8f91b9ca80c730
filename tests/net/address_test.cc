// Address: parsing HOST:PORT, printing, and reading a socket's addresses.
#include "baton/net/address.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace baton {
namespace {

const sockaddr_in& V4(const Address& a) {
  return *reinterpret_cast<const sockaddr_in*>(a.sa());
}
const sockaddr_in6& V6(const Address& a) {
  return *reinterpret_cast<const sockaddr_in6*>(a.sa());
}

TEST(AddressTest, ParsesIpv4) {
  absl::StatusOr<Address> a = Address::Parse("127.0.0.1:80");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->family(), AF_INET);
  EXPECT_EQ(a->port(), 80);
  EXPECT_EQ(a->length(), sizeof(sockaddr_in));
  EXPECT_EQ(a->sa()->sa_family, AF_INET);
  EXPECT_EQ(ntohl(V4(*a).sin_addr.s_addr), INADDR_LOOPBACK);
  EXPECT_EQ(ntohs(V4(*a).sin_port), 80);
  EXPECT_EQ(a->ToString(), "127.0.0.1:80");
}

TEST(AddressTest, ParsesBracketedIpv6) {
  absl::StatusOr<Address> a = Address::Parse("[::1]:0");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->family(), AF_INET6);
  EXPECT_EQ(a->port(), 0);
  EXPECT_EQ(a->length(), sizeof(sockaddr_in6));
  EXPECT_EQ(std::memcmp(&V6(*a).sin6_addr, &in6addr_loopback, sizeof(in6_addr)),
            0);
  EXPECT_EQ(a->ToString(), "[::1]:0");
}

TEST(AddressTest, ResolvesLocalhost) {
  absl::StatusOr<Address> a = Address::Parse("localhost:8080");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->port(), 8080);
  // The resolver may prefer either loopback.
  if (a->family() == AF_INET) {
    EXPECT_EQ(a->ToString(), "127.0.0.1:8080");
    EXPECT_EQ(a->length(), sizeof(sockaddr_in));
  } else {
    ASSERT_EQ(a->family(), AF_INET6);
    EXPECT_EQ(a->ToString(), "[::1]:8080");
    EXPECT_EQ(a->length(), sizeof(sockaddr_in6));
  }
}

TEST(AddressTest, EmptyHostMeansAllIpv4Interfaces) {
  absl::StatusOr<Address> a = Address::Parse(":8080");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->family(), AF_INET);
  EXPECT_EQ(V4(*a).sin_addr.s_addr, htonl(INADDR_ANY));
  EXPECT_EQ(a->port(), 8080);
  EXPECT_EQ(a->ToString(), "0.0.0.0:8080");
}

TEST(AddressTest, StarMeansAllIpv4Interfaces) {
  absl::StatusOr<Address> a = Address::Parse("*:1");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->family(), AF_INET);
  EXPECT_EQ(V4(*a).sin_addr.s_addr, htonl(INADDR_ANY));
  EXPECT_EQ(a->port(), 1);
  EXPECT_EQ(a->ToString(), "0.0.0.0:1");
}

TEST(AddressTest, PortRangeEnds) {
  absl::StatusOr<Address> low = Address::Parse("10.0.0.1:0");
  ASSERT_TRUE(low.ok()) << low.status();
  EXPECT_EQ(low->port(), 0);
  absl::StatusOr<Address> high = Address::Parse("10.0.0.1:65535");
  ASSERT_TRUE(high.ok()) << high.status();
  EXPECT_EQ(high->port(), 65535);
}

struct BadAddress {
  const char* name;  // of the test case
  const char* text;
  const char* why;  // a fragment the error message must contain
};

void PrintTo(const BadAddress& bad, std::ostream* os) {
  *os << '"' << bad.text << '"';
}

class AddressErrorTest : public ::testing::TestWithParam<BadAddress> {};

TEST_P(AddressErrorTest, IsInvalidArgumentNamingTheText) {
  const BadAddress& bad = GetParam();
  absl::StatusOr<Address> a = Address::Parse(bad.text);
  ASSERT_FALSE(a.ok()) << bad.text << " parsed as " << a->ToString();
  EXPECT_TRUE(absl::IsInvalidArgument(a.status())) << a.status();
  const std::string message(a.status().message());
  EXPECT_NE(message.find(std::string("\"") + bad.text + "\""),
            std::string::npos)
      << message;
  EXPECT_NE(message.find(bad.why), std::string::npos) << message;
}

INSTANTIATE_TEST_SUITE_P(
    Inputs, AddressErrorTest,
    ::testing::Values(
        BadAddress{"Nonsense", "nonsense", "missing ':PORT'"},
        BadAddress{"Ipv4WithoutPort", "1.2.3.4", "missing ':PORT'"},
        BadAddress{"Empty", "", "missing ':PORT'"},
        BadAddress{"UnclosedBracket", "[::1", "missing ']'"},
        BadAddress{"NoColonAfterBracket", "[::1]80",
                   "missing ':PORT' after ']'"},
        BadAddress{"NoPortAfterBracket", "[::1]", "missing ':PORT' after ']'"},
        BadAddress{"UnbracketedIpv6", "::1:80", "must be in brackets"},
        BadAddress{"PortTooLarge", "host:99999", "port must be a number"},
        BadAddress{"PortJustTooLarge", "host:65536", "port must be a number"},
        BadAddress{"PortNotANumber", "host:abc", "port must be a number"},
        BadAddress{"PortEmpty", "host:", "port must be a number"},
        BadAddress{"PortNegative", "127.0.0.1:-1", "port must be a number"}),
    [](const ::testing::TestParamInfo<BadAddress>& info) {
      return std::string(info.param.name);
    });

TEST(AddressTest, ToStringRoundTrips) {
  for (const char* text :
       {"127.0.0.1:80", "0.0.0.0:0", "255.255.255.255:65535", "10.1.2.3:443",
        "[::1]:0", "[::]:8080", "[2001:db8::1]:443", "[fe80::1:2]:1",
        "[::ffff:1.2.3.4]:9"}) {
    SCOPED_TRACE(text);
    absl::StatusOr<Address> a = Address::Parse(text);
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_EQ(a->ToString(), text);
    absl::StatusOr<Address> again = Address::Parse(a->ToString());
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->family(), a->family());
    EXPECT_EQ(again->port(), a->port());
    EXPECT_EQ(again->length(), a->length());
    EXPECT_EQ(std::memcmp(again->sa(), a->sa(), a->length()), 0);
  }
}

// Found by fuzz/address_fuzzer: ToString() dropped the zone of a link-local
// IPv6 address, so "[fe80::1%lo]:80" printed as "[fe80::1]:80", which parses
// to a different address (scope id 0).
TEST(AddressTest, ToStringKeepsIpv6Zone) {
  const unsigned lo = if_nametoindex("lo");
  if (lo == 0) GTEST_SKIP() << "no loopback interface named lo";
  absl::StatusOr<Address> a = Address::Parse("[fe80::1%lo]:80");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->family(), AF_INET6);
  EXPECT_EQ(V6(*a).sin6_scope_id, lo);
  EXPECT_EQ(a->ToString(), "[fe80::1%lo]:80");
  absl::StatusOr<Address> again = Address::Parse(a->ToString());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(V6(*again).sin6_scope_id, lo);
  EXPECT_EQ(again->length(), a->length());
  EXPECT_EQ(std::memcmp(again->sa(), a->sa(), a->length()), 0);

  // The C library takes interface names as zones of link-local addresses
  // only; others print their zone as a number, which it takes.
  const std::string global_text = absl::StrCat("[2001:db8::1%", lo, "]:80");
  absl::StatusOr<Address> global = Address::Parse(global_text);
  ASSERT_TRUE(global.ok()) << global.status();
  EXPECT_EQ(global->ToString(), global_text);
  absl::StatusOr<Address> global_again = Address::Parse(global->ToString());
  ASSERT_TRUE(global_again.ok()) << global_again.status();
  EXPECT_EQ(std::memcmp(global_again->sa(), global->sa(), global->length()), 0);
}

// Found by fuzz/address_fuzzer: a NUL byte ended the host for the C library,
// so "1.2.3.4<NUL>junk:80" parsed as 1.2.3.4:80.
TEST(AddressTest, RefusesNulInHost) {
  for (std::string text :
       {std::string("1.2.3.4\0junk:80", 15), std::string("[::1\0x]:80", 10),
        std::string("localhost\0:80", 13)}) {
    absl::StatusOr<Address> a = Address::Parse(text);
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument)
        << (a.ok() ? a->ToString() : "");
  }
}

TEST(AddressTest, DefaultConstructedIsEmpty) {
  Address a;
  EXPECT_EQ(a.family(), AF_UNSPEC);
  EXPECT_EQ(a.port(), 0);
  EXPECT_EQ(a.length(), 0u);
  EXPECT_EQ(a.ToString(), "(unknown address family)");
}

// A listening socket on 127.0.0.1 with a kernel-chosen port; -1 on failure.
int ListenOnLoopback(const Address& where) {
  int fd = socket(where.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (bind(fd, where.sa(), where.length()) != 0 || listen(fd, 4) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

TEST(AddressTest, OfSocketReportsLocalAndPeerAddresses) {
  absl::StatusOr<Address> any_port = Address::Parse("127.0.0.1:0");
  ASSERT_TRUE(any_port.ok());
  int listen_fd = ListenOnLoopback(*any_port);
  ASSERT_GE(listen_fd, 0) << strerror(errno);

  absl::StatusOr<Address> local = Address::OfSocket(listen_fd);
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_EQ(local->family(), AF_INET);
  EXPECT_EQ(local->length(), sizeof(sockaddr_in));
  EXPECT_NE(local->port(), 0);  // the kernel picked one
  EXPECT_EQ(local->ToString(), "127.0.0.1:" + std::to_string(local->port()));

  // A listening socket has no peer.
  absl::StatusOr<Address> no_peer = Address::OfSocket(listen_fd, true);
  EXPECT_FALSE(no_peer.ok());

  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(client, 0);
  ASSERT_EQ(connect(client, local->sa(), local->length()), 0)
      << strerror(errno);
  int server = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(server, 0) << strerror(errno);

  absl::StatusOr<Address> client_local = Address::OfSocket(client);
  absl::StatusOr<Address> client_peer = Address::OfSocket(client, true);
  absl::StatusOr<Address> server_local = Address::OfSocket(server);
  absl::StatusOr<Address> server_peer = Address::OfSocket(server, true);
  ASSERT_TRUE(client_local.ok() && client_peer.ok() && server_local.ok() &&
              server_peer.ok());
  EXPECT_EQ(client_peer->ToString(), local->ToString());
  EXPECT_EQ(server_local->ToString(), local->ToString());
  EXPECT_EQ(server_peer->ToString(), client_local->ToString());
  EXPECT_NE(client_local->port(), local->port());

  close(server);
  close(client);
  close(listen_fd);
}

TEST(AddressTest, OfSocketIpv6) {
  absl::StatusOr<Address> any_port = Address::Parse("[::1]:0");
  ASSERT_TRUE(any_port.ok());
  int fd = ListenOnLoopback(*any_port);
  if (fd < 0 && (errno == EADDRNOTAVAIL || errno == EAFNOSUPPORT)) {
    GTEST_SKIP() << "no IPv6 loopback: " << strerror(errno);
  }
  ASSERT_GE(fd, 0) << strerror(errno);
  absl::StatusOr<Address> local = Address::OfSocket(fd);
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_EQ(local->family(), AF_INET6);
  EXPECT_EQ(local->length(), sizeof(sockaddr_in6));
  EXPECT_NE(local->port(), 0);
  EXPECT_EQ(local->ToString(), "[::1]:" + std::to_string(local->port()));
  close(fd);
}

TEST(AddressTest, OfSocketOnBadFdIsAnError) {
  absl::StatusOr<Address> a = Address::OfSocket(-1);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("getsockname"), std::string::npos)
      << a.status();
  absl::StatusOr<Address> p = Address::OfSocket(-1, true);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("getpeername"), std::string::npos)
      << p.status();
}

}  // namespace
}  // namespace baton
