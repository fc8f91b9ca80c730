#include "baton/app/admin.h"

#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "baton/net/listener.h"
#include "baton/runtime/log.h"
#include "baton/runtime/task_group.h"
#include "baton/runtime/timer.h"

namespace baton::app {
namespace {

using handoff::HandoffRecord;

Task<absl::StatusOr<size_t>> ReadConnection(Connection& conn) {
  co_return co_await conn.Read();
}

Task<absl::Status> FlushConnection(Connection& conn) {
  co_return co_await conn.Flush();
}

// Waits until the request head (up to the blank line) is in inbound().
Task<absl::Status> ReadHead(Connection& conn) {
  while (conn.inbound().find("\r\n\r\n") == std::string_view::npos) {
    if (conn.inbound().size() >= AdminServer::kMaxRequest) {
      co_return absl::ResourceExhaustedError("request head too large");
    }
    absl::StatusOr<size_t> n = co_await conn.Read();
    if (absl::IsResourceExhausted(n.status())) {
      co_return absl::ResourceExhaustedError("request head too large");
    }
    if (!n.ok()) co_return n.status();
    if (*n == 0) co_return absl::UnavailableError("peer closed");
  }
  // A receive may deliver more than the bound at once.
  if (conn.inbound().find("\r\n\r\n") + 4 > AdminServer::kMaxRequest) {
    co_return absl::ResourceExhaustedError("request head too large");
  }
  co_return absl::OkStatus();
}

absl::string_view StatusText(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 431:
      return "Request Header Fields Too Large";
    default:
      return "Internal Server Error";
  }
}

std::string Json(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  out += "\"";
  return out;
}

// Milliseconds as JSON (null when unknown).
std::string JsonMs(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return "null";
  return absl::StrFormat("%.3f", absl::ToDoubleMilliseconds(d));
}
std::string TextMs(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return "-";
  return absl::StrFormat("%.2f", absl::ToDoubleMilliseconds(d));
}

std::string Outcome(const HandoffRecord& r) {
  return r.ok ? "complete" : "rolled_back";
}

std::string Role(const HandoffRecord& r) {
  return r.role == HandoffRecord::Role::kParent ? "parent" : "child";
}

// One metric family of the Prometheus text format.
void Family(std::string* out, absl::string_view name, absl::string_view type,
            absl::string_view help) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type,
                  "\n");
}

}  // namespace

std::string HttpResponse(int status, absl::string_view content_type,
                         absl::string_view body,
                         absl::string_view extra_headers) {
  return absl::StrCat("HTTP/1.1 ", status, " ", StatusText(status),
                      "\r\nContent-Type: ", content_type,
                      "\r\nContent-Length: ", body.size(), "\r\n",
                      extra_headers, "Connection: close\r\n\r\n", body);
}

std::function<Task<void>()> WithAdmin(std::unique_ptr<AdminServer>* admin,
                                      std::function<Task<void>()> background) {
  return [admin, background]() -> Task<void> {
    return [](AdminServer* a, std::function<Task<void>()> app) -> Task<void> {
      TaskGroup app_group;
      if (app) app_group.Spawn(app());
      co_await a->Serve();
      app_group.CancelAll();
      co_await app_group.Join();
    }(admin->get(), background);
  };
}

Task<void> AdminServer::Serve() {
  const int listen_fd = supervisor_.named_listener_fd(kAdminListener);
  if (listen_fd < 0) {
    Log("admin: no %s listener", kAdminListener);
    co_return;
  }
  ListenerOptions options;
  options.reuse_port = false;
  options.connection.max_inbound = kMaxRequest;
  Listener listener = Listener::FromFd(listen_fd, options);
  TaskGroup connections;
  while (true) {
    absl::StatusOr<Connection> conn = co_await listener.Accept();
    if (conn.ok()) {
      connections.Spawn([](AdminServer* self, Connection c) -> Task<void> {
        co_await self->ServeConnection(c);
        co_await c.Close();
      }(this, *std::move(conn)));
      continue;
    }
    if (absl::IsCancelled(conn.status())) break;
    Log("admin: accept failed: %s; retrying in 10ms", conn.status().ToString());
    if (!(co_await Sleep(absl::Milliseconds(10))).ok()) break;
  }
  // A handoff or a stop: admin connections are closed, never moved.
  connections.CancelAll();
  co_await connections.Join();
  co_await listener.StopAccepting();
  for (int fd : listener.TakeQueued()) close(fd);
  listener.ReleaseFd();  // the supervisor's, carried to the next process
}

