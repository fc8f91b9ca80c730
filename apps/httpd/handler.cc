#include "httpd/handler.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <ctime>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "baton/app/server_main.h"
#include "baton/handoff/supervisor.h"
#include "baton/runtime/log.h"
#include "baton/runtime/timer.h"

namespace baton::httpd {
namespace {

// Unsent response bytes above which the handler stops answering and waits
// for the peer to read.
constexpr size_t kMaxUnsent = 1 << 20;

constexpr std::string_view kHelloWorld = "Hello, World!";
constexpr std::string_view kJson = R"({"message":"Hello, World!"})";
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view kStateMagic = "BHS2";

std::atomic<int64_t> g_open_connections{0};
std::atomic<uint64_t> g_requests{0};

class OpenConnection {
 public:
  OpenConnection() { g_open_connections.fetch_add(1); }
  ~OpenConnection() { g_open_connections.fetch_sub(1); }
  OpenConnection(const OpenConnection&) = delete;
  OpenConnection& operator=(const OpenConnection&) = delete;
};

// "Date: Tue, 15 Nov 1994 08:12:31 GMT\r\n", formatted once a second per
// thread.
std::string_view DateLine() {
  thread_local time_t cached_second = -1;
  thread_local char line[64];
  thread_local size_t length = 0;
  time_t now = time(nullptr);
  if (now != cached_second) {
    struct tm tm;
    gmtime_r(&now, &tm);
    length = strftime(line, sizeof(line), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n",
                      &tm);
    cached_second = now;
  }
  return std::string_view(line, length);
}

struct Reply {
  int status = 200;
  std::string_view content_type;
  std::string_view body;
  std::string_view allow;  // for 405
  bool head = false;       // headers only
  bool close = false;
  bool http10_keep_alive = false;  // say "Connection: keep-alive"
};

void AppendNumber(std::string* out, uint64_t v) {
  char digits[20];
  size_t n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) out->push_back(digits[--n]);
}

std::string Serialize(const Reply& r) {
  std::string out;
  out.reserve(192 + (r.head ? 0 : r.body.size()));
  out.append("HTTP/1.1 ");
  AppendNumber(&out, static_cast<uint64_t>(r.status));
  out.push_back(' ');
  out.append(http::ReasonPhrase(r.status));
  out.append("\r\nServer: baton\r\n");
  out.append(DateLine());
  if (!r.content_type.empty()) {
    out.append("Content-Type: ");
    out.append(r.content_type);
    out.append("\r\n");
  }
  out.append("Content-Length: ");
  AppendNumber(&out, r.body.size());
  out.append("\r\n");
  if (!r.allow.empty()) {
    out.append("Allow: ");
    out.append(r.allow);
    out.append("\r\n");
  }
  if (r.close) {
    out.append("Connection: close\r\n");
  } else if (r.http10_keep_alive) {
    out.append("Connection: keep-alive\r\n");
  }
  out.append("\r\n");
  if (!r.head) out.append(r.body);
  return out;
}

template <typename T>
void PutLe(std::string* out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) {
    out->push_back(
        static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xFF));
  }
}

// --- The connection loop ---

Task<absl::StatusOr<size_t>> ReadOnce(Connection& conn) {
  co_return co_await conn.Read();
}

Task<absl::Status> DrainTo(Connection& conn, size_t at_most) {
  co_return co_await conn.Drain(at_most);
}

// ConnectionState plus what never leaves the process.
struct Session {
  ConnectionState s;
  http::ParseState parse;

  // The front request (`n` bytes) is answered.
  void Advance(Connection& conn, size_t n) {
    conn.Consume(n);
    parse = http::ParseState();
    s.continue_sent = false;
    s.deadline.reset();
  }
  // Before returning for a stop or a handoff: what the next process needs.
  void Park(Connection& conn) { conn.set_handoff_state(EncodeState(s)); }
};

// Answers `status` and closes, lingering so that a client still sending
// reads the response rather than a reset.
void Refuse(Connection& conn, int status) {
  conn.Write(ErrorResponse(status));
  conn.CloseWhenFlushed(Closing::kLinger);
}

}  // namespace

int64_t OpenConnections() { return g_open_connections.load(); }
uint64_t RequestsServed() { return g_requests.load(); }

std::string StatsJson() {
  handoff::HandoffStats h;
  if (const handoff::Supervisor* sup = app::CurrentSupervisor()) {
    h = sup->last_handoff();
  }
  return absl::StrFormat(
      "{\"connections\":%d,\"requests\":%d,\"restarts\":%d,"
      "\"last_restart_bytes\":%d,\"last_restart_inbound_bytes\":%d,"
      "\"last_restart_outbound_bytes\":%d,\"last_restart_connections\":%d,"
      "\"pid\":%d}",
      OpenConnections(), RequestsServed(), h.restarts,
      h.inbound_bytes + h.outbound_bytes, h.inbound_bytes, h.outbound_bytes,
      h.connections, getpid());
}

