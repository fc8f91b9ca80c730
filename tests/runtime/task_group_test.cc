// Tests for TaskGroup: Spawn starts children on a later turn, Join waits for
// all of them, CancelAll reaches whatever each running child waits on.
#include "baton/runtime/task_group.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "baton/runtime/event.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task.h"
#include "baton/runtime/timer.h"
#include "runtime/runtime_test_util.h"

namespace baton {
namespace {

using TaskGroupTest = testutil::ReactorTest;

// What a child saw, and how often it got past its wait (must be once).
struct Outcome {
  absl::Status status = absl::UnknownError("not resumed");
  int resumed = 0;
};

Task<void> MarkRan(bool* ran) {
  *ran = true;
  co_return;
}

Task<void> SleepChild(absl::Duration d, Outcome* out) {
  out->status = co_await Sleep(d);
  ++out->resumed;
}

Task<void> EventChild(Event* event, Outcome* out) {
  out->status = co_await event->Wait();
  ++out->resumed;
}

Task<absl::Status> NestedSleep(int depth) {
  if (depth == 0) co_return co_await Sleep(absl::Hours(1));
  co_return co_await NestedSleep(depth - 1);
}

Task<void> NestedChild(int depth, Outcome* out) {
  out->status = co_await NestedSleep(depth);
  ++out->resumed;
}

Task<void> YieldChild(int yields, int* done) {
  for (int i = 0; i < yields; ++i) co_await Yield();
  ++*done;
}

Task<void> SpawnStartsOnALaterTurn() {
  TaskGroup group;
  bool ran = false;
  group.Spawn(MarkRan(&ran));
  EXPECT_FALSE(ran) << "Spawn() must not run the child synchronously";
  EXPECT_EQ(group.size(), 1u) << "the child is linked before Spawn returns";
  co_await group.Join();
  EXPECT_TRUE(ran);
  EXPECT_EQ(group.size(), 0u);
}

TEST_F(TaskGroupTest, SpawnStartsOnALaterTurn) {
  reactor()->BlockOn(SpawnStartsOnALaterTurn());
}

Task<void> JoinWaitsForAll(uint32_t seed) {
  std::mt19937 rng(seed);
  TaskGroup group;
  constexpr int kChildren = 200;
  int done = 0;
  std::vector<Outcome> sleepers(10);
  for (int i = 0; i < kChildren; ++i) {
    group.Spawn(YieldChild(static_cast<int>(rng() % 20), &done));
  }
  for (Outcome& o : sleepers) {
    group.Spawn(SleepChild(absl::Milliseconds(1 + rng() % 5), &o));
  }
  EXPECT_EQ(group.size(), static_cast<size_t>(kChildren + sleepers.size()));
  co_await group.Join();
  EXPECT_EQ(done, kChildren);
  for (const Outcome& o : sleepers) {
    EXPECT_EQ(o.resumed, 1);
    EXPECT_TRUE(o.status.ok()) << o.status;
  }
  EXPECT_EQ(group.size(), 0u);
}

TEST_F(TaskGroupTest, JoinWaitsForAll) {
  const uint32_t seed = testutil::TestSeed();
  SCOPED_TRACE(testing::Message() << "seed=" << seed);
  reactor()->BlockOn(JoinWaitsForAll(seed));
}

Task<void> JoinOnEmptyGroupIsImmediate() {
  TaskGroup empty;
  TaskGroup other;
  bool other_ran = false;
  // Runs on the next turn: it would run first if Join() suspended.
  other.Spawn(MarkRan(&other_ran));
  co_await empty.Join();
  co_await empty.Join();
  EXPECT_FALSE(other_ran);
  co_await other.Join();
  EXPECT_TRUE(other_ran);
  // Joining an already joined group is immediate too.
  other_ran = false;
  TaskGroup third;
  third.Spawn(MarkRan(&other_ran));
  co_await other.Join();
  EXPECT_FALSE(other_ran);
  co_await third.Join();
}

TEST_F(TaskGroupTest, JoinOnEmptyGroupIsImmediate) {
  reactor()->BlockOn(JoinOnEmptyGroupIsImmediate());
}

Task<void> JoinerOf(TaskGroup* group, int* joined) {
  co_await group->Join();
  ++*joined;
}

Task<void> SeveralJoiners() {
  TaskGroup group;
  TaskGroup joiners;
  Event go;
  Outcome child;
  int joined = 0;
  group.Spawn(EventChild(&go, &child));
  for (int i = 0; i < 3; ++i) joiners.Spawn(JoinerOf(&group, &joined));
  for (int i = 0; i < 3; ++i) co_await Yield();
  EXPECT_EQ(joined, 0);
  go.Set();
  co_await joiners.Join();
  EXPECT_EQ(joined, 3);
  EXPECT_EQ(child.resumed, 1);
  EXPECT_TRUE(child.status.ok()) << child.status;
}

TEST_F(TaskGroupTest, SeveralJoinersAllResume) {
  reactor()->BlockOn(SeveralJoiners());
}

Task<void> CancelAllReachesEveryKindOfWait() {
  TaskGroup group;
  Event never;
  Outcome sleeper;
  Outcome waiter;
  Outcome nested;
  Outcome deeply_nested;
  group.Spawn(SleepChild(absl::Hours(1), &sleeper));
  group.Spawn(EventChild(&never, &waiter));
  group.Spawn(NestedChild(1, &nested));
  group.Spawn(NestedChild(50, &deeply_nested));
  // Let every child start and block on its wait.
  for (int i = 0; i < 3; ++i) co_await Yield();
  EXPECT_EQ(group.size(), 4u);
  for (const Outcome* o : {&sleeper, &waiter, &nested, &deeply_nested}) {
    EXPECT_EQ(o->resumed, 0);
  }

  group.CancelAll();
  co_await group.Join();
  for (const Outcome* o : {&sleeper, &waiter, &nested, &deeply_nested}) {
    EXPECT_EQ(o->resumed, 1);
    EXPECT_TRUE(absl::IsCancelled(o->status)) << o->status;
  }
  EXPECT_FALSE(never.is_set());
}

TEST_F(TaskGroupTest, CancelAllReachesSleepEventAndNestedTasks) {
  reactor()->BlockOn(CancelAllReachesEveryKindOfWait());
}

Task<void> CancelAllBeforeChildrenStart() {
  TaskGroup group;
  Event never;
  Outcome sleeper;
  Outcome waiter;
  group.Spawn(SleepChild(absl::Hours(1), &sleeper));
  group.Spawn(EventChild(&never, &waiter));
  group.CancelAll();  // Same turn: neither child has started yet.
  co_await group.Join();
  for (const Outcome* o : {&sleeper, &waiter}) {
    EXPECT_EQ(o->resumed, 1);
    EXPECT_TRUE(absl::IsCancelled(o->status)) << o->status;
  }
}

TEST_F(TaskGroupTest, CancelAllBeforeChildrenStart) {
  reactor()->BlockOn(CancelAllBeforeChildrenStart());
}

Task<void> ChildrenSpawnedAfterCancelAllAreNotCancelled() {
  TaskGroup group;
  Outcome before;
  Outcome after;
  Outcome after_event;
  Event go;
  group.Spawn(SleepChild(absl::Hours(1), &before));
  co_await Yield();
  group.CancelAll();
  group.Spawn(SleepChild(absl::Milliseconds(1), &after));
  group.Spawn(EventChild(&go, &after_event));
  for (int i = 0; i < 3; ++i) co_await Yield();
  go.Set();
  co_await group.Join();
  EXPECT_TRUE(absl::IsCancelled(before.status)) << before.status;
  EXPECT_TRUE(after.status.ok()) << after.status;
  EXPECT_TRUE(after_event.status.ok()) << after_event.status;
  EXPECT_EQ(before.resumed, 1);
  EXPECT_EQ(after.resumed, 1);
  EXPECT_EQ(after_event.resumed, 1);
}

TEST_F(TaskGroupTest, ChildrenSpawnedAfterCancelAllAreNotCancelled) {
  reactor()->BlockOn(ChildrenSpawnedAfterCancelAllAreNotCancelled());
}

Task<void> SignalWhenDone(Event* done, Outcome* out) {
  out->status = absl::OkStatus();
  ++out->resumed;
  done->Set();
  co_return;
}

Task<void> ChildFinishedBeforeCancelAll() {
  TaskGroup group;
  Event done;
  Outcome quick;
  Outcome sleeper;
  group.Spawn(SignalWhenDone(&done, &quick));
  group.Spawn(SleepChild(absl::Hours(1), &sleeper));
  EXPECT_EQ(group.size(), 2u);
  co_await done.Wait();
  EXPECT_EQ(group.size(), 1u) << "the finished child is unlinked";
  group.CancelAll();
  group.CancelAll();  // Idempotent.
  co_await group.Join();
  EXPECT_TRUE(quick.status.ok()) << quick.status;
  EXPECT_EQ(quick.resumed, 1);
  EXPECT_TRUE(absl::IsCancelled(sleeper.status)) << sleeper.status;
  EXPECT_EQ(sleeper.resumed, 1);
  group.CancelAll();  // On an empty group: nothing to do.
  EXPECT_EQ(group.size(), 0u);
}

TEST_F(TaskGroupTest, ChildFinishedBeforeCancelAllIsFine) {
  reactor()->BlockOn(ChildFinishedBeforeCancelAll());
}

// Finishes when `go` is set, and reports it through `done`.
Task<void> GatedChild(Event* go, Event* done) {
  absl::Status s = co_await go->Wait();
  EXPECT_TRUE(s.ok()) << s;
  done->Set();
}

Task<void> SizeTracksRunningChildren() {
  constexpr int kChildren = 5;
  TaskGroup group;
  std::vector<std::unique_ptr<Event>> go;
  std::vector<std::unique_ptr<Event>> done;
  EXPECT_EQ(group.size(), 0u);
  for (int i = 0; i < kChildren; ++i) {
    go.push_back(std::make_unique<Event>());
    done.push_back(std::make_unique<Event>());
    group.Spawn(GatedChild(go.back().get(), done.back().get()));
    EXPECT_EQ(group.size(), static_cast<size_t>(i + 1));
  }
  for (int i = 0; i < kChildren; ++i) {
    go[i]->Set();
    co_await done[i]->Wait();
    EXPECT_EQ(group.size(), static_cast<size_t>(kChildren - i - 1));
  }
  co_await group.Join();
}

TEST_F(TaskGroupTest, SizeTracksRunningChildren) {
  reactor()->BlockOn(SizeTracksRunningChildren());
}

Task<void> SpawnSibling(TaskGroup* group, Event* gate, bool* sibling_ran) {
  co_await Yield();
  group->Spawn([](Event* g, bool* ran) -> Task<void> {
    absl::Status s = co_await g->Wait();
    EXPECT_TRUE(s.ok()) << s;
    *ran = true;
  }(gate, sibling_ran));
}

Task<void> JoinWaitsForChildrenSpawnedByChildren() {
  TaskGroup group;
  Event gate;
  bool sibling_ran = false;
  TaskGroup opener;
  // Opens the gate only after several turns; Join must wait for it.
  opener.Spawn([](Event* g) -> Task<void> {
    for (int i = 0; i < 10; ++i) co_await Yield();
    g->Set();
  }(&gate));
  group.Spawn(SpawnSibling(&group, &gate, &sibling_ran));
  co_await group.Join();
  EXPECT_TRUE(sibling_ran);
  EXPECT_EQ(group.size(), 0u);
  co_await opener.Join();
}

TEST_F(TaskGroupTest, JoinWaitsForChildrenSpawnedByChildren) {
  reactor()->BlockOn(JoinWaitsForChildrenSpawnedByChildren());
}

Task<void> SpawnWhenReleased(Event* go, TaskGroup* group, bool* late_ran) {
  absl::Status s = co_await go->Wait();
  EXPECT_TRUE(s.ok()) << s;
  group->Spawn(MarkRan(late_ran));
}

Task<void> JoinRacingSpawn() {
  TaskGroup group;
  TaskGroup spawner;
  Event last_child_go;
  Event spawner_go;
  Outcome last_child;
  bool late_ran = false;
  group.Spawn(EventChild(&last_child_go, &last_child));
  spawner.Spawn(SpawnWhenReleased(&spawner_go, &group, &late_ran));
  for (int i = 0; i < 3; ++i) co_await Yield();
  // Next turn, in this order: the group's only child finishes (the group is
  // empty, so Join's waiter is posted), then a new child is spawned into it.
  last_child_go.Set();
  spawner_go.Set();
  co_await group.Join();
  EXPECT_EQ(group.size(), 0u) << "Join() returned while a child still runs";
  EXPECT_TRUE(late_ran) << "Join() returned before the late child ran";
  while (group.size() > 0) co_await group.Join();  // Keep the test safe.
  co_await spawner.Join();
}

// BUG (task_group.cc, TaskGroup::Unlink / JoinAwaiter): when the last child
// finishes, Unlink posts the joiners, but Join() does not re-check size()
// when they resume. A child spawned in between (same turn) is still running
// when Join() returns, so `co_await group.Join();` followed by destroying the
// group aborts ("missing Join()"). Disabled until Join() loops while
// size() > 0.
TEST_F(TaskGroupTest, JoinWaitsForChildSpawnedAfterTheGroupEmptied) {
  reactor()->BlockOn(JoinRacingSpawn());
}

Task<void> ChildIgnoringCancellation(int* progress) {
  for (int i = 0; i < 20; ++i) {
    co_await Yield();  // Not a cancellable wait.
    ++*progress;
  }
}

Task<void> JoinWaitsForChildThatIgnoresCancellation() {
  TaskGroup group;
  int progress = 0;
  group.Spawn(ChildIgnoringCancellation(&progress));
  co_await Yield();
  group.CancelAll();
  co_await group.Join();
  EXPECT_EQ(progress, 20);
}

TEST_F(TaskGroupTest, JoinWaitsForChildThatIgnoresCancellation) {
  reactor()->BlockOn(JoinWaitsForChildThatIgnoresCancellation());
}

Task<void> ManyChildren(int n, int* done) {
  TaskGroup group;
  for (int i = 0; i < n; ++i) group.Spawn(YieldChild(i % 3, done));
  EXPECT_EQ(group.size(), static_cast<size_t>(n));
  co_await group.Join();
}

TEST_F(TaskGroupTest, ManyChildren) {
  constexpr int kChildren = 20000;
  int done = 0;
  reactor()->BlockOn(ManyChildren(kChildren, &done));
  EXPECT_EQ(done, kChildren);
}

Task<void> ForgetToJoin() {
  static Outcome outcome;
  TaskGroup group;
  group.Spawn(SleepChild(absl::Hours(1), &outcome));
  co_await Yield();
}

TEST(TaskGroupDeathTest, DestroyingAGroupWithChildrenAborts) {
  {
    auto probe = Reactor::Create();
    BATON_SKIP_IF_NO_IO_URING(probe.status());
    ASSERT_TRUE(probe.ok()) << probe.status();
  }
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto reactor = Reactor::Create();
        (*reactor)->BlockOn(ForgetToJoin());
      },
      "missing Join");
}

}  // namespace
}  // namespace baton
