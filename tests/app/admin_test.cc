// The --admin endpoint (framework/baton/app/admin.h) of a real baton-echo,
// fetched with curl: /connections matches what the kernel and the clients
// know (count, peer ports, socket inodes from /proc/net/tcp, bytes in and
// out), /metrics is strict Prometheus text format whose counters match the
// traffic, the admin socket survives restarts (same port, same kernel
// socket, answered by the new pid, /handoffs shows each takeover), and bad
// requests get 400/404/405/408/431.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "support/process.h"
#include "support/status_macros.h"

namespace baton::test_support {
namespace {

using ::testing::HasSubstr;

// --- A blocking test client -------------------------------------------------

class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~Client() { close(fd_); }
  bool ok() const { return ok_; }
  int fd() const { return fd_; }
  uint16_t local_port() const {
    sockaddr_in a{};
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    return ntohs(a.sin_port);
  }
  bool SendAll(const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n =
          send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }
  // Sends without blocking until the kernel takes no more; returns how many.
  size_t Stuff() {
    std::string chunk(64 * 1024, 'x');
    size_t total = 0;
    while (true) {
      ssize_t n =
          send(fd_, chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n <= 0) return total;
      total += static_cast<size_t>(n);
    }
  }
  // Reads exactly n bytes (bounded by 10 s of silence).
  std::string ReadN(size_t n) {
    std::string out;
    char buf[65536];
    while (out.size() < n) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 10000) <= 0) break;
      ssize_t got = recv(fd_, buf, std::min(sizeof(buf), n - out.size()), 0);
      if (got <= 0) break;
      out.append(buf, static_cast<size_t>(got));
    }
    return out;
  }

 private:
  int fd_ = -1;
  bool ok_ = false;
};

// --- The admin endpoint ------------------------------------------------------

// The port of the last "admin listening on" line (each process of the
// lineage prints one).
uint16_t AdminPort(const ServerProcess& server) {
  uint16_t port = 0;
  for (const std::string& line : server.StdoutLines()) {
    if (absl::StartsWith(line, "admin listening on ")) {
      absl::StatusOr<Address> a =
          Address::Parse(line.substr(std::strlen("admin listening on ")));
      port = a.ok() ? a->port() : 0;
    }
  }
  return port;
}

struct Response {
  int code = -1;
  std::string headers;
  std::string body;
};

// curl -i: status line and headers, then the body.
Response Curl(uint16_t port, const std::string& path,
              std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {"curl", "-sS", "-i", "--max-time", "10"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(absl::StrCat("http://127.0.0.1:", port, path));
  std::string out;
  Response r;
  if (RunTool(argv, &out) != 0) {
    r.body = out;
    return r;
  }
  size_t end = out.find("\r\n\r\n");
  if (end == std::string::npos) return r;
  r.headers = out.substr(0, end);
  r.body = out.substr(end + 4);
  std::vector<std::string> first = absl::StrSplit(r.headers, ' ');
  if (first.size() >= 2) (void)absl::SimpleAtoi(first[1], &r.code);
  return r;
}

// The objects of a one-object-per-line JSON array, as key -> raw value.
using Object = std::map<std::string, std::string>;
std::vector<Object> JsonObjects(const std::string& body,
                                const std::string& first_key) {
  std::vector<Object> out;
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    if (!absl::StartsWith(line, absl::StrCat("{\"", first_key, "\""))) {
      continue;
    }
    line = absl::StripSuffix(line, ",");
    line = absl::StripPrefix(line, "{");
    line = absl::StripSuffix(line, "}");
    Object o;
    // Values hold no ',' except inside strings, which hold no '"' here.
    std::vector<std::string> parts;
    std::string cur;
    bool in_string = false;
    for (char c : line) {
      if (c == '"') in_string = !in_string;
      if (c == ',' && !in_string) {
        parts.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    parts.push_back(cur);
    for (const std::string& p : parts) {
      size_t colon = p.find("\":");
      if (p.size() < 2 || p[0] != '"' || colon == std::string::npos) continue;
      std::string value = p.substr(colon + 2);
      if (value.size() >= 2 && value.front() == '"') {
        value = value.substr(1, value.size() - 2);
      }
      o[p.substr(1, colon - 1)] = value;
    }
    out.push_back(o);
  }
  return out;
}

uint64_t U(const Object& o, const std::string& key) {
  uint64_t v = 0;
  auto it = o.find(key);
  if (it == o.end() || !absl::SimpleAtoi(it->second, &v)) {
    ADD_FAILURE() << "no integer " << key;
  }
  return v;
}

// --- A strict Prometheus text format (0.0.4) parser ------------------------

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};
struct Exposition {
  std::map<std::string, std::string> types;  // family -> type
  std::vector<Sample> samples;
  // Sum over samples of `name` whose labels include `match`.
  double Sum(const std::string& name,
             const std::map<std::string, std::string>& match = {}) const {
    double total = 0;
    for (const Sample& s : samples) {
      if (s.name != name) continue;
      bool ok = true;
      for (const auto& [k, v] : match) {
        auto it = s.labels.find(k);
        ok = ok && it != s.labels.end() && it->second == v;
      }
      if (ok) total += s.value;
    }
    return total;
  }
};

bool ValidName(absl::string_view n, bool label) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
              (!label && c == ':') ||
              (i > 0 && std::isdigit(static_cast<unsigned char>(c)));
    if (!ok) return false;
  }
  return true;
}

