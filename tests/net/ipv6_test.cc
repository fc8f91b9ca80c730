// Echo over IPv6 loopback ([::1]).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <string>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "baton/net/address.h"
#include "baton/net/connection.h"
#include "baton/net/listener.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task_group.h"
#include "net/net_test_util.h"

namespace baton {
namespace {

// Empty if an IPv6 loopback socket can be bound; else why not.
std::string Ipv6LoopbackUnavailable() {
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    if (errno == EAFNOSUPPORT) return "no IPv6 sockets (EAFNOSUPPORT)";
    return std::string("socket(AF_INET6): ") + strerror(errno);
  }
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  int err = errno;
  close(fd);
  if (rc == 0) return "";
  if (err == EADDRNOTAVAIL || err == EAFNOSUPPORT) {
    return std::string("no IPv6 loopback: bind [::1]:0: ") + strerror(err);
  }
  return std::string("bind [::1]:0: ") + strerror(err);
}

class Ipv6Test : public ::testing::TestWithParam<net_test::ReceiveMode> {
 protected:
  void SetUp() override {
    if (std::string why = Ipv6LoopbackUnavailable(); !why.empty()) {
      GTEST_SKIP() << why;
    }
    std::string skip;
    reactor_ = net_test::CreateReactor(GetParam(), {}, &skip);
    if (reactor_ == nullptr) GTEST_SKIP() << skip;
  }

  std::unique_ptr<Reactor> reactor_;
};

TEST_P(Ipv6Test, EchoOverLoopback) {
  const uint32_t seed = test_support::TestSeed(6001);
  SCOPED_TRACE(test_support::SeedTrace(seed));
  absl::StatusOr<Address> any_port = Address::Parse("[::1]:0");
  ASSERT_TRUE(any_port.ok()) << any_port.status();
  absl::StatusOr<Listener> listener = Listener::Bind(*any_port);
  ASSERT_TRUE(listener.ok()) << listener.status();
  absl::StatusOr<Address> address = listener->local_address();
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(address->family(), AF_INET6);
  EXPECT_NE(address->port(), 0);
  EXPECT_EQ(address->ToString(), "[::1]:" + std::to_string(address->port()));

  net_test::EchoLoad run;
  run.clients = 50;
  run.min_bytes = 64 * 1024;
  run.max_bytes = 256 * 1024 - 1;
  run.seed = seed;
  run.deadline = absl::Seconds(60);
  reactor_->BlockOn(net_test::RunEchoLoad(&*listener, &run));

  EXPECT_EQ(run.client.completed, run.clients);
  for (const std::string& f : run.client.failures) ADD_FAILURE() << f;
  EXPECT_EQ(run.client.bytes_verified, run.bytes_expected);
  EXPECT_EQ(run.server.accepted, run.clients);
  EXPECT_EQ(run.server.ended_at_eof, run.clients);
  EXPECT_EQ(run.server.errors, 0) << run.server.first_error;
  EXPECT_EQ(run.server.bytes, run.bytes_expected);
  EXPECT_EQ(reactor_->inflight(), 0);
}

// Both ends of an accepted IPv6 connection report [::1] addresses.
TEST_P(Ipv6Test, ConnectionAddressesAreIpv6) {
  absl::StatusOr<Listener> listener =
      Listener::Bind(*Address::Parse("[::1]:0"));
  ASSERT_TRUE(listener.ok()) << listener.status();
  const Address address = *listener->local_address();
  std::string server_local, server_peer, client_local, client_peer;
  reactor_->BlockOn([](Listener* l, Address to, std::string* server_local,
                       std::string* server_peer, std::string* client_local,
                       std::string* client_peer) -> Task<void> {
    absl::StatusOr<Connection> client = co_await Connect(to);
    absl::StatusOr<Connection> server = co_await l->Accept();
    if (!client.ok() || !server.ok()) {
      ADD_FAILURE() << client.status() << " " << server.status();
    } else {
      *server_local =
          Address::OfSocket(server->fd()).value_or(Address()).ToString();
      *server_peer =
          Address::OfSocket(server->fd(), true).value_or(Address()).ToString();
      *client_local =
          Address::OfSocket(client->fd()).value_or(Address()).ToString();
      *client_peer =
          Address::OfSocket(client->fd(), true).value_or(Address()).ToString();
      co_await server->Close();
      co_await client->Close();
    }
    co_await l->StopAccepting();
  }(&*listener, address, &server_local, &server_peer, &client_local,
                                                 &client_peer));
  EXPECT_EQ(server_local, address.ToString());
  EXPECT_EQ(client_peer, address.ToString());
  EXPECT_EQ(server_peer, client_local);
  EXPECT_TRUE(absl::StartsWith(client_local, "[::1]:")) << client_local;
  EXPECT_EQ(reactor_->inflight(), 0);
}

INSTANTIATE_TEST_SUITE_P(ReceiveModes, Ipv6Test,
                         ::testing::ValuesIn(net_test::kReceiveModes),
                         net_test::ReceiveModeName);

}  // namespace
}  // namespace baton
