// Descriptor accounting across handoffs: with K connections open (and
// streaming), after each of 3 restarts the old process is gone and the new
// one holds exactly
//   - stdin (/dev/null), stdout and stderr (the test's log files),
//   - each listening socket once: the very sockets (same inodes) the first
//     process bound, no new bind, none lost,
//   - each connected socket once: K sockets, each the server side of an
//     established connection on the service port,
//   - one io_uring ring and one eventfd per reactor thread, one signalfd,
// and nothing else (no leaked channel, memfd, duplicate or stray fd).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/stream_check.h"
#include "handoff/handoff_test_util.h"
#include "support/process.h"

namespace baton::test_support {
namespace {

constexpr int kThreads = 2;
constexpr int kConnections = 40;
constexpr int kRestarts = 3;
constexpr absl::Duration kWait = absl::Seconds(60);

// How many descriptors a serving process holds: stdio, a ring (or an epoll
// instance) and an eventfd per reactor, the signalfd, the listeners and the
// connections.
int ExpectedDescriptors(const std::set<uint64_t>& listeners) {
  return 3 + 2 * kThreads + 1 + static_cast<int>(listeners.size()) +
         kConnections;
}

// Checks the descriptors of `pid` against the list in the file comment.
void ExpectExactDescriptors(pid_t pid, const ServerProcess& server,
                            const std::set<uint64_t>& listeners) {
  SCOPED_TRACE(absl::StrCat("descriptors of pid ", pid));
  absl::StatusOr<FdCensus> census = TakeFdCensus(pid);
  ASSERT_OK(census);
  SCOPED_TRACE(census->ToString());

  // No socket twice.
  std::set<uint64_t> sockets(census->sockets.begin(), census->sockets.end());
  EXPECT_EQ(sockets.size(), census->sockets.size())
      << "a socket is open on two descriptors";

  // Every listener, and only these listeners, on the service port.
  std::set<uint64_t> held_listeners;
  std::set_intersection(sockets.begin(), sockets.end(), listeners.begin(),
                        listeners.end(),
                        std::inserter(held_listeners, held_listeners.end()));
  EXPECT_EQ(held_listeners, listeners);

  // The rest: server ends of established connections on the port.
  absl::StatusOr<std::vector<TcpSocket>> tcp = ReadTcpSockets();
  ASSERT_OK(tcp);
  std::set<uint64_t> established;
  for (const TcpSocket& s : *tcp) {
    if (s.state == kTcpEstablished && s.local_port == server.port()) {
      established.insert(s.inode);
    }
  }
  std::set<uint64_t> connected;
  std::set_difference(sockets.begin(), sockets.end(), listeners.begin(),
                      listeners.end(),
                      std::inserter(connected, connected.end()));
  EXPECT_EQ(static_cast<int>(connected.size()), kConnections);
  EXPECT_EQ(connected, established)
      << "the connected sockets held are not exactly the server ends of the "
         "established connections";

  // The runtime's own descriptors.
  EXPECT_EQ(census->event_queues, kThreads);
  EXPECT_EQ(census->eventfd, kThreads);
  EXPECT_EQ(census->signalfd, 1);

  // stdio, and nothing else.
  const std::vector<std::string> stdio = {
      absl::StrCat("0 -> /dev/null"),
      absl::StrCat("1 -> ", server.stdout_path()),
      absl::StrCat("2 -> ", server.stderr_path())};
  EXPECT_EQ(census->other, stdio);
  EXPECT_EQ(census->total(), ExpectedDescriptors(listeners));
}

TEST(FdAccountingTest, NewProcessHoldsExactlyListenersConnectionsAndRuntime) {
  const uint32_t seed = TestSeed(6300);
  SCOPED_TRACE(SeedTrace(seed));
  TestDirectory dir;
  ServerProcess server(EchoServer(dir.path(), EchoArgs(kThreads)));
  ASSERT_OK(server.Start());
  app::StreamClientOptions load = Streams(server.address(), kConnections, seed);
  load.max_write = 4096;
  load.window = 16 * 1024;
  app::StreamClient client(load);
  ASSERT_OK(client.Start());
  // Every connection echoed: the server has accepted and serves all K.
  ASSERT_OK(client.WaitVerified(8 * 1024, kWait));

  absl::StatusOr<std::set<uint64_t>> listeners = ListeningInodes(server.port());
  ASSERT_OK(listeners);
  // One SO_REUSEPORT socket per reactor.
  ASSERT_EQ(static_cast<int>(listeners->size()), kThreads);
  ExpectExactDescriptors(server.pid(), server, *listeners);

  for (int i = 0; i < kRestarts; ++i) {
    SCOPED_TRACE(absl::StrCat("restart ", i + 1));
    absl::StatusOr<RestartResult> r = server.Restart();
    ASSERT_OK(r);
    ExpectCleanExit(*r);
    EXPECT_EQ(r->handoff.connections, kConnections) << r->handoff.text;
    EXPECT_EQ(r->handoff.listeners, kThreads) << r->handoff.text;

    // The old process is gone (reaped: not even a zombie).
    errno = 0;
    EXPECT_EQ(kill(r->old_pid, 0), -1);
    EXPECT_EQ(errno, ESRCH);
    struct stat st;
    EXPECT_NE(stat(absl::StrCat("/proc/", r->old_pid).c_str(), &st), 0);

    // The same listening sockets, and no other, listen on the port.
    absl::StatusOr<std::set<uint64_t>> now = ListeningInodes(server.port());
    ASSERT_OK(now);
    EXPECT_EQ(*now, *listeners) << "listening sockets changed";
    ExpectExactDescriptors(r->new_pid, server, *listeners);
    ASSERT_OK(client.WaitForProgress(8 * 1024, kWait));
  }
  ASSERT_OK(client.Finish(kWait));
  ExpectStreamsIntact(client);
  EXPECT_OK(server.Stop());
}

// A rollback after the old process froze, detached and sent every
// connection (the new process is killed before its final acknowledgement)
// leaves the old process with exactly the descriptors it had: no channel,
// snapshot memfd or duplicate left behind.
TEST(FdAccountingTest, RollbackAfterFreezeLeavesNoDescriptorBehind) {
  const uint32_t seed = TestSeed(6301);
  SCOPED_TRACE(SeedTrace(seed));
  TestDirectory dir;
  ServerProcess server(
      EchoServer(dir.path(), EchoArgs(kThreads),
                 {"BATON_HANDOFF_FAULT=child:before_final_ack"}));
  ASSERT_OK(server.Start());
  app::StreamClientOptions load = Streams(server.address(), kConnections, seed);
  load.max_write = 4096;
  load.window = 16 * 1024;
  app::StreamClient client(load);
  ASSERT_OK(client.Start());
  ASSERT_OK(client.WaitForProgress(8 * 1024, kWait));
  absl::StatusOr<std::set<uint64_t>> listeners = ListeningInodes(server.port());
  ASSERT_OK(listeners);
  ExpectExactDescriptors(server.pid(), server, *listeners);

  absl::StatusOr<std::string> rollback = server.RestartExpectRollback();
  ASSERT_OK(rollback);
  EXPECT_THAT(*rollback, ::testing::HasSubstr(absl::StrCat(
                             "(", kConnections, " connections resumed)")));
  // The old process logs its rollback just before it closes its end of the
  // handoff channel: give that close time to land (a descriptor really
  // left behind still fails the check below).
  PollUntil(
      [&] {
        absl::StatusOr<FdCensus> census = TakeFdCensus(server.pid());
        return census.ok() &&
               census->total() <= ExpectedDescriptors(*listeners);
      },
      absl::Seconds(5));
  ExpectExactDescriptors(server.pid(), server, *listeners);
  absl::StatusOr<std::set<uint64_t>> now = ListeningInodes(server.port());
  ASSERT_OK(now);
  EXPECT_EQ(*now, *listeners);

  ASSERT_OK(client.WaitForProgress(8 * 1024, kWait));
  ASSERT_OK(client.Finish(kWait));
  ExpectStreamsIntact(client);
  EXPECT_OK(server.Stop());
}

// With --admin the admin endpoint's listening socket is one more listener
// that every restart carries: the new process holds it exactly once (the
// very socket the first process bound), and admin connections are closed,
// not moved, so nothing else changes.
TEST(FdAccountingTest, AdminListenerIsCarriedOnce) {
  if (FindTool("curl").empty()) GTEST_SKIP() << "curl is not installed";
  const uint32_t seed = TestSeed(6302);
  SCOPED_TRACE(SeedTrace(seed));
  TestDirectory dir;
  ServerProcess server(
      EchoServer(dir.path(), EchoArgs(kThreads, {"--admin=127.0.0.1:0"})));
  ASSERT_OK(server.Start());
  uint16_t admin_port = 0;
  for (const std::string& line : server.StdoutLines()) {
    if (absl::StartsWith(line, "admin listening on ")) {
      absl::StatusOr<Address> a =
          Address::Parse(line.substr(std::strlen("admin listening on ")));
      ASSERT_OK(a);
      admin_port = a->port();
    }
  }
  ASSERT_NE(admin_port, 0);
  app::StreamClientOptions load = Streams(server.address(), kConnections, seed);
  load.max_write = 4096;
  load.window = 16 * 1024;
  app::StreamClient client(load);
  ASSERT_OK(client.Start());
  ASSERT_OK(client.WaitVerified(8 * 1024, kWait));

  absl::StatusOr<std::set<uint64_t>> listeners = ListeningInodes(server.port());
  ASSERT_OK(listeners);
  absl::StatusOr<std::set<uint64_t>> admin = ListeningInodes(admin_port);
  ASSERT_OK(admin);
  ASSERT_EQ(admin->size(), 1u);
  std::set<uint64_t> all = *listeners;
  all.insert(admin->begin(), admin->end());
  const std::string url =
      absl::StrCat("http://127.0.0.1:", admin_port, "/metrics");
  auto census_after_curl = [&](pid_t pid) {
    std::string out;
    EXPECT_EQ(RunTool({"curl", "-sS", "--max-time", "10", url}, &out), 0)
        << out;
    // The admin connection closes once curl has read the answer.
    PollUntil(
        [&] {
          absl::StatusOr<FdCensus> census = TakeFdCensus(pid);
          return census.ok() && census->total() <= ExpectedDescriptors(all);
        },
        absl::Seconds(5));
    ExpectExactDescriptors(pid, server, all);
  };
  census_after_curl(server.pid());

  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(absl::StrCat("restart ", i + 1));
    absl::StatusOr<RestartResult> r = server.Restart();
    ASSERT_OK(r);
    ExpectCleanExit(*r);
    EXPECT_EQ(r->handoff.listeners, kThreads + 1) << r->handoff.text;
    absl::StatusOr<std::set<uint64_t>> now = ListeningInodes(admin_port);
    ASSERT_OK(now);
    EXPECT_EQ(*now, *admin) << "the admin socket changed";
    census_after_curl(r->new_pid);
    ASSERT_OK(client.WaitForProgress(8 * 1024, kWait));
  }
  ASSERT_OK(client.Finish(kWait));
  ExpectStreamsIntact(client);
  EXPECT_OK(server.Stop());
}

}  // namespace
}  // namespace baton::test_support