// Every line is a HELP, a TYPE or a sample; each family has one HELP and
// one TYPE before its samples, its samples are contiguous, counters end in
// _total, label values are quoted, values are numbers; no duplicate series.
absl::StatusOr<Exposition> ParsePrometheus(const std::string& text) {
  Exposition e;
  if (text.empty() || text.back() != '\n') {
    return absl::DataLossError("exposition must end with a newline");
  }
  std::set<std::string> helped, finished, series;
  std::string current;
  int n = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++n;
    const std::string where = absl::StrCat("line ", n, ": ", line);
    if (line.empty()) continue;
    if (absl::StartsWith(line, "#")) {
      std::vector<std::string> f =
          absl::StrSplit(line, absl::MaxSplits(' ', 3));
      if (f.size() < 3 || (f[1] != "HELP" && f[1] != "TYPE")) {
        return absl::DataLossError(absl::StrCat("bad comment, ", where));
      }
      if (!ValidName(f[2], false)) {
        return absl::DataLossError(absl::StrCat("bad name, ", where));
      }
      if (f[2] != current) {
        if (!current.empty()) finished.insert(current);
        if (finished.count(f[2])) {
          return absl::DataLossError(absl::StrCat("family split, ", where));
        }
        current = f[2];
      }
      if (f[1] == "HELP") {
        if (!helped.insert(f[2]).second || f.size() != 4) {
          return absl::DataLossError(absl::StrCat("HELP twice/empty, ", where));
        }
      } else {
        static const std::set<std::string> kTypes = {
            "counter", "gauge", "histogram", "summary", "untyped"};
        if (f.size() != 4 || !kTypes.count(f[3]) || e.types.count(f[2])) {
          return absl::DataLossError(absl::StrCat("bad TYPE, ", where));
        }
        if (f[3] == "counter" && !absl::EndsWith(f[2], "_total")) {
          return absl::DataLossError(
              absl::StrCat("counter not _total, ", where));
        }
        e.types[f[2]] = f[3];
      }
      continue;
    }
    Sample s;
    size_t name_end = line.find_first_of("{ ");
    if (name_end == absl::string_view::npos) {
      return absl::DataLossError(absl::StrCat("no value, ", where));
    }
    s.name = std::string(line.substr(0, name_end));
    absl::string_view rest = line.substr(name_end);
    std::string labels_text;
    if (absl::ConsumePrefix(&rest, "{")) {
      size_t close = rest.find("} ");
      if (close == absl::string_view::npos) {
        return absl::DataLossError(absl::StrCat("unclosed labels, ", where));
      }
      labels_text = std::string(rest.substr(0, close));
      rest = rest.substr(close + 1);
      for (absl::string_view kv : absl::StrSplit(labels_text, ',')) {
        size_t eq = kv.find('=');
        if (eq == absl::string_view::npos ||
            !ValidName(kv.substr(0, eq), true) || kv.size() < eq + 3 ||
            kv[eq + 1] != '"' || kv.back() != '"') {
          return absl::DataLossError(absl::StrCat("bad label, ", where));
        }
        s.labels[std::string(kv.substr(0, eq))] =
            std::string(kv.substr(eq + 2, kv.size() - eq - 3));
      }
    }
    if (!absl::ConsumePrefix(&rest, " ") || !absl::SimpleAtod(rest, &s.value)) {
      return absl::DataLossError(absl::StrCat("bad value, ", where));
    }
    if (!ValidName(s.name, false) || s.name != current ||
        !e.types.count(s.name) || !helped.count(s.name)) {
      return absl::DataLossError(
          absl::StrCat("sample outside its family's HELP/TYPE, ", where));
    }
    if (!series.insert(absl::StrCat(s.name, "{", labels_text, "}")).second) {
      return absl::DataLossError(absl::StrCat("duplicate series, ", where));
    }
    e.samples.push_back(std::move(s));
  }
  return e;
}

