// Connection: an established TCP connection that knows exactly which bytes
// it holds.
//
// Inbound bytes arrive by multishot recv (provided-buffer ring) or, where the
// kernel lacks it, single-shot recv, and are appended to the *inbound
// buffer*. The application looks at `inbound()` and Consume()s only what it
// has fully processed: a half-parsed request is simply unconsumed bytes.
// Outbound bytes are queued by Write() and sent with one send in flight at a
// time; short sends are continued; `outbound_size()` is exactly what the peer
// has not been handed yet.
//
// Waiting: Read() resumes when bytes arrive that the previous Read() did not
// report (returns how many), at end of stream (returns 0), or on error.
// Flush()/Drain(n) resume when at most n bytes remain unsent. All three return
// absl::CancelledError when the waiting chain is stopped or the connection is
// being quiesced for a handoff. Waiters are resumed from the reactor's ready
// queue, never from inside a completion.
//
// Handoff: Quiesce() asks the handler to return (its waits end with
// CancelledError); Detach() then stops every kernel operation, reaps their
// final CQEs, and turns the connection into a DetachedConnection:
// {fd, unconsumed inbound bytes, unsent outbound bytes, handoff state}.
// Connection::Adopt(detached) continues it: the inbound bytes come first (the
// first Read() reports them), fresh reads are appended after them, and the
// unsent bytes are sent before anything written later.
//
// Back-pressure: while more than `max_inbound` bytes are unconsumed the
// connection stops receiving (the kernel's window closes); Read() then returns
// absl::ResourceExhaustedError. A handler whose protocol needs a larger
// message whole (and has its own limit on it) raises the bound for its
// connection with set_max_inbound(). A multishot receive is paused by a
// cancel, which a sender flooding the socket can keep missing (it returns
// -ENOENT, observed on Linux 6.18; it is retried every turn). So the buffers a
// paused or stopping receive delivers are held back from the reactor's
// buffer ring until it ends, and it ends for sure once the ring is dry
// (-ENOBUFS): the overshoot is at most one ring (buffer_count x buffer_size).
// Other connections of that reactor may meanwhile see -ENOBUFS, which
// re-arms. Single-shot receives overshoot by at most one 16 KiB read.
//
// Closing: a handler that is done with its connection says so with
// CloseWhenFlushed() and returns; whoever owns the connection (Server) then
// sends what is queued and closes it. With Closing::kLinger it first shuts
// the write side and reads and drops input for a bounded time, so that a
// peer still sending sees the last response rather than a reset. The intent
// is part of the connection: Detach() carries it, and a process that adopts
// a closing connection finishes closing it instead of serving it.
//
// A Connection belongs to the reactor it was created on. It is movable until
// its first Read() or Write(); after that, keep it in place (usually the
// frame of the coroutine serving it) and end it with Close() or Detach().
//
//   Task<void> Echo(Connection& c) {
//     while (true) {
//       absl::StatusOr<size_t> n = co_await c.Read();
//       if (!n.ok() || *n == 0) co_return;
//       c.Write(c.inbound());
//       c.Consume(c.inbound().size());
//       if (!(co_await c.Drain(1 << 20)).ok()) co_return;
//     }
//   }
#ifndef BATON_NET_CONNECTION_H_
#define BATON_NET_CONNECTION_H_

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "baton/net/byte_buffer.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/stop.h"
#include "baton/runtime/task.h"

