// Shared helpers for the runtime tests.
//
// ReactorTest creates a Reactor for each test (skipping the test, never
// passing it silently, when io_uring is unavailable) and checks in TearDown
// that the test left no kernel operation in flight.
#ifndef BATON_TESTS_RUNTIME_RUNTIME_TEST_UTIL_H_
#define BATON_TESTS_RUNTIME_RUNTIME_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "baton/runtime/reactor.h"

// Skips the current test if `status` says io_uring is unavailable (sysctl,
// seccomp, old kernel: Reactor::Create reports these as kUnavailable).
#define BATON_SKIP_IF_NO_IO_URING(status)                   \
  do {                                                      \
    if (absl::IsUnavailable(status)) {                      \
      GTEST_SKIP() << "io_uring unavailable: " << (status); \
    }                                                       \
  } while (0)

namespace baton {
namespace testutil {

// Turns a hang into a crash with a message: a test that deadlocks (a lost
// wake-up, a missing resumption) fails within `limit` instead of stalling
// the run until the ctest timeout.
class Watchdog {
 public:
  explicit Watchdog(absl::Duration limit)
      : thread_([this, limit] {
          absl::MutexLock lock(&mu_);
          if (!mu_.AwaitWithTimeout(absl::Condition(&done_), limit)) {
            const ::testing::TestInfo* test =
                ::testing::UnitTest::GetInstance()->current_test_info();
            fprintf(stderr, "watchdog: %s.%s still running after %s\n",
                    test != nullptr ? test->test_suite_name() : "?",
                    test != nullptr ? test->name() : "?",
                    absl::FormatDuration(limit).c_str());
            std::abort();
          }
        }) {}
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() {
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
    }
    thread_.join();
  }

 private:
  absl::Mutex mu_;
  bool done_ = false;
  std::thread thread_;  // Last: starts after mu_ and done_ exist.
};

class ReactorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    watchdog_ = std::make_unique<Watchdog>(absl::Minutes(2));
    absl::StatusOr<std::unique_ptr<Reactor>> r = Reactor::Create(Options());
    BATON_SKIP_IF_NO_IO_URING(r.status());
    ASSERT_TRUE(r.ok()) << r.status();
    reactor_ = *std::move(r);
  }

  void TearDown() override {
    if (reactor_ != nullptr) {
      EXPECT_EQ(reactor_->inflight(), 0) << "kernel operations leaked";
      EXPECT_EQ(reactor_->timers(), 0u) << "timers leaked";
    }
  }

  virtual ReactorOptions Options() { return ReactorOptions::FromEnv(); }

  Reactor* reactor() { return reactor_.get(); }

  std::unique_ptr<Watchdog> watchdog_;
  std::unique_ptr<Reactor> reactor_;
};

// A seed for randomized tests: fixed by BATON_TEST_SEED, else fresh. Tests
// print it (SCOPED_TRACE) so a failure can be replayed.
inline uint32_t TestSeed() {
  if (const char* env = getenv("BATON_TEST_SEED"); env != nullptr) {
    return static_cast<uint32_t>(std::stoul(env));
  }
  return std::random_device{}();
}

}  // namespace testutil
}  // namespace baton

#endif  // BATON_TESTS_RUNTIME_RUNTIME_TEST_UTIL_H_
