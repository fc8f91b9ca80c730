// Shared helpers for the net tests (header-only).
//
// - ReceiveMode: the two ways a reactor receives (multishot accept + multishot
//   recv into the provided-buffer ring, or the single-shot fallback), for
//   TEST_P suites; CreateReactor() builds a reactor for a mode or explains why
//   the mode is unavailable (the test then skips).
// - An echo server (AcceptLoop + EchoConnection) and an echo client that
//   sends a fixed amount of an app::PatternStream (common/stream_check.h)
//   and verifies its echo, all on the test's reactor; RunEchoLoad() runs a
//   seeded EchoLoad of many such clients against the server.
// - Watchdog: turns a hang into a test failure by cancelling task groups.
// - Raw socket helpers for the cases that need socket options the framework
//   does not expose.
//
// Seeds come from support/seed.h (test_support::TestSeed, SeedTrace).
//
// Coroutines cannot use ASSERT_* (it expands to `return`); they use EXPECT_*
// and ADD_FAILURE() and co_return.
#ifndef BATON_TESTS_NET_NET_TEST_UTIL_H_
#define BATON_TESTS_NET_NET_TEST_UTIL_H_

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "baton/net/address.h"
#include "baton/net/connection.h"
#include "baton/net/listener.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task.h"
#include "baton/runtime/task_group.h"
#include "baton/runtime/timer.h"
#include "common/stream_check.h"
#include "support/seed.h"

namespace baton::net_test {

// --- Receive modes ---

struct ReceiveMode {
  const char* name;
  bool multishot;  // false: disable_multishot_recv = disable_multishot_accept
};

inline void PrintTo(const ReceiveMode& mode, std::ostream* os) {
  *os << mode.name;
}

inline constexpr ReceiveMode kMultishotMode = {"MultishotRing", true};
inline constexpr ReceiveMode kSingleShotMode = {"SingleShot", false};
inline constexpr ReceiveMode kReceiveModes[] = {kMultishotMode,
                                                kSingleShotMode};

inline std::string ReceiveModeName(
    const ::testing::TestParamInfo<ReceiveMode>& info) {
  return info.param.name;
}

// `base` with the switches of `mode` applied.
inline ReactorOptions OptionsFor(const ReceiveMode& mode,
                                 ReactorOptions base = {}) {
  if (!mode.multishot) {
    base.disable_multishot_recv = true;
    base.disable_multishot_accept = true;
  }
  return base;
}

// A reactor running in `mode`, or nullptr with `*skip_reason` set when this
// kernel (or sandbox) cannot provide the mode.
inline std::unique_ptr<Reactor> CreateReactor(const ReceiveMode& mode,
                                              ReactorOptions base,
                                              std::string* skip_reason) {
  absl::StatusOr<std::unique_ptr<Reactor>> reactor =
      Reactor::Create(OptionsFor(mode, base));
  if (!reactor.ok()) {
    *skip_reason = absl::StrFormat("Reactor::Create failed: %s",
                                   reactor.status().ToString());
    return nullptr;
  }
  const ReactorFeatures& features = (*reactor)->features();
  if (mode.multishot) {
    if (!features.multishot_accept || !features.multishot_recv ||
        (*reactor)->buffer_ring() == nullptr) {
      *skip_reason = absl::StrFormat(
          "kernel lacks multishot accept or multishot recv with a buffer "
          "ring: %s",
          features.ToString());
      return nullptr;
    }
  } else {
    // The switches must really turn the features off.
    EXPECT_FALSE(features.multishot_accept) << features.ToString();
    EXPECT_FALSE(features.multishot_recv) << features.ToString();
    EXPECT_EQ((*reactor)->buffer_ring(), nullptr);
  }
  return *std::move(reactor);
}

// --- Watchdog ---

// Turns a hang into a failure: once `limit` passes, records a failure and
// cancels every guarded group (again every 100 ms, for late spawns), so their
// waits end with CancelledError and the test can join and finish.
class Watchdog {
 public:
  explicit Watchdog(absl::Duration limit) : limit_(limit) {}
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void Guard(TaskGroup* group) { groups_.push_back(group); }
  void Start() { timer_.Spawn(Run()); }
  // Must be awaited before the watchdog is destroyed.
  Task<void> Stop() {
    timer_.CancelAll();
    co_await timer_.Join();
  }
  bool fired() const { return fired_; }

 private:
  Task<void> Run() {
    absl::Duration wait = limit_;
    while ((co_await Sleep(wait)).ok()) {
      if (!fired_) {
        ADD_FAILURE() << "test deadline of " << absl::FormatDuration(limit_)
                      << " passed: cancelling the test's tasks";
      }
      fired_ = true;
      for (TaskGroup* group : groups_) group->CancelAll();
      wait = absl::Milliseconds(100);
    }
  }

  absl::Duration limit_;
  std::vector<TaskGroup*> groups_;
  TaskGroup timer_;
  bool fired_ = false;
};

// --- Echo server ---

struct EchoServerStats {
  int accepted = 0;
  int finished = 0;
  int ended_at_eof = 0;  // handlers that saw a clean end of stream
  int errors = 0;        // any other end (error, cancellation)
  std::string first_error;
  uint64_t bytes = 0;
  uint64_t reads = 0;

