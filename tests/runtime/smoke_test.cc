#include <gtest/gtest.h>

#include "baton/runtime/event.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task_group.h"
#include "baton/runtime/timer.h"

namespace baton {
namespace {

Task<int> Add(int a, int b) { co_return a + b; }

Task<absl::StatusOr<int>> Chain() {
  int x = co_await Add(1, 2);
  absl::Status s = co_await Sleep(absl::Milliseconds(1));
  if (!s.ok()) co_return s;
  co_return x + co_await Add(3, 4);
}

TEST(Smoke, ChainAndSleep) {
  auto r = Reactor::Create();
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<int> v = (*r)->BlockOn(Chain());
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 10);
  EXPECT_EQ((*r)->inflight(), 0);
}

Task<absl::Status> SleepLong() { co_return co_await Sleep(absl::Seconds(30)); }

TEST(Smoke, TimeoutCancelsSleep) {
  auto r = Reactor::Create();
  ASSERT_TRUE(r.ok());
  absl::Status s =
      (*r)->BlockOn(WithTimeout(SleepLong(), absl::Milliseconds(5)));
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
  EXPECT_EQ((*r)->inflight(), 0);
}

Task<void> GroupCancel(int* cancelled) {
  TaskGroup g;
  for (int i = 0; i < 10; ++i) {
    g.Spawn([](int* c) -> Task<void> {
      absl::Status s = co_await Sleep(absl::Seconds(30));
      if (absl::IsCancelled(s)) ++*c;
    }(cancelled));
  }
  co_await Yield();
  g.CancelAll();
  co_await g.Join();
}

TEST(Smoke, GroupCancelJoin) {
  auto r = Reactor::Create();
  ASSERT_TRUE(r.ok());
  int cancelled = 0;
  (*r)->BlockOn(GroupCancel(&cancelled));
  EXPECT_EQ(cancelled, 10);
  EXPECT_EQ((*r)->inflight(), 0);
}

}  // namespace
}  // namespace baton
