// Tests for Sleep and WithTimeout. Timing is only ever checked from below
// (a sleep lasts at least what was asked); the fixture checks that no kernel
// operation and no timer is left after each test.
#include "baton/runtime/timer.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "baton/runtime/event.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/stop.h"
#include "baton/runtime/task.h"
#include "baton/runtime/task_group.h"
#include "runtime/runtime_test_util.h"

namespace baton {
namespace {

using TimerTest = testutil::ReactorTest;

constexpr absl::Duration kLong = absl::Hours(1);

Task<void> SleepElapses(absl::Duration d) {
  const absl::Time start = absl::Now();
  absl::Status s = co_await Sleep(d);
  const absl::Duration elapsed = absl::Now() - start;
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_GE(elapsed, d) << "slept " << elapsed << " for " << d;
}

TEST_F(TimerTest, SleepElapses) {
  for (absl::Duration d :
       {absl::Milliseconds(1), absl::Milliseconds(5), absl::Milliseconds(20)}) {
    reactor()->BlockOn(SleepElapses(d));
  }
}

Task<void> SleepZeroAndNegative() {
  for (absl::Duration d :
       {absl::ZeroDuration(), absl::Nanoseconds(1), absl::Seconds(-1),
        absl::Nanoseconds(-1), -absl::InfiniteDuration()}) {
    absl::Status s = co_await Sleep(d);
    EXPECT_TRUE(s.ok()) << d << ": " << s;
  }
}

TEST_F(TimerTest, SleepZeroAndNegativeComplete) {
  reactor()->BlockOn(SleepZeroAndNegative());
}

Task<void> SleepInto(absl::Duration d, absl::Status* out, int* resumed) {
  *out = co_await Sleep(d);
  ++*resumed;
}

Task<void> SleepIsCancellable(absl::Duration d, Reactor* reactor) {
  TaskGroup group;
  absl::Status status;
  int resumed = 0;
  group.Spawn(SleepInto(d, &status, &resumed));
  co_await Yield();
  co_await Yield();
  EXPECT_EQ(reactor->timers(), 1u) << "one timer while sleeping";
  EXPECT_EQ(reactor->inflight(), 0) << "and no kernel operation";
  group.CancelAll();
  co_await group.Join();
  EXPECT_EQ(resumed, 1);
  EXPECT_TRUE(absl::IsCancelled(status)) << status;
}

TEST_F(TimerTest, LongSleepIsCancellable) {
  reactor()->BlockOn(SleepIsCancellable(kLong, reactor()));
}

TEST_F(TimerTest, InfiniteSleepIsCancellable) {
  reactor()->BlockOn(SleepIsCancellable(absl::InfiniteDuration(), reactor()));
}

Task<void> ManyConcurrentSleeps(uint32_t seed, int n) {
  std::mt19937 rng(seed);
  TaskGroup group;
  std::vector<absl::Status> statuses(n, absl::UnknownError("not resumed"));
  int resumed = 0;
  for (int i = 0; i < n; ++i) {
    group.Spawn(
        SleepInto(absl::Microseconds(rng() % 5000), &statuses[i], &resumed));
  }
  co_await group.Join();
  EXPECT_EQ(resumed, n);
  for (int i = 0; i < n; ++i) EXPECT_TRUE(statuses[i].ok()) << statuses[i];
}

TEST_F(TimerTest, ManyConcurrentSleeps) {
  const uint32_t seed = testutil::TestSeed();
  SCOPED_TRACE(testing::Message() << "seed=" << seed);
  reactor()->BlockOn(ManyConcurrentSleeps(seed, 1000));
}

Task<absl::StatusOr<int>> Value(int v) { co_return v; }

Task<absl::StatusOr<int>> SleepThenValue(absl::Duration d, int v) {
  absl::Status s = co_await Sleep(d);
  if (!s.ok()) co_return s;
  co_return v;
}

Task<absl::StatusOr<int>> Fail() { co_return absl::NotFoundError("nope"); }

Task<absl::Status> SleepStatus(absl::Duration d) {
  co_return co_await Sleep(d);
}

Task<absl::StatusOr<std::unique_ptr<int>>> SleepThenUnique(absl::Duration d) {
  absl::Status s = co_await Sleep(d);
  if (!s.ok()) co_return s;
  co_return std::make_unique<int>(5);
}

Task<void> WithTimeoutTaskFinishesFirst() {
  // (No ASSERT_* in coroutines: they expand to a plain return.)
  absl::StatusOr<int> v = co_await WithTimeout(Value(7), kLong);
  EXPECT_EQ(v.value_or(-1), 7) << v.status();

  v = co_await WithTimeout(SleepThenValue(absl::Milliseconds(1), 8), kLong);
  EXPECT_EQ(v.value_or(-1), 8) << v.status();

  // The task's own error, not a deadline.
  v = co_await WithTimeout(Fail(), kLong);
  EXPECT_TRUE(absl::IsNotFound(v.status())) << v.status();

  absl::Status s =
      co_await WithTimeout(SleepStatus(absl::Milliseconds(1)), kLong);
  EXPECT_TRUE(s.ok()) << s;

  absl::StatusOr<std::unique_ptr<int>> p =
      co_await WithTimeout(SleepThenUnique(absl::Milliseconds(1)), kLong);
  EXPECT_TRUE(p.ok() && *p != nullptr && **p == 5) << p.status();
}

TEST_F(TimerTest, WithTimeoutReturnsValueWhenTaskFinishesFirst) {
  reactor()->BlockOn(WithTimeoutTaskFinishesFirst());
}

Task<absl::Status> WaitFor(Event* event) { co_return co_await event->Wait(); }

Task<void> WithTimeoutDeadlineExceeded() {
  const absl::Duration timeout = absl::Milliseconds(5);
  const absl::Time start = absl::Now();
  absl::StatusOr<int> v =
      co_await WithTimeout(SleepThenValue(kLong, 1), timeout);
  EXPECT_GE(absl::Now() - start, timeout);
  EXPECT_TRUE(absl::IsDeadlineExceeded(v.status())) << v.status();

  Event never;
  absl::Status s = co_await WithTimeout(WaitFor(&never), timeout);
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;

  for (absl::Duration t : {absl::ZeroDuration(), absl::Seconds(-1)}) {
    s = co_await WithTimeout(SleepStatus(kLong), t);
    EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << t << ": " << s;
  }
}

TEST_F(TimerTest, WithTimeoutDeadlineExceededWhenTaskIsSlower) {
  reactor()->BlockOn(WithTimeoutDeadlineExceeded());
}

// Ignores cancellation and succeeds anyway after its sleep was cut short.
Task<absl::StatusOr<int>> SucceedsAfterBeingStopped(int* sleep_cancelled) {
  absl::Status s = co_await Sleep(kLong);
  if (absl::IsCancelled(s)) ++*sleep_cancelled;
  co_return 42;
}

Task<void> SuccessAfterDeadlineKeepsValue() {
  int sleep_cancelled = 0;
  absl::StatusOr<int> v = co_await WithTimeout(
      SucceedsAfterBeingStopped(&sleep_cancelled), absl::Milliseconds(2));
  EXPECT_EQ(sleep_cancelled, 1) << "the deadline stops the inner task";
  EXPECT_EQ(v.value_or(-1), 42) << v.status();
}

TEST_F(TimerTest, TaskThatSucceedsAfterTheDeadlineKeepsItsValue) {
  reactor()->BlockOn(SuccessAfterDeadlineKeepsValue());
}

Task<absl::Status> RecordingSleep(absl::Duration d, absl::Status* inner) {
  *inner = co_await Sleep(d);
  co_return *inner;
}

Task<void> WithTimeoutChild(absl::Duration timeout, absl::Status* inner,
                            absl::Status* outer, int* resumed) {
  *outer = co_await WithTimeout(RecordingSleep(kLong, inner), timeout);
  ++*resumed;
}

Task<void> OuterCancellationPropagates(Reactor* reactor) {
  TaskGroup group;
  absl::Status inner;
  absl::Status outer;
  int resumed = 0;
  group.Spawn(WithTimeoutChild(kLong, &inner, &outer, &resumed));
  co_await Yield();
  co_await Yield();
  EXPECT_EQ(reactor->timers(), 2u) << "the deadline timer and the sleep";
  group.CancelAll();
  co_await group.Join();
  EXPECT_EQ(resumed, 1);
  EXPECT_TRUE(absl::IsCancelled(inner)) << inner;
  EXPECT_TRUE(absl::IsCancelled(outer)) << outer;
}

TEST_F(TimerTest, OuterCancellationOfWithTimeoutYieldsCancelled) {
  reactor()->BlockOn(OuterCancellationPropagates(reactor()));
}

Task<void> AlreadyStoppedWithTimeout() {
  StopState stop;
  stop.RequestStop();
  absl::Status inner;
  absl::Status outer =
      co_await WithTimeout(RecordingSleep(kLong, &inner), kLong)
          .AwaitWith(&stop);
  EXPECT_TRUE(absl::IsCancelled(inner)) << inner;
  EXPECT_TRUE(absl::IsCancelled(outer)) << outer;
}

TEST_F(TimerTest, WithTimeoutInAlreadyStoppedChainYieldsCancelled) {
  reactor()->BlockOn(AlreadyStoppedWithTimeout());
}

// WithTimeout(WithTimeout(sleep, inner_timeout), outer_timeout), recording
// what the sleep and the inner WithTimeout returned.
struct NestedResult {
  absl::Status sleep;
  absl::Status inner;
  absl::Status outer;
};

Task<absl::Status> InnerTimeout(absl::Duration sleep, absl::Duration timeout,
                                NestedResult* r) {
  r->inner = co_await WithTimeout(RecordingSleep(sleep, &r->sleep), timeout);
  co_return r->inner;
}

Task<NestedResult> NestedTimeouts(absl::Duration sleep, absl::Duration inner,
                                  absl::Duration outer) {
  NestedResult r;
  r.outer = co_await WithTimeout(InnerTimeout(sleep, inner, &r), outer);
  co_return r;
}

TEST_F(TimerTest, NestedTimeoutInnerFiresFirst) {
  NestedResult r =
      reactor()->BlockOn(NestedTimeouts(kLong, absl::Milliseconds(2), kLong));
  EXPECT_TRUE(absl::IsCancelled(r.sleep)) << r.sleep;
  EXPECT_TRUE(absl::IsDeadlineExceeded(r.inner)) << r.inner;
  EXPECT_TRUE(absl::IsDeadlineExceeded(r.outer)) << r.outer;
}

TEST_F(TimerTest, NestedTimeoutOuterFiresFirst) {
  NestedResult r =
      reactor()->BlockOn(NestedTimeouts(kLong, kLong, absl::Milliseconds(2)));
  EXPECT_TRUE(absl::IsCancelled(r.sleep)) << r.sleep;
  // The inner deadline did not pass: to it this was a cancellation.
  EXPECT_TRUE(absl::IsCancelled(r.inner)) << r.inner;
  EXPECT_TRUE(absl::IsDeadlineExceeded(r.outer)) << r.outer;
}

TEST_F(TimerTest, NestedTimeoutNeitherFires) {
  NestedResult r =
      reactor()->BlockOn(NestedTimeouts(absl::Milliseconds(1), kLong, kLong));
  EXPECT_TRUE(r.sleep.ok()) << r.sleep;
  EXPECT_TRUE(r.inner.ok()) << r.inner;
  EXPECT_TRUE(r.outer.ok()) << r.outer;
}

Task<void> NestedTimeoutChild(NestedResult* r, int* resumed) {
  *r = co_await NestedTimeouts(kLong, kLong, kLong);
  ++*resumed;
}

Task<void> OuterCancellationThroughNestedTimeouts(Reactor* reactor) {
  TaskGroup group;
  NestedResult r;
  int resumed = 0;
  group.Spawn(NestedTimeoutChild(&r, &resumed));
  co_await Yield();
  co_await Yield();
  EXPECT_EQ(reactor->timers(), 3u) << "two deadline timers and the sleep";
  group.CancelAll();
  co_await group.Join();
  EXPECT_EQ(resumed, 1);
  EXPECT_TRUE(absl::IsCancelled(r.sleep)) << r.sleep;
  EXPECT_TRUE(absl::IsCancelled(r.inner)) << r.inner;
  EXPECT_TRUE(absl::IsCancelled(r.outer)) << r.outer;
}

TEST_F(TimerTest, OuterCancellationThroughNestedTimeouts) {
  reactor()->BlockOn(OuterCancellationThroughNestedTimeouts(reactor()));
}

Task<void> ManyTimeoutsInSequence(int n) {
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<int> v = co_await WithTimeout(Value(i), kLong);
    if (!v.ok() || *v != i) {
      ADD_FAILURE() << "iteration " << i << ": " << v.status();
      co_return;
    }
  }
}

// The loop never waits while work is ready; timers must still fire. The
// spinner gives up after 5 s, so a timer that only fires in an idle loop
// fails the test instead of hanging it.
Task<void> SpinUntil(const bool* done, int* turns, bool* gave_up) {
  const absl::Time give_up = absl::Now() + absl::Seconds(5);
  while (!*done) {
    if (absl::Now() > give_up) {
      *gave_up = true;
      co_return;
    }
    ++*turns;
    co_await Yield();
  }
}

Task<void> SleepWhileBusy() {
  TaskGroup group;
  bool done = false;
  bool gave_up = false;
  int turns = 0;
  group.Spawn(SpinUntil(&done, &turns, &gave_up));
  const absl::Time start = absl::Now();
  absl::Status s = co_await Sleep(absl::Milliseconds(5));
  done = true;
  co_await group.Join();
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(5));
  EXPECT_FALSE(gave_up) << "the sleep only ended once the loop went idle";
  EXPECT_GT(turns, 1) << "the spinner kept the loop busy";
}

TEST_F(TimerTest, SleepFiresWhileTheLoopStaysBusy) {
  reactor()->BlockOn(SleepWhileBusy());
}

TEST_F(TimerTest, ManyTimeoutsInSequenceLeaveNoTimers) {
  reactor()->BlockOn(ManyTimeoutsInSequence(5000));
}

}  // namespace
}  // namespace baton
