// baton-httpd as a real process, spoken to over plain blocking sockets:
// keep-alive, pipelining, every route, every error status, HTTP/1.0,
// Connection: close, timeouts, and curl.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "httpd/http_test_util.h"
#include "support/process.h"
#include "support/status_macros.h"

namespace baton::httpd_test {
namespace {

using ::baton::test_support::AppServer;
using ::baton::test_support::FindTool;
using ::baton::test_support::RunTool;
using ::baton::test_support::ServerProcess;

constexpr std::string_view kHello = "Hello, World!";
constexpr std::string_view kJson = R"({"message":"Hello, World!"})";

// One server for the suite: two reactor threads, a short header timeout.
class HttpServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess(AppServer(
        "httpd",
        {"--threads=2", "--header_timeout=200ms", "--idle_timeout=20s"}));
    absl::Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (server_ == nullptr || server_->port() == 0) {
      GTEST_SKIP() << "server did not start";
    }
  }

  static HttpClient Connect() {
    absl::StatusOr<HttpClient> c = HttpClient::Connect(server_->port());
    EXPECT_TRUE(c.ok()) << c.status();
    return *std::move(c);
  }

  static ServerProcess* server_;
};

ServerProcess* HttpServerTest::server_ = nullptr;

TEST_F(HttpServerTest, EveryRouteOnOneKeepAliveConnection) {
  HttpClient c = Connect();
  ASSERT_OK(c.Send(Get("/plaintext")));
  ASSERT_OK_AND_ASSIGN(plain, c.Read());
  EXPECT_EQ(plain.status, 200);
  EXPECT_EQ(plain.body, kHello);
  EXPECT_EQ(plain.Header("Content-Type"), "text/plain");
  EXPECT_EQ(plain.Header("Content-Length"), "13");
  EXPECT_EQ(plain.Header("Server"), "baton");
  EXPECT_EQ(plain.Header("Connection"), "");

  ASSERT_OK(c.Send(Get("/json")));
  ASSERT_OK_AND_ASSIGN(json, c.Read());
  EXPECT_EQ(json.status, 200);
  EXPECT_EQ(json.body, kJson);
  EXPECT_EQ(json.Header("Content-Type"), "application/json");

  ASSERT_OK(c.Send(PostEcho("echo me, please")));
  ASSERT_OK_AND_ASSIGN(echo, c.Read());
  EXPECT_EQ(echo.status, 200);
  EXPECT_EQ(echo.body, "echo me, please");

  ASSERT_OK(c.Send("HEAD /plaintext HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_OK_AND_ASSIGN(head, c.Read(/*head=*/true));
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.Header("Content-Length"), "13");
  EXPECT_TRUE(head.body.empty());
  ASSERT_OK(c.Send("HEAD /json HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_OK_AND_ASSIGN(head_json, c.Read(/*head=*/true));
  EXPECT_EQ(head_json.Header("Content-Length"), "27");

  ASSERT_OK(c.Send(Get("/stats")));
  ASSERT_OK_AND_ASSIGN(stats, c.Read());
  EXPECT_EQ(stats.status, 200);
  EXPECT_EQ(stats.Header("Content-Type"), "application/json");
  for (const char* key : {"\"connections\":", "\"requests\":", "\"restarts\":0",
                          "\"last_restart_bytes\":0"}) {
    EXPECT_NE(stats.body.find(key), std::string::npos)
        << key << " in " << stats.body;
  }
  // Nothing more: the head responses carried no body.
  ASSERT_OK(c.ExpectSilence(absl::Milliseconds(50)));
}

TEST_F(HttpServerTest, KeepAliveServesManyRequestsInTurn) {
  HttpClient c = Connect();
  for (int i = 0; i < 50; ++i) {
    std::string body = absl::StrFormat("request %d", i);
    ASSERT_OK(c.Send(PostEcho(body)));
    ASSERT_OK_AND_ASSIGN(r, c.Read());
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.body, body);
  }
}

TEST_F(HttpServerTest, HundredPipelinedRequestsInOneWriteAnsweredInOrder) {
  HttpClient c = Connect();
  std::string batch;
  std::vector<std::pair<int, std::string>> expected;
  for (int i = 0; i < 100; ++i) {
    switch (i % 4) {
      case 0:
        batch += Get("/plaintext");
        expected.emplace_back(200, std::string(kHello));
        break;
      case 1: {
        std::string body = absl::StrFormat("pipelined #%d", i);
        batch += PostEcho(body);
        expected.emplace_back(200, body);
        break;
      }
      case 2:
        batch += Get("/json");
        expected.emplace_back(200, std::string(kJson));
        break;
      case 3:
        batch += Get(absl::StrFormat("/missing/%d", i));
        expected.emplace_back(404, "Not Found");
        break;
    }
  }
  ASSERT_OK(c.Send(batch));
  for (int i = 0; i < 100; ++i) {
    ASSERT_OK_AND_ASSIGN(r, c.Read());
    EXPECT_EQ(r.status, expected[i].first) << "response " << i;
    EXPECT_EQ(r.body, expected[i].second) << "response " << i;
  }
  ASSERT_OK(c.ExpectSilence(absl::Milliseconds(50)));
}

TEST_F(HttpServerTest, PipelinedRequestsSplitAcrossWrites) {
  HttpClient c = Connect();
  std::string batch;
  for (int i = 0; i < 20; ++i) batch += PostEcho(absl::StrFormat("%d", i));
  // Odd-sized pieces, so requests straddle the reads.
  for (size_t at = 0; at < batch.size(); at += 37) {
    ASSERT_OK(c.Send(batch.substr(at, 37)));
  }
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK_AND_ASSIGN(r, c.Read());
    EXPECT_EQ(r.body, absl::StrFormat("%d", i));
  }
}

TEST_F(HttpServerTest, ChunkedBodyWithExtensionsAndTrailers) {
  HttpClient c = Connect();
  ASSERT_OK(c.Send(
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      "6;name=value\r\nchunky\r\n1\r\n \r\n"));
  ASSERT_OK(c.Send("5\r\nbody!\r\n0\r\nTrailer: x\r\n\r\n"));
  ASSERT_OK_AND_ASSIGN(r, c.Read());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "chunky body!");
  // Still keep-alive.
  ASSERT_OK(c.Send(Get("/plaintext")));
  ASSERT_OK_AND_ASSIGN(next, c.Read());
  EXPECT_EQ(next.body, kHello);
}

