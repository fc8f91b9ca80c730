// Cooperative cancellation for baton coroutines.
//
// A StopState belongs to one chain of awaiting tasks (a spawned task and every
// Task it awaits). At any instant such a chain is suspended on exactly one
// leaf operation (a kernel I/O, a timer, an event), and that leaf registers a
// StopCallback while it waits. RequestStop() marks the state and invokes the
// callback once; the leaf then asks the kernel to cancel (or, for user-space
// waits, schedules its own resumption). The contract that makes cancellation
// safe: a cancelled operation is still resumed exactly once, by its own final
// completion, and reports what actually happened (it may have completed with
// data before the cancel took effect).
//
//   StopState stop;
//   group.Spawn(Handler(conn), &stop);   // or via TaskGroup, which owns states
//   stop.RequestStop();                   // the handler's pending I/O ends
//                                         // with absl::CancelledError
#ifndef BATON_RUNTIME_STOP_H_
#define BATON_RUNTIME_STOP_H_

namespace baton {

// Invoked at most once, on the reactor thread, when stop is requested while
// the registering operation is pending.
struct StopCallback {
  void (*on_stop)(StopCallback* self) = nullptr;
};

class StopState {
 public:
  StopState() = default;
  StopState(const StopState&) = delete;
  StopState& operator=(const StopState&) = delete;

  bool stop_requested() const { return requested_; }

  // Idempotent. Runs the registered callback (if any) synchronously.
  void RequestStop() {
    if (requested_) return;
    requested_ = true;
    if (StopCallback* cb = callback_) {
      callback_ = nullptr;
      cb->on_stop(cb);
    }
  }

  // Registers the leaf operation this chain now waits on. Callers check
  // stop_requested() first; a state holds one callback at a time.
  void Register(StopCallback* cb) { callback_ = cb; }
  void Unregister(StopCallback* cb) {
    if (callback_ == cb) callback_ = nullptr;
  }

 private:
  bool requested_ = false;
  StopCallback* callback_ = nullptr;
};

}  // namespace baton

#endif  // BATON_RUNTIME_STOP_H_
