// Event: a reactor-local flag that coroutines can wait for.
//
// Set() wakes every waiter (on the next loop turn); Reset() lowers the flag
// for later waits. Wait() returns absl::OkStatus() once the event is set, or
// absl::CancelledError if the waiting chain is stopped first. Single-thread:
// use from the reactor that owns the waiters (cross-thread code uses
// Reactor::Schedule to reach it).
//
//   Event ready;
//   ... co_await ready.Wait();   // elsewhere: ready.Set();
#ifndef BATON_RUNTIME_EVENT_H_
#define BATON_RUNTIME_EVENT_H_

#include <coroutine>

#include "absl/status/status.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/stop.h"
#include "baton/runtime/task.h"

namespace baton {

class Event {
  struct Waiter;

 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() { assert(head_ == nullptr && "Event destroyed with waiters"); }

  bool is_set() const { return set_; }
  void Set();
  void Reset() { set_ = false; }

  class [[nodiscard]] WaitAwaiter : private StopCallback {
   public:
    explicit WaitAwaiter(Event* event) : event_(event) {
      on_stop = &WaitAwaiter::OnStop;
    }
    bool await_ready() const noexcept { return event_->set_; }
    template <typename P>
    bool await_suspend(std::coroutine_handle<P> h) {
      stop_ = internal::StopStateOf(h);
      if (stop_ != nullptr && stop_->stop_requested()) {
        cancelled_ = true;
        return false;
      }
      handle_ = h;
      event_->Link(this);
      if (stop_ != nullptr) stop_->Register(this);
      return true;
    }
    absl::Status await_resume() const {
      return cancelled_ ? absl::CancelledError("wait cancelled")
                        : absl::OkStatus();
    }

   private:
    friend class Event;
    static void OnStop(StopCallback* cb);
    void Wake();

    Event* event_;
    StopState* stop_ = nullptr;
    std::coroutine_handle<> handle_;
    bool cancelled_ = false;
    WaitAwaiter* prev_ = nullptr;
    WaitAwaiter* next_ = nullptr;
  };

  WaitAwaiter Wait() { return WaitAwaiter(this); }

 private:
  void Link(WaitAwaiter* w);
  void Unlink(WaitAwaiter* w);

  bool set_ = false;
  WaitAwaiter* head_ = nullptr;
};

inline void Event::Link(WaitAwaiter* w) {
  w->next_ = head_;
  if (head_ != nullptr) head_->prev_ = w;
  head_ = w;
}

inline void Event::Unlink(WaitAwaiter* w) {
  if (w->prev_ != nullptr) w->prev_->next_ = w->next_;
  if (w->next_ != nullptr) w->next_->prev_ = w->prev_;
  if (head_ == w) head_ = w->next_;
  w->prev_ = w->next_ = nullptr;
}

inline void Event::WaitAwaiter::Wake() {
  event_->Unlink(this);
  if (stop_ != nullptr) stop_->Unregister(this);
  Reactor::Current()->Post(handle_);
}

inline void Event::WaitAwaiter::OnStop(StopCallback* cb) {
  auto* self = static_cast<WaitAwaiter*>(cb);
  self->cancelled_ = true;
  self->Wake();
}

inline void Event::Set() {
  set_ = true;
  while (head_ != nullptr) head_->Wake();
}

}  // namespace baton

#endif  // BATON_RUNTIME_EVENT_H_
