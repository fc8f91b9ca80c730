// Micro-benchmarks of fibers (framework/baton/fiber/) against coroutines and
// raw Boost.Context switches. Run: ./build/bench/fiber_benchmark
//
// - BM_RawContextSwitch: one boost::context::fiber resume and switch back
//   (the floor under any fiber park/resume).
// - BM_CoroutineYield / BM_FiberYield: a coroutine (resp. a fiber) yields to
//   the reactor and is resumed on the next turn: the same ready-queue round
//   trip, plus for the fiber a Task awaited through fiber::Await and two
//   context switches.
// - BM_FiberParkResume: a fiber parks on an Event that another fiber sets,
//   ping-pong (a park and a resume per item, no loop turn in between for
//   the waker).
// - BM_CoroutineCreateDestroy / BM_FiberCreateDestroy: start, finish and
//   free one coroutine frame, resp. one fiber with a pooled stack (joined by
//   a coroutine through fiber::Run).
#include <benchmark/benchmark.h>

#include <boost/context/fiber.hpp>
#include <cstdlib>
#include <memory>
#include <utility>

#include "baton/fiber/fiber.h"
#include "baton/runtime/event.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task.h"

namespace baton {
namespace {

std::unique_ptr<Reactor> MakeReactor() {
  auto r = Reactor::Create();
  if (!r.ok()) std::abort();
  return *std::move(r);
}

void BM_RawContextSwitch(benchmark::State& state) {
  namespace ctx = boost::context;
  bool stop = false;
  ctx::fiber f([&stop](ctx::fiber&& caller) {
    while (!stop) caller = std::move(caller).resume();
    return std::move(caller);
  });
  for (auto _ : state) f = std::move(f).resume();
  stop = true;
  f = std::move(f).resume();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawContextSwitch);

constexpr int kBatch = 10000;

Task<void> CoroutineYields(int n) {
  for (int i = 0; i < n; ++i) co_await Yield();
}

void BM_CoroutineYield(benchmark::State& state) {
  auto reactor = MakeReactor();
  for (auto _ : state) reactor->BlockOn(CoroutineYields(kBatch));
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_CoroutineYield);

void BM_FiberYield(benchmark::State& state) {
  auto reactor = MakeReactor();
  for (auto _ : state) {
    reactor->BlockOn(fiber::Run([] {
      for (int i = 0; i < kBatch; ++i) fiber::Yield();
    }));
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_FiberYield);

Task<absl::Status> WaitFor(Event* e) { co_return co_await e->Wait(); }

Task<void> PingPong(int n) {
  Event ping, pong;
  fiber::Fiber a = fiber::Spawn([&] {
    for (int i = 0; i < n; ++i) {
      ping.Set();
      (void)fiber::Await(WaitFor(&pong));
      pong.Reset();
    }
  });
  fiber::Fiber b = fiber::Spawn([&] {
    for (int i = 0; i < n; ++i) {
      (void)fiber::Await(WaitFor(&ping));
      ping.Reset();
      pong.Set();
    }
  });
  co_await a.Join();
  co_await b.Join();
}

void BM_FiberParkResume(benchmark::State& state) {
  auto reactor = MakeReactor();
  for (auto _ : state) reactor->BlockOn(PingPong(kBatch));
  // Each round: both fibers park once and are resumed once.
  state.SetItemsProcessed(state.iterations() * kBatch * 2);
}
BENCHMARK(BM_FiberParkResume);

Task<void> Empty() { co_return; }

Task<void> CoroutinesCreated(int n) {
  for (int i = 0; i < n; ++i) co_await Empty();
}

void BM_CoroutineCreateDestroy(benchmark::State& state) {
  auto reactor = MakeReactor();
  for (auto _ : state) reactor->BlockOn(CoroutinesCreated(kBatch));
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_CoroutineCreateDestroy);

Task<void> FibersCreated(int n) {
  for (int i = 0; i < n; ++i) co_await fiber::Run([] {});
}

void BM_FiberCreateDestroy(benchmark::State& state) {
  auto reactor = MakeReactor();
  for (auto _ : state) reactor->BlockOn(FibersCreated(kBatch));
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_FiberCreateDestroy);

}  // namespace
}  // namespace baton
