// The listening sockets never close during handoffs: client threads open a
// connection, exchange a few bytes, and close it, in a tight loop, while
// baton-echo is restarted 10 times. Not one connection may be refused,
// reset, time out or get wrong bytes back; connections that arrive while
// the old process is frozen wait in the shared accept backlog and are
// served by the new one.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "handoff/handoff_test_util.h"
#include "support/process.h"

namespace baton::test_support {
namespace {

constexpr int kRestarts = 10;
constexpr int kClientThreads = 2;
constexpr int kMinConnections = 1000;
constexpr absl::Duration kWait = absl::Seconds(60);

struct ChurnStats {
  std::atomic<int> completed{0};
  std::atomic<int> refused{0};
  std::atomic<int> reset{0};
  std::atomic<int> timed_out{0};
  std::atomic<int> wrong_bytes{0};
  std::atomic<int> other{0};
  std::mutex mu;
  std::vector<std::string> first_errors;

  int failures() const {
    return refused + reset + timed_out + wrong_bytes + other;
  }
  void Fail(std::atomic<int>& counter, std::string what) {
    ++counter;
    std::lock_guard<std::mutex> lock(mu);
    if (first_errors.size() < 10) first_errors.push_back(std::move(what));
  }
};

// One connection: connect, send `n` seeded bytes, read them back, close.
void OneConnection(const Address& server, std::mt19937_64& rng,
                   ChurnStats* stats) {
  const auto classify = [&](const char* op, int err) {
    std::string what = absl::StrCat(op, ": ", strerror(err));
    if (err == ECONNREFUSED) {
      stats->Fail(stats->refused, what);
    } else if (err == ECONNRESET || err == EPIPE) {
      stats->Fail(stats->reset, what);
    } else if (err == EAGAIN || err == ETIMEDOUT) {
      stats->Fail(stats->timed_out, what);
    } else {
      stats->Fail(stats->other, what);
    }
  };
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    classify("socket", errno);
    return;
  }
  // Bounded: a connection left unserved fails as a time-out.
  timeval tv = absl::ToTimeval(kWait);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, server.sa(), server.length()) != 0) {
    classify("connect", errno);
    close(fd);
    return;
  }
  std::string out(1 + rng() % 64, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  if (send(fd, out.data(), out.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(out.size())) {
    classify("send", errno);
    close(fd);
    return;
  }
  std::string in;
  char buf[128];
  while (in.size() < out.size()) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      classify("recv", errno);
      close(fd);
      return;
    }
    if (n == 0) {
      stats->Fail(stats->reset, absl::StrFormat("end of stream after %d of "
                                                "%d bytes",
                                                in.size(), out.size()));
      close(fd);
      return;
    }
    in.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  if (in != out) {
    stats->Fail(stats->wrong_bytes, "echo differs from the bytes sent");
    return;
  }
  ++stats->completed;
}

class ListenerContinuityTest : public ::testing::TestWithParam<int> {};

TEST_P(ListenerContinuityTest, NoConnectionFailsAcrossRestarts) {
  const int threads = GetParam();
  const uint32_t seed = TestSeed(6600 + static_cast<uint32_t>(threads));
  SCOPED_TRACE(SeedTrace(seed));
  TestDirectory dir;
  ServerProcess server(EchoServer(dir.path(), EchoArgs(threads)));
  ASSERT_OK(server.Start());

  ChurnStats stats;
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int t = 0; t < kClientThreads; ++t) {
    clients.emplace_back([&, t] {
      std::mt19937_64 rng(seed * 31 + static_cast<uint32_t>(t));
      while (!stop.load()) OneConnection(server.address(), rng, &stats);
    });
  }
  // Stops and joins the clients on every exit path.
  struct Joiner {
    std::atomic<bool>* stop;
    std::vector<std::thread>* threads;
    ~Joiner() {
      stop->store(true);
      for (std::thread& t : *threads) t.join();
    }
  } joiner{&stop, &clients};

  // Connections complete before, between and after the restarts.
  auto progress = [&](int more) {
    const int target = stats.completed.load() + more;
    return PollUntil(
        [&] { return stats.completed.load() >= target || stats.failures(); },
        kWait);
  };
  ASSERT_TRUE(progress(100));
  std::vector<RestartResult> restarts;
  for (int i = 0; i < kRestarts; ++i) {
    SCOPED_TRACE(absl::StrCat("restart ", i + 1));
    absl::StatusOr<RestartResult> r = server.Restart();
    ASSERT_OK(r);
    ExpectCleanExit(*r);
    EXPECT_EQ(r->handoff.listeners, threads) << r->handoff.text;
    restarts.push_back(*r);
    ASSERT_TRUE(progress(50));
  }
  ASSERT_TRUE(PollUntil(
      [&] {
        return stats.completed.load() >= kMinConnections || stats.failures();
      },
      kWait));
  stop.store(true);
  for (std::thread& t : clients) t.join();
  clients.clear();

  int moved = 0;
  for (const RestartResult& r : restarts) moved += r.handoff.connections;
  std::printf("%d connections completed; %d were in flight at a handoff\n",
              stats.completed.load(), moved);
  EXPECT_GE(stats.completed.load(), kMinConnections);
  EXPECT_EQ(stats.refused.load(), 0);
  EXPECT_EQ(stats.reset.load(), 0);
  EXPECT_EQ(stats.timed_out.load(), 0);
  EXPECT_EQ(stats.wrong_bytes.load(), 0);
  EXPECT_EQ(stats.other.load(), 0);
  for (const std::string& e : stats.first_errors) ADD_FAILURE() << e;
  EXPECT_OK(server.Stop());
}

INSTANTIATE_TEST_SUITE_P(Threads, ListenerContinuityTest,
                         ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return absl::StrCat(info.param, "Threads");
                         });

}  // namespace
}  // namespace baton::test_support
