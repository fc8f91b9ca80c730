#include "baton/runtime/timer.h"

namespace baton {

__kernel_timespec ToKernelTimespec(absl::Duration d) {
  if (d < absl::ZeroDuration()) d = absl::ZeroDuration();
  timespec ts = absl::ToTimespec(d);
  return __kernel_timespec{.tv_sec = ts.tv_sec, .tv_nsec = ts.tv_nsec};
}

namespace internal {

Deadline::Deadline() : Operation(&Deadline::OnTimer) {
  on_stop = &Deadline::OnOuterStop;
}

void Deadline::Arm(StopState* outer, absl::Duration timeout) {
  outer_ = outer;
  if (outer_ != nullptr) {
    if (outer_->stop_requested()) {
      inner.RequestStop();
    } else {
      outer_->Register(this);
    }
  }
  ts_ = ToKernelTimespec(timeout);
  reactor_ = Reactor::Current();
  io_uring_prep_timeout(reactor_->PrepareSqe(this), &ts_, 0, 0);
  pending_ = true;
}

void Deadline::OnTimer(Operation* op, int32_t res, uint32_t /*flags*/) {
  auto* self = static_cast<Deadline*>(op);
  self->pending_ = false;
  if (res == -ETIME) {
    self->fired_ = true;
    self->inner.RequestStop();
  }
  if (self->waiter_) std::exchange(self->waiter_, {}).resume();
}

void Deadline::OnOuterStop(StopCallback* cb) {
  static_cast<Deadline*>(cb)->inner.RequestStop();
}

bool Deadline::DisarmAwaiter::await_ready() noexcept {
  if (d->outer_ != nullptr) d->outer_->Unregister(d);
  if (!d->pending_) return true;
  d->reactor_->CancelOperation(d);
  return false;
}

}  // namespace internal
}  // namespace baton
