// baton-httpd: an HTTP/1.1 server (keep-alive, pipelining, chunked bodies)
// that survives hot restarts (SIGUSR2) without losing a request: a request
// half-received when the restart begins is finished by the new process, on
// the same connection.
//
// Routes: GET|HEAD /plaintext, GET|HEAD /json, POST /echo, GET|HEAD /stats.
// See docs/httpd.md.
#include <cstddef>

#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "baton/app/server_main.h"
#include "baton/runtime/log.h"
#include "httpd/handler.h"

ABSL_FLAG(size_t, max_header_bytes, 8 * 1024,
          "largest request line + header section; larger gets 431");
ABSL_FLAG(size_t, max_body_bytes, 1024 * 1024,
          "largest request body (decoded); larger gets 413");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Seconds(60),
          "how long a keep-alive connection may stay silent between requests "
          "(and between reads of a body, or writes of a response)");
ABSL_FLAG(absl::Duration, header_timeout, absl::Seconds(10),
          "how long a client that started a request has to finish its header "
          "section; then 408");

int main(int argc, char** argv) {
  baton::app::ParseFlags(
      argc, argv,
      "baton-httpd --listen HOST:PORT [--threads N] [--pid-file PATH] "
      "[--max_header_bytes N] [--max_body_bytes N] [--idle_timeout D] "
      "[--header_timeout D]: HTTP/1.1 server; SIGUSR2 hands it to a new "
      "process without losing a request");
  baton::httpd::Config config;
  config.limits.max_header_bytes = absl::GetFlag(FLAGS_max_header_bytes);
  config.limits.max_body_bytes = absl::GetFlag(FLAGS_max_body_bytes);
  config.idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  config.header_timeout = absl::GetFlag(FLAGS_header_timeout);
  if (config.limits.max_header_bytes < 64) {
    baton::Log("--max_header_bytes must be at least 64");
    return 2;
  }
  if (config.idle_timeout <= absl::ZeroDuration() ||
      config.header_timeout <= absl::ZeroDuration()) {
    baton::Log("--idle_timeout and --header_timeout must be positive");
    return 2;
  }
  return baton::app::RunServer([config](baton::Connection& conn) {
    return baton::httpd::ServeHttp(conn, config);
  });
}