  void Error(const absl::Status& status) {
    if (errors++ == 0) first_error = status.ToString();
  }
};

// Echoes until end of stream: writes what it has read, consumes exactly
// that, and waits in Drain(drain_limit) while the peer is slow.
inline Task<void> EchoConnection(Connection c, size_t drain_limit,
                                 EchoServerStats* stats) {
  bool eof = false;
  while (true) {
    absl::StatusOr<size_t> n = co_await c.Read();
    // ResourceExhausted only means "inbound is full": echo and consume it.
    if (!n.ok() && !absl::IsResourceExhausted(n.status())) {
      stats->Error(n.status());
      break;
    }
    if (n.ok() && *n == 0) {
      eof = true;
      break;
    }
    ++stats->reads;
    const size_t len = c.inbound().size();
    c.Write(c.inbound());
    c.Consume(len);
    stats->bytes += len;
    absl::Status drained = co_await c.Drain(drain_limit);
    if (!drained.ok()) {
      stats->Error(drained);
      break;
    }
  }
  if (eof) {
    absl::Status flushed = co_await c.Flush();
    if (flushed.ok()) {
      ++stats->ended_at_eof;
    } else {
      stats->Error(flushed);
    }
  }
  co_await c.Close();
  ++stats->finished;
}

// Accepts until the listener stops (or the loop is cancelled), spawning an
// EchoConnection per connection into `handlers`.
inline Task<void> AcceptLoop(Listener* listener, TaskGroup* handlers,
                             size_t drain_limit, EchoServerStats* stats) {
  while (true) {
    absl::StatusOr<Connection> c = co_await listener->Accept();
    if (!c.ok()) {
      if (!absl::IsCancelled(c.status())) stats->Error(c.status());
      co_return;
    }
    ++stats->accepted;
    handlers->Spawn(EchoConnection(*std::move(c), drain_limit, stats));
  }
}

// --- Echo client ---

struct EchoClientStats {
  int completed = 0;  // every byte echoed back and verified
  int failed = 0;
  std::vector<std::string> failures;  // the first few
  uint64_t bytes_verified = 0;