TEST(PrometheusParserTest, RefusesWhatTheFormatForbids) {
  const std::string good =
      "# HELP a_total A.\n# TYPE a_total counter\na_total{shard=\"0\"} 1\n";
  EXPECT_OK(ParsePrometheus(good));
  for (const std::string& bad : {
           std::string("a_total 1\n"),  // no TYPE
           std::string("# HELP a_total A.\n# TYPE a_total counter\n"
                       "a_total{shard=0} 1\n"),
           std::string("# HELP a A.\n# TYPE a counter\na 1\n"),
           std::string("# HELP a_total A.\n# TYPE a_total counter\n"
                       "a_total x\n"),
           std::string("# HELP a_total A.\n# TYPE a_total counter\n"
                       "a_total 1\na_total 2\n"),
           good.substr(0, good.size() - 1),
       }) {
    EXPECT_FALSE(ParsePrometheus(bad).ok()) << bad;
  }
}

// --- The server --------------------------------------------------------------

ServerProcess::Options AdminEcho(std::vector<std::string> more = {}) {
  std::vector<std::string> args = {"--threads=2", "--admin=127.0.0.1:0"};
  args.insert(args.end(), more.begin(), more.end());
  return AppServer("echo", args);
}

class AdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (FindTool("curl").empty()) GTEST_SKIP() << "curl is not installed";
  }
};

TEST_F(AdminTest, ConnectionsMatchTheKernelAndTheClients) {
  ServerProcess server(AdminEcho());
  ASSERT_OK(server.Start());
  const uint16_t admin = AdminPort(server);
  ASSERT_NE(admin, 0) << "no \"admin listening on\" line";

  // Three clients with known traffic, echoed back in full...
  std::vector<std::unique_ptr<Client>> clients;
  std::map<uint16_t, size_t> sent;  // client port -> bytes
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<Client>(server.port()));
    ASSERT_TRUE(clients.back()->ok());
    const std::string bytes(1000 * (i + 1) + 7, static_cast<char>('a' + i));
    ASSERT_TRUE(clients.back()->SendAll(bytes));
    ASSERT_EQ(clients.back()->ReadN(bytes.size()), bytes);
    sent[clients.back()->local_port()] = bytes.size();
  }
  // ...and one that sends without reading: its echo piles up unsent.
  auto stuffer = std::make_unique<Client>(server.port());
  ASSERT_TRUE(stuffer->ok());
  const uint16_t stuffer_port = stuffer->local_port();
  size_t stuffed = 0;
  std::vector<Object> conns;
  // Until the server holds some of it unsent (the client's window and ours
  // fill up first).
  ASSERT_TRUE(PollUntil(
      [&] {
        stuffed += stuffer->Stuff();
        Response r = Curl(admin, "/connections");
        conns = JsonObjects(r.body, "shard");
        for (const Object& o : conns) {
          if (o.at("peer") == absl::StrCat("127.0.0.1:", stuffer_port) &&
              U(o, "unsent_outbound") > 0) {
            return true;
          }
        }
        return false;
      },
      absl::Seconds(20), absl::Milliseconds(20)));

  Response r = Curl(admin, "/connections");
  ASSERT_EQ(r.code, 200) << r.headers << r.body;
  EXPECT_THAT(r.headers, HasSubstr("Content-Type: application/json"));
  EXPECT_THAT(r.headers, HasSubstr("Connection: close"));
  EXPECT_THAT(r.headers,
              HasSubstr(absl::StrCat("Content-Length: ", r.body.size())));
  EXPECT_THAT(r.body, HasSubstr(absl::StrCat("\"pid\":", server.pid())));
  conns = JsonObjects(r.body, "shard");
  ASSERT_EQ(conns.size(), 4u) << r.body;

  absl::StatusOr<std::vector<TcpSocket>> tcp = ReadTcpSockets();
  ASSERT_OK(tcp);
  std::set<int> shards;
  for (const Object& o : conns) {
    SCOPED_TRACE(o.at("peer"));
    const std::string peer = o.at("peer");
    ASSERT_TRUE(absl::StartsWith(peer, "127.0.0.1:"));
    uint32_t port = 0;
    ASSERT_TRUE(absl::SimpleAtoi(peer.substr(10), &port));
    // The inode is the server end's in /proc/net/tcp.
    uint64_t inode = 0;
    for (const TcpSocket& s : *tcp) {
      if (s.local_port == server.port() && s.remote_port == port) {
        inode = s.inode;
      }
    }
    EXPECT_NE(inode, 0u);
    EXPECT_EQ(U(o, "inode"), inode);
    shards.insert(static_cast<int>(U(o, "shard")));
    const uint64_t in = U(o, "bytes_in"), out = U(o, "bytes_out");
    // Echo: every byte in was sent, is queued, or is not consumed yet.
    EXPECT_EQ(in, out + U(o, "unsent_outbound") + U(o, "unconsumed_inbound"));
    if (port == stuffer_port) {
      // Its unsent bytes were seen above; by this second look the kernel
      // may have taken them (a send completed when the client's window
      // opened a little), so only what cannot change is checked here.
      EXPECT_LE(in, stuffed);
      continue;
    }
    ASSERT_EQ(sent.count(port), 1u) << "a peer port no client has";
    EXPECT_EQ(in, sent[port]);
    EXPECT_EQ(out, sent[port]);
    EXPECT_EQ(U(o, "unsent_outbound"), 0u);
    EXPECT_EQ(U(o, "unconsumed_inbound"), 0u);
  }
  for (int s : shards) EXPECT_TRUE(s == 0 || s == 1) << s;

  Response text = Curl(admin, "/connections?format=text");
  EXPECT_EQ(text.code, 200);
  EXPECT_THAT(text.body, HasSubstr("4 connections"));
  EXPECT_THAT(text.body, HasSubstr(absl::StrCat("127.0.0.1:", stuffer_port)));
  stuffer.reset();
  EXPECT_OK(server.Stop());
}

