// TaskGroup: structured ownership of spawned tasks.
//
// Spawn() starts a task on the current reactor (on its next loop turn) as a
// child of the group, with its own StopState. CancelAll() requests stop on
// every running child: whatever each one waits on ends early (kernel
// operations are cancelled and their final CQEs still awaited). Join() waits
// until every child has finished, and is itself not cancellable, so a group
// is never destroyed while a child can still run. Destroying a group that
// still has children is a bug and aborts.
//
//   TaskGroup connections;
//   connections.Spawn(Serve(std::move(conn)));
//   ...
//   connections.CancelAll();
//   co_await connections.Join();
#ifndef BATON_RUNTIME_TASK_GROUP_H_
#define BATON_RUNTIME_TASK_GROUP_H_

#include <coroutine>
#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "baton/runtime/event.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task.h"

namespace baton {

class TaskGroup {
 public:
  TaskGroup() = default;
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;
  ~TaskGroup();

  void Spawn(Task<void> task);
  void CancelAll();
  size_t size() const { return size_; }

  // Resumes once the group is empty at the moment the joiner runs (a child
  // spawned after the last one ended is waited for too).
  Task<void> Join();

  // Like Join() but ends early with absl::CancelledError when the waiting
  // chain is stopped (the children keep running): for bounded waits such as
  // WithTimeout(group.WaitEmpty(), grace).
  Task<absl::Status> WaitEmpty();

 private:
  struct Child {
    StopState* stop;
    Child* prev = nullptr;
    Child* next = nullptr;
  };
  struct JoinAwaiter {
    TaskGroup* group;
    bool await_ready() const noexcept { return group->size_ == 0; }
    void await_suspend(std::coroutine_handle<> h) {
      group->joiners_.push_back(h);
    }
    void await_resume() const noexcept {}
  };
  static internal::RootTask Run(TaskGroup* group, Task<void> task);
  void Link(Child* c);
  void Unlink(Child* c);

  Child* head_ = nullptr;
  size_t size_ = 0;
  std::vector<std::coroutine_handle<>> joiners_;
  Event empty_;  // set while size_ == 0, for WaitEmpty
};

}  // namespace baton

#endif  // BATON_RUNTIME_TASK_GROUP_H_