TEST_F(HttpServerTest, BodyOfExactlyTheLimitIsEchoedAndOneMoreByteIs413) {
  std::string body(1 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) {
    body[i] = static_cast<char>('a' + (i * 7919) % 26);
  }
  HttpClient c = Connect();
  // Larger than the connection's inbound buffer (1 MiB) together with its
  // header section: the handler has to hold it itself.
  ASSERT_OK(c.Send(PostEcho(body)));
  ASSERT_OK_AND_ASSIGN(r, c.Read());
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body == body) << "echoed body differs";
  // Keep-alive continues after it.
  ASSERT_OK(c.Send(Get("/plaintext")));
  ASSERT_OK_AND_ASSIGN(next, c.Read());
  EXPECT_EQ(next.body, kHello);

  HttpClient big = Connect();
  ASSERT_OK(big.Send(absl::StrFormat(
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n",
      (1 << 20) + 1)));
  ASSERT_OK_AND_ASSIGN(too_large, big.Read());
  EXPECT_EQ(too_large.status, 413);
  EXPECT_EQ(too_large.Header("Connection"), "close");
  ASSERT_OK(big.ExpectClosed());
}

TEST_F(HttpServerTest, ChunkedBodyOverTheLimitIs413) {
  HttpClient c = Connect();
  std::string chunk(512 * 1024, 'x');
  ASSERT_OK(c.Send(
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
  for (int i = 0; i < 2; ++i) {
    ASSERT_OK(c.Send(absl::StrFormat("%x\r\n%s\r\n", chunk.size(), chunk)));
  }
  ASSERT_OK(c.Send("1\r\n"));
  ASSERT_OK_AND_ASSIGN(r, c.Read());
  EXPECT_EQ(r.status, 413);
  ASSERT_OK(c.ExpectClosed());
}

TEST_F(HttpServerTest, ExpectContinue) {
  HttpClient c = Connect();
  ASSERT_OK(
      c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
             "Content-Length: 5\r\n\r\n"));
  ASSERT_OK_AND_ASSIGN(interim, c.Read());
  EXPECT_EQ(interim.status, 100);
  ASSERT_OK(c.Send("hello"));
  ASSERT_OK_AND_ASSIGN(r, c.Read());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello");
}

TEST_F(HttpServerTest, MalformedRequestLineIs400AndCloses) {
  HttpClient c = Connect();
  ASSERT_OK(c.Send("GARBAGE\r\n\r\n"));
  ASSERT_OK_AND_ASSIGN(r, c.Read());
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Header("Connection"), "close");
  ASSERT_OK(c.ExpectClosed());
}

