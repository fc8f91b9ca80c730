// baton-restart-demo: hot restarts under load, verified byte by byte.
//
// Starts baton-echo (with a test option that makes it consume its input in
// small pieces, so unread bytes are usually waiting when a restart begins),
// opens many connections that stream seeded random bytes in random write
// sizes and check every echoed byte (baton::app::StreamClient, the load the
// handoff tests run too), sends SIGUSR2 again and again, and prints what the
// clients saw and what each handoff moved. Exits non-zero if any byte was
// lost, duplicated or reordered, or any connection failed; 2 if the server
// or the clients could not start.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "baton/net/address.h"
#include "common/stream_check.h"

ABSL_FLAG(int, connections, 200, "client connections");
ABSL_FLAG(int, restarts, 20, "SIGUSR2 restarts to perform");
ABSL_FLAG(absl::Duration, interval, absl::Milliseconds(250),
          "time between restarts");
ABSL_FLAG(int, threads, 2, "server reactor threads");
ABSL_FLAG(size_t, consume_chunk, 64,
          "the server consumes at most this many bytes per loop turn");
ABSL_FLAG(size_t, max_write, 16384, "largest client write, bytes");
ABSL_FLAG(size_t, window, 65536, "unechoed bytes each connection may have");
ABSL_FLAG(absl::Duration, write_interval, absl::ZeroDuration(),
          "0: every connection writes as fast as --window allows; otherwise "
          "each writes one chunk per interval and waits for its echo (a light "
          "load, where the client-visible pause is the handoff's own)");
ABSL_FLAG(uint32_t, seed, 1, "seed of the byte streams and write sizes");
ABSL_FLAG(std::string, server, "",
          "baton-echo binary (default: next to this binary's build tree)");

namespace {

pid_t ReadPid(const std::string& path) {
  std::ifstream in(path);
  pid_t pid = 0;
  in >> pid;
  return pid;
}

struct RestartLog {
  int restarts = 0;
  int with_unread = 0;
  uint64_t inbound = 0, outbound = 0;
  std::vector<double> total_ms, paused_ms;
  int rollbacks = 0;
};

RestartLog ParseLog(const std::string& path) {
  RestartLog r;
  std::ifstream in(path);
  std::string line;
  std::regex done(
      R"(handoff to pid \d+ complete: (\d+) connections \((\d+) with unread bytes\), (\d+) inbound bytes, (\d+) outbound bytes.*total ([0-9.]+) ms)");
  std::regex took_over(R"(handoff: took over .*clients paused ([0-9.]+) ms)");
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, done)) {
      ++r.restarts;
      if (std::stoi(m[2]) > 0) ++r.with_unread;
      r.inbound += std::stoull(m[3]);
      r.outbound += std::stoull(m[4]);
      r.total_ms.push_back(std::stod(m[5]));
    } else if (std::regex_search(line, m, took_over)) {
      r.paused_ms.push_back(std::stod(m[1]));
    } else if (line.find("rolled back") != std::string::npos) {
      ++r.rollbacks;
    }
  }
  return r;
}

int RunDemo(pid_t first_pid, const std::string& pid_file,
            const std::string& log_file, baton::app::StreamClient& client) {
  const int connections = absl::GetFlag(FLAGS_connections);
  int restarts_done = 0;
  std::vector<double> observed_ms;
  for (int r = 0; r < absl::GetFlag(FLAGS_restarts); ++r) {
    absl::SleepFor(absl::GetFlag(FLAGS_interval));
    pid_t pid = ReadPid(pid_file);
    absl::Time t0 = absl::Now();
    kill(pid, SIGUSR2);
    // The new process rewrites the pid file once it serves everything.
    while (ReadPid(pid_file) == pid && absl::Now() - t0 < absl::Seconds(20)) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    if (ReadPid(pid_file) == pid) {
      std::printf("restart %d: pid %d did not hand over within 20s\n", r + 1,
                  pid);
      break;
    }
    ++restarts_done;
    observed_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
  }
  // Every byte sent comes back, then the server's end of stream; what went
  // wrong is in each connection's result.
  (void)client.Finish(absl::Seconds(60));
  const std::vector<baton::app::StreamResult> results = client.Results();

  uint64_t sent = 0, verified = 0;
  int failed = 0, mismatched = 0;
  std::vector<absl::Duration> gaps;
  for (const baton::app::StreamResult& s : results) {
    sent += s.sent;
    verified += s.verified;
    if (!s.error.empty()) ++failed;
    if (s.first_mismatch >= 0) ++mismatched;
    gaps.insert(gaps.end(), s.gaps.begin(), s.gaps.end());
  }
  std::sort(gaps.begin(), gaps.end());
  auto pct = [&](double p) {
    return gaps.empty()
               ? 0.0
               : absl::ToDoubleMilliseconds(gaps[std::min(
                     gaps.size() - 1, static_cast<size_t>(p * gaps.size()))]);
  };
  kill(ReadPid(pid_file), SIGTERM);
  int status;
  waitpid(first_pid, &status, 0);
  RestartLog log = ParseLog(log_file);
  auto stat = [](std::vector<double> v, double p) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
  };

  std::printf("\n%-44s %s\n", "", "result");
  auto row = [](const char* name, const std::string& value) {
    std::printf("%-44s %s\n", name, value.c_str());
  };
  row("restarts (SIGUSR2 -> new pid serving)", absl::StrCat(restarts_done));
  row("handoffs completed / rolled back",
      absl::StrCat(log.restarts, " / ", log.rollbacks));
  row("client connections", absl::StrCat(connections));
  row("bytes sent", absl::StrCat(sent));
  row("bytes verified (echoed back, in order)", absl::StrCat(verified));
  row("bytes lost, duplicated or reordered",
      absl::StrCat(sent - verified + (mismatched > 0 ? 1 : 0)));
  row("connections reset, refused or failed", absl::StrCat(failed));
  row("restarts that moved unread inbound bytes",
      absl::StrFormat("%d of %d", log.with_unread, log.restarts));
  row("unread inbound bytes moved (all restarts)", absl::StrCat(log.inbound));
  row("unsent outbound bytes moved (all restarts)", absl::StrCat(log.outbound));
  row("client-visible pause, max", absl::StrFormat("%.2f ms", pct(1.0)));
  row("client-visible pause, p99 (of all reads)",
      absl::StrFormat("%.2f ms", pct(0.99)));
  row("handoff duration, median / max (server log)",
      absl::StrFormat("%.2f / %.2f ms", stat(log.total_ms, 0.5),
                      stat(log.total_ms, 1.0)));
  row("  of which clients paused, median / max",
      absl::StrFormat("%.2f / %.2f ms", stat(log.paused_ms, 0.5),
                      stat(log.paused_ms, 1.0)));
  row("SIGUSR2 to pid file rewritten, median",
      absl::StrFormat("%.2f ms", stat(observed_ms, 0.5)));
  // A run that sent nothing proves nothing.
  bool ok = sent > 0 && failed == 0 && mismatched == 0 && sent == verified &&
            restarts_done == absl::GetFlag(FLAGS_restarts) &&
            log.restarts == restarts_done;
  std::printf("\n%s\n", ok ? "PASS: every byte of every connection survived "
                             "every restart"
                           : "FAIL: see the rows above");
  for (size_t i = 0; i < results.size() && !ok; ++i) {
    if (!results[i].error.empty()) {
      std::printf("  connection %zu: %s\n", i, results[i].error.c_str());
    }
  }
  return ok ? 0 : 1;
}

