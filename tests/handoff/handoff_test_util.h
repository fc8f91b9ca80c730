// Shared helpers for the handoff integration tests (header-only), on top of
// tests/support (ServerProcess, status macros, seeds) and the verifying
// stream client of apps/common:
//
// - EchoArgs() / EchoServer(): the baton-echo command line the tests share,
//   and the ServerProcess options that run it.
// - Streams(): StreamClient options for a seeded load on a server.
// - ExpectStreamsIntact(): every connection of a StreamClient verified every
//   byte it sent, without an error.
// - ExpectCleanExit(): a replaced process exited 0.
#ifndef BATON_TESTS_HANDOFF_HANDOFF_TEST_UTIL_H_
#define BATON_TESTS_HANDOFF_HANDOFF_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/stream_check.h"
#include "support/process.h"
#include "support/seed.h"
#include "support/status_macros.h"

namespace baton::test_support {

// baton-echo on a kernel-chosen port, with `threads` reactors.
inline std::vector<std::string> EchoArgs(int threads,
                                         std::vector<std::string> more = {}) {
  std::vector<std::string> args = {"--listen=127.0.0.1:0",
                                   absl::StrCat("--threads=", threads)};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// Options for baton-echo with `args`, logging into `dir`, with extra
// environment `env`.
inline ServerProcess::Options EchoServer(const std::string& dir,
                                         std::vector<std::string> args,
                                         std::vector<std::string> env = {}) {
  ServerProcess::Options options;
  options.args = std::move(args);
  options.env = std::move(env);
  options.dir = dir;
  return options;
}

inline app::StreamClientOptions Streams(const Address& server, int connections,
                                        uint32_t seed) {
  app::StreamClientOptions options;
  options.server = server;
  options.connections = connections;
  options.seed = seed;
  return options;
}

// Every connection verified every byte it sent and ended cleanly; reports
// the first few that did not.
inline void ExpectStreamsIntact(const app::StreamClient& client) {
  int bad = 0;
  for (const app::StreamResult& r : client.Results()) {
    if (r.ok()) continue;
    if (++bad <= 10) ADD_FAILURE() << r.ToString();
  }
  EXPECT_EQ(bad, 0) << client.Summary();
}

// A replaced process must have exited with status 0 (a crash, or a
// sanitizer report at exit, makes it non-zero).
inline void ExpectCleanExit(const RestartResult& r) {
  ASSERT_TRUE(r.old_wait_status.has_value())
      << "pid " << r.old_pid << " was not reaped by the test (is "
      << "PR_SET_CHILD_SUBREAPER unavailable?)";
  EXPECT_TRUE(WIFEXITED(*r.old_wait_status) &&
              WEXITSTATUS(*r.old_wait_status) == 0)
      << "pid " << r.old_pid << " " << DescribeWaitStatus(*r.old_wait_status);
}

}  // namespace baton::test_support

#endif  // BATON_TESTS_HANDOFF_HANDOFF_TEST_UTIL_H_
