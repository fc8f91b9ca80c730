// baton-httpd across hot restarts (SIGUSR2): a request cut in half by a
// restart is finished by the new process on the same connection, pipelined
// batches are answered exactly once and in order, a request larger than the
// connection's buffer survives, and wrk sees no error while the server
// restarts every half second.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstdio>
#include <regex>
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
using ::baton::test_support::PollUntil;
using ::baton::test_support::ReadFile;
using ::baton::test_support::ReadTcpSockets;
using ::baton::test_support::RestartResult;
using ::baton::test_support::ServerProcess;
using ::baton::test_support::SpawnTool;
using ::baton::test_support::TcpSocket;

// The rx_queue of the server's end of the connection from client port
// `client_port` to server port `server_port` (from /proc/net/tcp), or -1.
long ServerRxQueue(uint16_t server_port, uint16_t client_port) {
  absl::StatusOr<std::vector<TcpSocket>> sockets = ReadTcpSockets();
  if (!sockets.ok()) return -1;
  for (const TcpSocket& s : *sockets) {
    if (s.local_port == server_port && s.remote_port == client_port) {
      return static_cast<long>(s.rx_queue);
    }
  }
  return -1;
}

// Waits until the server process has read every byte the client sent (so
// they are in the connection's buffers, not the kernel's, when the restart
// freezes it).
void WaitUntilServerRead(const ServerProcess& server, const HttpClient& c) {
  ASSERT_TRUE(PollUntil(
      [&] { return ServerRxQueue(server.port(), c.local_port()) == 0; },
      absl::Seconds(10)))
      << "the server did not read what was sent";
}

int64_t JsonField(const std::string& json, const std::string& key) {
  size_t at = json.find("\"" + key + "\":");
  if (at == std::string::npos) return -1;
  return std::stoll(json.substr(at + key.size() + 3));
}

class HttpRestartTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_OK(server_.Start()); }
  ServerProcess server_{AppServer("httpd", {"--threads=2"})};
};

TEST_F(HttpRestartTest, HalfARequestIsFinishedByTheNewProcess) {
  ASSERT_OK_AND_ASSIGN(c, HttpClient::Connect(server_.port()));
  ASSERT_OK(c.Send(Get("/plaintext")));
  ASSERT_OK_AND_ASSIGN(warmup, c.Read());
  ASSERT_EQ(warmup.status, 200);

  const std::string request = PostEcho("the body that crosses a restart");
  const std::string first = request.substr(0, request.size() / 2);
  ASSERT_OK(c.Send(first));
  WaitUntilServerRead(server_, c);
  const pid_t old_pid = server_.ReadPidFile();
  ASSERT_OK_AND_ASSIGN(restart, server_.Restart());
  const pid_t new_pid = restart.new_pid;
  ASSERT_NE(new_pid, old_pid);
  // Nothing was answered for half a request.
  ASSERT_OK(c.ExpectSilence(absl::Milliseconds(20)));

  ASSERT_OK(c.Send(request.substr(first.size())));
  ASSERT_OK_AND_ASSIGN(r, c.Read());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "the body that crosses a restart");
  ASSERT_OK(c.ExpectSilence(absl::Milliseconds(100)));

  // Same connection, new process, which received the half request.
  ASSERT_OK(c.Send(Get("/stats")));
  ASSERT_OK_AND_ASSIGN(stats, c.Read());
  EXPECT_EQ(JsonField(stats.body, "pid"), new_pid) << stats.body;
  EXPECT_EQ(JsonField(stats.body, "restarts"), 1) << stats.body;
  EXPECT_EQ(JsonField(stats.body, "last_restart_inbound_bytes"),
            static_cast<int64_t>(first.size()))
      << stats.body;
  EXPECT_EQ(JsonField(stats.body, "last_restart_bytes"),
            static_cast<int64_t>(first.size()))
      << stats.body;
}

