#include "baton/net/connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <utility>

#include "absl/strings/str_format.h"
#include "baton/runtime/buffer_ring.h"

namespace baton {
namespace {

constexpr size_t kScratchSize = 16 * 1024;
// An empty inbound buffer larger than this is freed while the connection
// waits, so idle connections hold no buffer.
constexpr size_t kIdleBufferKeep = 4096;

}  // namespace

// --- Waiter ---

void Connection::Waiter::Wake() {
  if (!handle_) return;
  if (stop_ != nullptr) stop_->Unregister(this);
  Reactor::Current()->Post(std::exchange(handle_, {}));
}

void Connection::Waiter::OnStop(StopCallback* cb) {
  auto* self = static_cast<Waiter*>(cb);
  self->cancelled_ = true;
  self->stop_ = nullptr;  // already unregistered by RequestStop
  self->Wake();
}

// --- Construction ---

Connection::Connection(int fd, const ConnectionOptions& options)
    : Connection(fd, options, /*configure_socket=*/true) {}

Connection::Connection(int fd, const ConnectionOptions& options,
                       bool configure_socket)
    : fd_(fd),
      options_(options),
      reactor_(Reactor::Current()),
      created_(MonotonicNow()) {
  if (configure_socket && options_.no_delay && fd_ >= 0) {
    int one = 1;
    // Fails harmlessly on non-TCP sockets (tests use socketpairs too).
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
}

Connection Connection::Adopt(DetachedConnection detached,
                             const ConnectionOptions& options) {
  Connection c(detached.fd, options, /*configure_socket=*/false);
  c.inbound_.Append(detached.inbound);
  c.queued_.Append(detached.outbound);
  c.state_ = std::move(detached.state);
  c.service_ = detached.service;
  c.closing_ = detached.closing;
  c.recv_poll_first_ = true;
  return c;
}

Connection::Connection(Connection&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      options_(other.options_),
      reactor_(other.reactor_),
      inbound_(std::move(other.inbound_)),
      seen_(other.seen_),
      sending_(std::move(other.sending_)),
      queued_(std::move(other.queued_)),
      scratch_(std::move(other.scratch_)),
      state_(std::move(other.state_)),
      service_(other.service_),
      error_(std::move(other.error_)),
      counters_(other.counters_),
      created_(other.created_),
      eof_(other.eof_),
      closing_(other.closing_) {
  assert(!other.started_ && "a Connection moves only before its first use");
  recv_poll_first_ = other.recv_poll_first_;
}

Connection::~Connection() {
  assert(!ops_in_flight() && "destroyed with kernel operations in flight");
  if (fd_ >= 0) {
    if (reactor_ != nullptr) reactor_->ForgetFd(fd_, /*closing=*/true);
    close(fd_);
  }
}

// --- Inbound ---

void Connection::Consume(size_t n) {
  assert(n <= inbound_.size());
  inbound_.Consume(n);
  seen_ = seen_ > n ? seen_ - n : 0;
  // Below the limit again: lift the pause (even if the pausing cancel has
  // not completed yet; its final CQE then re-arms).
  if (recv_paused_ && inbound_.size() < options_.max_inbound) {
    recv_paused_ = false;
    ReleaseHeldBuffers();
    MaybeArmRecv();
  }
}

void Connection::set_max_inbound(size_t bytes) {
  options_.max_inbound = bytes;
  if (recv_paused_ && inbound_.size() < options_.max_inbound) {
    recv_paused_ = false;
    ReleaseHeldBuffers();
    MaybeArmRecv();
  }
}

void Connection::ReleaseHeldBuffers() {
  if (held_buffers_.empty()) return;
  BufferRing* ring = reactor_->buffer_ring();
  for (uint16_t bid : held_buffers_) ring->Recycle(bid);
  held_buffers_.clear();
}

Connection::ReadAwaiter Connection::Read() { return ReadAwaiter(this); }

bool Connection::ReaderHasNews() const {
  return quiescing_ || inbound_.size() > seen_ || eof_ || !error_.ok() ||
         inbound_.size() >= options_.max_inbound;
}

bool Connection::ReadAwaiter::await_ready() {
  c_->started_ = true;
  c_->reader_.Begin();
  return c_->ReaderHasNews();
}

void Connection::PrepareToWait() {
  if (inbound_.empty() && inbound_.capacity() > kIdleBufferKeep) {
    inbound_.Release();
  }
  MaybeArmRecv();
  MaybeSend();  // an adopted connection's unsent bytes go first
}

absl::StatusOr<size_t> Connection::ReadAwaiter::await_resume() {
  Connection& c = *c_;
  if (c.quiescing_ || c.reader_.cancelled()) {
    return absl::CancelledError(c.quiescing_ ? "connection is being handed off"
                                             : "read cancelled");
  }
  if (c.inbound_.size() > c.seen_) {
    size_t fresh = c.inbound_.size() - c.seen_;
    c.seen_ = c.inbound_.size();
    return fresh;
  }
  if (!c.error_.ok()) return c.error_;
  if (c.eof_) return 0;
  return absl::ResourceExhaustedError(
      absl::StrFormat("%d unconsumed inbound bytes reached the limit of %d",
                      c.inbound_.size(), c.options_.max_inbound));
}

void Connection::MaybeArmRecv() {
  if (recv_armed_ || stopping_ || eof_ || !error_.ok() || fd_ < 0) return;
  if (inbound_.size() >= options_.max_inbound) {
    if (!recv_paused_ && counters_ != nullptr) ++counters_->backpressure_pauses;
    recv_paused_ = true;
    return;
  }
  if (reactor_->buffer_ring() != nullptr) {
    reactor_->Submit(
        &recv_op_,
        IoRequest::RecvMultishot(fd_, std::exchange(recv_poll_first_, false)));
  } else {
    if (!scratch_) scratch_.reset(new char[kScratchSize]);
    reactor_->Submit(&recv_op_,
                     IoRequest::Recv(fd_, scratch_.get(), kScratchSize));
  }
  recv_armed_ = true;
}

void Connection::OnRecv(int32_t res, uint32_t flags) {
  if (res > 0) {
    if (flags & kIoBuffer) {
      BufferRing* ring = reactor_->buffer_ring();
      auto bid = static_cast<uint16_t>(flags >> kIoBufferShift);
      inbound_.Append(ring->View(bid, static_cast<size_t>(res)));
      if ((recv_paused_ || stopping_) && (flags & kIoMore)) {
        // A cancel can keep missing a receive that a flooding sender keeps
        // busy. Holding its buffers back from the ring ends it for sure
        // (-ENOBUFS once the ring is dry), so a pause or a stop costs at
        // most one ring of overshoot.
        held_buffers_.push_back(bid);
      } else {
        ring->Recycle(bid);
      }
    } else {
      inbound_.Append({scratch_.get(), static_cast<size_t>(res)});
    }
    bytes_received_ += static_cast<uint64_t>(res);
    if (counters_ != nullptr) {
      counters_->bytes_received += static_cast<uint64_t>(res);
    }
  } else if (res == 0) {
    eof_ = true;
  } else if (res == -ENOBUFS) {
    // The buffer ring ran dry: back-pressure, re-armed below.
    reactor_->CountRecvNoBuffers();
  } else if (res != -ECANCELED) {
    error_ = absl::ErrnoToStatus(-res, "recv");
  }
  if (!(flags & kIoMore)) {
    recv_armed_ = false;
    recv_cancel_attempts_ = 0;
    ReleaseHeldBuffers();
    if (!recv_paused_) MaybeArmRecv();
  } else if (inbound_.size() >= options_.max_inbound && !stopping_) {
    if (!recv_paused_ && counters_ != nullptr) ++counters_->backpressure_pauses;
    recv_paused_ = true;
    CancelRecv();
  } else if (stopping_ || recv_paused_) {
    CancelRecv();  // still delivering: an earlier cancel missed
  }
  if (ReaderHasNews()) reader_.Wake();
  NotifyLifecycle();
}

// --- Outbound ---

void Connection::Write(std::string_view bytes) {
  started_ = true;
  if (!error_.ok() || fd_ < 0) return;  // the peer is gone: nothing to send to
  queued_.Append(bytes);
  MaybeSend();
}

void Connection::MaybeSend() {
  if (send_inflight_ || stopping_ || !error_.ok() || fd_ < 0) return;
  if (sending_.empty()) {
    if (queued_.empty()) return;
    std::swap(sending_, queued_);
  }
  reactor_->Submit(&send_op_,
                   IoRequest::Send(fd_, sending_.data(), sending_.size()));
  send_inflight_ = true;
}

void Connection::OnSend(int32_t res, uint32_t /*flags*/) {
  send_inflight_ = false;
  if (res > 0) {
    sending_.Consume(static_cast<size_t>(res));
    bytes_sent_ += static_cast<uint64_t>(res);
    if (counters_ != nullptr)
      counters_->bytes_sent += static_cast<uint64_t>(res);
  } else if (res < 0 && res != -ECANCELED && res != -EAGAIN && res != -EINTR) {
    error_ = absl::ErrnoToStatus(-res, "send");
    reader_.Wake();
  }
  MaybeSend();
  NotifyDrainer();
  NotifyLifecycle();
}

Connection::DrainAwaiter Connection::Drain(size_t at_most) {
  return DrainAwaiter(this, at_most);
}

Connection::DrainAwaiter Connection::Flush() { return DrainAwaiter(this, 0); }

absl::Status Connection::DrainAwaiter::await_resume() const {
  if (c_->quiescing_) {
    return absl::CancelledError("connection is being handed off");
  }
  if (c_->drainer_.cancelled()) return absl::CancelledError("drain cancelled");
  if (c_->outbound_size() <= at_most_) return absl::OkStatus();
  return c_->error_;
}

void Connection::NotifyDrainer() {
  if (outbound_size() <= drain_limit_ || !error_.ok()) drainer_.Wake();
}

// --- Ending ---

void Connection::CloseWhenFlushed(Closing how) {
  if (closing_ == Closing::kNo || how == Closing::kLinger) closing_ = how;
}

Task<absl::Status> Connection::ShutdownWrite() {
  absl::Status flushed = co_await Flush();
  if (!flushed.ok()) co_return flushed;
  if (fd_ < 0) co_return absl::FailedPreconditionError("connection is closed");
  if (shutdown(fd_, SHUT_WR) != 0 && errno != ENOTCONN) {
    co_return absl::ErrnoToStatus(errno, "shutdown(SHUT_WR)");
  }
  co_return absl::OkStatus();
}

// --- Lifecycle ---

void Connection::Quiesce() {
  quiescing_ = true;
  reader_.Wake();
  drainer_.Wake();
}

struct Connection::LifecycleAwaiter {
  Connection* c;
  bool await_ready() const noexcept { return !c->ops_in_flight(); }
  void await_suspend(std::coroutine_handle<> h) noexcept { c->lifecycle_ = h; }
  void await_resume() const noexcept {}
};

void Connection::NotifyLifecycle() {
  if (lifecycle_ && !ops_in_flight()) {
    reactor_->Post(std::exchange(lifecycle_, {}));
  }
}

// Ends the receive, for back-pressure or to stop. The first attempt is by
// user_data, a hash lookup in the kernel; cancelling by fd walks every
// pending request of the ring (quadratic when thousands of connections stop
// at once, as in a handoff). A multishot receive that is busy delivering is
// missed by either (-ENOENT/-EALREADY), so a miss is retried, by fd, until
// the receive's final CQE arrives; that CQE keeps whatever bytes it carried.
void Connection::CancelRecv() {
  if (!recv_armed_ || recv_cancel_pending_) return;
  recv_cancel_pending_ = true;
  ++cancels_pending_;
  reactor_->Submit(&recv_cancel_op_, recv_cancel_attempts_++ == 0
                                         ? IoRequest::Cancel(&recv_op_)
                                         : IoRequest::CancelFd(fd_));
}

void Connection::OnRecvCancelDone(int32_t res, uint32_t /*flags*/) {
  recv_cancel_pending_ = false;
  --cancels_pending_;
  if (res < 0 && recv_armed_ && (stopping_ || recv_paused_)) CancelRecv();
  NotifyLifecycle();
}

void Connection::OnCancelDone(int32_t /*res*/, uint32_t /*flags*/) {
  // A send cancel that misses means the send is completing; its CQE ends it.
  --cancels_pending_;
  NotifyLifecycle();
}

Connection::LifecycleAwaiter Connection::StopOperations() {
  stopping_ = true;
  CancelRecv();
  if (send_inflight_) {
    ++cancels_pending_;
    reactor_->Submit(&cancel_op_, IoRequest::Cancel(&send_op_));
  }
  return LifecycleAwaiter{this};
}

Task<absl::StatusOr<DetachedConnection>> Connection::Detach() {
  if (fd_ < 0) co_return absl::FailedPreconditionError("connection is closed");
  Quiesce();
  co_await StopOperations();
  DetachedConnection d;
  reactor_->ForgetFd(fd_, /*closing=*/false);
  d.fd = std::exchange(fd_, -1);
  d.service = service_;
  d.inbound = inbound_.ToString();
  d.outbound.reserve(outbound_size());
  d.outbound.append(sending_.view());
  d.outbound.append(queued_.view());
  d.state = std::move(state_);
  d.closing = closing_;
  inbound_.Release();
  sending_.Release();
  queued_.Release();
  co_return d;
}

Task<void> Connection::Close() {
  if (fd_ < 0) co_return;
  Quiesce();
  co_await StopOperations();
  reactor_->ForgetFd(fd_, /*closing=*/true);
  close(std::exchange(fd_, -1));
}

}  // namespace baton
