// Tests for Task<T>: laziness, results, frame ownership, symmetric transfer
// (deep chains must not grow the stack) and StopState inheritance.
#include "baton/runtime/task.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <coroutine>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/stop.h"
#include "baton/runtime/timer.h"
#include "runtime/runtime_test_util.h"

namespace baton {
namespace {

using testutil::ReactorTest;

// A foreign (non-baton) coroutine that starts eagerly and awaits one Task.
// It drives tasks that never suspend on anything but other Tasks, so most
// Task tests need no reactor. Its promise has no StopState. The frame stays
// alive at its final suspension point until the Driver is destroyed, which
// also lets a test destroy a chain that is suspended midway.
class Driver {
 public:
  struct promise_type {
    Driver get_return_object() {
      return Driver(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() noexcept { std::terminate(); }
  };

  Driver(Driver&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Driver& operator=(Driver&&) = delete;
  ~Driver() {
    if (handle_) handle_.destroy();
  }

  bool done() const { return handle_.done(); }

 private:
  explicit Driver(std::coroutine_handle<promise_type> h) : handle_(h) {}
  std::coroutine_handle<promise_type> handle_;
};

template <typename T>
Driver DriveInto(Task<T> task, std::optional<T>* out) {
  out->emplace(co_await std::move(task));
}

Driver DriveVoid(Task<void> task, bool* done) {
  co_await std::move(task);
  *done = true;
}

// The task's result, or nullopt if it suspended on something other than a
// Task (which would need a reactor).
template <typename T>
std::optional<T> SyncWait(Task<T> task) {
  std::optional<T> out;
  Driver driver = DriveInto(std::move(task), &out);
  if (!driver.done()) return std::nullopt;
  return out;
}

bool SyncWaitVoid(Task<void> task) {
  bool done = false;
  Driver driver = DriveVoid(std::move(task), &done);
  return driver.done() && done;
}

// Suspends forever (nothing ever resumes it).
struct Park {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  void await_resume() const noexcept {}
};

// Counts constructions and destructions of Counted objects.
struct Counts {
  int constructed = 0;
  int destroyed = 0;
  int live() const { return constructed - destroyed; }
};

class Counted {
 public:
  explicit Counted(Counts* counts) : counts_(counts) { ++counts_->constructed; }
  Counted(const Counted& other) : counts_(other.counts_) {
    ++counts_->constructed;
  }
  Counted(Counted&& other) noexcept : counts_(other.counts_) {
    ++counts_->constructed;
  }
  Counted& operator=(const Counted&) = delete;
  ~Counted() { ++counts_->destroyed; }

 private:
  Counts* counts_;
};

// Runs `fn` on a new thread with a stack of `stack_bytes`, so a chain of
// awaits that grew the stack per await would overflow it.
void RunWithStack(size_t stack_bytes, std::function<void()> fn) {
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, stack_bytes), 0);
  pthread_t thread;
  int err = pthread_create(
      &thread, &attr,
      [](void* arg) -> void* {
        (*static_cast<std::function<void()>*>(arg))();
        return nullptr;
      },
      &fn);
  pthread_attr_destroy(&attr);
  ASSERT_EQ(err, 0) << strerror(err);
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
}

[[gnu::noinline]] uintptr_t StackAddress() {
  return reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
}

// A minimal symmetric-transfer task, independent of baton, compiled with the
// same flags: tells whether this compiler and build mode turn the transfer
// into a real tail call. GCC before 15 does so only with -O2 or higher and
// without AddressSanitizer; at -O0/-O1 or under ASan every transfer is a
// nested call, whatever the library does.
class ReferenceTask {
 public:
  struct promise_type {
    ReferenceTask get_return_object() {
      return ReferenceTask(
          std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    struct Final {
      bool await_ready() noexcept { return false; }
      std::coroutine_handle<> await_suspend(
          std::coroutine_handle<promise_type> h) noexcept {
        std::coroutine_handle<> next = h.promise().continuation;
        return next ? next : std::noop_coroutine();
      }
      void await_resume() noexcept {}
    };
    Final final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() noexcept { std::terminate(); }
    std::coroutine_handle<> continuation;
  };
  ReferenceTask(ReferenceTask&& other) noexcept
      : handle_(std::exchange(other.handle_, {})) {}
  ~ReferenceTask() {
    if (handle_) handle_.destroy();
  }
  bool await_ready() noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> c) noexcept {
    handle_.promise().continuation = c;
    return handle_;
  }
  void await_resume() noexcept {}
  void Start() { handle_.resume(); }

