// Shared helpers for the handoff integration tests (header-only).
//
// - TestSeed()/SeedTrace(): seeded randomness, reproducible with
//   --gtest_random_seed=N (default: a fixed seed per test).
// - HANDOFF_ASSERT_OK / HANDOFF_EXPECT_OK: for absl::Status and StatusOr.
// - kSanitized: built with AddressSanitizer (tests that must scale down for
//   speed say so where they use it).
// - EchoArgs(): the baton-echo command line the tests share.
// - ExpectStreamsIntact(): every connection of a StreamClient verified every
//   byte it sent, without an error.
#ifndef BATON_TESTS_HANDOFF_HANDOFF_TEST_UTIL_H_
#define BATON_TESTS_HANDOFF_HANDOFF_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "support/process.h"
#include "support/stream_client.h"

namespace baton::test_support {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

inline const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

#define HANDOFF_ASSERT_OK(expr)                                        \
  do {                                                                 \
    const auto& handoff_status_ = (expr);                              \
    ASSERT_TRUE(::baton::test_support::StatusOf(handoff_status_).ok()) \
        << ::baton::test_support::StatusOf(handoff_status_);           \
  } while (0)

#define HANDOFF_EXPECT_OK(expr)                                        \
  do {                                                                 \
    const auto& handoff_status_ = (expr);                              \
    EXPECT_TRUE(::baton::test_support::StatusOf(handoff_status_).ok()) \
        << ::baton::test_support::StatusOf(handoff_status_);           \
  } while (0)

// --gtest_random_seed=N if given, else `default_seed`.
inline uint32_t TestSeed(uint32_t default_seed) {
  const int32_t flag = GTEST_FLAG_GET(random_seed);
  return flag != 0 ? static_cast<uint32_t>(flag) : default_seed;
}

inline std::string SeedTrace(uint32_t seed) {
  return absl::StrFormat("seed=%u (reproduce with --gtest_random_seed=%u)",
                         seed, seed);
}

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
  if (kSanitized) options.timeout = absl::Seconds(60);
  return options;
}

inline StreamClientOptions Streams(const Address& server, int connections,
                                   uint32_t seed) {
  StreamClientOptions options;
  options.server = server;
  options.connections = connections;
  options.seed = seed;
  return options;
}

// Every connection verified every byte it sent and ended cleanly; reports
// the first few that did not.
inline void ExpectStreamsIntact(const StreamClient& client) {
  int bad = 0;
  for (const StreamResult& r : client.Results()) {
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
