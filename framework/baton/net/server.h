// Server: a TCP service on N reactors, one thread each.
//
// Each reactor (a *shard*) accepts on its own SO_REUSEPORT listening socket
// for the same address and serves every connection it accepts for that
// connection's whole life, by calling the handler with the Connection. A
// handler returns when its connection is done, or when a wait returns
// absl::CancelledError (shutdown or handoff). Then the server closes the
// connection the way it asked (Connection::CloseWhenFlushed: flush, bounded
// by close_flush_timeout, and optionally linger); during a handoff it
// detaches the connection instead, unless the handler closed it and nothing
// is left to send. A connection adopted while closing is finished, never
// handed to the handler.
//
// Shard 0 runs on the caller's reactor; Start() starts the other threads.
// Everything else is called from shard 0's reactor.
//
// For the handoff layer (handoff/): Freeze() stops accepting, asks every
// handler to return (those still busy after `grace` are cancelled), and
// detaches every connection; Resume() serves detached connections (its own
// after a rolled-back handoff, or those handed over by another process) and
// accepts again; listener_fds()/Open(inherited) move listening sockets.
//
//   Server server(options, [](Connection& c) -> Task<void> { ... });
//   if (absl::Status s = server.Open(); !s.ok()) return Fail(s);
//   reactor->BlockOn(server.Start());   // then Shutdown() on a signal
#ifndef BATON_NET_SERVER_H_
#define BATON_NET_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "baton/net/address.h"
#include "baton/net/connection.h"
#include "baton/net/listener.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task.h"

namespace baton {

using ConnectionHandler = std::function<Task<void>(Connection&)>;

struct ServerOptions {
  Address address;
  int threads = 1;
  ListenerOptions listener;
  ReactorOptions reactor;
  // How long a closing connection may take to send what is queued.
  absl::Duration close_flush_timeout = absl::Seconds(5);
  // Closing::kLinger: how long, and how many bytes, to read and drop after
  // the write side is shut.
  absl::Duration linger_timeout = absl::Seconds(1);
  size_t linger_bytes = 1 << 20;
};

// One live connection as its shard sees it (Server::InspectConnections).
struct ConnectionInfo {
  int shard = 0;
  int fd = -1;
  uint64_t inode = 0;  // fstat st_ino: /proc/net/tcp's and `ss -e`'s inode
  std::string peer;    // HOST:PORT, "" if the peer is gone
  uint64_t bytes_received = 0;  // by this process
  uint64_t bytes_sent = 0;
  size_t unconsumed_inbound = 0;
  size_t unsent_outbound = 0;
  absl::Duration age;  // since this process accepted or adopted it
};

// One shard's counters (Server::ShardStats); totals since this process
// started.
struct ShardStats {
  int shard = 0;
  size_t open = 0;  // live connections
  uint64_t accepted = 0;
  uint64_t closed = 0;
  ConnectionCounters connections;  // bytes and back-pressure pauses
  uint64_t recv_no_buffers = 0;    // the reactor's -ENOBUFS count
};

// What Freeze() leaves: every connection, detached, in no particular order.
struct FrozenConnections {
  std::vector<DetachedConnection> connections;
  int handlers_cancelled = 0;  // busy past the grace period
};

class Server {
 public:
  Server(ServerOptions options, ConnectionHandler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds one listening socket per shard, or takes over `inherited` ones
  // (distributed over the shards; a shard left without one accepts nothing).
  absl::Status Open(std::vector<int> inherited = {});
  const Address& address() const { return address_; }
  std::vector<int> listener_fds() const;
  int threads() const { return static_cast<int>(shards_.size()); }

  // Starts the shard threads and, if `accepting`, every shard's accept loop
  // (a handoff child accepts only once it owns the connections: Resume()).
  Task<absl::Status> Start(bool accepting = true);
  // Stop accepting, let handlers return, flush (bounded), close everything,
  // and stop the shard threads.
  Task<void> Shutdown(absl::Duration grace = absl::Seconds(5));

  Task<FrozenConnections> Freeze(absl::Duration grace);
  Task<void> Resume(std::vector<DetachedConnection> connections);
  // After a successful handoff: forget the listening sockets without closing
  // them (the caller closes its copies) and stop the shard threads.
  Task<void> Abandon();

  // Live connections over all shards (approximate while running).
  size_t connection_count() const;

  // Introspection, while the server runs (after Start(), before Shutdown()
  // or Abandon()): each shard reports on its own thread (RunOn), so the
  // serving threads pay nothing but a counter add per completion. Results
  // are in shard order.
  Task<std::vector<ConnectionInfo>> InspectConnections();
  Task<std::vector<ShardStats>> Stats();

 private:
  struct Shard;
  Task<void> StartShard(Shard* shard, bool accepting);
  Task<void> AcceptLoop(Shard* shard, Listener* listener);
  Task<void> Serve(Shard* shard, Connection conn);
  Task<void> FinishClosing(Connection& conn);
  Task<void> FreezeShard(Shard* shard, absl::Duration grace,
                         FrozenConnections* out);
  Task<void> ResumeShard(Shard* shard, std::vector<DetachedConnection> conns);
  Task<void> StopShard(Shard* shard, absl::Duration grace, bool close_all);
  Task<void> StopThreads();

  ServerOptions options_;
  ConnectionHandler handler_;
  Address address_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<int> pending_listener_fds_;  // opened, not yet given to shards
};

}  // namespace baton

#endif  // BATON_NET_SERVER_H_
