// AdminServer: the introspection endpoint of a baton app (--admin HOST:PORT).
//
// A small HTTP/1.1 server on the main reactor (shard 0), beside the data
// path and not part of the Server's connection set. It serves GET only:
//
//   /connections   every live connection of the Server, one JSON object
//                  each (shard, fd, socket inode, peer, bytes in and out,
//                  unconsumed inbound, unsent outbound, age);
//                  ?format=text: an aligned table
//   /handoffs      the lineage's last handoffs (Supervisor::handoff_history)
//                  as JSON; ?format=text: a table
//   /metrics       Prometheus text exposition format 0.0.4
//
// Every response has a Content-Length and `Connection: close`; the request
// head must arrive within 5 s (408) and fit in 8 KiB (431); a malformed
// request is 400, another method 405, an unknown path 404. Per-connection
// data is gathered on each shard's own thread (Server::InspectConnections,
// Server::Stats), so the data path pays nothing for it but its counters.
//
// The listening socket is the supervisor's named listener "admin": it moves
// to the new process in every handoff (same socket, same port). Serve() runs
// while the process serves (AppHooks::background) and, when cancelled (a
// handoff freezing, a stop), closes its own connections: they are not moved.
//
//   sup_options.named_listeners.push_back({kAdminListener, address});
//   hooks.background = WithAdmin(&admin, std::move(hooks.background));
//   ... admin = std::make_unique<AdminServer>(server, supervisor);
#ifndef BATON_APP_ADMIN_H_
#define BATON_APP_ADMIN_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "baton/handoff/supervisor.h"
#include "baton/net/connection.h"
#include "baton/net/server.h"
#include "baton/runtime/task.h"

namespace baton::app {

inline constexpr const char* kAdminListener = "admin";

class AdminServer {
 public:
  static constexpr size_t kMaxRequest = 8 * 1024;
  static constexpr absl::Duration kRequestTimeout = absl::Seconds(5);

  AdminServer(Server& server, const handoff::Supervisor& supervisor)
      : server_(server), supervisor_(supervisor) {}

  // Accepts on the supervisor's kAdminListener socket (kept open: it moves
  // with handoffs) until cancelled, then closes every admin connection.
  Task<void> Serve();

  // A whole response for `method` and `target` (for tests and Serve()).
  Task<std::string> Respond(absl::string_view method, absl::string_view target);

 private:
  Task<void> ServeConnection(Connection& conn);
  Task<std::string> Metrics();
  Task<std::string> Connections(bool text);
  std::string Handoffs(bool text) const;

  Server& server_;
  const handoff::Supervisor& supervisor_;
};

// An AppHooks::background that serves `*admin` (set before the supervisor
// runs) and runs `background` (the app's own, may be empty) beside it; both
// end when it is cancelled.
std::function<Task<void>()> WithAdmin(std::unique_ptr<AdminServer>* admin,
                                      std::function<Task<void>()> background);

// "HTTP/1.1 <status>" response with Content-Length and Connection: close.
std::string HttpResponse(int status, absl::string_view content_type,
                         absl::string_view body,
                         absl::string_view extra_headers = "");

}  // namespace baton::app

#endif  // BATON_APP_ADMIN_H_
