// baton-load: a load client for echo servers, written with baton.
//
// Modes:
//   pingpong  every connection keeps --inflight messages of --size bytes in
//             flight; each echoed message is checked byte by byte and the
//             next one is sent (or, with --rate, the pacer sends at a fixed
//             total rate, --inflight being the per-connection cap).
//   stream    every connection keeps --inflight x --size bytes in flight as
//             one continuous byte stream, refilled as echoes arrive; every
//             byte is checked. A "message" is --size bytes of stream.
//   idle      opens --connections and holds them for --duration (for memory
//             per idle connection measurements); prints "connected N" on
//             stderr once all are open.
//
// One reactor per thread (--threads); connections are spread evenly. The
// latency of a message is the time from its send to the arrival of its last
// echoed byte, recorded in a fixed log-linear histogram. Output, one line:
//   msgs=... secs=... msgs_per_sec=... p50_us=... p99_us=... p999_us=...
//   errors=...
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "baton/net/address.h"
#include "baton/net/connection.h"
#include "baton/net/listener.h"
#include "baton/runtime/event.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task.h"
#include "baton/runtime/task_group.h"
#include "baton/runtime/timer.h"
#include "load/histogram.h"

ABSL_FLAG(std::string, mode, "pingpong", "pingpong, stream or idle");
ABSL_FLAG(std::string, address, "127.0.0.1:7000", "server HOST:PORT");
ABSL_FLAG(int, connections, 64, "connections in total");
ABSL_FLAG(size_t, size, 64, "message size, bytes");
ABSL_FLAG(int, inflight, 1, "messages in flight per connection");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5),
          "measured run time (after --warmup)");
ABSL_FLAG(absl::Duration, warmup, absl::Milliseconds(500),
          "run time before measuring starts");
ABSL_FLAG(double, rate, 0,
          "fixed total messages/s (pingpong); 0: as fast as echoes allow");
ABSL_FLAG(absl::Duration, tick, absl::Microseconds(200),
          "pacer period with --rate");
ABSL_FLAG(int, threads, 1, "client threads, one reactor each");

namespace {

using Clock = std::chrono::steady_clock;
using baton::bench::LatencyHistogram;

uint64_t NowNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          Clock::now().time_since_epoch())
          .count());
}

// Byte `i` of the stream a connection sends (message m, offset j: i = m *
// size + j). Cheap to generate and to check; differs between connections.
inline char PatternByte(uint64_t seed, uint64_t i) {
  return static_cast<char>((i * 131 + seed * 7 + (i >> 8)) & 0xff);
}

struct Config {
  std::string mode;
  baton::Address address;
  int connections_total = 0;
  size_t size = 0;
  int inflight = 0;
  double rate = 0;  // total
  absl::Duration tick;
  uint64_t start_ns = 0;    // measuring starts
  uint64_t end_ns = 0;      // measuring ends; connections stop
  uint64_t connect_ns = 0;  // when connect finished (set per thread)
};

struct ThreadResult {
  LatencyHistogram histogram;
  uint64_t msgs = 0;
  uint64_t errors = 0;
  uint64_t missed = 0;  // paced sends skipped because the window was full
  int connected = 0;
};

// The state of one client connection. Send times live in a ring of
// `inflight` slots: messages are echoed in order, so the oldest unechoed
// message is always at `acked % inflight`.
struct Client {
  int id = 0;
  std::unique_ptr<baton::Connection> conn;
  std::vector<uint64_t> send_ns;  // ring, one slot per message in flight
  std::string out;                // one message's bytes, reused
  uint64_t sent_msgs = 0;         // messages written
  uint64_t acked_msgs = 0;        // messages fully echoed
  uint64_t acked_bytes = 0;       // stream bytes checked
  bool failed = false;
};

class Worker {
 public:
  Worker(const Config& config, int index, int connections)
      : config_(config), index_(index), clients_(connections) {}

  ThreadResult Run() {
    absl::StatusOr<std::unique_ptr<baton::Reactor>> reactor =
        baton::Reactor::Create(baton::ReactorOptions::FromEnv());
    if (!reactor.ok()) {
      absl::FPrintF(stderr, "baton-load: %s\n", reactor.status().ToString());
      result_.errors = clients_.size();
      return std::move(result_);
    }
    (*reactor)->BlockOn(Main());
    return std::move(result_);
  }

