// baton-kv: a Redis-protocol (RESP2) key-value server whose whole dataset,
// TTLs included, survives hot restarts (SIGUSR2) along with every client
// connection and every half-received command.
//
// Each connection runs Serve(): it executes every complete command in the
// connection's inbound bytes, writes the replies in order, and Consume()s
// exactly the bytes of the commands it ran; a half-received command stays
// unconsumed and moves with the connection in a handoff. The dataset moves
// in the handoff's application state (AppHooks): Store::Serialize() in the
// old process once every handler has returned, Store::Deserialize() in the
// new one before any connection is served.
//
// A command larger than kSpillAt cannot wait in the connection's inbound
// buffer (the framework stops receiving at 1 MiB unconsumed, a limit apps
// cannot raise), so its bytes move into the handler's own buffer; if a
// handoff comes while it is there, the buffer travels as the connection's
// handoff state and the new process continues from it.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <string>
#include <string_view>
#include <thread>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "baton/net/address.h"
#include "baton/net/connection.h"
#include "baton/runtime/log.h"
#include "baton/runtime/reactor.h"
#include "common/server_main.h"
#include "kv/commands.h"
#include "kv/resp.h"
#include "kv/store.h"
#include "kv/view.h"

ABSL_DECLARE_FLAG(int, threads);  // apps/common: the shared command line

ABSL_FLAG(size_t, max_bulk_bytes, size_t{64} << 20,
          "longest string a client may send, in bytes (at most 512 MiB)");
ABSL_FLAG(size_t, max_array, size_t{1} << 20, "most arguments in one command");
ABSL_FLAG(absl::Duration, expire_interval, absl::Milliseconds(100),
          "how often keys past their TTL are deleted in the background");

namespace baton::kv {
namespace {

// Queue at most this many reply bytes before waiting for the client to read.
constexpr size_t kMaxUnsent = size_t{1} << 20;
// Write replies out once a run of commands produced this many bytes.
constexpr size_t kReplyBatch = size_t{256} << 10;
// A partial command at least this long moves into the handler's buffer.
constexpr size_t kSpillAt = size_t{256} << 10;
// Marks a connection's handoff state as a spilled partial command.
constexpr std::string_view kCarryTag = "kv-carry-v1:";

struct Shared {
  Store store;
  Dispatcher dispatcher;
  ParseLimits limits;
  absl::Time started = absl::Now();
  std::atomic<int64_t> connected{0};
  std::atomic<int64_t> total_connections{0};
  std::atomic<uint16_t> port{0};
  std::atomic<int64_t> carried_commands{0};
  std::atomic<int64_t> carried_bytes{0};
  int threads = 0;

  Shared() : dispatcher(&store, [this] { return Info(); }) {}

  ServerInfo Info() const {
    ServerInfo info;
    info.process_id = getpid();
    info.tcp_port = port.load(std::memory_order_relaxed);
    info.threads = threads;
    info.uptime = absl::Now() - started;
    info.connected_clients = connected.load(std::memory_order_relaxed);
    info.total_connections_received =
        total_connections.load(std::memory_order_relaxed);
    info.carried_commands = carried_commands.load(std::memory_order_relaxed);
    info.carried_bytes = carried_bytes.load(std::memory_order_relaxed);
    if (const handoff::Supervisor* sup = app::CurrentSupervisor()) {
      info.handoff = sup->last_handoff();
    }
    return info;
  }
};

// Counts a connection for INFO while its handler runs.
class ClientGuard {
 public:
  explicit ClientGuard(Shared& shared) : shared_(shared) {
    shared_.connected.fetch_add(1, std::memory_order_relaxed);
    shared_.total_connections.fetch_add(1, std::memory_order_relaxed);
  }
  ~ClientGuard() { shared_.connected.fetch_sub(1, std::memory_order_relaxed); }
  ClientGuard(const ClientGuard&) = delete;
  ClientGuard& operator=(const ClientGuard&) = delete;