std::string DefaultServer() {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "baton-echo";
  std::string dir(self, static_cast<size_t>(n));
  dir = dir.substr(0, dir.rfind('/'));
  return dir + "/../echo/baton-echo";
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "baton-restart-demo: restarts baton-echo under a verifying load");
  absl::ParseCommandLine(argc, argv);
  std::string server = absl::GetFlag(FLAGS_server);
  if (server.empty()) server = DefaultServer();
  char dir_template[] = "/tmp/baton-demo-XXXXXX";
  std::string dir = mkdtemp(dir_template);
  std::string pid_file = dir + "/echo.pid";
  std::string log_file = dir + "/echo.log";
  std::string out_file = dir + "/echo.out";

  std::vector<std::string> args = {
      server, "--listen=127.0.0.1:0",
      absl::StrCat("--threads=", absl::GetFlag(FLAGS_threads)),
      absl::StrCat("--pid-file=", pid_file),
      absl::StrCat("--consume_chunk=", absl::GetFlag(FLAGS_consume_chunk))};
  std::vector<char*> argv_c;
  for (auto& a : args) argv_c.push_back(a.data());
  argv_c.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out_file.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, log_file.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid;
  extern char** environ;
  if (int err = posix_spawn(&pid, server.c_str(), &fa, nullptr, argv_c.data(),
                            environ);
      err != 0) {
    std::fprintf(stderr, "cannot start %s: %s\n", server.c_str(),
                 strerror(err));
    return 2;
  }
  posix_spawn_file_actions_destroy(&fa);

  absl::Time deadline = absl::Now() + absl::Seconds(10);
  std::string port;
  while (absl::Now() < deadline && ReadPid(pid_file) == 0) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  std::ifstream out(out_file);
  std::string line;
  std::getline(out, line);
  auto address = baton::Address::Parse(line.substr(line.rfind(' ') + 1));
  if (ReadPid(pid_file) == 0 || !address.ok()) {
    std::fprintf(stderr, "%s did not start; its log is %s\n", server.c_str(),
                 log_file.c_str());
    kill(pid, SIGKILL);
    return 2;
  }
  std::printf(
      "baton-echo pid %d on %s; %d connections, %d restarts every "
      "%s; server log: %s\n",
      ReadPid(pid_file), address->ToString().c_str(),
      absl::GetFlag(FLAGS_connections), absl::GetFlag(FLAGS_restarts),
      absl::FormatDuration(absl::GetFlag(FLAGS_interval)).c_str(),
      log_file.c_str());
  std::fflush(stdout);
  baton::app::StreamClientOptions load;
  load.server = *address;
  load.connections = absl::GetFlag(FLAGS_connections);
  load.seed = absl::GetFlag(FLAGS_seed);
  load.max_write = absl::GetFlag(FLAGS_max_write);
  load.window = absl::GetFlag(FLAGS_window);
  load.write_interval = absl::GetFlag(FLAGS_write_interval);
  load.write_sizes = baton::app::StreamClientOptions::WriteSizes::kUniform;
  load.record_gaps = true;
  baton::app::StreamClient client(load);
  if (absl::Status launched = client.Launch(); !launched.ok()) {
    std::fprintf(stderr, "%s\n", launched.ToString().c_str());
    kill(pid, SIGKILL);
    return 2;
  }
  return RunDemo(pid, pid_file, log_file, client);
}
