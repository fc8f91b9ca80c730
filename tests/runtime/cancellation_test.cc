// Cancellation: StopState itself, and stop requests racing the completion of
// real kernel operations. The contract under test (stop.h, io.h): a
// cancelled operation is resumed exactly once, by its own final completion,
// and reports what really happened; data that arrived is never lost.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "baton/runtime/event.h"
#include "baton/runtime/io.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/stop.h"
#include "baton/runtime/task.h"
#include "baton/runtime/task_group.h"
#include "baton/runtime/timer.h"
#include "runtime/runtime_test_util.h"

namespace baton {
namespace {

using CancellationTest = testutil::ReactorTest;

// --- StopState on its own. ---

struct CountingCallback : StopCallback {
  CountingCallback() {
    on_stop = [](StopCallback* self) {
      ++static_cast<CountingCallback*>(self)->calls;
    };
  }
  int calls = 0;
};

TEST(StopStateTest, RequestStopRunsTheCallbackOnceSynchronously) {
  StopState stop;
  CountingCallback cb;
  EXPECT_FALSE(stop.stop_requested());
  stop.Register(&cb);
  stop.RequestStop();
  EXPECT_TRUE(stop.stop_requested());
  EXPECT_EQ(cb.calls, 1);
  stop.RequestStop();  // Idempotent.
  EXPECT_EQ(cb.calls, 1);
}

TEST(StopStateTest, UnregisteredCallbackIsNotRun) {
  StopState stop;
  CountingCallback cb;
  stop.Register(&cb);
  stop.Unregister(&cb);
  stop.RequestStop();
  EXPECT_TRUE(stop.stop_requested());
  EXPECT_EQ(cb.calls, 0);
}

TEST(StopStateTest, UnregisterOfAnotherCallbackKeepsTheCurrentOne) {
  StopState stop;
  CountingCallback old_cb;
  CountingCallback current;
  stop.Register(&old_cb);
  stop.Register(&current);  // One callback at a time: replaces old_cb.
  stop.Unregister(&old_cb);
  stop.RequestStop();
  EXPECT_EQ(old_cb.calls, 0);
  EXPECT_EQ(current.calls, 1);
}

TEST(StopStateTest, RequestStopWithoutCallback) {
  StopState stop;
  stop.RequestStop();
  EXPECT_TRUE(stop.stop_requested());
}

// --- Helpers for kernel operations. ---

class SocketPair {
 public:
  SocketPair() {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_) != 0) {
      fds_[0] = fds_[1] = -1;
    }
  }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;
  ~SocketPair() {
    for (int fd : fds_) {
      if (fd < 0) continue;
      if (Reactor* r = Reactor::Current()) r->ForgetFd(fd, /*closing=*/true);
      close(fd);
    }
  }
  bool ok() const { return fds_[0] >= 0; }
  int reader() const { return fds_[0]; }
  int writer() const { return fds_[1]; }

 private:
  int fds_[2];
};

bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// Whatever is readable on `fd` right now.
std::string ReadAvailable(int fd) {
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string RandomBytes(std::mt19937& rng, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

constexpr int32_t kNotResumed = INT32_MIN;

// One recv on `fd`, recording the CQE result, how many times the awaiting
// frame got past the await, and how many times the operation was submitted.
struct RecvOutcome {
  int32_t res = kNotResumed;
  int resumed = 0;
  int prepared = 0;
};

Task<void> RecvOnce(int fd, char* buf, size_t cap, RecvOutcome* out) {
  auto op = Io(IoRequest::Recv(fd, buf, cap));
  out->res = co_await op;
  if (op.submitted()) ++out->prepared;
  ++out->resumed;
}

// Adds nesting between a chain's root and its leaf operation.
Task<void> RecvNested(int depth, int fd, char* buf, size_t cap,
                      RecvOutcome* out) {
  if (depth == 0) {
    co_await RecvOnce(fd, buf, cap, out);
  } else {
    co_await RecvNested(depth - 1, fd, buf, cap, out);
  }
}

// --- (a) A stop request racing data arrival on a real recv. ---

struct RaceStats {
  int data = 0;
  int cancelled = 0;
};

Task<void> RecvRacingStop(uint32_t seed, int iterations, Reactor* reactor,
                          RaceStats* stats) {
  std::mt19937 rng(seed);
  for (int it = 0; it < iterations; ++it) {
    SocketPair sp;
    if (!sp.ok()) {
      ADD_FAILURE() << "socketpair: " << strerror(errno);
      co_return;
    }
    const std::string data = RandomBytes(rng, 1 + rng() % 4096);
    std::vector<char> buf(data.size() + 64);
    RecvOutcome out;
    TaskGroup group;
    group.Spawn(RecvOnce(sp.reader(), buf.data(), buf.size(), &out));
    // One turn: the recv is queued but not yet submitted (io_uring). More:
    // the kernel has it armed, waiting for data.
    const int turns = 1 + static_cast<int>(rng() % 3);
    for (int i = 0; i < turns; ++i) co_await Yield();
    // Data and stop in the same turn, in either order.
    if (rng() % 2 == 0) {
      EXPECT_TRUE(WriteAll(sp.writer(), data));
      group.CancelAll();
    } else {
      group.CancelAll();
      EXPECT_TRUE(WriteAll(sp.writer(), data));
    }
    co_await group.Join();

    const std::string trace =
        absl::StrCat("iteration ", it, " turns ", turns, " size ", data.size());
    EXPECT_EQ(out.resumed, 1) << trace;
    EXPECT_EQ(out.prepared, 1) << trace;
    EXPECT_EQ(reactor->inflight(), 0) << trace;
    if (out.res == -ECANCELED) {
      ++stats->cancelled;
      // Nothing was consumed: every byte is still in the socket.
      EXPECT_EQ(ReadAvailable(sp.reader()), data) << trace;
    } else if (out.res > 0 && static_cast<size_t>(out.res) <= data.size()) {
      ++stats->data;
      std::string got(buf.data(), static_cast<size_t>(out.res));
      got += ReadAvailable(sp.reader());
      EXPECT_EQ(got, data) << trace;
    } else {
      ADD_FAILURE() << trace << ": unexpected recv result " << out.res;
    }
    if (::testing::Test::HasFailure()) co_return;
  }
}

TEST_F(CancellationTest, StopRacingRecvCompletionResumesOnce) {
  constexpr int kIterations = 2000;
  const uint32_t seed = testutil::TestSeed();
  SCOPED_TRACE(testing::Message() << "seed=" << seed);
  RaceStats stats;
  reactor()->BlockOn(RecvRacingStop(seed, kIterations, reactor(), &stats));
  EXPECT_EQ(stats.data + stats.cancelled, kIterations);
  RecordProperty("data", stats.data);
  RecordProperty("cancelled", stats.cancelled);
  std::cout << "recv won " << stats.data << ", cancel won " << stats.cancelled
            << " of " << kIterations << "\n";
}

// --- (a') A deadline racing data arrival: data is kept or left unread. ---

Task<absl::StatusOr<size_t>> RecvStatus(int fd, char* buf, size_t cap,
                                        RecvOutcome* out) {
  co_await RecvOnce(fd, buf, cap, out);
  if (out->res == -ECANCELED) co_return absl::CancelledError("recv");
  if (out->res < 0) co_return absl::InternalError(strerror(-out->res));
  co_return static_cast<size_t>(out->res);
}

Task<void> RecvWithTimeout(int fd, char* buf, size_t cap,
                           absl::Duration timeout, RecvOutcome* out,
                           absl::StatusOr<size_t>* result) {
  *result = co_await WithTimeout(RecvStatus(fd, buf, cap, out), timeout);
}

Task<void> DeadlineRacingData(uint32_t seed, int iterations, Reactor* reactor,
                              RaceStats* stats) {
  std::mt19937 rng(seed);
  for (int it = 0; it < iterations; ++it) {
    SocketPair sp;
    if (!sp.ok()) {
      ADD_FAILURE() << "socketpair: " << strerror(errno);
      co_return;
    }
    const std::string data = RandomBytes(rng, 1 + rng() % 1024);
    std::vector<char> buf(data.size() + 64);
    RecvOutcome out;
    absl::StatusOr<size_t> result = absl::UnknownError("not run");
    const absl::Duration timeout = absl::Microseconds(rng() % 200);
    TaskGroup group;
    group.Spawn(RecvWithTimeout(sp.reader(), buf.data(), buf.size(), timeout,
                                &out, &result));
    const int turns = static_cast<int>(rng() % 4);
    for (int i = 0; i < turns; ++i) co_await Yield();
    EXPECT_TRUE(WriteAll(sp.writer(), data));
    co_await group.Join();

    const std::string trace =
        absl::StrCat("iteration ", it, " timeout ",
                     absl::FormatDuration(timeout), " turns ", turns);
    EXPECT_EQ(out.resumed, 1) << trace;
    EXPECT_EQ(reactor->inflight(), 0) << trace;
    if (result.ok()) {
      ++stats->data;
      EXPECT_EQ(out.res, static_cast<int32_t>(*result)) << trace;
      std::string got(buf.data(), *result);
      got += ReadAvailable(sp.reader());
      EXPECT_EQ(got, data) << trace;
    } else if (absl::IsDeadlineExceeded(result.status())) {
      ++stats->cancelled;
      EXPECT_EQ(out.res, -ECANCELED) << trace;
      EXPECT_EQ(ReadAvailable(sp.reader()), data) << trace;
    } else {
      ADD_FAILURE() << trace << ": unexpected " << result.status();
    }
    if (::testing::Test::HasFailure()) co_return;
  }
}

TEST_F(CancellationTest, DeadlineRacingDataNeverLosesBytes) {
  constexpr int kIterations = 1000;
  const uint32_t seed = testutil::TestSeed();
  SCOPED_TRACE(testing::Message() << "seed=" << seed);
  RaceStats stats;
  reactor()->BlockOn(DeadlineRacingData(seed, kIterations, reactor(), &stats));
  EXPECT_EQ(stats.data + stats.cancelled, kIterations);
  std::cout << "data won " << stats.data << ", deadline won " << stats.cancelled
            << " of " << kIterations << "\n";
}

// --- (b) Stop requested before the await: nothing is submitted. ---

Task<void> StopBeforeAwait(Reactor* reactor) {
  SocketPair sp;
  if (!sp.ok()) {
    ADD_FAILURE() << "socketpair: " << strerror(errno);
    co_return;
  }
  // Data is ready: a submitted recv would succeed at once.
  EXPECT_TRUE(WriteAll(sp.writer(), "ready"));
  char buf[16];
  StopState stop;
  stop.RequestStop();

  RecvOutcome direct;
  co_await RecvOnce(sp.reader(), buf, sizeof(buf), &direct).AwaitWith(&stop);
  EXPECT_EQ(direct.res, -ECANCELED);
  EXPECT_EQ(direct.resumed, 1);
  EXPECT_EQ(direct.prepared, 0) << "no SQE for a stopped chain";
  EXPECT_EQ(reactor->inflight(), 0);

  RecvOutcome nested;
  co_await RecvNested(5, sp.reader(), buf, sizeof(buf), &nested)
      .AwaitWith(&stop);
  EXPECT_EQ(nested.res, -ECANCELED);
  EXPECT_EQ(nested.resumed, 1);
  EXPECT_EQ(nested.prepared, 0);

  absl::Status slept = co_await [](absl::Duration d) -> Task<absl::Status> {
    co_return co_await Sleep(d);
  }(absl::Hours(1))
                                                            .AwaitWith(&stop);
  EXPECT_TRUE(absl::IsCancelled(slept)) << slept;
  EXPECT_EQ(reactor->inflight(), 0);

  EXPECT_EQ(ReadAvailable(sp.reader()), "ready");
}

TEST_F(CancellationTest, StopBeforeAwaitCancelsWithoutSubmitting) {
  reactor()->BlockOn(StopBeforeAwait(reactor()));
}

Task<void> CancelIdleRecvs(int n, Reactor* reactor) {
  std::vector<std::unique_ptr<SocketPair>> sockets;
  std::vector<RecvOutcome> outs(n);
  std::vector<char> buf(64 * n);
  TaskGroup group;
  for (int i = 0; i < n; ++i) {
    sockets.push_back(std::make_unique<SocketPair>());
    if (!sockets.back()->ok()) {
      ADD_FAILURE() << "socketpair: " << strerror(errno);
      co_return;
    }
    group.Spawn(RecvNested(i % 4, sockets.back()->reader(), &buf[64 * i], 64,
                           &outs[i]));
  }
  for (int i = 0; i < 3; ++i) co_await Yield();
  EXPECT_EQ(reactor->inflight(), n);
  group.CancelAll();
  co_await group.Join();
  EXPECT_EQ(reactor->inflight(), 0);
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(outs[i].res, -ECANCELED) << i;
    EXPECT_EQ(outs[i].resumed, 1) << i;
  }
}

TEST_F(CancellationTest, CancelAllEndsEveryPendingRecv) {
  reactor()->BlockOn(CancelIdleRecvs(200, reactor()));
}

// --- (c) Event waits. ---

struct WaitOutcome {
  absl::Status status = absl::UnknownError("not resumed");
  int resumed = 0;
};

Task<absl::Status> WaitFor(Event* event) { co_return co_await event->Wait(); }

Task<void> WaitWithStop(Event* event, StopState* stop, WaitOutcome* out) {
  out->status = co_await WaitFor(event).AwaitWith(stop);
  ++out->resumed;
}

Task<void> SomeEventWaitsCancelled() {
  constexpr int kWaiters = 10;
  Event event;
  std::vector<StopState> stops(kWaiters);
  std::vector<WaitOutcome> outs(kWaiters);
  TaskGroup group;
  for (int i = 0; i < kWaiters; ++i) {
    group.Spawn(WaitWithStop(&event, &stops[i], &outs[i]));
  }
  for (int i = 0; i < 3; ++i) co_await Yield();
  for (int i = 0; i < kWaiters; i += 2) stops[i].RequestStop();
  for (int i = 0; i < 3; ++i) co_await Yield();
  for (int i = 0; i < kWaiters; ++i) {
    if (i % 2 == 0) {
      EXPECT_EQ(outs[i].resumed, 1) << i;
      EXPECT_TRUE(absl::IsCancelled(outs[i].status)) << i << outs[i].status;
    } else {
      EXPECT_EQ(outs[i].resumed, 0) << i << " must still be waiting";
    }
  }
  event.Set();
  co_await group.Join();
  for (int i = 0; i < kWaiters; ++i) {
    EXPECT_EQ(outs[i].resumed, 1) << i;
    if (i % 2 == 0) {
      EXPECT_TRUE(absl::IsCancelled(outs[i].status)) << i << outs[i].status;
    } else {
      EXPECT_TRUE(outs[i].status.ok()) << i << outs[i].status;
    }
  }
}

TEST_F(CancellationTest, EventWaitsCancelledIndividually) {
  reactor()->BlockOn(SomeEventWaitsCancelled());
}

// Set() and RequestStop() in the same turn: whichever comes first decides,
// and the waiter is resumed once either way.
Task<void> StopAndSetSameTurn(uint32_t seed, int iterations) {
  std::mt19937 rng(seed);
  for (int it = 0; it < iterations; ++it) {
    constexpr int kWaiters = 8;
    Event event;
    std::vector<StopState> stops(kWaiters);
    std::vector<WaitOutcome> outs(kWaiters);
    std::vector<bool> stop_first(kWaiters);
    TaskGroup group;
    for (int i = 0; i < kWaiters; ++i) {
      group.Spawn(WaitWithStop(&event, &stops[i], &outs[i]));
    }
    co_await Yield();
    co_await Yield();
    std::vector<int> stop_now, stop_later;
    for (int i = 0; i < kWaiters; ++i) {
      switch (rng() % 3) {
        case 0:
          stop_now.push_back(i);
          stop_first[i] = true;
          break;
        case 1:
          stop_later.push_back(i);
          break;
        default:
          break;  // Never stopped.
      }
    }
    for (int i : stop_now) stops[i].RequestStop();
    event.Set();
    for (int i : stop_later) stops[i].RequestStop();
    co_await group.Join();
    for (int i = 0; i < kWaiters; ++i) {
      EXPECT_EQ(outs[i].resumed, 1) << "iteration " << it << " waiter " << i;
      if (stop_first[i]) {
        EXPECT_TRUE(absl::IsCancelled(outs[i].status))
            << "iteration " << it << " waiter " << i << outs[i].status;
      } else {
        EXPECT_TRUE(outs[i].status.ok())
            << "iteration " << it << " waiter " << i << outs[i].status;
      }
    }
    if (::testing::Test::HasFailure()) co_return;
  }
}

TEST_F(CancellationTest, EventSetAndStopInTheSameTurn) {
  const uint32_t seed = testutil::TestSeed();
  SCOPED_TRACE(testing::Message() << "seed=" << seed);
  reactor()->BlockOn(StopAndSetSameTurn(seed, 500));
}

Task<void> EventWaitCancelledViaGroup() {
  Event event;
  TaskGroup group;
  std::vector<WaitOutcome> outs(5);
  for (WaitOutcome& o : outs) {
    group.Spawn([](Event* e, WaitOutcome* out) -> Task<void> {
      out->status = co_await e->Wait();
      ++out->resumed;
    }(&event, &o));
  }
  co_await Yield();
  co_await Yield();
  group.CancelAll();
  event.Set();  // Too late for the cancelled waiters: no second resume.
  co_await group.Join();
  for (const WaitOutcome& o : outs) {
    EXPECT_EQ(o.resumed, 1);
    EXPECT_TRUE(absl::IsCancelled(o.status)) << o.status;
  }
}

TEST_F(CancellationTest, EventWaitsCancelledViaGroup) {
  reactor()->BlockOn(EventWaitCancelledViaGroup());
}

// --- (d) Sleeps. ---

struct SleepOutcome {
  absl::Status status = absl::UnknownError("not resumed");
  int resumed = 0;
};

Task<void> SleepChild(absl::Duration d, SleepOutcome* out) {
  out->status = co_await Sleep(d);
  ++out->resumed;
}

Task<void> SleepCancelledViaGroup(Reactor* reactor) {
  TaskGroup group;
  std::vector<SleepOutcome> outs(20);
  for (SleepOutcome& o : outs) group.Spawn(SleepChild(absl::Hours(1), &o));
  co_await Yield();
  co_await Yield();
  EXPECT_EQ(reactor->timers(), outs.size());
  group.CancelAll();
  co_await group.Join();
  for (const SleepOutcome& o : outs) {
    EXPECT_EQ(o.resumed, 1);
    EXPECT_TRUE(absl::IsCancelled(o.status)) << o.status;
  }
}

TEST_F(CancellationTest, SleepCancelledViaGroup) {
  reactor()->BlockOn(SleepCancelledViaGroup(reactor()));
}

// A zero sleep completes at once: the stop may or may not beat it.
Task<void> StopRacingShortSleep(uint32_t seed, int iterations, Reactor* reactor,
                                RaceStats* stats) {
  std::mt19937 rng(seed);
  for (int it = 0; it < iterations; ++it) {
    TaskGroup group;
    SleepOutcome out;
    group.Spawn(SleepChild(absl::Microseconds(rng() % 3), &out));
    const int turns = 1 + static_cast<int>(rng() % 3);
    for (int i = 0; i < turns; ++i) co_await Yield();
    group.CancelAll();
    co_await group.Join();
    EXPECT_EQ(out.resumed, 1) << "iteration " << it;
    EXPECT_EQ(reactor->inflight(), 0) << "iteration " << it;
    if (out.status.ok()) {
      ++stats->data;
    } else if (absl::IsCancelled(out.status)) {
      ++stats->cancelled;
    } else {
      ADD_FAILURE() << "iteration " << it << ": " << out.status;
    }
    if (::testing::Test::HasFailure()) co_return;
  }
}

TEST_F(CancellationTest, StopRacingShortSleepResumesOnce) {
  constexpr int kIterations = 2000;
  const uint32_t seed = testutil::TestSeed();
  SCOPED_TRACE(testing::Message() << "seed=" << seed);
  RaceStats stats;
  reactor()->BlockOn(
      StopRacingShortSleep(seed, kIterations, reactor(), &stats));
  EXPECT_EQ(stats.data + stats.cancelled, kIterations);
}

// A deadline racing a sleep of about the same length: the result is the
// sleep's success or DeadlineExceeded, never a bare Cancelled.
Task<void> TimeoutRacingSleep(uint32_t seed, int iterations, Reactor* reactor) {
  std::mt19937 rng(seed);
  for (int it = 0; it < iterations; ++it) {
    const absl::Duration sleep = absl::Microseconds(rng() % 100);
    const absl::Duration timeout = absl::Microseconds(rng() % 100);
    absl::Status s = co_await WithTimeout(
        [](absl::Duration d) -> Task<absl::Status> {
          co_return co_await Sleep(d);
        }(sleep),
        timeout);
    EXPECT_TRUE(s.ok() || absl::IsDeadlineExceeded(s))
        << "iteration " << it << ": " << s;
    EXPECT_EQ(reactor->inflight(), 0) << "iteration " << it;
    if (::testing::Test::HasFailure()) co_return;
  }
}

TEST_F(CancellationTest, TimeoutRacingSleep) {
  const uint32_t seed = testutil::TestSeed();
  SCOPED_TRACE(testing::Message() << "seed=" << seed);
  reactor()->BlockOn(TimeoutRacingSleep(seed, 1000, reactor()));
}

}  // namespace
}  // namespace baton