TEST_F(HttpServerTest, MalformedHeaderIs400AndClosesAfterEarlierResponses) {
  HttpClient c = Connect();
  // A good request, then a bad one, then one that must not be answered.
  ASSERT_OK(c.Send(Get("/plaintext") +
                   "GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n" +
                   Get("/json")));
  ASSERT_OK_AND_ASSIGN(first, c.Read());
  EXPECT_EQ(first.status, 200);
  ASSERT_OK_AND_ASSIGN(bad, c.Read());
  EXPECT_EQ(bad.status, 400);
  ASSERT_OK(c.ExpectClosed());
}

TEST_F(HttpServerTest, BinaryGarbageIs400) {
  HttpClient c = Connect();
  ASSERT_OK(c.Send(std::string("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1", 9)));
  ASSERT_OK_AND_ASSIGN(r, c.Read());
  EXPECT_EQ(r.status, 400);
  ASSERT_OK(c.ExpectClosed());
}

TEST_F(HttpServerTest, UnknownRouteIs404AndKeepsTheConnection) {
  HttpClient c = Connect();
  ASSERT_OK(c.Send(Get("/no/such/thing")));
  ASSERT_OK_AND_ASSIGN(r, c.Read());
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.Header("Connection"), "");
  ASSERT_OK(c.Send(Get("/json")));
  ASSERT_OK_AND_ASSIGN(next, c.Read());
  EXPECT_EQ(next.status, 200);
}