TEST_F(AdminTest, MetricsAreStrictPrometheusAndCountTheTraffic) {
  ServerProcess server(AdminEcho());
  ASSERT_OK(server.Start());
  const uint16_t admin = AdminPort(server);
  ASSERT_NE(admin, 0);
  size_t total = 0;
  {
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < 5; ++i) {
      clients.push_back(std::make_unique<Client>(server.port()));
      const std::string bytes(3000 + 11 * i, 'm');
      ASSERT_TRUE(clients.back()->SendAll(bytes));
      ASSERT_EQ(clients.back()->ReadN(bytes.size()), bytes);
      total += bytes.size();
    }
    // Two stay open, three close.
    clients.resize(2);
    Exposition e;
    ASSERT_TRUE(PollUntil(
        [&] {
          absl::StatusOr<Exposition> parsed =
              ParsePrometheus(Curl(admin, "/metrics").body);
          if (parsed.ok()) e = *parsed;
          return parsed.ok() && e.Sum("baton_connections_closed_total") == 3 &&
                 e.Sum("baton_connections_open") == 2;
        },
        absl::Seconds(10), absl::Milliseconds(20)));
  }
  Response r = Curl(admin, "/metrics");
  ASSERT_EQ(r.code, 200);
  EXPECT_THAT(r.headers, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  absl::StatusOr<Exposition> e = ParsePrometheus(r.body);
  ASSERT_TRUE(e.ok()) << e.status() << r.body;
  EXPECT_EQ(e->types.at("baton_connections_open"), "gauge");
  EXPECT_EQ(e->types.at("baton_received_bytes_total"), "counter");
  EXPECT_EQ(e->Sum("baton_connections_accepted_total"), 5);
  EXPECT_EQ(e->Sum("baton_received_bytes_total"), static_cast<double>(total));
  EXPECT_EQ(e->Sum("baton_sent_bytes_total"), static_cast<double>(total));
  // Every client is gone now.
  EXPECT_EQ(e->Sum("baton_connections_open", {{"shard", "0"}}) +
                e->Sum("baton_connections_open", {{"shard", "1"}}),
            e->Sum("baton_connections_open"));
  EXPECT_EQ(e->Sum("baton_connections_open") +
                e->Sum("baton_connections_closed_total"),
            5);
  EXPECT_EQ(e->Sum("baton_restarts_total"), 0);
  EXPECT_EQ(e->Sum("baton_handoffs_total", {{"outcome", "rolled_back"}}), 0);
  for (const char* name :
       {"baton_backpressure_pauses_total", "baton_recv_no_buffers_total",
        "baton_last_handoff_pause_seconds"}) {
    EXPECT_EQ(e->types.count(name), 1u) << name;
  }
  EXPECT_OK(server.Stop());
}