 private:
  Shared& shared_;
};

// Leaves the spilled bytes (if any) to travel with the connection.
void SaveCarry(Connection& conn, const std::string& carry) {
  conn.set_handoff_state(carry.empty() ? std::string()
                                       : absl::StrCat(Av(kCarryTag), carry));
}

Task<void> Serve(Connection& conn, Shared& shared) {
  ClientGuard guard(shared);
  if (shared.port.load(std::memory_order_relaxed) == 0) {
    if (absl::StatusOr<Address> local = Address::OfSocket(conn.fd());
        local.ok()) {
      shared.port.store(local->port(), std::memory_order_relaxed);
    }
  }
  // Bytes of a command too large for the inbound buffer, taken from it
  // already (or handed over by the previous process); inbound bytes follow.
  std::string carry;
  if (std::string_view state = conn.handoff_state();
      state.substr(0, kCarryTag.size()) == kCarryTag) {
    carry.assign(state.substr(kCarryTag.size()));
    shared.carried_commands.fetch_add(1, std::memory_order_relaxed);
    shared.carried_bytes.fetch_add(static_cast<int64_t>(carry.size()),
                                   std::memory_order_relaxed);
  }
  conn.set_handoff_state(std::string());
  Command cmd;
  std::string out;
  while (true) {
    if (conn.quiescing()) {
      SaveCarry(conn, carry);
      co_return;
    }
    if (!carry.empty() && !conn.inbound().empty()) {
      carry.append(conn.inbound());
      conn.Consume(conn.inbound().size());
    }
    const std::string_view input =
        carry.empty() ? conn.inbound() : std::string_view(carry);
    size_t pos = 0;
    bool close = false;
    bool more_ready = false;  // stopped at kReplyBatch, commands remain
    while (pos < input.size()) {
      ParseResult r = ParseCommand(input.substr(pos), shared.limits, &cmd);
      if (r.status == ParseStatus::kIncomplete) break;
      if (r.status == ParseStatus::kError) {
        AppendError(&out, absl::StrCat("ERR ", r.error));
        close = true;
        break;
      }
      pos += r.consumed;
      if (!cmd.args.empty() &&
          shared.dispatcher.Execute(cmd.args, absl::Now(), &out) ==
              Action::kClose) {
        close = true;
        break;
      }
      if (out.size() >= kReplyBatch) {
        more_ready = pos < input.size();
        break;
      }
    }
    cmd.Clear();  // views into `input`, which changes below
    if (!out.empty()) {
      conn.Write(out);
      out.clear();
    }
    if (carry.empty()) {
      conn.Consume(pos);
    } else {
      carry.erase(0, pos);
      if (carry.empty()) std::string().swap(carry);  // free a big buffer
    }
    if (out.capacity() > kReplyBatch * 2) std::string().swap(out);
    if (close) co_return;  // the server sends what is queued, then closes
    if (carry.empty() && !more_ready && conn.inbound().size() >= kSpillAt) {
      carry.assign(conn.inbound());
      conn.Consume(conn.inbound().size());
    }
    if (conn.outbound_size() > kMaxUnsent) {
      if (!(co_await conn.Drain(kMaxUnsent)).ok()) {
        SaveCarry(conn, carry);
        co_return;
      }
    }
    if (more_ready) {
      co_await Yield();  // let the reactor's other connections run
      continue;
    }
    absl::StatusOr<size_t> n = co_await conn.Read();
    if (!n.ok()) {
      // Inbound full: cannot happen past the spill above, but harmless.
      if (absl::IsResourceExhausted(n.status())) continue;
      SaveCarry(conn, carry);  // stop or handoff (or a broken connection)
      co_return;
    }
    if (*n == 0) co_return;  // the client closed
  }
}

// Deletes keys past their TTL every `interval`, in batches so the store's
// lock is never held for long.
class Expirer {
 public:
  Expirer(Store* store, absl::Duration interval)
      : store_(store), interval_(interval) {
    // The supervisor reads SIGUSR2/SIGTERM from a signalfd and blocks them
    // only in threads started after it: a thread started before, with the
    // default dispositions, would be killed by the first SIGUSR2. Start this
    // one with every signal blocked (it inherits the mask).
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &previous);
    thread_ = std::thread([this] { Run(); });
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  }
  ~Expirer() {
    stop_.Notify();
    thread_.join();
  }
  Expirer(const Expirer&) = delete;
  Expirer& operator=(const Expirer&) = delete;

 private:
  void Run() {
    constexpr size_t kBatch = 1000;
    while (!stop_.WaitForNotificationWithTimeout(interval_)) {
      while (store_->ExpireDue(absl::Now(), kBatch) == kBatch &&
             !stop_.HasBeenNotified()) {
      }
    }
  }

  Store* store_;
  absl::Duration interval_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace
}  // namespace baton::kv

int main(int argc, char** argv) {
  using baton::kv::Shared;
  baton::app::ParseFlags(
      argc, argv,
      "baton-kv --listen HOST:PORT [--threads N] [--pid-file PATH] "
      "[--max_bulk_bytes N] [--max_array N]: a Redis-protocol key-value "
      "server; SIGUSR2 hands it, data and connections, to a new process");
  // Outlives every reactor thread, and is never destroyed: a process that
  // handed its data over exits without freeing it key by key.
  static Shared& shared = *new Shared;
  shared.limits.max_bulk_bytes = absl::GetFlag(FLAGS_max_bulk_bytes);
  shared.limits.max_array = absl::GetFlag(FLAGS_max_array);
  if (shared.limits.max_bulk_bytes > baton::kv::kMaxBulkBytesCeiling) {
    baton::Log("--max_bulk_bytes=%d is above the 512 MiB limit",
               shared.limits.max_bulk_bytes);
    return 2;
  }
  if (shared.limits.max_array == 0) {
    baton::Log("--max_array must be at least 1");
    return 2;
  }
  const absl::Duration interval = absl::GetFlag(FLAGS_expire_interval);
  if (interval <= absl::ZeroDuration()) {
    baton::Log("--expire_interval must be positive");
    return 2;
  }
  shared.threads = absl::GetFlag(FLAGS_threads);
  if (shared.threads <= 0) {
    shared.threads = static_cast<int>(std::thread::hardware_concurrency());
  }
  baton::kv::Expirer expirer(&shared.store, interval);

  baton::handoff::AppHooks hooks;
  hooks.save_state = []() -> absl::StatusOr<std::string> {
    return shared.store.Serialize(absl::Now());
  };
  hooks.restore_state = [](std::string_view blob) -> absl::Status {
    const absl::Time now = absl::Now();
    if (absl::Status s = shared.store.Deserialize(blob, now); !s.ok()) {
      baton::Log("kv: cannot restore the dataset: %s", s.ToString());
      return s;
    }
    baton::Log("kv: restored %d keys (%d bytes) from the previous process",
               shared.store.Size(now), blob.size());
    return absl::OkStatus();
  };
  return baton::app::RunServer(
      [](baton::Connection& conn) { return baton::kv::Serve(conn, shared); },
      std::move(hooks));
}
