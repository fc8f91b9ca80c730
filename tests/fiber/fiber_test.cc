// Fiber semantics: park/resume on the reactor, awaiting tasks from fibers
// and fibers from coroutines, cancellation (also racing with completion),
// timeouts, many fibers on one reactor, and stop-then-join leaving nothing
// behind (fibers, stacks, timers, kernel operations).
#include "baton/fiber/fiber.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "baton/runtime/event.h"
#include "baton/runtime/io.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task.h"
#include "baton/runtime/task_group.h"
#include "baton/runtime/timer.h"
#include "runtime/runtime_test_util.h"

namespace baton::fiber {
namespace {

class FiberTest : public testutil::ReactorTest {
 protected:
  void TearDown() override {
    testutil::ReactorTest::TearDown();
    EXPECT_EQ(LiveFibers(), 0u) << "fibers leaked";
    EXPECT_EQ(StackPool::ForThisThread().outstanding(), 0u) << "stacks leaked";
  }
};

Task<absl::Status> WaitFor(Event* e) { co_return co_await e->Wait(); }

Task<int> AddLater(int a, int b) {
  co_await baton::Yield();
  co_return a + b;
}

TEST_F(FiberTest, CoroutineAwaitsFiberResult) {
  int v = reactor()->BlockOn(fiber::Run([] { return 42; }));
  EXPECT_EQ(v, 42);
}

TEST_F(FiberTest, FiberAwaitsTask) {
  int v = reactor()->BlockOn(fiber::Run([] {
    int x = Await(AddLater(1, 2));  // parks: AddLater yields once
    int y = Await(AddLater(x, 10));
    return y;
  }));
  EXPECT_EQ(v, 13);
}

Task<void> ParkResumeOrder(std::vector<std::string>* log) {
  Event go;
  Fiber f = Spawn([&] {
    log->push_back("fiber starts");
    absl::Status s = Await(WaitFor(&go));
    log->push_back(s.ok() ? "fiber resumed" : "fiber cancelled");
  });
  log->push_back("spawned");
  co_await baton::Yield();  // the fiber runs and parks
  co_await baton::Yield();
  log->push_back("setting");
  go.Set();
  co_await f.Join();
  log->push_back("joined");
}

TEST_F(FiberTest, ParksAndResumesOnTheReactor) {
  std::vector<std::string> log;
  reactor()->BlockOn(ParkResumeOrder(&log));
  EXPECT_EQ(log, (std::vector<std::string>{"spawned", "fiber starts", "setting",
                                           "fiber resumed", "joined"}));
}

TEST_F(FiberTest, AwaitOfAFinishedTaskDoesNotPark) {
  int v = reactor()->BlockOn(fiber::Run([] {
    struct Immediate {
      static Task<int> Make() { co_return 7; }
    };
    return Await(Immediate::Make());
  }));
  EXPECT_EQ(v, 7);
}

Task<void> StopWhileParked(absl::Status* seen) {
  Event never;
  Fiber f = Spawn([&] { *seen = Await(WaitFor(&never)); });
  co_await baton::Yield();
  co_await baton::Yield();
  f.RequestStop();
  co_await f.Join();
}

TEST_F(FiberTest, StopMakesTheParkedCallReturnCancelled) {
  absl::Status seen;
  reactor()->BlockOn(StopWhileParked(&seen));
  EXPECT_TRUE(absl::IsCancelled(seen)) << seen;
}

// Completion first, then stop, in the same turn: the wait already
// succeeded, and that is what the fiber sees (as a coroutine would).
Task<void> CompletionBeatsStop(absl::Status* first, absl::Status* second) {
  Event go;
  Event never;
  Fiber f = Spawn([&] {
    *first = Await(WaitFor(&go));
    *second = Await(WaitFor(&never));  // stopped: fails fast
  });
  co_await baton::Yield();
  co_await baton::Yield();
  go.Set();
  f.RequestStop();
  co_await f.Join();
}

TEST_F(FiberTest, CancellationRacingWithCompletionKeepsTheResult) {
  absl::Status first = absl::UnknownError("unset");
  absl::Status second;
  reactor()->BlockOn(CompletionBeatsStop(&first, &second));
  EXPECT_TRUE(first.ok()) << first;
  EXPECT_TRUE(absl::IsCancelled(second)) << second;
}

// Stop first, then completion: the stop wins.
Task<void> StopBeatsCompletion(absl::Status* seen) {
  Event go;
  Fiber f = Spawn([&] { *seen = Await(WaitFor(&go)); });
  co_await baton::Yield();
  co_await baton::Yield();
  f.RequestStop();
  go.Set();
  co_await f.Join();
}

TEST_F(FiberTest, StopBeforeCompletionCancels) {
  absl::Status seen;
  reactor()->BlockOn(StopBeatsCompletion(&seen));
  EXPECT_TRUE(absl::IsCancelled(seen)) << seen;
}

// A stop racing data arrival on a real kernel recv a fiber is parked on:
// the fiber is resumed exactly once and sees what really happened, either
// the data (the recv won) or -ECANCELED with the bytes still unread.
Task<int32_t> RecvTask(int fd, char* buf, size_t cap) {
  co_return co_await Io(IoRequest::Recv(fd, buf, cap));
}

Task<void> KernelRecvRacingStop(int iterations, int* data_won,
                                int* cancel_won) {
  std::mt19937 rng(4242);
  for (int it = 0; it < iterations; ++it) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sv) != 0) {
      ADD_FAILURE() << "socketpair failed";
      co_return;
    }
    const std::string data(1 + rng() % 512, static_cast<char>('a' + it % 26));
    std::vector<char> buf(data.size() + 16);
    int32_t res = INT32_MIN;
    int resumed = 0;
    Fiber f = Spawn([&] {
      res = Await(RecvTask(sv[0], buf.data(), buf.size()));
      ++resumed;
    });
    const int turns = 1 + static_cast<int>(rng() % 3);
    for (int i = 0; i < turns; ++i) co_await baton::Yield();
    if (rng() % 2 == 0) {
      EXPECT_EQ(write(sv[1], data.data(), data.size()),
                static_cast<ssize_t>(data.size()));
      f.RequestStop();
    } else {
      f.RequestStop();
      EXPECT_EQ(write(sv[1], data.data(), data.size()),
                static_cast<ssize_t>(data.size()));
    }
    co_await f.Join();
    EXPECT_EQ(resumed, 1);
    if (res == -ECANCELED) {
      ++*cancel_won;
      ssize_t n = read(sv[0], buf.data(), buf.size());  // still there
      EXPECT_EQ(n, static_cast<ssize_t>(data.size()));
    } else {
      ++*data_won;
      EXPECT_EQ(res, static_cast<int32_t>(data.size()));
      EXPECT_EQ(std::string(buf.data(), data.size()), data);
    }
    close(sv[0]);
    close(sv[1]);
  }
}

