#include "baton/runtime/task_group.h"

#include <cstdlib>
#include <utility>

#include "baton/runtime/log.h"

namespace baton {

TaskGroup::~TaskGroup() {
  if (size_ != 0) {
    Log("TaskGroup destroyed with %d running children: a missing Join()",
        static_cast<int>(size_));
    std::abort();
  }
}

void TaskGroup::Spawn(Task<void> task) {
  // Runs Run() up to its Yield: the child is linked (so CancelAll and Join
  // see it) before Spawn returns, and its body starts on the next turn.
  Run(this, std::move(task)).handle.resume();
}

internal::RootTask TaskGroup::Run(TaskGroup* group, Task<void> task) {
  Child self{co_await internal::CurrentStopState{}};
  group->Link(&self);
  co_await Yield();
  co_await std::move(task);
  group->Unlink(&self);
}

Task<void> TaskGroup::Join() {
  while (size_ != 0) co_await JoinAwaiter{this};
}

Task<absl::Status> TaskGroup::WaitEmpty() {
  while (size_ != 0) {
    if (absl::Status s = co_await empty_.Wait(); !s.ok()) co_return s;
  }
  co_return absl::OkStatus();
}

void TaskGroup::Link(Child* c) {
  ++size_;
  empty_.Reset();
  c->next = head_;
  if (head_ != nullptr) head_->prev = c;
  head_ = c;
}

void TaskGroup::Unlink(Child* c) {
  if (c->prev != nullptr) c->prev->next = c->next;
  if (c->next != nullptr) c->next->prev = c->prev;
  if (head_ == c) head_ = c->next;
  if (--size_ == 0) {
    std::vector<std::coroutine_handle<>> joiners;
    joiners.swap(joiners_);
    for (auto h : joiners) Reactor::Current()->Post(h);
    empty_.Set();
  }
}

void TaskGroup::CancelAll() {
  for (Child* c = head_; c != nullptr;) {
    Child* next = c->next;  // RequestStop may not unlink synchronously
    c->stop->RequestStop();
    c = next;
  }
}

}  // namespace baton
