// RunOn: await a task that runs on another reactor's thread.
//
// `co_await RunOn(other, MakeTask())` schedules the task on `other`, runs it
// there as a root task, and resumes the caller on its own reactor with the
// result. Both reactors must be running. The remote task is not cancelled
// when the caller's chain is stopped (it always runs to completion), so keep
// remote tasks short or give them their own deadline. When `other` is the
// caller's reactor the task is simply awaited.
//
//   size_t n = co_await RunOn(shard_reactor, CountConnections(shard));
#ifndef BATON_RUNTIME_RUN_ON_H_
#define BATON_RUNTIME_RUN_ON_H_

#include <coroutine>
#include <optional>
#include <type_traits>
#include <utility>

#include "baton/runtime/reactor.h"
#include "baton/runtime/task.h"

namespace baton {
namespace internal {

template <typename T>
struct RemoteResult {
  std::optional<T> value;
};
template <>
struct RemoteResult<void> {
  std::optional<bool> value;
};

template <typename T>
RootTask RunRemote(Task<T> task, RemoteResult<T>* out, Reactor* origin,
                   std::coroutine_handle<> waiter) {
  if constexpr (std::is_void_v<T>) {
    co_await std::move(task);
    out->value.emplace(true);
  } else {
    out->value.emplace(co_await std::move(task));
  }
  origin->Schedule([waiter] { waiter.resume(); });
}

// Holds pointers only: GCC 12 mishandles awaiter temporaries that own a
// Task in a co_await expression (the frame ends up destroyed twice).
template <typename T>
struct RemoteAwaiter {
  Reactor* target;
  Task<T>* task;
  RemoteResult<T>* result;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    Reactor* origin = Reactor::Current();
    target->Schedule([task = task, result = result, origin, h]() mutable {
      RunRemote(std::move(*task), result, origin, h).handle.resume();
    });
  }
  void await_resume() const noexcept {}
};

}  // namespace internal

template <typename T>
Task<T> RunOn(Reactor* target, Task<T> task) {
  if (target == Reactor::Current()) co_return co_await std::move(task);
  internal::RemoteResult<T> result;
  co_await internal::RemoteAwaiter<T>{target, &task, &result};
  if constexpr (!std::is_void_v<T>) co_return std::move(*result.value);
}

}  // namespace baton

#endif  // BATON_RUNTIME_RUN_ON_H_
