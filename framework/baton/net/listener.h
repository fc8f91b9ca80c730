// Listener: a listening TCP socket that accepts Connections.
//
// Accept() resumes with the next accepted connection. Underneath, one
// multishot accept stays armed (single-shot accepts where the kernel lacks
// it); every accepted fd is CLOEXEC. Connections the kernel hands over while
// nobody is waiting are queued, never dropped.
//
// For a handoff: StopAccepting() cancels the accept and reaps its final CQE;
// TakeQueued() then returns the fds accepted but not yet handed to the
// application (they migrate like any connection); ReleaseFd() gives up the
// listening socket without closing it, so its accept backlog survives in the
// process that receives it. FromFd() adopts such an inherited socket.
//
//   auto listener = Listener::Bind(*Address::Parse("127.0.0.1:0"));
//   absl::StatusOr<Connection> c = co_await listener->Accept();
#ifndef BATON_NET_LISTENER_H_
#define BATON_NET_LISTENER_H_

#include <coroutine>
#include <deque>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "baton/net/address.h"
#include "baton/net/connection.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task.h"

namespace baton {

struct ListenerOptions {
  int backlog = 4096;
  bool reuse_port = true;  // several reactors may each bind the address
  ConnectionOptions connection;
};

class Listener {
 public:
  static absl::StatusOr<Listener> Bind(const Address& address,
                                       const ListenerOptions& options = {});
  // Adopts a listening socket (inherited in a handoff).
  static Listener FromFd(int fd, const ListenerOptions& options = {});
  Listener(Listener&& other) noexcept;
  Listener& operator=(Listener&&) = delete;
  ~Listener();

  int fd() const { return fd_; }
  absl::StatusOr<Address> local_address() const {
    return Address::OfSocket(fd_);
  }

  class [[nodiscard]] AcceptAwaiter {
   public:
    explicit AcceptAwaiter(Listener* l) : l_(l) {}
    bool await_ready();
    template <typename P>
    bool await_suspend(std::coroutine_handle<P> h) {
      l_->MaybeArm();
      return l_->waiter_.Suspend(h);
    }
    absl::StatusOr<Connection> await_resume();

   private:
    Listener* l_;
  };
  AcceptAwaiter Accept() { return AcceptAwaiter(this); }

  Task<void> StopAccepting();
  std::deque<int> TakeQueued() { return std::exchange(queued_, {}); }
  // Resumes accepting after StopAccepting (a handoff rolled back).
  void ResumeAccepting() { stopping_ = false; }
  int ReleaseFd() {
    if (reactor_ != nullptr && fd_ >= 0) reactor_->ForgetFd(fd_, false);
    return std::exchange(fd_, -1);
  }

 private:
  explicit Listener(int fd, const ListenerOptions& options);
  void MaybeArm();
  void OnAccept(int32_t res, uint32_t flags);

  int fd_;
  ListenerOptions options_;
  Reactor* reactor_;
  std::deque<int> queued_;
  absl::Status error_;
  bool armed_ = false;
  bool stopping_ = false;
  Connection::Waiter waiter_;
  std::coroutine_handle<> stopper_;
  MemberOperation<Listener, &Listener::OnAccept> accept_op_{this};
};

// Connects to `address`; cancellable like any wait.
Task<absl::StatusOr<Connection>> Connect(const Address& address,
                                         const ConnectionOptions& options = {});

}  // namespace baton

#endif  // BATON_NET_LISTENER_H_
