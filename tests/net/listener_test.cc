// Listener: accepting, stopping and resuming, queueing connections that
// arrive while nobody waits, binding errors, accept errors.
#include "baton/net/listener.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "baton/net/address.h"
#include "baton/net/connection.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task_group.h"
#include "baton/runtime/timer.h"
#include "net/net_test_util.h"

namespace baton {
namespace {

using net_test::AcceptBacklog;
using net_test::HasPendingConnections;
using net_test::IsCloseOnExec;
using net_test::PollUntil;

std::string LocalAddressOf(int fd) {
  return Address::OfSocket(fd).value_or(Address()).ToString();
}
std::string PeerAddressOf(int fd) {
  return Address::OfSocket(fd, true).value_or(Address()).ToString();
}

// Lets the reactor run a few loop turns (each one enters the kernel and runs
// its pending work) without waiting for anything in particular.
Task<void> Turns(int n) {
  for (int i = 0; i < n; ++i) co_await Yield();
}

class ListenerTest : public net_test::ListenerFixture {
 protected:
  void TearDown() override {
    for (int fd : clients_) close(fd);
    net_test::ListenerFixture::TearDown();
  }

  // A blocking client socket connected to the listener (the kernel completes
  // the handshake whether or not anyone accepts); closed in TearDown.
  int ConnectClient() {
    int fd = net_test::RawConnect(address_);
    EXPECT_GE(fd, 0) << strerror(errno);
    if (fd >= 0) clients_.push_back(fd);
    return fd;
  }

