// The connection handler of baton-httpd: HTTP/1.1 keep-alive and pipelining
// on a baton::Connection, safe across hot restarts.
//
// Every complete request in the connection's unconsumed bytes is answered in
// order and then consumed, exactly its bytes; a partial request is left
// unconsumed, so a handoff moves it untouched and the new process finishes
// parsing it. The connection's back-pressure bound is raised to the largest
// valid request (http::MaxRequestBytes), so every request is parsed whole
// from the connection's own buffer. What the buffers cannot say travels in
// the connection's handoff state (EncodeState/DecodeState): whether
// "100 Continue" was sent for the front request, and its header deadline. A
// connection that answered its last request is closed by the framework
// (Connection::CloseWhenFlushed, lingering after an error), in this process
// or, if a handoff catches it, in the next.
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
  bool continue_sent = false;  // "100 Continue" sent for the front request
  std::optional<absl::Time> deadline;  // header deadline of that request
};
std::string EncodeState(const ConnectionState& state);
// False (and `*state` untouched) if `bytes` is not an encoded state.
bool DecodeState(std::string_view bytes, ConnectionState* state);

}  // namespace baton::httpd

#endif  // APPS_HTTPD_HANDLER_H_
