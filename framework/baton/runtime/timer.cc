#include "baton/runtime/timer.h"

namespace baton {
namespace internal {

Deadline::Deadline() {
  fire = &Deadline::OnFire;
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
  reactor_ = Reactor::Current();
  reactor_->AddTimer(this, timeout);
}

void Deadline::Disarm() {
  if (outer_ != nullptr) {
    outer_->Unregister(this);
    outer_ = nullptr;
  }
  if (reactor_ != nullptr) reactor_->RemoveTimer(this);
}

void Deadline::OnFire(Timer* t) {
  auto* self = static_cast<Deadline*>(t);
  self->fired_ = true;
  self->inner.RequestStop();
}

void Deadline::OnOuterStop(StopCallback* cb) {
  static_cast<Deadline*>(cb)->inner.RequestStop();
}

}  // namespace internal
}  // namespace baton