TEST_F(HttpServerTest, WrongMethodIs405WithAllow) {
  HttpClient c = Connect();
  ASSERT_OK(
      c.Send("POST /plaintext HTTP/1.1\r\nHost: t\r\nContent-Length: 1"
             "\r\n\r\nx"));
  ASSERT_OK_AND_ASSIGN(r, c.Read());
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Header("Allow"), "GET, HEAD");
  ASSERT_OK(c.Send(Get("/echo")));
  ASSERT_OK_AND_ASSIGN(echo, c.Read());
  EXPECT_EQ(echo.status, 405);
  EXPECT_EQ(echo.Header("Allow"), "POST");
  ASSERT_OK(c.Send("DELETE /stats HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_OK_AND_ASSIGN(del, c.Read());
  EXPECT_EQ(del.status, 405);
  // The connection is still good.
  ASSERT_OK(c.Send(Get("/plaintext")));
  ASSERT_OK_AND_ASSIGN(next, c.Read());
  EXPECT_EQ(next.status, 200);
}

TEST_F(HttpServerTest, UnfinishedHeadersGet408AfterTheHeaderTimeout) {
  HttpClient c = Connect();
  const absl::Time start = absl::Now();
  ASSERT_OK(c.Send("GET /plaintext HTTP/1.1\r\nHo"));
  ASSERT_OK_AND_ASSIGN(r, c.Read());
  const absl::Duration waited = absl::Now() - start;
  EXPECT_EQ(r.status, 408);
  EXPECT_GE(waited, absl::Milliseconds(190));
  EXPECT_LT(waited, absl::Seconds(5));
  ASSERT_OK(c.ExpectClosed());
}

TEST_F(HttpServerTest, HeaderTimeoutCountsFromTheStartOfTheRequest) {
  // Trickling bytes does not extend the deadline.
  HttpClient c = Connect();
  const absl::Time start = absl::Now();
  ASSERT_OK(c.Send("GET /plaintext HTTP/1.1\r\n"));
  for (int i = 0; i < 5; ++i) {
    absl::SleepFor(absl::Milliseconds(60));  // pacing the trickle
    if (!c.Send("X-A: b\r\n").ok()) break;
  }
  ASSERT_OK_AND_ASSIGN(r, c.Read());
  EXPECT_EQ(r.status, 408);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST_F(HttpServerTest, AnIdleConnectionIsNotTimedOutByTheHeaderTimeout) {
  HttpClient c = Connect();
  ASSERT_OK(c.Send(Get("/plaintext")));
  ASSERT_OK_AND_ASSIGN(r, c.Read());
  EXPECT_EQ(r.status, 200);
  // Longer than the header timeout, without a started request.
  ASSERT_OK(c.ExpectSilence(absl::Milliseconds(400)));
  ASSERT_OK(c.Send(Get("/json")));
  ASSERT_OK_AND_ASSIGN(next, c.Read());
  EXPECT_EQ(next.status, 200);
}

TEST_F(HttpServerTest, OversizedHeaderSectionIs431) {
  HttpClient c = Connect();
  ASSERT_OK(c.Send("GET /plaintext HTTP/1.1\r\nHost: t\r\nX-Big: " +
                   std::string(9 * 1024, 'h') + "\r\n\r\n"));
  ASSERT_OK_AND_ASSIGN(r, c.Read());
  EXPECT_EQ(r.status, 431);
  ASSERT_OK(c.ExpectClosed());
}

TEST_F(HttpServerTest, Http10ClosesAfterTheResponse) {
  HttpClient c = Connect();
  ASSERT_OK(c.Send("GET /plaintext HTTP/1.0\r\n\r\n"));
  ASSERT_OK_AND_ASSIGN(r, c.Read());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, kHello);
  EXPECT_EQ(r.Header("Connection"), "close");
  ASSERT_OK(c.ExpectClosed());
}

TEST_F(HttpServerTest, Http10KeepAliveStaysOpen) {
  HttpClient c = Connect();
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(c.Send("GET /json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    ASSERT_OK_AND_ASSIGN(r, c.Read());
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.Header("Connection"), "keep-alive");
  }
  ASSERT_OK(c.Send("GET /json HTTP/1.0\r\n\r\n"));
  ASSERT_OK_AND_ASSIGN(last, c.Read());
  EXPECT_EQ(last.Header("Connection"), "close");
  ASSERT_OK(c.ExpectClosed());
}

TEST_F(HttpServerTest, ConnectionCloseRespondsThenCloses) {
  HttpClient c = Connect();
  // The request after the closing one is never answered.
  ASSERT_OK(c.Send(Get("/json", "Connection: close\r\n") + Get("/plaintext")));
  ASSERT_OK_AND_ASSIGN(r, c.Read());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, kJson);
  EXPECT_EQ(r.Header("Connection"), "close");
  ASSERT_OK(c.ExpectClosed());
}

TEST_F(HttpServerTest, HalfClosedClientStillGetsItsResponses) {
  HttpClient c = Connect();
  ASSERT_OK(c.Send(Get("/plaintext") + Get("/json")));
  ASSERT_EQ(shutdown(c.fd(), SHUT_WR), 0);
  ASSERT_OK_AND_ASSIGN(a, c.Read());
  ASSERT_OK_AND_ASSIGN(b, c.Read());
  EXPECT_EQ(a.body, kHello);
  EXPECT_EQ(b.body, kJson);
  ASSERT_OK(c.ExpectClosed());
}

