// A fiber that overflows its stack dies by SIGSEGV with a report naming it
// (the guard page and the sigaltstack handler of fiber/stack.h), instead of
// hanging or corrupting memory. Runs in a forked child (a death test).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdint>
#include <memory>

#include "baton/fiber/fiber.h"
#include "baton/runtime/reactor.h"

namespace baton::fiber {
namespace {

[[gnu::noinline]] int Recurse(int depth) {
  volatile char frame[256];
  frame[0] = static_cast<char>(depth);
  if (depth == 0) return frame[0];
  return Recurse(depth - 1) + frame[0];  // not a tail call
}

void OverflowInAFiber() {
  auto reactor = Reactor::Create(ReactorOptions::FromEnv());
  if (!reactor.ok()) _exit(3);
  (*reactor)->BlockOn(fiber::Run(
      [] { return Recurse(1 << 24); },
      FiberOptions{.name = "deep-recursion", .stack_size = 64 * 1024}));
  _exit(4);  // not reached
}

void FaultOutsideAGuardPage() {
  auto reactor = Reactor::Create(ReactorOptions::FromEnv());
  if (!reactor.ok()) _exit(3);
  (*reactor)->BlockOn(fiber::Run([] {
    static volatile uintptr_t address = 16;  // opaque to the optimiser
    return *reinterpret_cast<volatile int*>(address);
  }));
  _exit(4);
}

TEST(FiberStackOverflowDeathTest, ReportsTheFiberAndDiesBySigsegv) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(OverflowInAFiber(), ::testing::KilledBySignal(SIGSEGV),
              "baton: stack overflow in fiber 'deep-recursion' \\(stack "
              "65536 bytes\\)");
}

TEST(FiberStackOverflowDeathTest, OtherFaultsAreNotReportedAsOverflows) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizer's own handler reports the fault and exits.
  EXPECT_DEATH(
      FaultOutsideAGuardPage(),
      ::testing::AllOf(::testing::HasSubstr("SEGV"),
                       ::testing::Not(::testing::HasSubstr("stack overflow"))));
#else
  EXPECT_EXIT(FaultOutsideAGuardPage(), ::testing::KilledBySignal(SIGSEGV),
              ::testing::Not(::testing::HasSubstr("stack overflow")));
#endif
}

}  // namespace
}  // namespace baton::fiber
