#include "baton/fiber/stack.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace baton::fiber {
namespace {

size_t PageSize() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

size_t RoundToPages(size_t n) {
  const size_t page = PageSize();
  return (n + page - 1) / page * page;
}

}  // namespace

char* Stack::bottom() const { return base + guard_size(); }
size_t Stack::guard_size() const { return PageSize(); }

StackPool& StackPool::ForThisThread() {
  thread_local StackPool pool;
  return pool;
}

StackPool::~StackPool() {
  for (const Stack& s : free_) munmap(s.base, s.size + s.guard_size());
}

Stack StackPool::Acquire(size_t size) {
  size = RoundToPages(size == 0 ? kDefaultStackSize : size);
  ++outstanding_;
  for (size_t i = free_.size(); i > 0; --i) {
    if (free_[i - 1].size == size) {
      Stack s = free_[i - 1];
      free_[i - 1] = free_.back();
      free_.pop_back();
      return s;
    }
  }
  const size_t total = size + PageSize();
  void* p =
      mmap(nullptr, total, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) {
    std::fprintf(stderr, "baton: cannot map a fiber stack of %zu bytes: %s\n",
                 total, std::strerror(errno));
    std::abort();
  }
  if (mprotect(p, PageSize(), PROT_NONE) != 0) {
    std::fprintf(stderr, "baton: cannot protect a fiber guard page: %s\n",
                 std::strerror(errno));
    std::abort();
  }
  return Stack{static_cast<char*>(p), size};
}

void StackPool::Release(Stack stack) {
  --outstanding_;
  if (free_.size() < kMaxCachedStacks) {
    free_.push_back(stack);
  } else {
    munmap(stack.base, stack.size + stack.guard_size());
  }
}

// The guard pages of this thread's live fibers. Read by the SIGSEGV handler
// on the faulting thread (an overflow is synchronous: the list is never
// half-updated when it runs).
struct GuardList {
  static GuardRegistration*& Head() {
    thread_local GuardRegistration* head = nullptr;
    return head;
  }
  static const GuardRegistration* Find(const char* addr) {
    for (const GuardRegistration* g = Head(); g != nullptr; g = g->next_) {
      if (addr >= g->lo_ && addr < g->hi_) return g;
    }
    return nullptr;
  }
  static void Report(const GuardRegistration* g);
};

GuardRegistration::GuardRegistration(const Stack& stack, const char* name)
    : lo_(stack.base), hi_(stack.bottom()), stack_size_(stack.size) {
  size_t n = name == nullptr ? 0 : std::strlen(name);
  if (n >= sizeof(name_)) n = sizeof(name_) - 1;
  if (n > 0) std::memcpy(name_, name, n);
  name_[n] = '\0';
  GuardRegistration*& head = GuardList::Head();
  next_ = head;
  if (head != nullptr) head->prev_ = this;
  head = this;
}

GuardRegistration::~GuardRegistration() {
  GuardRegistration*& head = GuardList::Head();
  if (prev_ != nullptr) prev_->next_ = next_;
  if (next_ != nullptr) next_->prev_ = prev_;
  if (head == this) head = next_;
}

namespace {

struct sigaction previous_segv;
std::once_flag install_once;

// Async-signal-safe formatting: only write(2) and local buffers.
void WriteAll(const char* s, size_t n) {
  while (n > 0) {
    ssize_t w = write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

void WriteStr(const char* s) { WriteAll(s, std::strlen(s)); }

void WriteNumber(size_t v) {
  char buf[24];
  size_t i = sizeof(buf);
  do {
    buf[--i] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  WriteAll(buf + i, sizeof(buf) - i);
}

void OnSegv(int sig, siginfo_t* info, void* context) {
  const GuardRegistration* g =
      GuardList::Find(static_cast<const char*>(info->si_addr));
  if (g != nullptr) {
    GuardList::Report(g);
    // Die by SIGSEGV as usual: the faulting instruction runs again with the
    // default action in place.
    signal(SIGSEGV, SIG_DFL);
    return;
  }
  // Not ours: hand the fault to whoever handled it before (a sanitizer), or
  // let it happen again under the previous disposition.
  if ((previous_segv.sa_flags & SA_SIGINFO) != 0 &&
      previous_segv.sa_sigaction != nullptr) {
    previous_segv.sa_sigaction(sig, info, context);
    return;
  }
  if (previous_segv.sa_handler != SIG_DFL &&
      previous_segv.sa_handler != SIG_IGN &&
      previous_segv.sa_handler != nullptr) {
    previous_segv.sa_handler(sig);
    return;
  }
  signal(SIGSEGV, SIG_DFL);
}

// The alternate signal stack of this thread, if the runtime made it.
struct AltStack {
  void* mem = nullptr;
  size_t size = 0;
  ~AltStack() {
    if (mem == nullptr) return;
    stack_t off{};
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, nullptr);
    munmap(mem, size);
  }
};

}  // namespace

void GuardList::Report(const GuardRegistration* g) {
  WriteStr("baton: stack overflow in fiber '");
  WriteStr(g->name_);
  WriteStr("' (stack ");
  WriteNumber(g->stack_size_);
  WriteStr(" bytes)\n");
}

void InstallOverflowHandler() {
  thread_local AltStack alt;
  thread_local bool checked = false;
  if (!checked) {
    checked = true;
    stack_t current{};
    const size_t want = RoundToPages(64 * 1024);
    if (sigaltstack(nullptr, &current) == 0 &&
        ((current.ss_flags & SS_DISABLE) != 0 || current.ss_size < want)) {
      void* p = mmap(nullptr, want, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p != MAP_FAILED) {
        stack_t ss{};
        ss.ss_sp = p;
        ss.ss_size = want;
        if (sigaltstack(&ss, nullptr) == 0) {
          alt.mem = p;
          alt.size = want;
        } else {
          munmap(p, want);
        }
      }
    }
  }
  std::call_once(install_once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = &OnSegv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous_segv);
  });
}

}  // namespace baton::fiber
