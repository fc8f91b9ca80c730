// Tests for Reactor: creation with features switched off, cross-thread
// Schedule/Stop, many posts, BlockOn, and a tiny ring under load.
#include "baton/runtime/reactor.h"

#include <gtest/gtest.h>
#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <coroutine>
#include <cstdlib>
#include <cstring>
#include <latch>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "baton/runtime/buffer_ring.h"
#include "baton/runtime/event.h"
#include "baton/runtime/io.h"
#include "baton/runtime/task.h"
#include "baton/runtime/task_group.h"
#include "baton/runtime/timer.h"
#include "runtime/runtime_test_util.h"

namespace baton {
namespace {

using testutil::ReactorTest;
using testutil::Watchdog;

// --- Creation and features. ---

TEST_F(ReactorTest, CreateSetsCurrentAndReportsFeatures) {
  EXPECT_EQ(Reactor::Current(), reactor());
  const ReactorFeatures& f = reactor()->features();
  const std::string s = f.ToString();
  EXPECT_FALSE(s.empty());
  if (f.backend == BackendKind::kEpoll) {
    // epoll: single-shot operations only, no ring.
    EXPECT_EQ(f.setup_flags, 0u) << s;
    EXPECT_FALSE(f.multishot_accept) << s;
    EXPECT_FALSE(f.multishot_recv) << s;
  } else {
    EXPECT_NE(s.find("setup="), std::string::npos) << s;
  }
  // DEFER_TASKRUN is only valid together with SINGLE_ISSUER.
  if (f.setup_flags & IORING_SETUP_DEFER_TASKRUN) {
    EXPECT_TRUE(f.setup_flags & IORING_SETUP_SINGLE_ISSUER) << s;
  }
  // Multishot recv is used exactly when there is a provided-buffer ring.
  EXPECT_EQ(f.multishot_recv, reactor()->buffer_ring() != nullptr) << s;
  if (BufferRing* ring = reactor()->buffer_ring(); ring != nullptr) {
    EXPECT_EQ(ring->count(), reactor()->options().buffer_count);
    EXPECT_EQ(ring->buffer_size(), reactor()->options().buffer_size);
  }
  EXPECT_EQ(reactor()->inflight(), 0);
}

TEST(ReactorCurrentTest, DestroyingTheReactorClearsCurrent) {
  auto r = Reactor::Create();
  BATON_SKIP_IF_NO_IO_URING(r.status());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Reactor::Current(), r->get());
  r->reset();
  EXPECT_EQ(Reactor::Current(), nullptr);
}

// Restores BATON_DISABLE when the test ends.
class ScopedDisableEnv {
 public:
  explicit ScopedDisableEnv(const char* value) {
    if (const char* old = getenv("BATON_DISABLE"); old != nullptr) old_ = old;
    setenv("BATON_DISABLE", value, 1);
  }
  ~ScopedDisableEnv() {
    if (old_.has_value()) {
      setenv("BATON_DISABLE", old_->c_str(), 1);
    } else {
      unsetenv("BATON_DISABLE");
    }
  }