Response Respond(const http::Request& request) {
  const std::string_view path = request.Path();
  const std::string_view method = request.method;
  const bool get = method == "GET";
  const bool head = method == "HEAD";
  Reply r;
  r.close = !request.keep_alive;
  r.http10_keep_alive = request.minor_version == 0 && request.keep_alive;
  r.head = head;
  std::string stats;
  if (path == "/plaintext" || path == "/json" || path == "/stats") {
    if (get || head) {
      if (path == "/plaintext") {
        r.content_type = "text/plain";
        r.body = kHelloWorld;
      } else if (path == "/json") {
        r.content_type = "application/json";
        r.body = kJson;
      } else {
        stats = StatsJson();
        r.content_type = "application/json";
        r.body = stats;
      }
    } else {
      r.status = 405;
      r.allow = "GET, HEAD";
    }
  } else if (path == "/echo") {
    if (method == "POST") {
      r.content_type = "application/octet-stream";
      r.body = request.body;
    } else {
      r.status = 405;
      r.allow = "POST";
    }
  } else {
    r.status = 404;
  }
  if (r.status != 200) {
    r.content_type = "text/plain";
    r.body = http::ReasonPhrase(r.status);
  }
  return Response{Serialize(r), r.close};
}

std::string ErrorResponse(int status) {
  Reply r;
  r.status = status;
  r.content_type = "text/plain";
  r.body = http::ReasonPhrase(status);
  r.close = true;
  return Serialize(r);
}

std::string EncodeState(const ConnectionState& state) {
  std::string out(kStateMagic);
  uint8_t flags =
      (state.continue_sent ? 1 : 0) | (state.deadline.has_value() ? 2 : 0);
  out.push_back(static_cast<char>(flags));
  PutLe<int64_t>(&out, state.deadline ? absl::ToUnixNanos(*state.deadline) : 0);
  return out;
}

bool DecodeState(std::string_view bytes, ConnectionState* state) {
  constexpr size_t kSize = 4 + 1 + 8;
  if (bytes.size() != kSize || bytes.substr(0, 4) != kStateMagic) return false;
  auto flags = static_cast<uint8_t>(bytes[4]);
  if (flags & ~3u) return false;
  uint64_t nanos = 0;
  for (size_t i = 0; i < 8; ++i) {
    nanos |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[5 + i]))
             << (8 * i);
  }
  ConnectionState s;
  s.continue_sent = flags & 1;
  if (flags & 2) s.deadline = absl::FromUnixNanos(static_cast<int64_t>(nanos));
  *state = s;
  return true;
}

Task<void> ServeHttp(Connection& conn, Config config) {
  OpenConnection counted;
  Session session;
  if (!conn.handoff_state().empty()) {
    if (!DecodeState(conn.handoff_state(), &session.s)) {
      // Only another build of this program could send one; its bytes cannot
      // be trusted, so the connection is dropped rather than misparsed.
      Log("httpd: unreadable handoff state (%d bytes); closing connection",
          conn.handoff_state().size());
      co_return;
    }
    conn.set_handoff_state("");
  }
  // The largest valid request must fit in the connection's buffer whole.
  conn.set_max_inbound(
      std::max(conn.max_inbound(), http::MaxRequestBytes(config.limits)));
  while (true) {
    // Answer every complete request, in order.
    while (!conn.inbound().empty()) {
      http::ParseResult r =
          http::ParseRequest(conn.inbound(), config.limits, &session.parse);
      if (r.status == http::ParseStatus::kNeedMore) {
        if (!session.s.deadline) {
          session.s.deadline = absl::Now() + config.header_timeout;
        }
        if (r.expect_continue && !session.s.continue_sent) {
          conn.Write(kContinue);
          session.s.continue_sent = true;
        }
        break;
      }
      if (r.status == http::ParseStatus::kError) {
        Refuse(conn, r.error);
        co_return;
      }
      Response response = Respond(r.request);
      conn.Write(response.bytes);
      session.Advance(conn, r.size);
      g_requests.fetch_add(1, std::memory_order_relaxed);
      if (response.close) {
        // Requests pipelined after it are never answered: linger over them.
        conn.CloseWhenFlushed(conn.inbound().empty() ? Closing::kWhenFlushed
                                                     : Closing::kLinger);
        co_return;
      }
      // Back-pressure: read no more while the peer does not read.
      if (conn.outbound_size() > kMaxUnsent) {
        absl::Status s = co_await WithTimeout(DrainTo(conn, kMaxUnsent),
                                              config.idle_timeout);
        if (!s.ok()) {
          if (conn.quiescing() || absl::IsCancelled(s)) session.Park(conn);
          co_return;
        }
      }
    }

    // Wait for more: a started request has until its header deadline to
    // complete its header section, then idle_timeout between reads of its
    // body; an idle connection has idle_timeout.
    const bool partial = !conn.inbound().empty();
    absl::Duration wait = config.idle_timeout;
    if (partial && session.parse.head_size == 0 && session.s.deadline) {
      wait = *session.s.deadline - absl::Now();
    }
    absl::StatusOr<size_t> n = absl::DeadlineExceededError("header deadline");
    if (wait > absl::ZeroDuration()) {
      n = co_await WithTimeout(ReadOnce(conn), wait);
    }
    if (conn.quiescing()) {
      session.Park(conn);
      co_return;
    }
    if (n.ok()) {
      if (*n == 0) co_return;  // the peer is done sending
      continue;
    }
    if (absl::IsResourceExhausted(n.status())) {
      // The buffer holds MaxRequestBytes() and no complete request: the
      // parser refuses such a request before that, so this is a defence.
      Refuse(conn, session.parse.head_size == 0 ? 431 : 413);
      co_return;
    }
    if (absl::IsDeadlineExceeded(n.status())) {
      if (partial) {
        Refuse(conn, 408);
      } else {
        conn.CloseWhenFlushed();  // idle
      }
      co_return;
    }
    if (absl::IsCancelled(n.status())) session.Park(conn);
    co_return;  // Cancelled (stop), or a receive error
  }
}

}  // namespace baton::httpd