  void Fail(std::string why) {
    ++failed;
    if (failures.size() < 10) failures.push_back(std::move(why));
  }
};

struct EchoClientSpec {
  int id = 0;
  uint64_t stream_key = 0;  // app::PatternStream key of the bytes sent
  uint64_t write_seed = 0;  // drives the write sizes
  size_t total = 0;         // bytes to send (and get back)
  size_t min_write = 1;
  size_t max_write = 64 * 1024;
  size_t window = 64 * 1024;  // unsent bytes above which writing pauses
  ConnectionOptions options;
};

// Connects to an echo server, sends `spec.total` bytes of its stream in
// random-size writes while reading the echo, compares every echoed byte,
// then closes.
inline Task<void> EchoClient(Address server, EchoClientSpec spec,
                             EchoClientStats* stats) {
  absl::StatusOr<Connection> c = co_await Connect(server, spec.options);
  if (!c.ok()) {
    stats->Fail(
        absl::StrFormat("client %d: %s", spec.id, c.status().ToString()));
    co_return;
  }
  const app::PatternStream stream(spec.stream_key);
  std::mt19937_64 rng(spec.write_seed);
  std::string chunk;
  size_t sent = 0;
  size_t verified = 0;
  std::string failure;
  while (verified < spec.total) {
    while (sent < spec.total && c->outbound_size() < spec.window) {
      size_t n = std::min(app::LogUniform(rng, spec.min_write, spec.max_write),
                          spec.total - sent);
      chunk.resize(n);
      stream.Fill(sent, chunk.data(), n);
      c->Write(chunk);
      sent += n;
    }
    absl::StatusOr<size_t> n = co_await c->Read();
    if (!n.ok()) {
      failure = absl::StrFormat("Read after %d of %d bytes: %s", verified,
                                spec.total, n.status().ToString());
      break;
    }
    if (*n == 0) {
      failure = absl::StrFormat("end of stream after %d of %d bytes", verified,
                                spec.total);
      break;
    }
    std::string_view in = c->inbound();
    if (verified + in.size() > sent) {
      failure = absl::StrFormat("%d bytes echoed but only %d sent",
                                verified + in.size(), sent);
      break;
    }
    if (size_t bad = stream.Mismatch(verified, in); bad != std::string::npos) {
      failure = absl::StrFormat("echoed byte %d differs from the sent byte",
                                verified + bad);
      break;
    }
    verified += in.size();
    stats->bytes_verified += in.size();
    c->Consume(in.size());
  }
  co_await c->Close();
  if (failure.empty()) {
    ++stats->completed;
  } else {
    stats->Fail(absl::StrFormat("client %d: %s", spec.id, failure));
  }
}

// --- Echo load ---

// A seeded echo load on the test's reactor: an echo server (AcceptLoop) and
// `clients` EchoClients of min_bytes..max_bytes each (uniformly), the
// streams and write sizes drawn from `seed`.
struct EchoLoad {
  int clients = 0;
  size_t min_bytes = 0;  // per connection
  size_t max_bytes = 0;
  size_t drain_limit = 256 * 1024;  // the server's Drain() limit
  uint32_t seed = 0;
  absl::Duration deadline = absl::Seconds(120);  // then the Watchdog fires
  // Results.
  EchoServerStats server;
  EchoClientStats client;
  uint64_t bytes_expected = 0;  // what the clients send, in all
};

// Runs `load` against an echo server accepting on `listener`; returns once
// every client has finished, the listener has stopped accepting and every
// handler has ended (the Watchdog cancels them all past the deadline).
inline Task<void> RunEchoLoad(Listener* listener, EchoLoad* load) {
  const Address address = *listener->local_address();
  TaskGroup accept, handlers, clients;
  Watchdog watchdog(load->deadline);
  watchdog.Guard(&accept);
  watchdog.Guard(&handlers);
  watchdog.Guard(&clients);
  watchdog.Start();
  accept.Spawn(
      AcceptLoop(listener, &handlers, load->drain_limit, &load->server));
  std::mt19937_64 rng(load->seed);
  std::uniform_int_distribution<size_t> total(load->min_bytes, load->max_bytes);
  for (int i = 0; i < load->clients; ++i) {
    EchoClientSpec spec;
    spec.id = i;
    spec.stream_key = rng();
    spec.write_seed = rng();
    spec.total = total(rng);
    load->bytes_expected += spec.total;
    clients.Spawn(EchoClient(address, spec, &load->client));
  }
  co_await clients.Join();
  co_await listener->StopAccepting();
  co_await accept.Join();
  co_await handlers.Join();
  co_await watchdog.Stop();
}

// --- Raw sockets ---

// A blocking TCP socket connected to `to`, with SO_RCVBUF/SO_SNDBUF set
// before connecting when non-zero. -1 (errno set) on failure.
inline int RawConnect(const Address& to, int rcvbuf = 0, int sndbuf = 0) {
  int fd = socket(to.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if ((rcvbuf > 0 &&
       setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) != 0) ||
      (sndbuf > 0 &&
       setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) != 0) ||
      connect(fd, to.sa(), to.length()) != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

// Bounds every blocking send/recv on `fd` (so a thread cannot hang forever).
inline void SetIoTimeout(int fd, absl::Duration limit) {
  timeval tv = absl::ToTimeval(limit);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// Whether a listening socket has connections waiting in its accept queue.
inline bool HasPendingConnections(int listen_fd) {
  pollfd p{.fd = listen_fd, .events = POLLIN, .revents = 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

// How many connections wait in a listening socket's accept queue (TCP_INFO
// reports it as tcpi_unacked for listeners); -1 on error.
inline int AcceptBacklog(int listen_fd) {
  tcp_info info{};
  socklen_t len = sizeof(info);
  if (getsockopt(listen_fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) {
    return -1;
  }
  return static_cast<int>(info.tcpi_unacked);
}

inline bool IsCloseOnExec(int fd) {
  int flags = fcntl(fd, F_GETFD);
  return flags >= 0 && (flags & FD_CLOEXEC) != 0;
}

// Polls `condition` every millisecond (the reactor keeps running) until it
// holds or `limit` passes; returns whether it held.
template <typename Condition>
Task<bool> PollUntil(Condition condition, absl::Duration limit) {
  const absl::Time deadline = absl::Now() + limit;
  while (!condition()) {
    if (absl::Now() > deadline) co_return false;
    absl::Status slept = co_await Sleep(absl::Milliseconds(1));
    if (!slept.ok()) co_return false;
  }
  co_return true;
}

// A reactor in the parameter's receive mode (skips if the kernel lacks it)
// and a listener on 127.0.0.1; TearDown stops accepting and checks that no
// kernel operation is left in flight.
class ListenerFixture : public ::testing::TestWithParam<ReceiveMode> {
 protected:
  void SetUp() override {
    std::string skip;
    reactor_ = CreateReactor(GetParam(), {}, &skip);
    if (reactor_ == nullptr) GTEST_SKIP() << skip;
    absl::StatusOr<Listener> listener =
        Listener::Bind(*Address::Parse("127.0.0.1:0"));
    ASSERT_TRUE(listener.ok()) << listener.status();
    listener_.emplace(*std::move(listener));
    address_ = *listener_->local_address();
  }
  void TearDown() override {
    if (reactor_ == nullptr) return;
    if (listener_.has_value()) {
      reactor_->BlockOn(listener_->StopAccepting());
      listener_.reset();  // closes any accepted fd nobody took
    }
    EXPECT_EQ(reactor_->inflight(), 0);
  }

  std::unique_ptr<Reactor> reactor_;
  std::optional<Listener> listener_;
  Address address_;
};

}  // namespace baton::net_test

#endif  // BATON_TESTS_NET_NET_TEST_UTIL_H_
