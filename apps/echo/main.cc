// baton-echo: sends every byte back, and survives hot restarts (SIGUSR2)
// without losing one.
//
// --fibers serves each connection from a fiber (baton/fiber/) running the
// same echo logic written blocking-style; hot restarts move those
// connections exactly like coroutine-served ones.
//
// --consume_chunk N (a test option) makes the handler consume at most N
// bytes per loop turn, so unconsumed inbound bytes are usually waiting when
// a handoff starts: the restart tests use it to prove those bytes move.
#include <algorithm>
#include <cstddef>

#include "absl/flags/flag.h"
#include "baton/app/server_main.h"
#include "baton/fiber/connection.h"
#include "baton/fiber/fiber.h"
#include "baton/net/connection.h"
#include "baton/runtime/reactor.h"

ABSL_FLAG(bool, fibers, false,
          "serve each connection from a fiber (blocking-style handler)");
ABSL_FLAG(size_t, consume_chunk, 0,
          "consume at most this many bytes per loop turn (0: all); for tests");

namespace {

constexpr size_t kMaxUnsent = 1 << 20;

baton::Task<void> Echo(baton::Connection& conn, size_t chunk) {
  while (true) {
    if (conn.inbound().empty()) {
      absl::StatusOr<size_t> n = co_await conn.Read();
      if (!n.ok() || (*n == 0 && conn.inbound().empty())) co_return;
    }
    size_t take = chunk == 0 ? conn.inbound().size()
                             : std::min(chunk, conn.inbound().size());
    conn.Write(conn.inbound().substr(0, take));
    conn.Consume(take);
    if (!(co_await conn.Drain(kMaxUnsent)).ok()) co_return;
    if (chunk != 0) {
      co_await baton::Yield();
      if (conn.quiescing()) co_return;
    }
  }
}

// The same logic as Echo, blocking-style, for --fibers.
void FiberEcho(baton::Connection& conn, size_t chunk) {
  while (true) {
    if (conn.inbound().empty()) {
      absl::StatusOr<size_t> n = baton::fiber::Read(conn);
      if (!n.ok() || (*n == 0 && conn.inbound().empty())) return;
    }
    size_t take = chunk == 0 ? conn.inbound().size()
                             : std::min(chunk, conn.inbound().size());
    conn.Write(conn.inbound().substr(0, take));
    conn.Consume(take);
    if (!baton::fiber::Drain(conn, kMaxUnsent).ok()) return;
    if (chunk != 0) {
      baton::fiber::Yield();
      if (conn.quiescing()) return;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  baton::app::ParseFlags(argc, argv,
                         "baton-echo --listen HOST:PORT [--threads N] "
                         "[--pid-file PATH]: echoes every byte; SIGUSR2 hands "
                         "the server to a new process without losing any");
  const size_t chunk = absl::GetFlag(FLAGS_consume_chunk);
  if (absl::GetFlag(FLAGS_fibers)) {
    return baton::app::RunFiberServer(
        [chunk](baton::Connection& conn) { FiberEcho(conn, chunk); });
  }
  return baton::app::RunServer(
      [chunk](baton::Connection& conn) { return Echo(conn, chunk); });
}