 private:
  std::optional<std::string> old_;
};

TEST(ReactorOptionsTest, FromEnvReadsBatonDisable) {
  {
    ScopedDisableEnv env("");
    ReactorOptions o = ReactorOptions::FromEnv();
    EXPECT_FALSE(o.disable_multishot_recv);
    EXPECT_FALSE(o.disable_multishot_accept);
    EXPECT_FALSE(o.disable_defer_taskrun);
    EXPECT_FALSE(o.disable_single_issuer);
  }
  {
    ScopedDisableEnv env("multishot_recv,,defer_taskrun,bogus");
    ReactorOptions o = ReactorOptions::FromEnv();
    EXPECT_TRUE(o.disable_multishot_recv);
    EXPECT_FALSE(o.disable_multishot_accept);
    EXPECT_TRUE(o.disable_defer_taskrun);
    EXPECT_FALSE(o.disable_single_issuer);
  }
  {
    ScopedDisableEnv env(
        "single_issuer,multishot_accept,multishot_recv,defer_taskrun");
    ReactorOptions o = ReactorOptions::FromEnv();
    EXPECT_TRUE(o.disable_multishot_recv);
    EXPECT_TRUE(o.disable_multishot_accept);
    EXPECT_TRUE(o.disable_defer_taskrun);
    EXPECT_TRUE(o.disable_single_issuer);
  }
}

struct FeatureCase {
  const char* name;
  bool multishot_recv;
  bool multishot_accept;
  bool defer_taskrun;
  bool single_issuer;
};

class ReactorFeatureTest : public ::testing::TestWithParam<FeatureCase> {};

// Exercises the paths that differ between ring set-ups: a kernel timeout,
// a recv completed by a write from another thread, and a cross-thread
// Schedule waking the ring through its eventfd.
Task<void> ExerciseReactor(Reactor* reactor) {
  absl::Status s = co_await Sleep(absl::Milliseconds(1));
  EXPECT_TRUE(s.ok()) << s;

  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    ADD_FAILURE() << "socketpair: " << strerror(errno);
    co_return;
  }
  char buf[16] = {};
  int32_t res = 0;
  TaskGroup group;
  group.Spawn([](int fd, char* b, int32_t* out) -> Task<void> {
    *out = co_await Io(IoRequest::Recv(fd, b, 16));
  }(sv[0], buf, &res));
  co_await Yield();
  co_await Yield();
  std::thread writer(
      [fd = sv[1]] { [[maybe_unused]] ssize_t n = write(fd, "hello", 5); });
  co_await group.Join();
  writer.join();
  EXPECT_EQ(res, 5);
  EXPECT_EQ(std::string(buf, 5), "hello");
  close(sv[0]);
  close(sv[1]);