TEST_F(FiberTest, StopRacingAKernelRecvReportsWhatHappened) {
  int data_won = 0, cancel_won = 0;
  reactor()->BlockOn(KernelRecvRacingStop(300, &data_won, &cancel_won));
  EXPECT_EQ(data_won + cancel_won, 300);
  std::printf("recv won %d, cancel won %d\n", data_won, cancel_won);
}

TEST_F(FiberTest, StoppedBeforeStartFailsFast) {
  absl::Status seen;
  reactor()->BlockOn([](absl::Status* seen) -> Task<void> {
    Fiber f = Spawn([seen] { *seen = Sleep(absl::Hours(1)); });
    f.RequestStop();  // before its first turn
    co_await f.Join();
  }(&seen));
  EXPECT_TRUE(absl::IsCancelled(seen)) << seen;
}

TEST_F(FiberTest, SleepAndTimeouts) {
  struct Seen {
    absl::Status slept, timed_out, in_time;
  } seen;
  reactor()->BlockOn(fiber::Run([&seen] {
    const absl::Duration start = MonotonicNow();
    seen.slept = Sleep(absl::Milliseconds(2));
    EXPECT_GE(MonotonicNow() - start, absl::Milliseconds(2));
    Event never;
    seen.timed_out = fiber::WithTimeout(WaitFor(&never), absl::Milliseconds(2));
    Event set;
    set.Set();
    seen.in_time = fiber::WithTimeout(WaitFor(&set), absl::Seconds(30));
  }));
  EXPECT_TRUE(seen.slept.ok()) << seen.slept;
  EXPECT_TRUE(absl::IsDeadlineExceeded(seen.timed_out)) << seen.timed_out;
  EXPECT_TRUE(seen.in_time.ok()) << seen.in_time;
}

TEST_F(FiberTest, FiberJoinsFiberAndForwardsItsStop) {
  absl::Status inner;
  bool outer_done = false;
  reactor()->BlockOn([](absl::Status* inner, bool* done) -> Task<void> {
    Fiber outer = Spawn([=] {
      Fiber child = Spawn([=] { *inner = Sleep(absl::Hours(1)); });
      Join(child);  // stopping `outer` stops `child`
      *done = true;
    });
    co_await baton::Yield();
    co_await baton::Yield();
    outer.RequestStop();
    co_await outer.Join();
  }(&inner, &outer_done));
  EXPECT_TRUE(absl::IsCancelled(inner)) << inner;
  EXPECT_TRUE(outer_done);
}