 private:
  explicit ReferenceTask(std::coroutine_handle<promise_type> h) : handle_(h) {}
  std::coroutine_handle<promise_type> handle_;
};

ReferenceTask ReferenceNested(int depth, uintptr_t* leaf_stack) {
  if (depth == 0) {
    *leaf_stack = StackAddress();
    co_return;
  }
  co_await ReferenceNested(depth - 1, leaf_stack);
}

// How far the stack grows between depths 1 and 2001: near zero with real
// symmetric transfer, tens of kilobytes without.
constexpr int kProbeDepth = 2000;
constexpr int64_t kMaxGrowth = 16 * 1024;

// Stacks grow down: a positive value is growth.
int64_t Growth(uintptr_t shallow, uintptr_t deep) {
  return static_cast<int64_t>(shallow) - static_cast<int64_t>(deep);
}

bool CompilerMakesTransfersTailCalls() {
  uintptr_t shallow = 0;
  uintptr_t deep = 0;
  ReferenceNested(1, &shallow).Start();
  ReferenceNested(1 + kProbeDepth, &deep).Start();
  return Growth(shallow, deep) < kMaxGrowth;
}

// Small enough that 10000 nested resume() calls could not fit in it; used
// where the compiler provides tail calls. Otherwise the deep tests still
// check results, on a stack big enough for an unoptimized build.
constexpr size_t kSmallStack = 256 * 1024;
constexpr size_t kHugeStack = size_t{256} << 20;

size_t DeepStack() {
  static const bool tail_calls = CompilerMakesTransfersTailCalls();
  return tail_calls ? kSmallStack : kHugeStack;
}

Task<void> SetFlag(bool* flag) {
  *flag = true;
  co_return;
}

Task<int> Add(int a, int b) { co_return a + b; }

Task<int> One() { co_return 1; }

Task<void> Nothing() { co_return; }

TEST(TaskTest, DefaultConstructedIsInvalid) {
  Task<int> task;
  EXPECT_FALSE(task.valid());
}

TEST(TaskTest, BodyDoesNotRunUntilAwaited) {
  bool ran = false;
  Task<void> task = SetFlag(&ran);
  EXPECT_TRUE(task.valid());
  EXPECT_FALSE(ran);

  Task<void> moved = std::move(task);  // Moving does not start it either.
  EXPECT_FALSE(task.valid());          // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(moved.valid());
  EXPECT_FALSE(ran);

  EXPECT_TRUE(SyncWaitVoid(std::move(moved)));
  EXPECT_TRUE(ran);
}

Task<void> LogInner(std::vector<std::string>* log) {
  log->push_back("inner");
  co_return;
}

Task<void> LogOuter(std::vector<std::string>* log) {
  log->push_back("outer start");
  Task<void> inner = LogInner(log);
  log->push_back("inner created");
  co_await std::move(inner);
  log->push_back("outer end");
}

TEST(TaskTest, NestedTaskStartsWhenAwaitedNotWhenCreated) {
  std::vector<std::string> log;
  Task<void> outer = LogOuter(&log);
  EXPECT_TRUE(log.empty());
  ASSERT_TRUE(SyncWaitVoid(std::move(outer)));
  EXPECT_EQ(log, (std::vector<std::string>{"outer start", "inner created",
                                           "inner", "outer end"}));
}

TEST(TaskTest, ReturnsValue) {
  std::optional<int> v = SyncWait(Add(2, 40));
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, 42);
}

Task<std::string> LongString() {
  // Longer than any small-string buffer, so a bad move would show.
  co_return std::string(1000, 'x') + "end";
}

Task<size_t> StringLength() {
  std::string s = co_await LongString();
  co_return s.size();
}

TEST(TaskTest, ReturnsString) {
  std::optional<size_t> n = SyncWait(StringLength());
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 1003u);
}

TEST(TaskTest, VoidTaskCompletes) { EXPECT_TRUE(SyncWaitVoid(Nothing())); }

Task<std::unique_ptr<int>> MakeUnique(int v) {
  auto p = std::make_unique<int>(v);
  co_return std::move(p);
}

Task<std::unique_ptr<int>> IncrementUnique() {
  std::unique_ptr<int> p = co_await MakeUnique(41);
  ++*p;
  co_return std::move(p);
}

TEST(TaskTest, ReturnsMoveOnlyValue) {
  std::optional<std::unique_ptr<int>> p = SyncWait(IncrementUnique());
  ASSERT_TRUE(p.has_value());
  ASSERT_NE(*p, nullptr);
  EXPECT_EQ(**p, 42);
}

// Neither default-constructible nor copyable.
class Token {
 public:
  explicit Token(int id) : id_(id) {}
  Token(Token&&) = default;
  Token& operator=(Token&&) = default;
  Token(const Token&) = delete;
  Token& operator=(const Token&) = delete;
  int id() const { return id_; }