TEST_F(AdminTest, BackPressurePausesAreCounted) {
  // A 64 KiB bound and a client that never reads: the echo's unsent bytes
  // stop the handler, inbound piles up, and receiving pauses.
  ServerProcess server(AdminEcho({"--max_inbound=65536"}));
  ASSERT_OK(server.Start());
  const uint16_t admin = AdminPort(server);
  Client stuffer(server.port());
  ASSERT_TRUE(PollUntil(
      [&] {
        stuffer.Stuff();
        absl::StatusOr<Exposition> e =
            ParsePrometheus(Curl(admin, "/metrics").body);
        return e.ok() && e->Sum("baton_backpressure_pauses_total") >= 1;
      },
      absl::Seconds(20), absl::Milliseconds(20)));
  EXPECT_OK(server.Stop());
}

TEST_F(AdminTest, AdminSocketSurvivesRestartsAndHandoffsAreListed) {
  ServerProcess server(AdminEcho());
  ASSERT_OK(server.Start());
  const uint16_t admin = AdminPort(server);
  ASSERT_NE(admin, 0);
  absl::StatusOr<std::set<uint64_t>> admin_inodes = ListeningInodes(admin);
  ASSERT_OK(admin_inodes);
  ASSERT_EQ(admin_inodes->size(), 1u);

  Client a(server.port()), b(server.port());
  ASSERT_TRUE(a.SendAll("ping") && b.SendAll("pong"));
  ASSERT_EQ(a.ReadN(4), "ping");
  ASSERT_EQ(b.ReadN(4), "pong");

  for (int restart = 1; restart <= 2; ++restart) {
    SCOPED_TRACE(absl::StrCat("restart ", restart));
    absl::StatusOr<RestartResult> r = server.Restart();
    ASSERT_OK(r);
    EXPECT_EQ(r->handoff.listeners, 3) << "2 data listeners + admin";
    // Same port, same kernel socket, no second one.
    EXPECT_EQ(AdminPort(server), admin);
    absl::StatusOr<std::set<uint64_t>> now = ListeningInodes(admin);
    ASSERT_OK(now);
    EXPECT_EQ(*now, *admin_inodes);

    Response conns = Curl(admin, "/connections");
    ASSERT_EQ(conns.code, 200) << conns.body;
    EXPECT_THAT(conns.body, HasSubstr(absl::StrCat("\"pid\":", r->new_pid)));
    EXPECT_EQ(JsonObjects(conns.body, "shard").size(), 2u) << conns.body;

    Response h = Curl(admin, "/handoffs");
    ASSERT_EQ(h.code, 200);
    EXPECT_THAT(h.body, HasSubstr(absl::StrCat("\"restarts\":", restart)));
    std::vector<Object> records = JsonObjects(h.body, "time");
    // Each process's record of its takeover, the older ones carried along.
    ASSERT_EQ(records.size(), static_cast<size_t>(restart)) << h.body;
    const Object& last = records.back();
    EXPECT_EQ(last.at("role"), "child");
    EXPECT_EQ(last.at("outcome"), "complete");
    EXPECT_EQ(U(last, "pid"), static_cast<uint64_t>(r->new_pid));
    EXPECT_EQ(U(last, "peer_pid"), static_cast<uint64_t>(r->old_pid));
    EXPECT_EQ(U(last, "connections"), 2u);
    EXPECT_EQ(U(last, "restart"), static_cast<uint64_t>(restart));
    double paused = -1;
    EXPECT_TRUE(absl::SimpleAtod(last.at("paused_ms"), &paused));
    EXPECT_GT(paused, 0);

    absl::StatusOr<Exposition> m =
        ParsePrometheus(Curl(admin, "/metrics").body);
    ASSERT_OK(m);
    EXPECT_EQ(m->Sum("baton_restarts_total"), restart);
    EXPECT_EQ(m->Sum("baton_handoffs_total", {{"outcome", "complete"}}),
              restart);
    EXPECT_GT(m->Sum("baton_last_handoff_pause_seconds"), 0);
    // Data connections keep working.
    ASSERT_TRUE(a.SendAll("again"));
    ASSERT_EQ(a.ReadN(5), "again");
  }
  EXPECT_THAT(Curl(admin, "/handoffs?format=text").body,
              HasSubstr("2 restarts"));
  EXPECT_OK(server.Stop());
}