namespace baton {

// Whether, and how, the handler asked for the connection to end.
enum class Closing : uint8_t {
  kNo = 0,           // serving
  kWhenFlushed = 1,  // send what is queued, then close
  kLinger = 2,       // send, shut the write side, drain input a while, close
};

struct ConnectionOptions {
  // Unconsumed inbound bytes above which receiving pauses.
  size_t max_inbound = 1 << 20;
  bool no_delay = true;  // TCP_NODELAY
};

// Totals over many connections (a Server keeps one per shard), updated by
// the connections on their completions: plain integers, so every connection
// pointing at one must live on the same reactor, and only that reactor's
// thread may read them (RunOn).
struct ConnectionCounters {
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;
  // Times a connection stopped receiving because it held max_inbound
  // unconsumed bytes (back-pressure).
  uint64_t backpressure_pauses = 0;
};

// A connection taken out of its process: what a handoff moves.
struct DetachedConnection {
  int fd = -1;
  uint32_t service = 0;  // which listener/service it belongs to
  std::string inbound;   // received, not consumed, in order
  std::string outbound;  // queued, not yet sent, in order
  std::string state;     // the application's handoff state
  Closing closing = Closing::kNo;
};

class Connection {
 public:
  // Takes ownership of a connected socket.
  explicit Connection(int fd, const ConnectionOptions& options = {});
  // Resumes a connection another Connection detached (in this process or
  // the old one). The socket keeps the options it was given when it was
  // first wrapped (TCP_NODELAY is not set again: it would cost a syscall per
  // connection while clients wait for a handoff to end).
  static Connection Adopt(DetachedConnection detached,
                          const ConnectionOptions& options = {});
  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&&) = delete;
  Connection(const Connection&) = delete;
  ~Connection();

  int fd() const { return fd_; }

  // --- Inbound ---
  std::string_view inbound() const { return inbound_.view(); }
  void Consume(size_t n);
  class ReadAwaiter;
  ReadAwaiter Read();
  bool eof() const { return eof_; }
  // The back-pressure bound of this connection (ConnectionOptions::
  // max_inbound until changed). Raising it resumes a paused receive.
  size_t max_inbound() const { return options_.max_inbound; }
  void set_max_inbound(size_t bytes);

  // --- Outbound ---
  void Write(std::string_view bytes);
  size_t outbound_size() const { return sending_.size() + queued_.size(); }
  class DrainAwaiter;
  DrainAwaiter Drain(size_t at_most);
  DrainAwaiter Flush();

  // The first error seen (peer reset, broken pipe); OK otherwise.
  const absl::Status& error() const { return error_; }
  uint64_t bytes_received() const { return bytes_received_; }
  uint64_t bytes_sent() const { return bytes_sent_; }
  // Also adds every received and sent byte and every back-pressure pause
  // to `counters` (same reactor; may be null).
  void set_counters(ConnectionCounters* counters) { counters_ = counters; }
  // When this process created (accepted or adopted) the connection, on
  // MonotonicNow()'s clock.
  absl::Duration created() const { return created_; }

  // --- Ending ---
  // The handler is done (see "Closing" above); what it writes before it
  // returns is still sent.
  void CloseWhenFlushed(Closing how = Closing::kWhenFlushed);
  Closing closing() const { return closing_; }
  // Sends FIN once every queued byte is sent (the peer reads end of stream;
  // this side may still read). Waits like Flush().
  Task<absl::Status> ShutdownWrite();

  // --- Handoff and shutdown ---
  void Quiesce();
  // Lets waits succeed again once the handler has returned (a closing
  // connection still flushes its queued bytes).
  void Unquiesce() { quiescing_ = false; }
  bool quiescing() const { return quiescing_; }
  Task<absl::StatusOr<DetachedConnection>> Detach();
  Task<void> Close();
  // What travels with the connection in a handoff; what arrived with it.
  void set_handoff_state(std::string state) { state_ = std::move(state); }
  const std::string& handoff_state() const { return state_; }
  uint32_t service() const { return service_; }
  void set_service(uint32_t service) { service_ = service; }

  // One suspended coroutine with its stop registration.
  class Waiter : public StopCallback {
   public:
    Waiter() { on_stop = &Waiter::OnStop; }
    bool active() const { return static_cast<bool>(handle_); }
    template <typename P>
    bool Suspend(std::coroutine_handle<P> h) {
      stop_ = internal::StopStateOf(h);
      if (stop_ != nullptr && stop_->stop_requested()) {
        cancelled_ = true;
        return false;
      }
      cancelled_ = false;
      handle_ = h;
      if (stop_ != nullptr) stop_->Register(this);
      return true;
    }
    void Wake();  // posts the coroutine; no-op if none
    bool cancelled() const { return cancelled_; }
    // Every wait starts uncancelled (a past cancellation must not leak into
    // a later wait that finds its condition already met).
    void Begin() { cancelled_ = false; }