  Event scheduled;
  std::thread::id ran_on;
  std::thread scheduler([reactor, &scheduled, &ran_on] {
    reactor->Schedule([&scheduled, &ran_on] {
      ran_on = std::this_thread::get_id();
      scheduled.Set();
    });
  });
  s = co_await scheduled.Wait();
  scheduler.join();
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST_P(ReactorFeatureTest, DisabledFeaturesAreReflectedAndReactorWorks) {
  const FeatureCase& c = GetParam();
  Watchdog watchdog(absl::Minutes(1));
  ReactorOptions options;  // Not FromEnv: this test decides what is off.
  options.disable_multishot_recv = !c.multishot_recv;
  options.disable_multishot_accept = !c.multishot_accept;
  options.disable_defer_taskrun = !c.defer_taskrun;
  options.disable_single_issuer = !c.single_issuer;

  ReactorFeatures baseline;
  {
    auto full = Reactor::Create(ReactorOptions());
    BATON_SKIP_IF_NO_IO_URING(full.status());
    ASSERT_TRUE(full.ok()) << full.status();
    baseline = (*full)->features();
  }

  auto r = Reactor::Create(options);
  ASSERT_TRUE(r.ok()) << r.status();
  Reactor* reactor = r->get();
  const ReactorFeatures& f = reactor->features();
  const std::string s = f.ToString();
  SCOPED_TRACE(s);
  EXPECT_FALSE(s.empty());

  if (!c.defer_taskrun || !c.single_issuer) {
    EXPECT_FALSE(f.setup_flags & IORING_SETUP_DEFER_TASKRUN);
    EXPECT_EQ(s.find("DEFER_TASKRUN"), std::string::npos);
  }
  if (!c.single_issuer) {
    EXPECT_FALSE(f.setup_flags & IORING_SETUP_SINGLE_ISSUER);
    EXPECT_EQ(s.find("SINGLE_ISSUER"), std::string::npos);
  }
  if (!c.multishot_recv) {
    EXPECT_FALSE(f.multishot_recv);
    EXPECT_EQ(reactor->buffer_ring(), nullptr);
    EXPECT_NE(s.find("multishot_recv=no"), std::string::npos);
  } else {
    EXPECT_EQ(f.multishot_recv, baseline.multishot_recv);
  }
  if (!c.multishot_accept) {
    EXPECT_FALSE(f.multishot_accept);
    EXPECT_NE(s.find("multishot_accept=no"), std::string::npos);
  } else {
    EXPECT_EQ(f.multishot_accept, baseline.multishot_accept);
  }
  // What was not switched off is kept where the kernel has it.
  if (c.defer_taskrun && c.single_issuer) {
    EXPECT_EQ(f.setup_flags, baseline.setup_flags);
  }
  EXPECT_EQ(f.multishot_recv, reactor->buffer_ring() != nullptr);

  reactor->BlockOn(ExerciseReactor(reactor));
  EXPECT_EQ(reactor->inflight(), 0);
}

INSTANTIATE_TEST_SUITE_P(
    Options, ReactorFeatureTest,
    ::testing::Values(FeatureCase{"AllEnabled", true, true, true, true},
                      FeatureCase{"NoDeferTaskrun", true, true, false, true},
                      FeatureCase{"NoSingleIssuer", true, true, true, false},
                      FeatureCase{"NoMultishotRecv", false, true, true, true},
                      FeatureCase{"NoMultishotAccept", true, false, true, true},
                      FeatureCase{"AllDisabled", false, false, false, false}),
    [](const ::testing::TestParamInfo<FeatureCase>& info) {
      return std::string(info.param.name);
    });

// --- Cross-thread Schedule and Stop. ---

TEST_F(ReactorTest, ScheduleFromAnotherThreadRunsOnTheReactorThread) {
  const std::thread::id reactor_thread = std::this_thread::get_id();
  std::thread::id ran_on;
  int runs = 0;
  std::thread other([this, &ran_on, &runs] {
    reactor()->Schedule([this, &ran_on, &runs] {
      ran_on = std::this_thread::get_id();
      ++runs;
      reactor()->Stop();
    });
  });
  reactor()->Run();  // Returns only through the scheduled Stop().
  other.join();
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(ran_on, reactor_thread);
}

Task<int> Value(int v) { co_return v; }

TEST_F(ReactorTest, StopFromAnotherThreadWhileBlocked) {
  std::latch running(1);
  reactor()->Schedule([&running] { running.count_down(); });
  std::thread other([this, &running] {
    running.wait();
    reactor()->Stop();
  });
  reactor()->Run();  // Blocks in the kernel with nothing to do until Stop().
  other.join();
  // The reactor is still usable afterwards.
  EXPECT_EQ(reactor()->BlockOn(Value(3)), 3);
}

TEST_F(ReactorTest, ManySchedulesFromManyThreads) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  const std::thread::id reactor_thread = std::this_thread::get_id();
  int count = 0;  // Only touched on the reactor thread.
  int wrong_thread = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        reactor()->Schedule([&] {
          if (std::this_thread::get_id() != reactor_thread) ++wrong_thread;
          if (++count == kThreads * kPerThread) reactor()->Stop();
        });
      }
    });
  }
  reactor()->Run();
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(count, kThreads * kPerThread);
  EXPECT_EQ(wrong_thread, 0);
}

Task<void> ScheduleFromReactorThreadRunsLater(Reactor* reactor) {
  Event done;
  bool ran = false;
  reactor->Schedule([&] {
    ran = true;
    done.Set();
  });
  EXPECT_FALSE(ran) << "Schedule() runs the function on a later turn";
  absl::Status s = co_await done.Wait();
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_TRUE(ran);
}

TEST_F(ReactorTest, ScheduleFromTheReactorThreadRunsOnALaterTurn) {
  reactor()->BlockOn(ScheduleFromReactorThreadRunsLater(reactor()));
}

// --- Posts. ---

Task<int64_t> YieldMany(int n) {
  int64_t turns = 0;
  for (int i = 0; i < n; ++i) {
    co_await Yield();
    ++turns;
  }
  co_return turns;
}

TEST_F(ReactorTest, ManyYieldsInOneTask) {
  EXPECT_EQ(reactor()->BlockOn(YieldMany(100000)), 100000);
}

// Resumes the awaiter through Reactor::Post directly.
struct PostSelf {
  Reactor* reactor;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const { reactor->Post(h); }
  void await_resume() const noexcept {}
};

Task<void> PostLoop(Reactor* reactor, int n, int64_t* resumes) {
  for (int i = 0; i < n; ++i) {
    co_await PostSelf{reactor};
    ++*resumes;
  }
}