TEST_F(HttpServerTest, StatsCountsConnectionsAndRequests) {
  std::vector<HttpClient> idle;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(Connect());
    ASSERT_OK(idle.back().Send(Get("/plaintext")));
    ASSERT_OK(idle.back().Read().status());
  }
  HttpClient c = Connect();
  auto field = [](const std::string& json, const std::string& key) {
    size_t at = json.find("\"" + key + "\":");
    EXPECT_NE(at, std::string::npos) << key;
    return std::stoll(json.substr(at + key.size() + 3));
  };
  ASSERT_OK(c.Send(Get("/stats")));
  ASSERT_OK_AND_ASSIGN(first, c.Read());
  ASSERT_OK(c.Send(Get("/stats")));
  ASSERT_OK_AND_ASSIGN(second, c.Read());
  EXPECT_GE(field(first.body, "connections"), 4);
  EXPECT_EQ(field(second.body, "requests"), field(first.body, "requests") + 1);
  EXPECT_EQ(field(first.body, "pid"), server_->ReadPidFile());
}

TEST_F(HttpServerTest, ClientThatNeverReadsIsBackPressured) {
  HttpClient c = Connect();
  const std::string request = PostEcho(std::string(1000, 'p'));
  std::string batch;
  for (int i = 0; i < 256; ++i) batch += request;
  // Send without reading until the server stops taking bytes for 300 ms.
  size_t sent = 0;
  absl::Time last_progress = absl::Now();
  constexpr size_t kGiveUp = 256 << 20;
  while (absl::Now() - last_progress < absl::Milliseconds(300) &&
         sent < kGiveUp) {
    size_t at = sent % batch.size();
    ssize_t n = send(c.fd(), batch.data() + at, batch.size() - at,
                     MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      last_progress = absl::Now();
    } else {
      ASSERT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << strerror(errno);
      pollfd p{c.fd(), POLLOUT, 0};
      poll(&p, 1, 20);
    }
  }
  // The server stopped reading: buffers everywhere are bounded.
  ASSERT_LT(sent, kGiveUp) << "the server kept reading without answering";
  const size_t complete = sent / request.size();
  for (size_t i = 0; i < complete; ++i) {
    ASSERT_OK_AND_ASSIGN(r, c.Read());
    ASSERT_EQ(r.status, 200) << "response " << i;
    ASSERT_EQ(r.body.size(), 1000u) << "response " << i;
  }
  // The partial last request is still waiting for its end.
  ASSERT_OK(c.ExpectSilence(absl::Milliseconds(50)));
  ASSERT_OK(c.Send(std::string_view(request).substr(sent % request.size())));
  ASSERT_OK_AND_ASSIGN(last, c.Read());
  EXPECT_EQ(last.status, 200);
  std::printf("sent %zu bytes (%zu requests) before the server pushed back\n",
              sent, complete);
}