   private:
    static void OnStop(StopCallback* cb);
    std::coroutine_handle<> handle_;
    StopState* stop_ = nullptr;
    bool cancelled_ = false;
  };

  class [[nodiscard]] ReadAwaiter {
   public:
    explicit ReadAwaiter(Connection* c) : c_(c) {}
    bool await_ready();
    template <typename P>
    bool await_suspend(std::coroutine_handle<P> h) {
      c_->PrepareToWait();
      return c_->reader_.Suspend(h);
    }
    absl::StatusOr<size_t> await_resume();

   private:
    Connection* c_;
  };

  class [[nodiscard]] DrainAwaiter {
   public:
    DrainAwaiter(Connection* c, size_t at_most) : c_(c), at_most_(at_most) {}
    bool await_ready() {
      c_->drainer_.Begin();
      c_->MaybeSend();  // an adopted connection's unsent bytes
      return c_->outbound_size() <= at_most_ || !c_->error_.ok() ||
             c_->quiescing_;
    }
    template <typename P>
    bool await_suspend(std::coroutine_handle<P> h) {
      c_->drain_limit_ = at_most_;
      return c_->drainer_.Suspend(h);
    }
    absl::Status await_resume() const;

   private:
    Connection* c_;
    size_t at_most_;
  };

 private:
  Connection(int fd, const ConnectionOptions& options, bool configure_socket);
  friend class ReadAwaiter;
  void OnRecv(int32_t res, uint32_t flags);
  void ReleaseHeldBuffers();
  void OnSend(int32_t res, uint32_t flags);
  void MaybeArmRecv();
  void MaybeSend();
  void PrepareToWait();
  bool ReaderHasNews() const;
  void NotifyDrainer();
  void NotifyLifecycle();
  void OnCancelDone(int32_t res, uint32_t flags);
  void OnRecvCancelDone(int32_t res, uint32_t flags);
  void CancelRecv();
  bool ops_in_flight() const {
    return recv_armed_ || send_inflight_ || cancels_pending_ > 0;
  }
  struct LifecycleAwaiter;
  LifecycleAwaiter StopOperations();

  int fd_;
  ConnectionOptions options_;
  Reactor* reactor_;
  ByteBuffer inbound_;
  size_t seen_ = 0;     // leading inbound bytes already reported by Read()
  ByteBuffer sending_;  // the bytes the in-flight send points into
  ByteBuffer queued_;   // written since; sent after `sending_`
  std::unique_ptr<char[]> scratch_;  // single-shot recv target (fallback)
  std::string state_;
  uint32_t service_ = 0;
  absl::Status error_;
  uint64_t bytes_received_ = 0;
  uint64_t bytes_sent_ = 0;
  ConnectionCounters* counters_ = nullptr;
  absl::Duration created_;
  size_t drain_limit_ = 0;

  bool started_ = false;
  bool eof_ = false;
  Closing closing_ = Closing::kNo;
  bool quiescing_ = false;
  bool stopping_ = false;  // Detach/Close: no new kernel operations
  bool recv_armed_ = false;
  // Ring buffers delivered while paused or stopping, recycled when the
  // receive ends or the pause lifts (see OnRecv).
  std::vector<uint16_t> held_buffers_;
  // The first receive of an adopted connection arms a poll before trying to
  // read (most moved sockets hold nothing yet: the read attempt is wasted).
  bool recv_poll_first_ = false;
  bool recv_paused_ = false;  // cancel sent for back-pressure
  bool send_inflight_ = false;
  int cancels_pending_ = 0;
  bool recv_cancel_pending_ = false;
  int recv_cancel_attempts_ = 0;
  Waiter reader_;
  Waiter drainer_;
  std::coroutine_handle<> lifecycle_;  // Detach/Close waiting for CQEs
  MemberOperation<Connection, &Connection::OnRecv> recv_op_{this};
  MemberOperation<Connection, &Connection::OnSend> send_op_{this};
  MemberOperation<Connection, &Connection::OnCancelDone> cancel_op_{this};
  MemberOperation<Connection, &Connection::OnRecvCancelDone> recv_cancel_op_{
      this};
};

}  // namespace baton

#endif  // BATON_NET_CONNECTION_H_