Task<void> AdminServer::ServeConnection(Connection& conn) {
  absl::Status head = co_await WithTimeout(ReadHead(conn), kRequestTimeout);
  std::string response;
  if (absl::IsResourceExhausted(head)) {
    response = HttpResponse(431, "text/plain", "request too large\n");
  } else if (absl::IsDeadlineExceeded(head)) {
    response = HttpResponse(408, "text/plain", "request timeout\n");
  } else if (!head.ok()) {
    co_return;  // peer gone, or cancelled (handoff, stop)
  } else {
    absl::string_view request(conn.inbound().data(), conn.inbound().size());
    absl::string_view line = request.substr(0, request.find("\r\n"));
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
    if (parts.size() != 3 || parts[0].empty() || parts[1].empty() ||
        parts[1][0] != '/' || !absl::StartsWith(parts[2], "HTTP/1.")) {
      response = HttpResponse(400, "text/plain", "bad request\n");
    } else {
      response = co_await Respond(parts[0], parts[1]);
    }
  }
  conn.Consume(conn.inbound().size());
  conn.Write(response);
  if (!(co_await WithTimeout(FlushConnection(conn), kRequestTimeout)).ok()) {
    co_return;
  }
  // Read what the client still sends (a body we did not want) until it
  // closes, briefly, so that it reads our answer rather than a reset.
  if (!(co_await conn.ShutdownWrite()).ok()) co_return;
  const absl::Time end = absl::Now() + absl::Seconds(1);
  while (!conn.eof()) {
    conn.Consume(conn.inbound().size());
    const absl::Duration left = end - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    absl::StatusOr<size_t> n = co_await WithTimeout(ReadConnection(conn), left);
    if (!n.ok() || *n == 0) break;
  }
}

Task<std::string> AdminServer::Respond(absl::string_view method,
                                       absl::string_view target) {
  if (method != "GET") {
    co_return HttpResponse(405, "text/plain", "only GET is served\n",
                           "Allow: GET\r\n");
  }
  absl::string_view path = target.substr(0, target.find('?'));
  absl::string_view query =
      path.size() < target.size() ? target.substr(path.size() + 1) : "";
  bool text = false;
  for (absl::string_view kv : absl::StrSplit(query, '&')) {
    if (kv == "format=text") text = true;
  }
  const char* type = text ? "text/plain" : "application/json";
  if (path == "/connections") {
    co_return HttpResponse(200, type, co_await Connections(text));
  }
  if (path == "/handoffs") co_return HttpResponse(200, type, Handoffs(text));
  if (path == "/metrics") {
    co_return HttpResponse(200, "text/plain; version=0.0.4; charset=utf-8",
                           co_await Metrics());
  }
  if (path == "/") {
    co_return HttpResponse(
        200, "text/plain",
        "/connections[?format=text]\n/handoffs[?format=text]\n/metrics\n");
  }
  co_return HttpResponse(404, "text/plain",
                         absl::StrCat("no such path: ", path, "\n"));
}

Task<std::string> AdminServer::Connections(bool text) {
  std::vector<ConnectionInfo> all = co_await server_.InspectConnections();
  std::string out;
  if (text) {
    out = absl::StrFormat("%5s %6s %10s %-40s %12s %12s %10s %10s %9s\n",
                          "shard", "fd", "inode", "peer", "bytes_in",
                          "bytes_out", "unread", "unsent", "age_s");
    for (const ConnectionInfo& c : all) {
      absl::StrAppendFormat(
          &out, "%5d %6d %10d %-40s %12d %12d %10d %10d %9.1f\n", c.shard, c.fd,
          c.inode, c.peer, c.bytes_received, c.bytes_sent, c.unconsumed_inbound,
          c.unsent_outbound, absl::ToDoubleSeconds(c.age));
    }
    absl::StrAppendFormat(&out, "%d connections, pid %d\n", all.size(),
                          getpid());
    co_return out;
  }
  out = absl::StrCat("{\"pid\":", getpid(), ",\"connections\":[");
  for (size_t i = 0; i < all.size(); ++i) {
    const ConnectionInfo& c = all[i];
    absl::StrAppendFormat(
        &out,
        "%s\n{\"shard\":%d,\"fd\":%d,\"inode\":%d,\"peer\":%s,"
        "\"bytes_in\":%d,\"bytes_out\":%d,\"unconsumed_inbound\":%d,"
        "\"unsent_outbound\":%d,\"age_seconds\":%.3f}",
        i == 0 ? "" : ",", c.shard, c.fd, c.inode, Json(c.peer),
        c.bytes_received, c.bytes_sent, c.unconsumed_inbound, c.unsent_outbound,
        absl::ToDoubleSeconds(c.age));
  }
  out += "\n]}\n";
  co_return out;
}

