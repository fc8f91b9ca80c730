// Fiber stacks: fixed-size, guarded, pooled per thread.
//
// Every fiber runs on a stack of StackPool::Acquire(size): `size` usable
// bytes mmap'd (MAP_NORESERVE) with one PROT_NONE guard page below them, so
// an overflow faults instead of corrupting the neighbouring memory. Only
// touched pages cost RSS: 10,000 idle fibers with 64 KiB stacks reserve
// ~680 MB of address space but use a page or two of memory each. Released
// stacks go back to the pool of the thread (up to kMaxCachedStacks of them),
// so creating a fiber usually makes no system call.
//
// Overflow reports: InstallOverflowHandler() (done by the fiber runtime on
// every thread that runs fibers) installs, once per process, a SIGSEGV
// handler that runs on a per-thread sigaltstack. A fault inside the guard
// page of a registered stack writes
//   baton: stack overflow in fiber '<name>' (stack N bytes)
// to stderr (write(2) only: async-signal-safe), restores the default action
// and lets the fault happen again, so the process dies by SIGSEGV with a
// core as usual. Other faults go to the previous handler (or the default
// action) unchanged.
//
// Thread affinity: a pool and its registry belong to one thread; a stack is
// released on the thread that acquired it.
//
//   Stack s = StackPool::ForThisThread().Acquire(64 * 1024);
//   GuardRegistration g(s, "parser");   // names the stack for reports
//   ...
//   StackPool::ForThisThread().Release(s);
#ifndef BATON_FIBER_STACK_H_
#define BATON_FIBER_STACK_H_

#include <cstddef>
#include <vector>

namespace baton::fiber {

// 64 KiB: room for typical parsing and protocol code (a few KiB of frames,
// some small buffers on the stack) with a wide margin, while keeping the
// address space of many idle fibers moderate. Handlers that recurse deeply
// or keep big buffers on the stack ask for more (FiberOptions::stack_size).
inline constexpr size_t kDefaultStackSize = 64 * 1024;
inline constexpr size_t kMaxCachedStacks = 1024;

struct Stack {
  char* base = nullptr;  // the mapping: guard page first
  size_t size = 0;       // usable bytes, above the guard page
  char* bottom() const;  // lowest usable byte
  char* top() const { return bottom() + size; }
  size_t guard_size() const;
};

class StackPool {
 public:
  static StackPool& ForThisThread();
  StackPool() = default;
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;
  ~StackPool();

  // `size` is rounded up to whole pages. Aborts if mmap fails (out of
  // address space or map count: not recoverable for the caller).
  Stack Acquire(size_t size);
  void Release(Stack stack);

  size_t cached() const { return free_.size(); }
  // Stacks handed out and not yet released (for leak checks in tests).
  size_t outstanding() const { return outstanding_; }

 private:
  std::vector<Stack> free_;
  size_t outstanding_ = 0;
};

// Names a stack's guard page for overflow reports while it lives. Not
// copyable; registers on construction, unregisters on destruction (same
// thread). The name is truncated to 63 bytes.
class GuardRegistration {
 public:
  GuardRegistration(const Stack& stack, const char* name);
  ~GuardRegistration();
  GuardRegistration(const GuardRegistration&) = delete;
  GuardRegistration& operator=(const GuardRegistration&) = delete;

 private:
  friend struct GuardList;
  const char* lo_;
  const char* hi_;
  size_t stack_size_;
  char name_[64];
  GuardRegistration* prev_ = nullptr;
  GuardRegistration* next_ = nullptr;
};

// Installs the SIGSEGV handler (once per process) and a sigaltstack for the
// calling thread (once per thread, unless it already has one).
void InstallOverflowHandler();

}  // namespace baton::fiber

#endif  // BATON_FIBER_STACK_H_
