// The command line and life cycle every baton app shares.
//
//   --listen HOST:PORT   address to serve (port 0: any; printed on stdout)
//   --threads N          reactors, one thread each (default: all cores)
//   --pid-file PATH      written atomically by whichever process serves
//   --max_inbound BYTES  unconsumed bytes per connection before back-pressure
//   --handoff_ready_timeout, --handoff_grace, --handoff_ack_timeout
//   --admin HOST:PORT    HTTP introspection endpoint (baton/app/admin.h)
// Flag names accept '-' or '_'. SIGUSR2 hands the server over to a fresh
// process of the same binary (see baton/handoff/supervisor.h); SIGTERM and
// SIGINT stop it gracefully.
//
//   int main(int argc, char** argv) {
//     baton::app::ParseFlags(argc, argv, "baton-echo: echoes bytes");
//     return baton::app::RunServer(EchoHandler);
//   }
#ifndef BATON_APP_SERVER_MAIN_H_
#define BATON_APP_SERVER_MAIN_H_

#include "baton/fiber/connection.h"
#include "baton/handoff/supervisor.h"
#include "baton/net/server.h"

namespace baton::app {

// Parses every registered flag (the app's own too); exits on --help or a
// bad flag. Also blocks SIGUSR2/SIGTERM/SIGINT in the calling thread, so call
// it before starting any thread of the app's own.
void ParseFlags(int argc, char** argv, const char* usage);

// Serves until stopped or handed over; returns the exit code.
int RunServer(ConnectionHandler handler, handoff::AppHooks hooks = {});
// The same with a blocking-style handler run in a stackful fiber per
// connection (baton/fiber/): its connections are moved by a handoff like
// any other. (A distinct name: std::function<void(Connection&)> would also
// accept a coroutine handler, and the overload would be ambiguous.)
int RunFiberServer(fiber::FiberHandler handler, handoff::AppHooks hooks = {});

// For handlers that report statistics: the supervisor of this process.
const handoff::Supervisor* CurrentSupervisor();

}  // namespace baton::app

#endif  // BATON_APP_SERVER_MAIN_H_