std::string AdminServer::Handoffs(bool text) const {
  std::vector<HandoffRecord> history = supervisor_.handoff_history();
  const handoff::HandoffStats last = supervisor_.last_handoff();
  std::string out;
  if (text) {
    out = absl::StrFormat(
        "%-20s %-6s %7s %7s %-11s %5s %5s %4s %10s %10s %8s %8s %8s %8s "
        "%8s %s\n",
        "time", "role", "pid", "peer", "outcome", "#", "conns", "lstn",
        "inbound", "outbound", "state", "ready", "freeze", "transfer", "paused",
        "reason");
    for (const HandoffRecord& r : history) {
      absl::StrAppendFormat(
          &out,
          "%-20s %-6s %7d %7d %-11s %5d %5d %4d %10d %10d %8d %8s %8s %8s "
          "%8s %s\n",
          absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", r.when, absl::UTCTimeZone()),
          Role(r), r.pid, r.peer_pid, Outcome(r), r.restart, r.connections,
          r.listeners, r.inbound_bytes, r.outbound_bytes, r.app_state_bytes,
          TextMs(r.ready), TextMs(r.freeze), TextMs(r.transfer),
          TextMs(r.paused), r.reason);
    }
    absl::StrAppendFormat(&out,
                          "pid %d: %d restarts, %d rolled back in this "
                          "lineage (times in ms)\n",
                          getpid(), last.restarts,
                          supervisor_.handoffs_rolled_back());
    return out;
  }
  out = absl::StrFormat(
      "{\"pid\":%d,\"restarts\":%d,\"rolled_back\":%d,"
      "\"handoffs\":[",
      getpid(), last.restarts, supervisor_.handoffs_rolled_back());
  for (size_t i = 0; i < history.size(); ++i) {
    const HandoffRecord& r = history[i];
    absl::StrAppendFormat(
        &out,
        "%s\n{\"time\":%s,\"role\":\"%s\",\"pid\":%d,\"peer_pid\":%d,"
        "\"outcome\":\"%s\",\"reason\":%s,\"restart\":%d,\"connections\":%d,"
        "\"listeners\":%d,\"inbound_bytes\":%d,\"outbound_bytes\":%d,"
        "\"app_state_bytes\":%d,\"ready_ms\":%s,\"freeze_ms\":%s,"
        "\"transfer_ms\":%s,\"paused_ms\":%s}",
        i == 0 ? "" : ",", Json(absl::FormatTime(r.when, absl::UTCTimeZone())),
        Role(r), r.pid, r.peer_pid, Outcome(r), Json(r.reason), r.restart,
        r.connections, r.listeners, r.inbound_bytes, r.outbound_bytes,
        r.app_state_bytes, JsonMs(r.ready), JsonMs(r.freeze),
        JsonMs(r.transfer), JsonMs(r.paused));
  }
  out += "\n]}\n";
  return out;
}

Task<std::string> AdminServer::Metrics() {
  std::vector<ShardStats> shards = co_await server_.Stats();
  std::string out;
  auto per_shard = [&](absl::string_view name, absl::string_view type,
                       absl::string_view help, auto value) {
    Family(&out, name, type, help);
    for (const ShardStats& s : shards) {
      absl::StrAppend(&out, name, "{shard=\"", s.shard, "\"} ", value(s), "\n");
    }
  };
  per_shard("baton_connections_open", "gauge",
            "Connections the shard serves now.",
            [](const ShardStats& s) { return s.open; });
  per_shard("baton_connections_accepted_total", "counter",
            "Connections the shard accepted (this process).",
            [](const ShardStats& s) { return s.accepted; });
  per_shard("baton_connections_closed_total", "counter",
            "Connections the shard closed (this process; moved ones are not "
            "closed).",
            [](const ShardStats& s) { return s.closed; });
  per_shard("baton_received_bytes_total", "counter",
            "Bytes received on the shard's connections (this process).",
            [](const ShardStats& s) { return s.connections.bytes_received; });
  per_shard("baton_sent_bytes_total", "counter",
            "Bytes sent on the shard's connections (this process).",
            [](const ShardStats& s) { return s.connections.bytes_sent; });
  per_shard(
      "baton_backpressure_pauses_total", "counter",
      "Times a connection stopped receiving at max_inbound unconsumed "
      "bytes.",
      [](const ShardStats& s) { return s.connections.backpressure_pauses; });
  per_shard("baton_recv_no_buffers_total", "counter",
            "Receives that found the provided-buffer ring empty (ENOBUFS).",
            [](const ShardStats& s) { return s.recv_no_buffers; });

  const handoff::HandoffStats last = supervisor_.last_handoff();
  Family(&out, "baton_handoffs_total", "counter",
         "Handoffs of this lineage of processes, by outcome.");
  absl::StrAppend(&out, "baton_handoffs_total{outcome=\"complete\"} ",
                  last.restarts, "\n");
  absl::StrAppend(&out, "baton_handoffs_total{outcome=\"rolled_back\"} ",
                  supervisor_.handoffs_rolled_back(), "\n");
  Family(&out, "baton_restarts_total", "counter",
         "Successful hot restarts this lineage went through.");
  absl::StrAppend(&out, "baton_restarts_total ", last.restarts, "\n");
  double pause = 0;
  for (const HandoffRecord& r : supervisor_.handoff_history()) {
    if (r.ok && r.paused != absl::InfiniteDuration()) {
      pause = absl::ToDoubleSeconds(r.paused);
    }
  }
  Family(&out, "baton_last_handoff_pause_seconds", "gauge",
         "The pause clients saw in the last completed handoff (0 before "
         "any).");
  absl::StrAppend(&out, "baton_last_handoff_pause_seconds ",
                  absl::StrFormat("%.6f", pause), "\n");
  co_return out;
}

}  // namespace baton::app