  std::vector<int> clients_;
};

Task<void> AcceptInto(Listener* l, absl::Status* status) {
  absl::StatusOr<Connection> c = co_await l->Accept();
  if (c.ok()) {
    *status = absl::InternalError("accepted a connection");
    co_await c->Close();
  } else {
    *status = c.status();
  }
}

TEST_P(ListenerTest, AcceptAfterStopAcceptingIsCancelled) {
  absl::Status pending, after_stop;
  reactor_->BlockOn([](Listener* l, absl::Status* pending,
                       absl::Status* after_stop) -> Task<void> {
    TaskGroup waiter;
    waiter.Spawn(AcceptInto(l, pending));
    co_await Turns(2);  // the waiter is suspended in Accept()
    co_await l->StopAccepting();
    co_await waiter.Join();
    co_await AcceptInto(l, after_stop);
  }(&*listener_, &pending, &after_stop));
  EXPECT_TRUE(absl::IsCancelled(pending)) << pending;
  EXPECT_TRUE(absl::IsCancelled(after_stop)) << after_stop;

  // A connection arriving now is left in the kernel's backlog, not accepted.
  const int client = ConnectClient();
  ASSERT_GE(client, 0);
  reactor_->BlockOn(Turns(5));
  EXPECT_TRUE(HasPendingConnections(listener_->fd()));
  EXPECT_TRUE(listener_->TakeQueued().empty());

  // Resuming accepts it.
  std::string accepted_peer;
  reactor_->BlockOn([](Listener* l, std::string* peer) -> Task<void> {
    l->ResumeAccepting();
    absl::StatusOr<Connection> c = co_await l->Accept();
    if (!c.ok()) {
      ADD_FAILURE() << c.status();
      co_return;
    }
    *peer = PeerAddressOf(c->fd());
    co_await c->Close();
  }(&*listener_, &accepted_peer));
  EXPECT_EQ(accepted_peer, LocalAddressOf(client));
}

TEST_P(ListenerTest, AcceptedFdsAreCloseOnExec) {
  constexpr int kClients = 3;
  std::set<std::string> client_addresses;
  for (int i = 0; i < kClients; ++i) {
    int fd = ConnectClient();
    ASSERT_GE(fd, 0);
    client_addresses.insert(LocalAddressOf(fd));
  }
  std::vector<bool> cloexec;
  std::set<std::string> peers;
  reactor_->BlockOn([](Listener* l, std::vector<bool>* cloexec,
                       std::set<std::string>* peers) -> Task<void> {
    for (int i = 0; i < kClients; ++i) {
      absl::StatusOr<Connection> c = co_await l->Accept();
      if (!c.ok()) {
        ADD_FAILURE() << c.status();
        co_return;
      }
      cloexec->push_back(IsCloseOnExec(c->fd()));
      peers->insert(PeerAddressOf(c->fd()));
      co_await c->Close();
    }
  }(&*listener_, &cloexec, &peers));
  ASSERT_EQ(cloexec.size(), size_t{kClients});
  for (bool flag : cloexec) EXPECT_TRUE(flag);
  EXPECT_EQ(peers, client_addresses);
  EXPECT_TRUE(IsCloseOnExec(listener_->fd()));
}

// With an accept armed but nobody waiting (the waiter was cancelled),
// connections the kernel hands over are queued, and TakeQueued() returns
// them after StopAccepting(). Multishot accept keeps taking connections; a
// single-shot accept takes one and leaves the rest in the kernel's backlog.
// None is lost either way.
TEST_P(ListenerTest, ConnectionsArrivingWhileNobodyWaitsAreQueued) {
  const bool multishot = GetParam().multishot;
  absl::Status cancelled;
  reactor_->BlockOn([](Listener* l, absl::Status* cancelled) -> Task<void> {
    TaskGroup waiter;
    waiter.Spawn(AcceptInto(l, cancelled));
    co_await Turns(2);
    waiter.CancelAll();
    co_await waiter.Join();
  }(&*listener_, &cancelled));
  ASSERT_TRUE(absl::IsCancelled(cancelled)) << cancelled;

  constexpr int kClients = 8;
  std::set<std::string> client_addresses;
  for (int i = 0; i < kClients; ++i) {
    int fd = ConnectClient();
    ASSERT_GE(fd, 0);
    client_addresses.insert(LocalAddressOf(fd));
  }
  const int listen_fd = listener_->fd();
  const int left_in_backlog = multishot ? 0 : kClients - 1;
  EXPECT_TRUE(reactor_->BlockOn(
      PollUntil([&] { return AcceptBacklog(listen_fd) == left_in_backlog; },
                absl::Seconds(5))))
      << "backlog " << AcceptBacklog(listen_fd);
  reactor_->BlockOn(Turns(5));  // a chance to take more than it should
  reactor_->BlockOn(listener_->StopAccepting());
  std::deque<int> queued = listener_->TakeQueued();
  EXPECT_TRUE(listener_->TakeQueued().empty());
  EXPECT_EQ(queued.size(), multishot ? size_t{kClients} : size_t{1});

  // Everything else is still in the backlog.
  std::vector<int> backlog;
  while (HasPendingConnections(listen_fd)) {
    int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(fd, 0) << strerror(errno);
    backlog.push_back(fd);
  }
  EXPECT_EQ(queued.size() + backlog.size(), size_t{kClients});

  std::set<std::string> peers;
  for (int fd : queued) {
    EXPECT_TRUE(IsCloseOnExec(fd)) << "queued fd " << fd;
    peers.insert(PeerAddressOf(fd));
    close(fd);
  }
  for (int fd : backlog) {
    peers.insert(PeerAddressOf(fd));
    close(fd);
  }
  EXPECT_EQ(peers, client_addresses);
}

// Connections queued when the listener goes away are closed with it, not
// leaked: their clients see end of stream.
TEST_P(ListenerTest, DestroyingListenerClosesQueuedConnections) {
  // An accept armed with nobody waiting (in both modes).
  absl::Status cancelled;
  reactor_->BlockOn([](Listener* l, absl::Status* cancelled) -> Task<void> {
    TaskGroup waiter;
    waiter.Spawn(AcceptInto(l, cancelled));
    co_await Turns(2);
    waiter.CancelAll();
    co_await waiter.Join();
  }(&*listener_, &cancelled));
  const int client = ConnectClient();
  ASSERT_GE(client, 0);
  const int listen_fd = listener_->fd();
  ASSERT_TRUE(reactor_->BlockOn(PollUntil(
      [&] { return AcceptBacklog(listen_fd) == 0; }, absl::Seconds(5))));
  reactor_->BlockOn(listener_->StopAccepting());
  listener_.reset();  // without TakeQueued()
  net_test::SetIoTimeout(client, absl::Seconds(5));
  char byte;
  EXPECT_EQ(recv(client, &byte, 1, 0), 0) << strerror(errno);
}

// An accept that fails (here EMFILE) is reported to Accept(); the connection
// stays in the backlog and the next Accept() takes it.
TEST_P(ListenerTest, AcceptErrorIsReportedThenAcceptingRecovers) {
  const int client = ConnectClient();
  ASSERT_GE(client, 0);
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  // No new descriptor can be allocated: the lowest free one is the limit.
  int lowest_free = fcntl(client, F_DUPFD, 0);
  ASSERT_GE(lowest_free, 0);
  close(lowest_free);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(lowest_free);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0) << strerror(errno);
  absl::Status failed;
  reactor_->BlockOn(AcceptInto(&*listener_, &failed));
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_TRUE(absl::IsResourceExhausted(failed)) << failed;
  EXPECT_NE(failed.message().find("accept"), std::string::npos) << failed;

