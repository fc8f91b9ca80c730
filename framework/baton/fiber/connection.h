// Blocking-style Connection calls for fibers, and fiber connection handlers.
//
// The adapter between fiber/ (which depends on runtime/ only) and net/: each
// call below is the Connection awaitable of the same name, awaited from the
// calling fiber with fiber::Await, so it parks the fiber on the very
// completion records a coroutine handler would wait on, and returns what the
// coroutine call returns (absl::CancelledError once the connection is
// quiesced for a handoff or the fiber is stopped).
//
// ServeInFiber() turns a fiber handler into a ConnectionHandler: a coroutine
// that spawns one fiber per connection (named "conn fd N") and awaits it.
// Server, RunServer and the handoff code see an ordinary coroutine handler,
// so a fiber-served connection is quiesced, detached, moved and adopted by
// a hot restart exactly like a coroutine-served one; stopping the handler's
// coroutine (server shutdown) requests stop on the fiber.
//
// Thread affinity and ownership as for Connection: the fiber runs on the
// connection's reactor and borrows the Connection for the handler's span.
//
//   void Echo(baton::Connection& c) {
//     while (baton::fiber::Read(c).ok() && !c.inbound().empty()) {
//       c.Write(c.inbound());
//       c.Consume(c.inbound().size());
//       if (!baton::fiber::Drain(c, 1 << 20).ok()) return;
//     }
//   }
//   return baton::app::RunServer(baton::fiber::ServeInFiber(Echo));
//   // or, the same: baton::app::RunFiberServer(Echo);
#ifndef BATON_FIBER_CONNECTION_H_
#define BATON_FIBER_CONNECTION_H_

#include <cstddef>
#include <functional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "baton/fiber/fiber.h"
#include "baton/net/connection.h"
#include "baton/net/server.h"

namespace baton::fiber {

// Connection::Read(): waits for bytes beyond those already reported.
absl::StatusOr<size_t> Read(Connection& c);
// Connection::Drain(at_most) / Flush().
absl::Status Drain(Connection& c, size_t at_most);
absl::Status Flush(Connection& c);
// Connection::ShutdownWrite().
absl::Status ShutdownWrite(Connection& c);

using FiberHandler = std::function<void(Connection&)>;

// A ConnectionHandler running `handler` in a fiber per connection.
ConnectionHandler ServeInFiber(FiberHandler handler,
                               size_t stack_size = kDefaultStackSize);

}  // namespace baton::fiber

#endif  // BATON_FIBER_CONNECTION_H_
