// The connection handler of baton-httpd: HTTP/1.1 keep-alive and pipelining
// on a baton::Connection, safe across hot restarts.
//
// Every complete request in the connection's unconsumed bytes is answered in
// order and then consumed, exactly its bytes; a partial request is left
// unconsumed, so a handoff moves it untouched and the new process finishes
// parsing it. What cannot live in the connection's buffers travels in its
// handoff state (EncodeState/DecodeState): whether the connection was
// closing, whether "100 Continue" was sent, the header deadline, and the
// front of a request too large for the connection's inbound buffer (which
// the framework caps at 1 MiB: a larger request is moved into the handler's
// own "spill" buffer as it arrives).
//
// Routes: GET|HEAD /plaintext, GET|HEAD /json, POST /echo, GET|HEAD /stats.
#ifndef APPS_HTTPD_HANDLER_H_
#define APPS_HTTPD_HANDLER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "baton/net/connection.h"
#include "baton/runtime/task.h"
#include "httpd/http_parser.h"

namespace baton::httpd {

struct Config {
  http::Limits limits;
  absl::Duration idle_timeout = absl::Seconds(60);
  absl::Duration header_timeout = absl::Seconds(10);
};

// Serves one connection until it closes, or returns early on a stop or a
// handoff (leaving its state in the connection).
Task<void> ServeHttp(Connection& conn, Config config);

// --- Exposed for tests ---

// Process-wide counters (every reactor thread).
int64_t OpenConnections();
uint64_t RequestsServed();

// A complete response to `request` (HEAD: the GET headers, no body), and
// whether the connection must close after it.
struct Response {
  std::string bytes;
  bool close = false;
};
Response Respond(const http::Request& request);
// The response to a request that cannot be served (400, 408, 413, ...);
// always closes.
std::string ErrorResponse(int status);
// The JSON body of /stats.
std::string StatsJson();

// What a connection carries across a handoff besides its buffers.
struct ConnectionState {
  bool closing = false;        // answered its last request; flush and close
  bool continue_sent = false;  // "100 Continue" sent for the front request
  std::optional<absl::Time> deadline;  // header deadline of that request
  std::string spill;  // the front of a request too large for the buffer
};
std::string EncodeState(const ConnectionState& state);
// False (and `*state` untouched) if `bytes` is not an encoded state.
bool DecodeState(std::string_view bytes, ConnectionState* state);

}  // namespace baton::httpd

#endif  // APPS_HTTPD_HANDLER_H_