 private:
  baton::Task<void> Main() {
    // Connect everything first, concurrently.
    for (size_t i = 0; i < clients_.size(); ++i) {
      clients_[i].id = index_ * 1000003 + static_cast<int>(i);
      group_.Spawn(ConnectOne(&clients_[i]));
    }
    co_await group_.Join();
    result_.connected = 0;
    for (Client& c : clients_) result_.connected += c.conn != nullptr;
    if (config_.mode == "idle") {
      absl::FPrintF(stderr, "connected %d\n", result_.connected);
      (void)co_await baton::Sleep(absl::Nanoseconds(
          config_.end_ns - std::min(config_.end_ns, NowNs())));
    } else {
      for (Client& c : clients_) {
        if (c.conn == nullptr) continue;
        if (config_.mode == "stream") {
          group_.Spawn(Stream(&c));
        } else {
          group_.Spawn(PingPong(&c));
        }
      }
      if (config_.rate > 0) group_.Spawn(Pacer());
      group_.Spawn(StopAtEnd());
      co_await group_.Join();
    }
    for (Client& c : clients_) {
      if (c.conn != nullptr) co_await c.conn->Close();
    }
  }

  baton::Task<void> ConnectOne(Client* c) {
    absl::StatusOr<baton::Connection> conn =
        co_await baton::Connect(config_.address);
    if (!conn.ok()) {
      if (result_.errors++ == 0) {
        absl::FPrintF(stderr, "baton-load: %s\n", conn.status().ToString());
      }
      co_return;
    }
    c->conn = std::make_unique<baton::Connection>(*std::move(conn));
    c->send_ns.assign(static_cast<size_t>(config_.inflight), 0);
    c->out.resize(config_.size);
  }

  baton::Task<void> StopAtEnd() {
    uint64_t now = NowNs();
    if (now < config_.end_ns) {
      (void)co_await baton::Sleep(absl::Nanoseconds(config_.end_ns - now));
    }
    stopping_ = true;
    group_.CancelAll();
  }

  void Fail(Client* c, std::string_view what) {
    if (c->failed) return;
    c->failed = true;
    if (result_.errors++ < 3) {
      absl::FPrintF(stderr, "baton-load: connection %d: %s\n", c->id, what);
    }
  }

  // Writes message number `c->sent_msgs`.
  void SendOne(Client* c, uint64_t now) {
    const size_t size = config_.size;
    uint64_t base = c->sent_msgs * size;
    for (size_t j = 0; j < size; ++j) c->out[j] = PatternByte(c->id, base + j);
    c->send_ns[c->sent_msgs % c->send_ns.size()] = now;
    ++c->sent_msgs;
    c->conn->Write(c->out);
  }

  void RecordEcho(Client* c, uint64_t now) {
    uint64_t sent = c->send_ns[c->acked_msgs % c->send_ns.size()];
    ++c->acked_msgs;
    if (sent >= config_.start_ns && now <= config_.end_ns) {
      result_.histogram.Record(now - sent);
      ++result_.msgs;
    }
  }

  baton::Task<void> PingPong(Client* c) {
    baton::Connection& conn = *c->conn;
    const size_t size = config_.size;
    const bool paced = config_.rate > 0;
    if (!paced) {
      uint64_t now = NowNs();
      for (int i = 0; i < config_.inflight; ++i) SendOne(c, now);
    }
    while (!stopping_) {
      absl::StatusOr<size_t> n = co_await conn.Read();
      if (!n.ok()) {
        if (!stopping_) Fail(c, n.status().ToString());
        break;
      }
      if (*n == 0) {
        if (!stopping_) Fail(c, "closed by the server");
        break;
      }
      uint64_t now = NowNs();
      std::string_view in = conn.inbound();
      size_t done = 0;
      while (in.size() - done >= size) {
        if (c->acked_msgs >= c->sent_msgs) {
          Fail(c, "echo of a message never sent");
          break;
        }
        uint64_t base = c->acked_msgs * size;
        for (size_t j = 0; j < size; ++j) {
          if (in[done + j] != PatternByte(c->id, base + j)) {
            Fail(c, absl::StrFormat("wrong byte at offset %d", base + j));
            break;
          }
        }
        if (c->failed) break;
        done += size;
        RecordEcho(c, now);
        if (!paced) SendOne(c, now);
      }
      conn.Consume(done);
      if (c->failed) break;
    }
  }

  baton::Task<void> Stream(Client* c) {
    baton::Connection& conn = *c->conn;
    const size_t size = config_.size;
    const uint64_t window = size * static_cast<uint64_t>(config_.inflight);
    auto refill = [&](uint64_t now) {
      while (c->sent_msgs * size - c->acked_bytes + size <= window) {
        SendOne(c, now);
      }
    };
    refill(NowNs());
    while (!stopping_) {
      absl::StatusOr<size_t> n = co_await conn.Read();
      if (!n.ok() || *n == 0) {
        if (!stopping_) {
          Fail(c, n.ok() ? "closed by the server" : n.status().ToString());
        }
        break;
      }
      uint64_t now = NowNs();
      std::string_view in = conn.inbound();
      for (size_t j = 0; j < in.size(); ++j) {
        if (in[j] != PatternByte(c->id, c->acked_bytes + j)) {
          Fail(c,
               absl::StrFormat("wrong byte at offset %d", c->acked_bytes + j));
          break;
        }
      }
      if (c->failed) break;
      uint64_t before = c->acked_bytes / size;
      c->acked_bytes += in.size();
      conn.Consume(in.size());
      for (uint64_t m = before; m < c->acked_bytes / size; ++m) {
        RecordEcho(c, now);
      }
      refill(now);
    }
  }