TEST_F(HttpRestartTest, HalfAChunkedBodyIsFinishedByTheNewProcess) {
  ASSERT_OK_AND_ASSIGN(c, HttpClient::Connect(server_.port()));
  ASSERT_OK(c.Send(
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;x=y\r\nabcde\r\n3\r\nfg"));
  WaitUntilServerRead(server_, c);
  ASSERT_OK(server_.Restart().status());
  ASSERT_OK(c.Send("h\r\n0\r\nT: 1\r\n\r\n"));
  ASSERT_OK_AND_ASSIGN(r, c.Read());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "abcdefgh");
  ASSERT_OK(c.ExpectSilence(absl::Milliseconds(100)));
}

TEST_F(HttpRestartTest, PipelinedBatchAndHalfARequestAcrossARestart) {
  ASSERT_OK_AND_ASSIGN(c, HttpClient::Connect(server_.port()));
  std::string batch;
  for (int i = 0; i < 10; ++i) batch += PostEcho(absl::StrFormat("req-%d", i));
  const std::string eleventh = PostEcho("req-10");
  const std::string half = eleventh.substr(0, eleventh.size() / 2);
  // Sent right before SIGUSR2: the responses may be sent before the
  // freeze, move as unsent bytes, or the requests move unread.
  ASSERT_OK(c.Send(batch + half));
  ASSERT_OK(server_.Restart().status());
  ASSERT_OK(c.Send(eleventh.substr(half.size())));
  for (int i = 0; i <= 10; ++i) {
    ASSERT_OK_AND_ASSIGN(r, c.Read());
    EXPECT_EQ(r.status, 200) << "response " << i;
    EXPECT_EQ(r.body, absl::StrFormat("req-%d", i)) << "response " << i;
  }
  ASSERT_OK(c.ExpectSilence(absl::Milliseconds(100)));
}

TEST_F(HttpRestartTest, RequestLargerThanTheConnectionBufferAcrossARestart) {
  // 1 MiB of body plus headers is more than the 1 MiB a connection buffers,
  // so the handler holds the front of the request itself; that part moves
  // in the connection's handoff state.
  std::string body(1 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) {
    body[i] = static_cast<char>('A' + (i * 31) % 57);
  }
  const std::string request = PostEcho(body);
  const size_t cut = request.size() - 100;
  ASSERT_OK_AND_ASSIGN(c, HttpClient::Connect(server_.port()));
  ASSERT_OK(c.Send(request.substr(0, cut)));
  WaitUntilServerRead(server_, c);
  ASSERT_OK(server_.Restart().status());
  ASSERT_OK(c.Send(request.substr(cut)));
  ASSERT_OK_AND_ASSIGN(r, c.Read());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), body.size());
  EXPECT_TRUE(r.body == body) << "echoed body differs";
  ASSERT_OK(c.ExpectSilence(absl::Milliseconds(100)));
}

TEST(HttpRestartDeadlineTest, HeaderDeadlineMovesWithTheConnection) {
  ServerProcess server(
      AppServer("httpd", {"--threads=1", "--header_timeout=1s"}));
  ASSERT_OK(server.Start());
  ASSERT_OK_AND_ASSIGN(c, HttpClient::Connect(server.port()));
  const absl::Time start = absl::Now();
  ASSERT_OK(c.Send("GET /plaintext HTTP/1.1\r\nHost"));
  WaitUntilServerRead(server, c);
  absl::SleepFor(absl::Milliseconds(500));  // into the header timeout
  ASSERT_OK(server.Restart().status());
  ASSERT_OK_AND_ASSIGN(r, c.Read());
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(r.status, 408);
  // The new process kept the deadline rather than starting a new one.
  EXPECT_GE(took, absl::Milliseconds(950));
  EXPECT_LT(took, absl::Milliseconds(1450));
  ASSERT_OK(c.ExpectClosed());
}

// Parses "N requests in" from wrk's output; -1 if absent.
int64_t WrkRequests(const std::string& output) {
  std::smatch m;
  static const std::regex re(R"((\d+) requests in)");
  if (!std::regex_search(output, m, re)) return -1;
  return std::stoll(m[1]);
}

TEST_F(HttpRestartTest, WrkSeesNoErrorsWhileTheServerRestartsEveryHalfSecond) {
  if (FindTool("wrk").empty()) {
    GTEST_SKIP() << "wrk is not installed (bash scripts/setup.sh tools)";
  }
  const std::string out = server_.dir() + "/wrk.out";
  const std::string url =
      absl::StrFormat("http://127.0.0.1:%d/plaintext", server_.port());
  ASSERT_OK_AND_ASSIGN(
      wrk, SpawnTool({"wrk", "-t1", "-c50", "-d6s", "--latency", url}, out));
  int restarts = 0;
  int status = 0;
  std::string failure;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  absl::Time next_signal = absl::Now() + absl::Milliseconds(500);
  while (waitpid(wrk, &status, WNOHANG) == 0) {
    if (absl::Now() > give_up) {
      kill(wrk, SIGKILL);
      waitpid(wrk, &status, 0);
      failure = "wrk did not finish";
      break;
    }
    // A SIGUSR2 every 500 ms, counted from the previous one (a restart
    // itself takes a while, longer in sanitizer builds).
    absl::SleepFor(next_signal - absl::Now());
    next_signal += absl::Milliseconds(500);
    if (waitpid(wrk, &status, WNOHANG) != 0) break;
    absl::StatusOr<RestartResult> next = server_.Restart();
    if (!next.ok()) {
      failure = next.status().ToString();
      kill(wrk, SIGKILL);
      waitpid(wrk, &status, 0);
      break;
    }
    ++restarts;
  }
  const std::string output = ReadFile(out);
  ASSERT_TRUE(failure.empty()) << failure << "\nwrk:\n" << output;
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wrk failed:\n"
                                                             << output;
  std::printf("%s\nrestarts during the run: %d\n", output.c_str(), restarts);
  EXPECT_EQ(output.find("Socket errors"), std::string::npos) << output;
  EXPECT_EQ(output.find("Non-2xx or 3xx responses"), std::string::npos)
      << output;
  EXPECT_GT(WrkRequests(output), 0) << output;
  EXPECT_GE(restarts, 5);

  // The process serving now knows how many restarts its lineage went
  // through.
  ASSERT_OK_AND_ASSIGN(c, HttpClient::Connect(server_.port()));
  ASSERT_OK(c.Send(Get("/stats")));
  ASSERT_OK_AND_ASSIGN(stats, c.Read());
  EXPECT_EQ(JsonField(stats.body, "restarts"), restarts) << stats.body;
}

}  // namespace
}  // namespace baton::httpd_test
