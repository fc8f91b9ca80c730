#include "baton/net/server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <future>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "baton/runtime/log.h"
#include "baton/runtime/run_on.h"
#include "baton/runtime/task_group.h"
#include "baton/runtime/timer.h"

namespace baton {

struct Server::Shard {
  int index = 0;
  Reactor* reactor = nullptr;
  std::thread thread;  // not joinable for shard 0 (the caller's thread)
  // Set once Reactor::Stop() has returned: until then the thread keeps its
  // reactor (Stop() writes to its wake-up eventfd after setting the flag
  // that ends Run(), so the reactor must outlive the call; ThreadSanitizer
  // caught close() of that eventfd racing with the write).
  std::promise<void> stop_returned;
  std::vector<int> listener_fds;
  std::vector<std::unique_ptr<Listener>> listeners;
  TaskGroup accept_loops;
  TaskGroup connections;
  absl::flat_hash_set<Connection*> live;
  std::atomic<size_t> live_count{0};
  // Written and read on this shard's thread only.
  ConnectionCounters counters;
  uint64_t accepted = 0;
  uint64_t closed = 0;
  bool freezing = false;
  std::vector<DetachedConnection> detached;
  int handlers_cancelled = 0;
};

namespace {

Task<absl::Status> FlushConnection(Connection& conn) {
  co_return co_await conn.Flush();
}

Task<absl::StatusOr<size_t>> ReadConnection(Connection& conn) {
  co_return co_await conn.Read();
}

absl::StatusOr<int> OpenListeningSocket(const Address& address,
                                        const ListenerOptions& options) {
  absl::StatusOr<Listener> listener = Listener::Bind(address, options);
  if (!listener.ok()) return listener.status();
  return listener->ReleaseFd();
}

// SO_REUSEPORT would let us bind next to another server of the same user and
// silently take half its connections. A plain bind (no SO_REUSEPORT, not
// listening) fails while anyone listens on the address.
absl::Status CheckAddressFree(const Address& address) {
  if (address.port() == 0) return absl::OkStatus();
  int fd = socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  int rc = bind(fd, address.sa(), address.length());
  int err = errno;
  close(fd);
  if (rc == 0) return absl::OkStatus();
  return absl::ErrnoToStatus(
      err,
      absl::StrCat("bind ", address.ToString(),
                   err == EADDRINUSE ? " (is another server using it?)" : ""));
}

}  // namespace

Server::Server(ServerOptions options, ConnectionHandler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {
  if (options_.threads < 1) options_.threads = 1;
  for (int i = 0; i < options_.threads; ++i) {
    shards_.push_back(std::make_unique<Shard>());
    shards_.back()->index = i;
  }
}

namespace {

// Stops a shard thread: Stop() its reactor, then let the thread destroy it.
template <typename Shard>
void StopShardThread(Shard& shard) {
  if (!shard.thread.joinable()) return;
  shard.reactor->Stop();
  shard.stop_returned.set_value();
  shard.thread.join();
}

}  // namespace

Server::~Server() {
  for (auto& shard : shards_) {
    StopShardThread(*shard);
    for (int fd : shard->listener_fds) close(fd);
  }
}

absl::Status Server::Open(std::vector<int> inherited) {
  const size_t n = shards_.size();
  if (!inherited.empty()) {
    absl::StatusOr<Address> bound = Address::OfSocket(inherited[0]);
    if (!bound.ok()) return bound.status();
    address_ = *bound;
    for (size_t i = 0; i < inherited.size(); ++i) {
      shards_[i % n]->listener_fds.push_back(inherited[i]);
    }
  } else {
    address_ = options_.address;
    if (absl::Status s = CheckAddressFree(address_); !s.ok()) return s;
  }
  // Shards still without a socket get a fresh one on the same address (the
  // first one resolves port 0 for the rest).
  for (auto& shard : shards_) {
    if (!shard->listener_fds.empty()) continue;
    absl::StatusOr<int> fd = OpenListeningSocket(address_, options_.listener);
    if (!fd.ok()) return fd.status();
    shard->listener_fds.push_back(*fd);
    absl::StatusOr<Address> bound = Address::OfSocket(*fd);
    if (!bound.ok()) return bound.status();
    address_ = *bound;
  }
  return absl::OkStatus();
}

std::vector<int> Server::listener_fds() const {
  std::vector<int> fds;
  for (const auto& shard : shards_) {
    for (const auto& l : shard->listeners) fds.push_back(l->fd());
    for (int fd : shard->listener_fds) fds.push_back(fd);
  }
  return fds;
}

size_t Server::connection_count() const {
  size_t total = 0;
  for (const auto& shard : shards_) total += shard->live_count.load();
  return total;
}

Task<std::vector<ConnectionInfo>> Server::InspectConnections() {
  std::vector<ConnectionInfo> all;
  for (auto& shard : shards_) {
    std::vector<ConnectionInfo> part = co_await RunOn(
        shard->reactor, [](Shard* s) -> Task<std::vector<ConnectionInfo>> {
          std::vector<ConnectionInfo> out;
          out.reserve(s->live.size());
          const absl::Duration now = MonotonicNow();
          for (const Connection* c : s->live) {
            ConnectionInfo info;
            info.shard = s->index;
            info.fd = c->fd();
            struct stat st;
            if (c->fd() >= 0 && fstat(c->fd(), &st) == 0)
              info.inode = st.st_ino;
            absl::StatusOr<Address> peer =
                Address::OfSocket(c->fd(), /*peer=*/true);
            if (peer.ok()) info.peer = peer->ToString();
            info.bytes_received = c->bytes_received();
            info.bytes_sent = c->bytes_sent();
            info.unconsumed_inbound = c->inbound().size();
            info.unsent_outbound = c->outbound_size();
            info.age = now - c->created();
            out.push_back(std::move(info));
          }
          co_return out;
        }(shard.get()));
    for (auto& info : part) all.push_back(std::move(info));
  }
  co_return all;
}

Task<std::vector<ShardStats>> Server::Stats() {
  std::vector<ShardStats> all;
  for (auto& shard : shards_) {
    all.push_back(
        co_await RunOn(shard->reactor, [](Shard* s) -> Task<ShardStats> {
          ShardStats stats;
          stats.shard = s->index;
          stats.open = s->live.size();
          stats.accepted = s->accepted;
          stats.closed = s->closed;
          stats.connections = s->counters;
          stats.recv_no_buffers = Reactor::Current()->recv_no_buffers();
          co_return stats;
        }(shard.get())));
  }
  co_return all;
}

Task<absl::Status> Server::Start(bool accepting) {
  shards_[0]->reactor = Reactor::Current();
  for (size_t i = 1; i < shards_.size(); ++i) {
    Shard* shard = shards_[i].get();
    std::promise<absl::Status> created;
    std::future<absl::Status> result = created.get_future();
    shard->thread = std::thread([this, shard, &created] {
      absl::StatusOr<std::unique_ptr<Reactor>> reactor =
          Reactor::Create(options_.reactor);
      if (!reactor.ok()) {
        created.set_value(reactor.status());
        return;
      }
      shard->reactor = reactor->get();
      created.set_value(absl::OkStatus());
      (*reactor)->Run();
      shard->stop_returned.get_future().wait();
    });
    // Start-up only: a reactor is created in microseconds.
    if (absl::Status s = result.get(); !s.ok()) {
      shard->thread.join();
      co_return s;
    }
  }
  for (auto& shard : shards_) {
    co_await RunOn(shard->reactor, StartShard(shard.get(), accepting));
  }
  co_return absl::OkStatus();
}

Task<void> Server::StartShard(Shard* shard, bool accepting) {
  for (int fd : std::exchange(shard->listener_fds, {})) {
    shard->listeners.push_back(
        std::make_unique<Listener>(Listener::FromFd(fd, options_.listener)));
  }
  if (!accepting) co_return;
  for (auto& l : shard->listeners) {
    shard->accept_loops.Spawn(AcceptLoop(shard, l.get()));
  }
  co_return;
}

Task<void> Server::AcceptLoop(Shard* shard, Listener* listener) {
  while (true) {
    absl::StatusOr<Connection> conn = co_await listener->Accept();
    if (conn.ok()) {
      ++shard->accepted;
      shard->connections.Spawn(Serve(shard, *std::move(conn)));
      continue;
    }
    if (absl::IsCancelled(conn.status())) co_return;
    // Out of fds or memory: the backlog keeps the clients; retry shortly.
    Log("accept failed on shard %d: %s; retrying in 10ms", shard->index,
        conn.status().ToString());
    if (!(co_await Sleep(absl::Milliseconds(10))).ok()) co_return;
  }
}

Task<void> Server::Serve(Shard* shard, Connection conn) {
  shard->live.insert(&conn);
  shard->live_count.fetch_add(1);
  conn.set_counters(&shard->counters);
  if (shard->freezing) conn.Quiesce();
  if (conn.closing() == Closing::kNo) co_await handler_(conn);
  // Outside a handoff, a handler that returns is done with its connection.
  if (!shard->freezing) {
    if (conn.closing() == Closing::kNo) conn.CloseWhenFlushed();
    co_await FinishClosing(conn);  // a freeze starting meanwhile ends it
  }
  shard->live.erase(&conn);
  shard->live_count.fetch_sub(1);
  // Handed over: every connection still open, unless the handler closed it
  // and nothing remains to be done for it.
  const bool finished =
      conn.closing() == Closing::kWhenFlushed && conn.outbound_size() == 0;
  if (shard->freezing && conn.error().ok() && !finished) {
    absl::StatusOr<DetachedConnection> detached = co_await conn.Detach();
    if (detached.ok()) {
      shard->detached.push_back(*std::move(detached));
      co_return;
    }
  }
  co_await conn.Close();
  ++shard->closed;
}

// Flushes (bounded) and, for Closing::kLinger, shuts the write side and
// drops input until the peer closes or the linger bounds run out. Returns
// early, leaving the rest to the next process, if a freeze quiesces it.
Task<void> Server::FinishClosing(Connection& conn) {
  conn.Unquiesce();  // a stopping server quiesced it; closing still flushes
  if (!conn.error().ok()) co_return;
  if (conn.outbound_size() > 0) {
    absl::Status flushed = co_await WithTimeout(FlushConnection(conn),
                                                options_.close_flush_timeout);
    if (!flushed.ok()) co_return;
  }
  if (conn.closing() != Closing::kLinger || conn.eof()) co_return;
  if (!(co_await conn.ShutdownWrite()).ok()) co_return;
  const absl::Time end = absl::Now() + options_.linger_timeout;
  size_t dropped = 0;
  while (dropped < options_.linger_bytes) {
    dropped += conn.inbound().size();
    conn.Consume(conn.inbound().size());
    const absl::Duration left = end - absl::Now();
    if (left <= absl::ZeroDuration()) co_return;
    absl::StatusOr<size_t> n = co_await WithTimeout(ReadConnection(conn), left);
    if (!n.ok() || *n == 0) co_return;
  }
}

Task<void> Server::StopShard(Shard* shard, absl::Duration grace,
                             bool close_all) {
  // Handlers first: until it is asked to return, a handler that keeps
  // finding bytes keeps its reactor serving, turn after turn, while the
  // accept cancels complete. (Those accepted meanwhile are quiesced below.)
  for (Connection* c : shard->live) c->Quiesce();
  for (auto& l : shard->listeners) {
    co_await l->StopAccepting();
    for (int fd : l->TakeQueued()) {
      if (shard->freezing) {
        DetachedConnection accepted;  // accepted, never read: no bytes held
        accepted.fd = fd;
        shard->detached.push_back(std::move(accepted));
      } else {
        close(fd);
      }
    }
  }
  co_await shard->accept_loops.Join();
  for (Connection* c : shard->live) c->Quiesce();
  absl::Status drained =
      co_await WithTimeout(shard->connections.WaitEmpty(), grace);
  if (!drained.ok()) {
    shard->handlers_cancelled = static_cast<int>(shard->connections.size());
    shard->connections.CancelAll();
  }
  co_await shard->connections.Join();
  if (close_all) shard->listeners.clear();
}

Task<void> Server::FreezeShard(Shard* shard, absl::Duration grace,
                               FrozenConnections* out) {
  shard->freezing = true;
  shard->handlers_cancelled = 0;
  shard->detached.reserve(shard->live.size());
  co_await StopShard(shard, grace, /*close_all=*/false);
  out->connections = std::exchange(shard->detached, {});
  out->handlers_cancelled = shard->handlers_cancelled;
}

Task<FrozenConnections> Server::Freeze(absl::Duration grace) {
  // Every shard stops serving the moment it hears of the freeze, not when
  // its freeze task gets to run: until a handler is asked to return it keeps
  // its reactor serving, and with thousands of busy connections each such
  // turn takes tens of milliseconds.
  for (auto& shard : shards_) {
    Shard* s = shard.get();
    auto quiesce_all = [s] {
      s->freezing = true;
      for (Connection* c : s->live) c->Quiesce();
    };
    if (s->reactor == Reactor::Current()) {
      quiesce_all();
    } else {
      s->reactor->Schedule(std::move(quiesce_all));
    }
  }
  std::vector<FrozenConnections> per_shard(shards_.size());
  TaskGroup freezes;
  for (size_t i = 0; i < shards_.size(); ++i) {
    freezes.Spawn(RunOn(shards_[i]->reactor,
                        FreezeShard(shards_[i].get(), grace, &per_shard[i])));
  }
  co_await freezes.Join();
  FrozenConnections all;
  size_t total = 0;
  for (const auto& f : per_shard) total += f.connections.size();
  all.connections.reserve(total);
  for (auto& f : per_shard) {
    for (auto& c : f.connections) all.connections.push_back(std::move(c));
    all.handlers_cancelled += f.handlers_cancelled;
  }
  co_return all;
}

Task<void> Server::ResumeShard(Shard* shard,
                               std::vector<DetachedConnection> conns) {
  shard->freezing = false;
  for (DetachedConnection& d : conns) {
    shard->connections.Spawn(Serve(
        shard, Connection::Adopt(std::move(d), options_.listener.connection)));
  }
  for (auto& l : shard->listeners) {
    l->ResumeAccepting();
    shard->accept_loops.Spawn(AcceptLoop(shard, l.get()));
  }
  co_return;
}

Task<void> Server::Resume(std::vector<DetachedConnection> connections) {
  std::vector<std::vector<DetachedConnection>> split(shards_.size());
  for (auto& part : split) {
    part.reserve(connections.size() / shards_.size() + 1);
  }
  for (size_t i = 0; i < connections.size(); ++i) {
    split[i % shards_.size()].push_back(std::move(connections[i]));
  }
  // Every shard at once: each one arms a receive per connection (and
  // receives what clients sent meanwhile), so the pause ends sooner when the
  // shards do it side by side.
  TaskGroup resumes;
  for (size_t i = 0; i < shards_.size(); ++i) {
    resumes.Spawn(RunOn(shards_[i]->reactor,
                        ResumeShard(shards_[i].get(), std::move(split[i]))));
  }
  co_await resumes.Join();
}

Task<void> Server::StopThreads() {
  for (auto& shard : shards_) StopShardThread(*shard);
  co_return;
}

Task<void> Server::Shutdown(absl::Duration grace) {
  TaskGroup stops;
  for (auto& shard : shards_) {
    stops.Spawn(RunOn(shard->reactor, StopShard(shard.get(), grace, true)));
  }
  co_await stops.Join();
  co_await StopThreads();
}

Task<void> Server::Abandon() {
  // The listeners' sockets now belong to another process too; closing our
  // copies leaves theirs (and the accept backlog) intact.
  for (auto& shard : shards_) {
    co_await RunOn(shard->reactor, [](Shard* s) -> Task<void> {
      s->listeners.clear();
      co_return;
    }(shard.get()));
  }
  co_await StopThreads();
}

}  // namespace baton