TEST_F(FiberTest, NamesAndStopRequested) {
  std::string name;
  bool stopped_before = true;
  reactor()->BlockOn(fiber::Run(
      [&] {
        name = CurrentName();
        stopped_before = StopRequested();
      },
      FiberOptions{.name = "worker", .stack_size = 32 * 1024}));
  EXPECT_EQ(name, "worker");
  EXPECT_FALSE(stopped_before);
  EXPECT_EQ(CurrentName(), "");
}

long RssKiB() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// 10,000 fibers parked at once on one reactor, then all woken.
Task<void> ManyFibers(int n, int* resumed) {
  Event go;
  std::vector<Fiber> fibers;
  fibers.reserve(n);
  for (int i = 0; i < n; ++i) {
    fibers.push_back(Spawn([&] {
      if (Await(WaitFor(&go)).ok()) ++*resumed;
    }));
  }
  co_await baton::Yield();
  co_await baton::Yield();
  EXPECT_EQ(LiveFibers(), static_cast<size_t>(n));
  std::printf("%d parked fibers: RSS %ld KiB\n", n, RssKiB());
  go.Set();
  for (Fiber& f : fibers) co_await f.Join();
}

TEST_F(FiberTest, TenThousandFibersOnOneReactor) {
  constexpr int kFibers = 10000;
  int resumed = 0;
  std::printf("before: RSS %ld KiB\n", RssKiB());
  reactor()->BlockOn(ManyFibers(kFibers, &resumed));
  EXPECT_EQ(resumed, kFibers);
}

// A reactor stopped with fibers parked: cancelling the group unwinds every
// fiber (its stack objects are destroyed), nothing stays behind.
struct Counted {
  explicit Counted(int* live) : live(live) { ++*live; }
  ~Counted() { --*live; }
  int* live;
};

Task<void> StopGroupOfParkedFibers(int n, int* live, int* cancelled) {
  TaskGroup group;
  Event never;
  for (int i = 0; i < n; ++i) {
    group.Spawn(fiber::Run([=, &never] {
      Counted c(live);
      auto held = std::make_unique<std::string>(1000, 'x');  // heap: LSan
      absl::Status s =
          (i % 2 == 0) ? Sleep(absl::Hours(1)) : Await(WaitFor(&never));
      if (absl::IsCancelled(s)) ++*cancelled;
    }));
  }
  co_await baton::Yield();
  co_await baton::Yield();
  co_await baton::Yield();
  EXPECT_EQ(*live, n);
  group.CancelAll();
  co_await group.Join();
}

TEST_F(FiberTest, StoppingParkedFibersUnwindsThemAll) {
  constexpr int kFibers = 200;
  int live = 0, cancelled = 0;
  reactor()->BlockOn(StopGroupOfParkedFibers(kFibers, &live, &cancelled));
  EXPECT_EQ(live, 0);
  EXPECT_EQ(cancelled, kFibers);
}

Task<void> SequentialRuns(int n, int* ran) {
  for (int i = 0; i < n; ++i) co_await fiber::Run([ran] { ++*ran; });
}

TEST_F(FiberTest, ManySequentialRunsFromOneCoroutine) {
  int ran = 0;
  reactor()->BlockOn(SequentialRuns(5000, &ran));
  EXPECT_EQ(ran, 5000);
}

// Captures and names that own memory, through coroutine frames. The
// closure is named first: GCC 12 destroys a temporary owning closure of a
// co_await expression twice (see fiber::Run).
Task<void> RunsWithOwningArguments(int n, std::string* last) {
  for (int i = 0; i < n; ++i) {
    std::string s = "payload number " + std::to_string(i) +
                    " long enough to live on the heap";
    auto fn = [s] { return s; };
    *last = co_await fiber::Run(std::move(fn), FiberOptions{.name = s});
  }
}

TEST_F(FiberTest, OwningCapturesAndNamesSurviveCoroutineFrames) {
  std::string last;
  reactor()->BlockOn(RunsWithOwningArguments(1000, &last));
  EXPECT_EQ(last, "payload number 999 long enough to live on the heap");
}

TEST_F(FiberTest, StacksArePooled) {
  const size_t before = StackPool::ForThisThread().cached();
  for (int i = 0; i < 3; ++i) {
    reactor()->BlockOn(fiber::Run([] {}));
  }
  // One stack serves the three fibers in turn.
  EXPECT_GE(StackPool::ForThisThread().cached(), 1u);
  EXPECT_LE(StackPool::ForThisThread().cached(), before + 1);
}

}  // namespace
}  // namespace baton::fiber
