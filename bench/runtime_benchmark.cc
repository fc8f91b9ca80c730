// Micro-benchmarks of the runtime: coroutine life cycle, awaited chains,
// timers. Run: ./build/bench/runtime_benchmark
#include <benchmark/benchmark.h>

#include "baton/runtime/reactor.h"
#include "baton/runtime/task_group.h"
#include "baton/runtime/timer.h"

namespace baton {
namespace {

std::unique_ptr<Reactor> MakeReactor() {
  auto r = Reactor::Create();
  if (!r.ok()) std::abort();
  return *std::move(r);
}

Task<int> Leaf(int x) { co_return x + 1; }

// Create, start, finish and destroy one coroutine frame per iteration.
Task<int64_t> CreateResumeDestroy(int64_t n) {
  int64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += co_await Leaf(static_cast<int>(i));
  co_return sum;
}

void BM_CoroutineCreateResumeDestroy(benchmark::State& state) {
  auto reactor = MakeReactor();
  constexpr int64_t kBatch = 10000;
  for (auto _ : state) {
    benchmark::DoNotOptimize(reactor->BlockOn(CreateResumeDestroy(kBatch)));
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_CoroutineCreateResumeDestroy);

Task<int> Chain(int depth) {
  if (depth == 0) co_return 0;
  co_return 1 + co_await Chain(depth - 1);
}

// A chain of `depth` nested awaited tasks: one frame and one symmetric
// transfer each way per level.
void BM_AwaitChain(benchmark::State& state) {
  auto reactor = MakeReactor();
  const int depth = static_cast<int>(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(reactor->BlockOn(Chain(depth)));
  state.SetItemsProcessed(state.iterations() * depth);
}
BENCHMARK(BM_AwaitChain)->Arg(10)->Arg(1000);

Task<void> Sleeps(int n) {
  for (int i = 0; i < n; ++i) (void)co_await Sleep(absl::ZeroDuration());
}

// A zero-length timer inserted and fired through the ring (one SQE, one CQE).
void BM_TimerInsertFire(benchmark::State& state) {
  auto reactor = MakeReactor();
  constexpr int kBatch = 1000;
  for (auto _ : state) reactor->BlockOn(Sleeps(kBatch));
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_TimerInsertFire);

Task<void> ManyTimers(int n) {
  TaskGroup group;
  for (int i = 0; i < n; ++i) {
    group.Spawn(
        []() -> Task<void> { (void)co_await Sleep(absl::Microseconds(1)); }());
  }
  co_await group.Join();
}

// Many concurrent timers (spawned tasks), as with per-connection deadlines.
void BM_ConcurrentTimers(benchmark::State& state) {
  auto reactor = MakeReactor();
  const int n = static_cast<int>(state.range(0));
  for (auto _ : state) reactor->BlockOn(ManyTimers(n));
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_ConcurrentTimers)->Arg(1000);

}  // namespace
}  // namespace baton
