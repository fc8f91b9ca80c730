// baton-kv: a Redis-protocol (RESP2) key-value server whose whole dataset,
// TTLs included, survives hot restarts (SIGUSR2) along with every client
// connection and every half-received command.
//
// Each connection runs Serve(): it executes every complete command in the
// connection's inbound bytes, writes the replies in order, and Consume()s
// exactly the bytes of the commands it ran; a half-received command stays
// unconsumed and moves with the connection in a handoff. Its RespParser
// keeps the parse position of that half-received command between reads
// (offsets, not pointers: the buffer may move), so a command arriving in
// many pieces costs work linear in its size. The dataset moves
// in the handoff's application state (AppHooks): Store::Serialize() in the
// old process once every handler has returned, Store::Deserialize() in the
// new one before any connection is served.
//
// A command larger than the connection's back-pressure bound (--max_inbound)
// raises that connection's bound, up to --max_query_bytes, until it has
// arrived whole; it is an ordinary partial command meanwhile, moved as
// unconsumed bytes by a handoff. Expiry of keys past their TTL runs as the
// app's background task (AppHooks::background), stopped before the dataset
// is saved for a handoff and started again in the new process.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "baton/app/server_main.h"
#include "baton/net/address.h"
#include "baton/net/connection.h"
#include "baton/runtime/log.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/timer.h"
#include "kv/commands.h"
#include "kv/resp.h"
#include "kv/store.h"
#include "kv/view.h"

// apps/common: the shared command line.
ABSL_DECLARE_FLAG(int, threads);
ABSL_DECLARE_FLAG(size_t, max_inbound);

ABSL_FLAG(size_t, max_bulk_bytes, size_t{64} << 20,
          "longest string a client may send, in bytes (at most 512 MiB)");
ABSL_FLAG(size_t, max_array, size_t{1} << 20, "most arguments in one command");
ABSL_FLAG(size_t, max_query_bytes, size_t{1} << 30,
          "largest command, in bytes, a connection may buffer whole (like "
          "Redis's client-query-buffer-limit); larger closes the connection");
ABSL_FLAG(absl::Duration, expire_interval, absl::Milliseconds(100),
          "how often keys past their TTL are deleted in the background");

namespace baton::kv {
namespace {

// Queue at most this many reply bytes before waiting for the client to read.
constexpr size_t kMaxUnsent = size_t{1} << 20;
// Write replies out once a run of commands produced this many bytes.
constexpr size_t kReplyBatch = size_t{256} << 10;

struct Shared {
  Store store;
  Dispatcher dispatcher;
  ParseLimits limits;
  size_t max_query_bytes = 0;
  absl::Time started = absl::Now();
  std::atomic<int64_t> connected{0};
  std::atomic<int64_t> total_connections{0};
  std::atomic<uint16_t> port{0};
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

std::string QueryLimitError(size_t limit) {
  return absl::StrFormat(
      "ERR Protocol error: command larger than the query buffer limit (%d "
      "bytes)",
      limit);
}

Task<void> Serve(Connection& conn, Shared& shared) {
  ClientGuard guard(shared);
  if (shared.port.load(std::memory_order_relaxed) == 0) {
    if (absl::StatusOr<Address> local = Address::OfSocket(conn.fd());
        local.ok()) {
      shared.port.store(local->port(), std::memory_order_relaxed);
    }
  }
  const size_t usual_max_inbound = conn.max_inbound();
  // Remembers how far an unfinished command at the front of the inbound
  // bytes was parsed, so that each read costs only its new bytes; the
  // command's bytes stay unconsumed (a handoff moves them, and the next
  // process parses them from the start).
  RespParser parser(shared.limits);
  Command cmd;
  std::string out;
  while (true) {
    if (conn.quiescing()) co_return;
    const std::string_view input = conn.inbound();
    size_t pos = 0;
    // QUIT closes once its reply is sent; a protocol error lingers too, so a
    // client still sending reads the error rather than a reset.
    Closing close = Closing::kNo;
    bool more_ready = false;  // stopped at kReplyBatch, commands remain
    // One clock read per batch: the commands of one receive arrived together
    // (Redis, too, reads the clock once per event loop iteration).
    const absl::Time now = absl::Now();
    while (pos < input.size()) {
      ParseResult r = parser.Parse(input.substr(pos), &cmd);
      // However much a receive delivered at once, a command (even a partial
      // one) over the limit is refused.
      const size_t size = r.status == ParseStatus::kIncomplete
                              ? input.size() - pos
                              : r.consumed;
      if (size > shared.max_query_bytes) {
        AppendError(&out, QueryLimitError(shared.max_query_bytes));
        close = Closing::kLinger;
        break;
      }
      if (r.status == ParseStatus::kIncomplete) break;
      if (r.status == ParseStatus::kError) {
        AppendError(&out, absl::StrCat("ERR ", r.error));
        close = Closing::kLinger;
        break;
      }
      pos += r.consumed;
      if (!cmd.args.empty() &&
          shared.dispatcher.Execute(cmd.args, now, &out) == Action::kClose) {
        close = Closing::kWhenFlushed;
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
    conn.Consume(pos);
    if (out.capacity() > kReplyBatch * 2) std::string().swap(out);
    if (close != Closing::kNo) {
      conn.CloseWhenFlushed(close);
      co_return;
    }
    // A large command has been served: back to the usual bound.
    if (conn.max_inbound() > usual_max_inbound &&
        conn.inbound().size() < usual_max_inbound) {
      conn.set_max_inbound(usual_max_inbound);
    }
    if (conn.outbound_size() > kMaxUnsent) {
      if (!(co_await conn.Drain(kMaxUnsent)).ok()) co_return;
    }
    if (more_ready) {
      co_await Yield();  // let the reactor's other connections run
      continue;
    }
    absl::StatusOr<size_t> n = co_await conn.Read();
    if (n.ok()) {
      if (*n == 0) co_return;  // the client closed
      continue;
    }
    if (!absl::IsResourceExhausted(n.status())) co_return;  // stop, handoff
    // The buffer is full and holds no complete command: one larger than the
    // bound is arriving (within the bulk, array and query limits, checked
    // above). Let it grow to one byte past the query limit, which the parser
    // loop then refuses.
    conn.set_max_inbound(
        std::min(shared.max_query_bytes + 1, conn.max_inbound() * 2));
  }
}

// Deletes keys past their TTL every `interval`, in batches so that neither
// the store's lock nor the reactor is held for long.
Task<void> ExpireKeys(Store* store, absl::Duration interval) {
  constexpr size_t kBatch = 1000;
  while ((co_await Sleep(interval)).ok()) {
    while (store->ExpireDue(absl::Now(), kBatch) == kBatch) co_await Yield();
  }
}

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
  shared.max_query_bytes = std::max(absl::GetFlag(FLAGS_max_query_bytes),
                                    absl::GetFlag(FLAGS_max_inbound));

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
  hooks.background = [interval] {
    return baton::kv::ExpireKeys(&shared.store, interval);
  };
  return baton::app::RunServer(
      [](baton::Connection& conn) { return baton::kv::Serve(conn, shared); },
      std::move(hooks));
}