 private:
  int id_;
};

Task<Token> MakeToken(int id) { co_return Token(id); }

TEST(TaskTest, ReturnsNonDefaultConstructibleValue) {
  std::optional<Token> t = SyncWait(MakeToken(9));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->id(), 9);
}

Task<absl::StatusOr<std::unique_ptr<std::string>>> MaybeString(bool ok) {
  if (!ok) co_return absl::NotFoundError("no string");
  co_return std::make_unique<std::string>("yes");
}

TEST(TaskTest, ReturnsStatusOrOfMoveOnly) {
  auto good = SyncWait(MaybeString(true));
  ASSERT_TRUE(good.has_value());
  ASSERT_TRUE(good->ok()) << good->status();
  EXPECT_EQ(***good, "yes");

  auto bad = SyncWait(MaybeString(false));
  ASSERT_TRUE(bad.has_value());
  EXPECT_TRUE(absl::IsNotFound(bad->status())) << bad->status();
}

Task<void> HoldCounted([[maybe_unused]] Counted held, bool* ran) {
  *ran = true;
  co_return;
}

Task<void> LocalCounted(Counts* counts, bool* ran) {
  Counted local(counts);
  *ran = true;
  co_return;
}

TEST(TaskTest, NeverAwaitedTaskFreesItsFrame) {
  Counts params;
  Counts locals;
  bool ran_params = false;
  bool ran_locals = false;
  {
    Task<void> a = HoldCounted(Counted(&params), &ran_params);
    Task<void> b = LocalCounted(&locals, &ran_locals);
    // The parameter copy lives in a's frame; b's body (and local) never ran.
    EXPECT_EQ(params.live(), 1);
    EXPECT_EQ(locals.constructed, 0);
  }
  EXPECT_FALSE(ran_params);
  EXPECT_FALSE(ran_locals);
  EXPECT_GT(params.constructed, 0);
  EXPECT_EQ(params.live(), 0);
  EXPECT_EQ(locals.constructed, 0);
}

TEST(TaskTest, CompletedTaskFreesItsFrameWithTheTask) {
  Counts counts;
  bool ran = false;
  EXPECT_TRUE(SyncWaitVoid(HoldCounted(Counted(&counts), &ran)));
  EXPECT_TRUE(ran);
  EXPECT_GT(counts.constructed, 0);
  EXPECT_EQ(counts.live(), 0);
}

TEST(TaskTest, MoveAssignmentDestroysTheReplacedFrame) {
  Counts first;
  Counts second;
  bool ran = false;
  Task<void> task = HoldCounted(Counted(&first), &ran);
  EXPECT_EQ(first.live(), 1);

  task = HoldCounted(Counted(&second), &ran);
  EXPECT_EQ(first.live(), 0);
  EXPECT_EQ(second.live(), 1);

  Task<void>& alias = task;
  task = std::move(alias);  // Self-move keeps the frame.
  EXPECT_TRUE(task.valid());
  EXPECT_EQ(second.live(), 1);

  task = Task<void>();
  EXPECT_FALSE(task.valid());
  EXPECT_EQ(second.live(), 0);
  EXPECT_FALSE(ran);
}

Task<void> ParkWithLocal(Counts* counts, bool* reached) {
  Counted local(counts);
  *reached = true;
  co_await Park{};
  ADD_FAILURE() << "parked task resumed";
}

Task<void> AwaitParked(Counts* counts, bool* reached) {
  Counted local(counts);
  co_await ParkWithLocal(counts, reached);
  ADD_FAILURE() << "awaiter of a parked task resumed";
}

TEST(TaskTest, DestroyingASuspendedChainFreesEveryFrame) {
  Counts counts;
  bool reached = false;
  {
    bool done = false;
    Driver driver = DriveVoid(AwaitParked(&counts, &reached), &done);
    EXPECT_TRUE(reached);
    EXPECT_FALSE(driver.done());
    EXPECT_FALSE(done);
    EXPECT_EQ(counts.live(), 2);  // One local in each of the two frames.
  }
  EXPECT_EQ(counts.constructed, 2);
  EXPECT_EQ(counts.live(), 0);
}

Task<int64_t> SumSequential(int n) {
  int64_t sum = 0;
  for (int i = 0; i < n; ++i) sum += co_await One();
  co_return sum;
}

TEST(TaskTest, HundredThousandSequentialAwaits) {
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer keeps its own shadow call stack, at most 65536 frames
  // deep (a CHECK fails beyond that), and without tail calls 100000 chained
  // resumptions are that many frames.
  GTEST_SKIP() << "too deep for ThreadSanitizer's shadow stack";
#endif
  constexpr int kAwaits = 100000;
  std::optional<int64_t> sum;
  RunWithStack(DeepStack(), [&] { sum = SyncWait(SumSequential(kAwaits)); });
  ASSERT_TRUE(sum.has_value());
  EXPECT_EQ(*sum, kAwaits);
}

Task<int> Nested(int depth) {
  if (depth == 0) co_return 0;
  co_return 1 + co_await Nested(depth - 1);
}

TEST(TaskTest, RecursionDepthTenThousand) {
  constexpr int kDepth = 10000;
  std::optional<int> depth;
  RunWithStack(DeepStack(), [&] { depth = SyncWait(Nested(kDepth)); });
  ASSERT_TRUE(depth.has_value());
  EXPECT_EQ(*depth, kDepth);
}

Task<void> NestedVoid(int depth, int* leaves) {
  if (depth == 0) {
    ++*leaves;
    co_return;
  }
  co_await NestedVoid(depth - 1, leaves);
}

TEST(TaskTest, VoidRecursionDepthTenThousand) {
  constexpr int kDepth = 10000;
  int leaves = 0;
  bool done = false;
  RunWithStack(DeepStack(),
               [&] { done = SyncWaitVoid(NestedVoid(kDepth, &leaves)); });
  EXPECT_TRUE(done);
  EXPECT_EQ(leaves, 1);
}

Task<void> RecordStack(uintptr_t* out) {
  *out = StackAddress();
  co_return;
}

Task<void> NestedRecordingStack(int depth, uintptr_t* leaf_stack) {
  if (depth == 0) {
    co_await RecordStack(leaf_stack);
    co_return;
  }
  co_await NestedRecordingStack(depth - 1, leaf_stack);
}

Task<void> SequentialRecordingStack(int n, uintptr_t* first, uintptr_t* last) {
  co_await RecordStack(first);
  for (int i = 0; i < n; ++i) co_await RecordStack(last);
}

TEST(TaskTest, ChainsOfAwaitsDoNotGrowTheStack) {
  if (!CompilerMakesTransfersTailCalls()) {
    GTEST_SKIP() << "this compiler/build mode does not emit symmetric "
                    "transfer as a tail call (GCC < 15 at -O0/-O1 or with "
                    "ASan), so no coroutine library can keep the stack "
                    "constant here; the deep tests above still check results";
  }
  uintptr_t shallow = 0;
  uintptr_t deep = 0;
  ASSERT_TRUE(SyncWaitVoid(NestedRecordingStack(1, &shallow)));
  ASSERT_TRUE(SyncWaitVoid(NestedRecordingStack(1 + kProbeDepth, &deep)));
  EXPECT_LT(Growth(shallow, deep), kMaxGrowth) << "nested awaits";

  uintptr_t first = 0;
  uintptr_t last = 0;
  ASSERT_TRUE(
      SyncWaitVoid(SequentialRecordingStack(kProbeDepth, &first, &last)));
  EXPECT_LT(Growth(first, last), kMaxGrowth) << "sequential awaits";
}

Task<int> NestedYield(int depth) {
  if (depth == 0) {
    co_await Yield();  // The whole chain is resumed from the reactor.
    co_return 0;
  }
  co_return 1 + co_await NestedYield(depth - 1);
}

TEST(TaskTest, DeepChainResumedFromReactor) {
  constexpr int kDepth = 10000;
  std::optional<int> depth;
  bool skipped = false;
  RunWithStack(DeepStack(), [&] {
    // The reactor must be created on the thread that runs it.
    auto reactor = Reactor::Create();
    if (absl::IsUnavailable(reactor.status())) {
      skipped = true;
      return;
    }
    ASSERT_TRUE(reactor.ok()) << reactor.status();
    depth = (*reactor)->BlockOn(NestedYield(kDepth));
    EXPECT_EQ((*reactor)->inflight(), 0);
  });
  if (skipped) GTEST_SKIP() << "io_uring unavailable";
  ASSERT_TRUE(depth.has_value());
  EXPECT_EQ(*depth, kDepth);
}

Task<StopState*> CurrentStop() {
  co_return co_await internal::CurrentStopState{};
}

Task<StopState*> CurrentStopTwoDeep() { co_return co_await CurrentStop(); }

TEST(TaskTest, TaskAwaitedByForeignCoroutineHasNoStopState) {
  std::optional<StopState*> stop = SyncWait(CurrentStop());
  ASSERT_TRUE(stop.has_value());
  EXPECT_EQ(*stop, nullptr);
}

struct StopStates {
  StopState* outer = nullptr;
  StopState* child = nullptr;
  StopState* grandchild = nullptr;
  StopState* with_own = nullptr;
  StopState* with_own_nested = nullptr;
  StopState* outer_after = nullptr;
};

Task<StopStates> CollectStopStates(StopState* own) {
  StopStates s;
  s.outer = co_await internal::CurrentStopState{};
  s.child = co_await CurrentStop();
  s.grandchild = co_await CurrentStopTwoDeep();
  s.with_own = co_await CurrentStop().AwaitWith(own);
  s.with_own_nested = co_await CurrentStopTwoDeep().AwaitWith(own);
  s.outer_after = co_await internal::CurrentStopState{};
  co_return s;
}

class TaskReactorTest : public ReactorTest {};

TEST_F(TaskReactorTest, AwaitedTasksInheritTheChainsStopState) {
  StopState own;
  StopStates s = reactor()->BlockOn(CollectStopStates(&own));
  ASSERT_NE(s.outer, nullptr);  // BlockOn's root owns one.
  EXPECT_EQ(s.child, s.outer);
  EXPECT_EQ(s.grandchild, s.outer);
  EXPECT_EQ(s.with_own, &own);
  EXPECT_EQ(s.with_own_nested, &own);
  EXPECT_EQ(s.outer_after, s.outer);
}

// Tasks, a kernel timer and more tasks in one chain (from the old smoke
// test).
Task<absl::StatusOr<int>> ChainWithSleep() {
  int x = co_await Add(1, 2);
  absl::Status s = co_await Sleep(absl::Milliseconds(1));
  if (!s.ok()) co_return s;
  co_return x + co_await Add(3, 4);
}

TEST_F(TaskReactorTest, ChainWithSleep) {
  absl::StatusOr<int> v = reactor()->BlockOn(ChainWithSleep());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, 10);
}

Task<int64_t> SumWithYields(int n) {
  int64_t sum = 0;
  for (int i = 0; i < n; ++i) {
    sum += co_await One();
    if (i % 1000 == 0) co_await Yield();
  }
  co_return sum;
}

TEST_F(TaskReactorTest, SequentialAwaitsInterleavedWithYields) {
  constexpr int kAwaits = 100000;
  EXPECT_EQ(reactor()->BlockOn(SumWithYields(kAwaits)), kAwaits);
}

}  // namespace
}  // namespace baton