  // Sends at the fixed rate: every tick, each connection gets the messages
  // its share of the rate owes it, as far as its window allows.
  baton::Task<void> Pacer() {
    const double per_conn_per_ns =
        config_.rate / static_cast<double>(config_.connections_total) / 1e9;
    const uint64_t begin = NowNs();
    std::vector<uint64_t> due_base(clients_.size(), 0);
    while (!stopping_) {
      uint64_t now = NowNs();
      uint64_t owed = static_cast<uint64_t>(static_cast<double>(now - begin) *
                                            per_conn_per_ns);
      for (size_t i = 0; i < clients_.size(); ++i) {
        Client* c = &clients_[i];
        if (c->conn == nullptr || c->failed) continue;
        while (due_base[i] < owed) {
          if (c->sent_msgs - c->acked_msgs >=
              static_cast<uint64_t>(config_.inflight)) {
            result_.missed += owed - due_base[i];
            due_base[i] = owed;
            break;
          }
          SendOne(c, now);
          ++due_base[i];
        }
      }
      if (!(co_await baton::Sleep(config_.tick)).ok()) break;
    }
  }

  const Config& config_;
  int index_;
  std::vector<Client> clients_;
  baton::TaskGroup group_;
  ThreadResult result_;
  bool stopping_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "baton-load --address HOST:PORT [--mode pingpong|stream|idle] "
      "[--connections N] [--size S] [--inflight K] [--duration 5s] "
      "[--rate MSGS_PER_SEC] [--threads T]");
  // absl spells flags with '_'; nothing here needs '-' spellings.
  absl::ParseCommandLine(argc, argv);

  Config config;
  config.mode = absl::GetFlag(FLAGS_mode);
  if (config.mode != "pingpong" && config.mode != "stream" &&
      config.mode != "idle") {
    absl::FPrintF(stderr, "baton-load: unknown --mode %s\n", config.mode);
    return 2;
  }
  absl::StatusOr<baton::Address> address =
      baton::Address::Parse(absl::GetFlag(FLAGS_address));
  if (!address.ok()) {
    absl::FPrintF(stderr, "baton-load: %s\n", address.status().ToString());
    return 2;
  }
  config.address = *address;
  config.connections_total = std::max(1, absl::GetFlag(FLAGS_connections));
  config.size = std::max<size_t>(1, absl::GetFlag(FLAGS_size));
  config.inflight = std::max(1, absl::GetFlag(FLAGS_inflight));
  config.rate = absl::GetFlag(FLAGS_rate);
  config.tick = absl::GetFlag(FLAGS_tick);
  const int threads =
      std::clamp(absl::GetFlag(FLAGS_threads), 1, config.connections_total);
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  const absl::Duration warmup = absl::GetFlag(FLAGS_warmup);
  uint64_t now = NowNs();
  config.start_ns = now + absl::ToInt64Nanoseconds(warmup);
  config.end_ns = config.start_ns + absl::ToInt64Nanoseconds(duration);

  std::vector<ThreadResult> results(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    int share = config.connections_total / threads +
                (t < config.connections_total % threads ? 1 : 0);
    pool.emplace_back([&config, &results, t, share] {
      Worker worker(config, t, share);
      results[t] = worker.Run();
    });
  }
  for (std::thread& th : pool) th.join();

  LatencyHistogram all;
  uint64_t msgs = 0, errors = 0, missed = 0;
  for (const ThreadResult& r : results) {
    all.Merge(r.histogram);
    msgs += r.msgs;
    errors += r.errors;
    missed += r.missed;
  }
  double secs = absl::ToDoubleSeconds(duration);
  if (missed > 0) {
    absl::FPrintF(stderr, "baton-load: %d paced sends skipped (window full)\n",
                  missed);
  }
  absl::PrintF(
      "msgs=%d secs=%.3f msgs_per_sec=%.0f p50_us=%.1f p99_us=%.1f "
      "p999_us=%.1f errors=%d\n",
      msgs, secs, static_cast<double>(msgs) / secs,
      static_cast<double>(all.Percentile(50)) / 1e3,
      static_cast<double>(all.Percentile(99)) / 1e3,
      static_cast<double>(all.Percentile(99.9)) / 1e3, errors);
  std::fflush(stdout);
  return errors == 0 ? 0 : 1;
}