TEST_F(HttpServerTest, HostileInputNeverHurtsTheServer) {
  const std::vector<std::string> seeds = {
      Get("/plaintext") + Get("/json"),
      PostEcho("some body") + Get("/stats"),
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4;e=1\r\nwxyz\r\n0\r\nT: x\r\n\r\n",
      "GET /json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
  };
  static constexpr char kAlphabet[] =
      "\r\n :;,0123456789abcdefABCDEF\t\x00\x7f\xff/";
  const std::string alphabet(kAlphabet, sizeof(kAlphabet) - 1);
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    std::string in = seeds[rng() % seeds.size()] + seeds[rng() % seeds.size()];
    for (int e = 0, edits = 1 + static_cast<int>(rng() % 6); e < edits; ++e) {
      size_t at = rng() % in.size();
      switch (rng() % 4) {
        case 0:
          in[at] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          in.insert(at, 1, alphabet[rng() % alphabet.size()]);
          break;
        case 2:
          in.erase(at, 1 + rng() % 8);
          break;
        case 3:
          in.insert(at, in.substr(rng() % in.size(), rng() % 64));
          break;
      }
      if (in.empty()) in = "x";
    }
    HttpClient c = Connect();
    ASSERT_OK(c.Send(in));
    ASSERT_EQ(shutdown(c.fd(), SHUT_WR), 0);
    // Whatever the input, the server answers what it can and closes.
    absl::StatusOr<std::string> out = c.ReadUntilClosed(absl::Seconds(10));
    ASSERT_TRUE(out.ok()) << out.status()
                          << "\ninput: " << ::testing::PrintToString(in);
    if (!out->empty()) {
      EXPECT_EQ(out->rfind("HTTP/1.1 ", 0), 0u) << *out;
    }
  }
  // Still serving, same process.
  HttpClient c = Connect();
  ASSERT_OK(c.Send(Get("/stats")));
  ASSERT_OK_AND_ASSIGN(stats, c.Read());
  EXPECT_EQ(stats.status, 200);
  EXPECT_NE(
      stats.body.find(absl::StrFormat("\"pid\":%d", server_->first_pid())),
      std::string::npos);
}

TEST_F(HttpServerTest, Curl) {
  if (FindTool("curl").empty()) {
    GTEST_SKIP() << "curl is not installed (bash scripts/setup.sh tools)";
  }
  const std::string base =
      absl::StrFormat("http://127.0.0.1:%d", server_->port());
  std::string out;
  // Both URLs on one curl: the second reuses the connection.
  int code = RunTool(
      {"curl", "--silent", "--show-error", "--fail", base + "/plaintext",
       "--next", "--silent", "--show-error", "--fail", base + "/json"},
      &out);
  ASSERT_EQ(code, 0) << "curl failed: " << out;
  EXPECT_EQ(out, std::string(kHello) + std::string(kJson));

  code = RunTool({"curl", "--silent", "--show-error", "--fail", "--data-binary",
                  "posted by curl", base + "/echo"},
                 &out);
  ASSERT_EQ(code, 0) << "curl failed: " << out;
  EXPECT_EQ(out, "posted by curl");

  RunTool({"curl", "--silent", "--output", "/dev/null", "--write-out",
           "%{http_code}", base + "/nothing-here"},
          &out);
  EXPECT_EQ(out, "404");
}

// A server of its own: a short idle timeout.
TEST(HttpIdleTimeoutTest, IdleConnectionIsClosedSilently) {
  ServerProcess server(
      AppServer("httpd", {"--threads=1", "--idle_timeout=300ms"}));
  ASSERT_OK(server.Start());
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server.port());
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_OK(c->Send(Get("/plaintext")));
  ASSERT_OK(c->Read().status());
  const absl::Time start = absl::Now();
  ASSERT_OK(c->ExpectClosed(absl::Seconds(5)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(250));
}

TEST(HttpLimitsTest, LimitsComeFromTheFlags) {
  ServerProcess server(AppServer(
      "httpd",
      {"--threads=1", "--max_header_bytes=512", "--max_body_bytes=16"}));
  ASSERT_OK(server.Start());
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server.port());
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_OK(c->Send(PostEcho(std::string(16, 'x'))));
  ASSERT_OK_AND_ASSIGN(ok, c->Read());
  EXPECT_EQ(ok.status, 200);
  ASSERT_OK(c->Send(PostEcho(std::string(17, 'x'))));
  ASSERT_OK_AND_ASSIGN(too_big, c->Read());
  EXPECT_EQ(too_big.status, 413);

  absl::StatusOr<HttpClient> h = HttpClient::Connect(server.port());
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_OK(h->Send(Get("/plaintext", "X: " + std::string(600, 'y') + "\r\n")));
  ASSERT_OK_AND_ASSIGN(r, h->Read());
  EXPECT_EQ(r.status, 431);
}

}  // namespace
}  // namespace baton::httpd_test