  std::string peer;
  reactor_->BlockOn([](Listener* l, std::string* peer) -> Task<void> {
    absl::StatusOr<Connection> c = co_await l->Accept();
    if (!c.ok()) {
      ADD_FAILURE() << c.status();
      co_return;
    }
    *peer = PeerAddressOf(c->fd());
    co_await c->Close();
  }(&*listener_, &peer));
  EXPECT_EQ(peer, LocalAddressOf(client));
}

INSTANTIATE_TEST_SUITE_P(ReceiveModes, ListenerTest,
                         ::testing::ValuesIn(net_test::kReceiveModes),
                         net_test::ReceiveModeName);

// Binding needs no connection, so it runs once, on a default reactor.
class ListenerBindTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Reactor>> reactor = Reactor::Create();
    if (!reactor.ok()) GTEST_SKIP() << reactor.status();
    reactor_ = *std::move(reactor);
  }
  std::unique_ptr<Reactor> reactor_;
};

absl::StatusOr<Listener> BindPort(int port, bool reuse_port) {
  ListenerOptions options;
  options.reuse_port = reuse_port;
  return Listener::Bind(*Address::Parse(absl::StrCat("127.0.0.1:", port)),
                        options);
}

void ExpectAddressInUse(const absl::StatusOr<Listener>& l, int port) {
  ASSERT_FALSE(l.ok()) << "bound port " << port << " twice";
  const std::string message(l.status().message());
  EXPECT_NE(message.find(absl::StrCat("bind 127.0.0.1:", port)),
            std::string::npos)
      << l.status();
  EXPECT_NE(message.find("Address already in use"), std::string::npos)
      << l.status();
}

TEST_F(ListenerBindTest, PortInUseWithoutReusePortOnBothIsAnError) {
  // First without SO_REUSEPORT: nobody else may bind.
  absl::StatusOr<Listener> exclusive = BindPort(0, /*reuse_port=*/false);
  ASSERT_TRUE(exclusive.ok()) << exclusive.status();
  const int port = exclusive->local_address()->port();
  ExpectAddressInUse(BindPort(port, false), port);
  ExpectAddressInUse(BindPort(port, true), port);

  // First with SO_REUSEPORT: a second listener needs it too.
  absl::StatusOr<Listener> shared = BindPort(0, /*reuse_port=*/true);
  ASSERT_TRUE(shared.ok()) << shared.status();
  const int shared_port = shared->local_address()->port();
  ExpectAddressInUse(BindPort(shared_port, false), shared_port);
  absl::StatusOr<Listener> second = BindPort(shared_port, true);
  EXPECT_TRUE(second.ok()) << second.status();
}

TEST_F(ListenerBindTest, UnavailableAddressIsAnError) {
  // 192.0.2.0/24 (TEST-NET-1) is not assigned to any local interface.
  absl::StatusOr<Listener> l = Listener::Bind(*Address::Parse("192.0.2.1:0"));
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find("bind 192.0.2.1:0"), std::string::npos)
      << l.status();
}

}  // namespace
}  // namespace baton