TEST_F(AdminTest, RollbackIsListedWithItsReason) {
  ServerProcess::Options o = AdminEcho();
  o.env = {"BATON_HANDOFF_FAULT=child:after_ready"};
  ServerProcess faulty(o);
  ASSERT_OK(faulty.Start());
  const uint16_t admin = AdminPort(faulty);
  ASSERT_OK(faulty.RestartExpectRollback());
  Response h;
  ASSERT_TRUE(PollUntil(
      [&] {
        h = Curl(admin, "/handoffs");
        return absl::StrContains(h.body, "rolled_back\",");
      },
      absl::Seconds(10), absl::Milliseconds(20)))
      << h.body;
  std::vector<Object> records = JsonObjects(h.body, "time");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].at("role"), "parent");
  EXPECT_THAT(records[0].at("reason"), HasSubstr("killed by signal 9"));
  EXPECT_THAT(h.body, HasSubstr("\"rolled_back\":1"));
  absl::StatusOr<Exposition> m = ParsePrometheus(Curl(admin, "/metrics").body);
  ASSERT_OK(m);
  EXPECT_EQ(m->Sum("baton_handoffs_total", {{"outcome", "rolled_back"}}), 1);
  EXPECT_OK(faulty.Stop());
}

TEST_F(AdminTest, BadRequestsGetTheirStatus) {
  ServerProcess server(AdminEcho());
  ASSERT_OK(server.Start());
  const uint16_t admin = AdminPort(server);
  EXPECT_EQ(Curl(admin, "/nope").code, 404);
  EXPECT_EQ(Curl(admin, "/metricsx").code, 404);
  Response post = Curl(admin, "/metrics", {"-X", "POST", "-d", "x=1"});
  EXPECT_EQ(post.code, 405);
  EXPECT_THAT(post.headers, HasSubstr("Allow: GET"));
  EXPECT_EQ(Curl(admin, "/connections", {"-X", "DELETE"}).code, 405);
  Response big = Curl(admin, "/metrics",
                      {"-H", absl::StrCat("X-Big: ", std::string(9000, 'b'))});
  EXPECT_EQ(big.code, 431);
  // Not HTTP at all.
  {
    Client raw(admin);
    ASSERT_TRUE(raw.SendAll("hello there\r\n\r\n"));
    EXPECT_THAT(raw.ReadN(12), HasSubstr("HTTP/1.1 400"));
  }
  // A request head that never ends: 408 after the request timeout.
  {
    Client slow(admin);
    ASSERT_TRUE(slow.SendAll("GET /metrics HTTP/1.1\r\n"));
    EXPECT_THAT(slow.ReadN(12), HasSubstr("HTTP/1.1 408"));
  }
  // Still serving.
  EXPECT_EQ(Curl(admin, "/metrics").code, 200);
  EXPECT_OK(server.Stop());
}

TEST_F(AdminTest, BatonCtlPrintsEachView) {
  ServerProcess server(AdminEcho());
  ASSERT_OK(server.Start());
  const uint16_t admin = AdminPort(server);
  Client c(server.port());
  ASSERT_TRUE(c.SendAll("hi"));
  ASSERT_EQ(c.ReadN(2), "hi");
  const std::string ctl = absl::StrCat(BATON_BINARY_DIR, "/apps/ctl/baton-ctl");
  const std::string flag = absl::StrCat("--admin=127.0.0.1:", admin);
  std::string out;
  ASSERT_EQ(RunTool({ctl, flag, "connections"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr(absl::StrCat("127.0.0.1:", c.local_port())));
  EXPECT_THAT(out,
              HasSubstr(absl::StrCat("1 connections, pid ", server.pid())));
  ASSERT_EQ(RunTool({ctl, flag, "--json", "connections"}, &out), 0) << out;
  EXPECT_EQ(JsonObjects(out, "shard").size(), 1u) << out;
  ASSERT_EQ(RunTool({ctl, flag, "metrics"}, &out), 0) << out;
  EXPECT_OK(ParsePrometheus(out));
  ASSERT_EQ(RunTool({ctl, flag, "handoffs"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("0 restarts"));
  EXPECT_NE(RunTool({ctl, flag, "bogus"}, &out), 0);
  EXPECT_OK(server.Stop());
}

}  // namespace
}  // namespace baton::test_support
