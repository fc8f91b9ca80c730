// Tests for Event: Set wakes every waiter on a later turn, Reset lowers the
// flag for later waits only, and waiting on a set event does not suspend.
#include "baton/runtime/event.h"

#include <gtest/gtest.h>

#include <vector>

#include "absl/status/status.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task.h"
#include "baton/runtime/task_group.h"
#include "runtime/runtime_test_util.h"

namespace baton {
namespace {

using EventTest = testutil::ReactorTest;

const absl::Status kNotResumed = absl::UnknownError("not resumed");

Task<void> WaitOnce(Event* event, absl::Status* out, int* resumed) {
  *out = co_await event->Wait();
  ++*resumed;
}

Task<void> SetWakesAllWaiters(int n) {
  Event event;
  TaskGroup group;
  std::vector<absl::Status> statuses(n, kNotResumed);
  int resumed = 0;
  for (int i = 0; i < n; ++i) {
    group.Spawn(WaitOnce(&event, &statuses[i], &resumed));
  }
  // Let every waiter start and suspend; none may pass an unset event.
  for (int i = 0; i < 3; ++i) co_await Yield();
  EXPECT_EQ(resumed, 0);
  EXPECT_FALSE(event.is_set());

  event.Set();
  EXPECT_TRUE(event.is_set());
  EXPECT_EQ(resumed, 0) << "Set() resumes waiters on a later turn";
  co_await group.Join();
  EXPECT_EQ(resumed, n);
  for (int i = 0; i < n; ++i) EXPECT_TRUE(statuses[i].ok()) << i;
}

TEST_F(EventTest, SetWakesAllWaiters) {
  reactor()->BlockOn(SetWakesAllWaiters(1));
  reactor()->BlockOn(SetWakesAllWaiters(100));
}

Task<void> MarkRan(bool* ran) {
  *ran = true;
  co_return;
}

Task<void> WaitOnSetEventDoesNotSuspend() {
  Event event;
  event.Set();
  TaskGroup group;
  bool other_ran = false;
  // Runs on the next turn: it would run before us if Wait() suspended.
  group.Spawn(MarkRan(&other_ran));
  for (int i = 0; i < 10; ++i) {
    absl::Status s = co_await event.Wait();
    EXPECT_TRUE(s.ok()) << s;
  }
  EXPECT_FALSE(other_ran);
  co_await group.Join();
  EXPECT_TRUE(other_ran);
}

TEST_F(EventTest, WaitOnSetEventIsImmediate) {
  reactor()->BlockOn(WaitOnSetEventDoesNotSuspend());
}

Task<void> WaitOnSetEventInStoppedChain() {
  Event event;
  event.Set();
  StopState stop;
  stop.RequestStop();
  auto wait = [](Event* e) -> Task<absl::Status> {
    co_return co_await e->Wait();
  };
  // The event is already set: the wait is satisfied, not cancelled.
  absl::Status s = co_await wait(&event).AwaitWith(&stop);
  EXPECT_TRUE(s.ok()) << s;
}

TEST_F(EventTest, WaitOnSetEventSucceedsEvenIfStopped) {
  reactor()->BlockOn(WaitOnSetEventInStoppedChain());
}

Task<void> ResetBlocksLaterWaits() {
  Event event;
  event.Set();
  event.Reset();
  EXPECT_FALSE(event.is_set());

  TaskGroup group;
  absl::Status status = kNotResumed;
  int resumed = 0;
  group.Spawn(WaitOnce(&event, &status, &resumed));
  for (int i = 0; i < 5; ++i) co_await Yield();
  EXPECT_EQ(resumed, 0) << "a reset event must block";

  event.Set();
  co_await group.Join();
  EXPECT_EQ(resumed, 1);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(EventTest, ResetBlocksLaterWaits) {
  reactor()->BlockOn(ResetBlocksLaterWaits());
}

Task<void> ResetAfterSetStillWakesWokenWaiters() {
  Event event;
  TaskGroup group;
  constexpr int kWaiters = 4;
  std::vector<absl::Status> statuses(kWaiters, kNotResumed);
  int resumed = 0;
  for (int i = 0; i < kWaiters; ++i) {
    group.Spawn(WaitOnce(&event, &statuses[i], &resumed));
  }
  co_await Yield();
  event.Set();
  event.Reset();  // Same turn: the waiters were already woken by Set().
  EXPECT_FALSE(event.is_set());
  co_await group.Join();
  EXPECT_EQ(resumed, kWaiters);
  for (int i = 0; i < kWaiters; ++i) EXPECT_TRUE(statuses[i].ok()) << i;
}

TEST_F(EventTest, ResetAfterSetStillWakesWokenWaiters) {
  reactor()->BlockOn(ResetAfterSetStillWakesWokenWaiters());
}

Task<void> RepeatedSetResumesEachWaiterOnce() {
  Event event;
  TaskGroup group;
  constexpr int kWaiters = 8;
  std::vector<absl::Status> statuses(kWaiters, kNotResumed);
  int resumed = 0;
  for (int i = 0; i < kWaiters; ++i) {
    group.Spawn(WaitOnce(&event, &statuses[i], &resumed));
  }
  co_await Yield();
  event.Set();
  event.Set();
  event.Reset();
  event.Set();
  co_await group.Join();
  EXPECT_EQ(resumed, kWaiters);
}

TEST_F(EventTest, RepeatedSetResumesEachWaiterOnce) {
  reactor()->BlockOn(RepeatedSetResumesEachWaiterOnce());
}

// Two tasks hand a token back and forth through two events.
Task<void> PingPongPlayer(Event* mine, Event* theirs, int rounds, int* turns) {
  for (int i = 0; i < rounds; ++i) {
    absl::Status s = co_await mine->Wait();
    EXPECT_TRUE(s.ok()) << s;
    mine->Reset();
    ++*turns;
    theirs->Set();
  }
}

Task<void> PingPong(int rounds, int* ping_turns, int* pong_turns) {
  Event ping;
  Event pong;
  TaskGroup group;
  group.Spawn(PingPongPlayer(&ping, &pong, rounds, ping_turns));
  group.Spawn(PingPongPlayer(&pong, &ping, rounds, pong_turns));
  ping.Set();
  co_await group.Join();
  EXPECT_TRUE(ping.is_set());  // The last pong handed it back.
  EXPECT_FALSE(pong.is_set());
}

TEST_F(EventTest, PingPongWithReset) {
  constexpr int kRounds = 1000;
  int ping_turns = 0;
  int pong_turns = 0;
  reactor()->BlockOn(PingPong(kRounds, &ping_turns, &pong_turns));
  EXPECT_EQ(ping_turns, kRounds);
  EXPECT_EQ(pong_turns, kRounds);
}

}  // namespace
}  // namespace baton