Task<void> ManyTasksPosting(Reactor* reactor, int tasks, int posts,
                            int64_t* resumes) {
  TaskGroup group;
  for (int i = 0; i < tasks; ++i) {
    group.Spawn(PostLoop(reactor, posts, &resumes[i]));
  }
  co_await group.Join();
}

TEST_F(ReactorTest, ManyPostsFromManyTasks) {
  constexpr int kTasks = 1000;
  constexpr int kPosts = 100;
  std::vector<int64_t> resumes(kTasks, 0);
  reactor()->BlockOn(
      ManyTasksPosting(reactor(), kTasks, kPosts, resumes.data()));
  for (int i = 0; i < kTasks; ++i) EXPECT_EQ(resumes[i], kPosts) << i;
}

// --- BlockOn. ---

Task<std::string> Text() { co_return std::string(100, 'a'); }
Task<std::unique_ptr<int>> Unique(int v) { co_return std::make_unique<int>(v); }
Task<absl::StatusOr<int>> Failure() {
  co_return absl::FailedPreconditionError("no");
}
Task<void> SetTo(int* p, int v) {
  co_await Yield();
  *p = v;
}

TEST_F(ReactorTest, BlockOnReturnsValues) {
  EXPECT_EQ(reactor()->BlockOn(Value(42)), 42);
  EXPECT_EQ(reactor()->BlockOn(Text()), std::string(100, 'a'));
  std::unique_ptr<int> p = reactor()->BlockOn(Unique(9));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 9);
  absl::StatusOr<int> f = reactor()->BlockOn(Failure());
  EXPECT_TRUE(absl::IsFailedPrecondition(f.status())) << f.status();
  int x = 0;
  reactor()->BlockOn(SetTo(&x, 5));
  EXPECT_EQ(x, 5);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(reactor()->BlockOn(Value(i)), i);
}

Task<void> SpawnWaiter(TaskGroup* group, Event* event, bool* woke) {
  group->Spawn([](Event* e, bool* w) -> Task<void> {
    absl::Status s = co_await e->Wait();
    EXPECT_TRUE(s.ok()) << s;
    *w = true;
  }(event, woke));
  co_return;
}

Task<void> ReleaseAndJoin(TaskGroup* group, Event* event) {
  event->Set();
  co_await group->Join();
}

TEST_F(ReactorTest, WorkSpawnedByBlockOnOutlivesIt) {
  TaskGroup group;
  Event event;
  bool woke = false;
  reactor()->BlockOn(SpawnWaiter(&group, &event, &woke));
  EXPECT_FALSE(woke);
  EXPECT_EQ(group.size(), 1u);
  reactor()->BlockOn(ReleaseAndJoin(&group, &event));
  EXPECT_TRUE(woke);
  EXPECT_EQ(group.size(), 0u);
}

// --- A tiny ring under load: full SQ and overflowing CQ. ---

class SmallRingTest : public ReactorTest {
 protected:
  ReactorOptions Options() override {
    ReactorOptions o = ReactorOptions::FromEnv();
    o.sq_entries = 4;  // CQ: 16 entries.
    o.buffer_count = 4;
    o.buffer_size = 64;
    return o;
  }
};

Task<void> NopAndSleep(int i, int* ok) {
  int32_t res = co_await Io(IoRequest::Nop());
  EXPECT_EQ(res, 0);
  absl::Status s = co_await Sleep(absl::Microseconds(i % 500));
  EXPECT_TRUE(s.ok()) << s;
  if (res == 0 && s.ok()) ++*ok;
}

Task<void> ManyConcurrentOps(int n, int* ok) {
  TaskGroup group;
  for (int i = 0; i < n; ++i) group.Spawn(NopAndSleep(i, ok));
  co_await group.Join();
}

TEST_F(SmallRingTest, ManyConcurrentOpsOnATinyRing) {
  constexpr int kTasks = 2000;
  int ok = 0;
  reactor()->BlockOn(ManyConcurrentOps(kTasks, &ok));
  EXPECT_EQ(ok, kTasks);
}

}  // namespace
}  // namespace baton
