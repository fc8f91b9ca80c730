// Verifying stream clients for an echo server: the load that
// baton-restart-demo runs and the handoff tests run (and, for the pieces
// below StreamClient, the net tests).
//
// StreamClient opens M connections to an echo server. Each sends a seeded
// pseudo-random byte stream (connection i's bytes depend only on (seed, i))
// in random write sizes (1 B to max_write), keeps at most
// `window` bytes sent but not yet echoed (so it never deadlocks against the
// server's back-pressure: it always reads what it is owed), and compares
// every echoed byte with the stream. Per connection it records the bytes
// sent and verified, the stream offset of the first wrong byte, the first
// error (connect failure, reset, unexpected end of stream, extra bytes), and
// the gaps between two reads while bytes were owed (the pause a client
// sees, e.g. during a handoff). At the end each connection half-closes and
// expects the server's end of stream with no byte more.
//
// The connections run on a std::thread with a Reactor of its own; every
// method of StreamClient is for one other thread and waits by polling with a
// deadline (never longer than the deadline it is given).
//
//   StreamClient client({.server = address, .connections = 200});
//   absl::Status s = client.Start();           // every connection is up
//   s = client.WaitForProgress(64 * 1024, absl::Seconds(30));
//   ... restart the server ...
//   s = client.Finish(absl::Seconds(30));      // every byte came back
//   for (const StreamResult& r : client.Results()) ... r.ok() ...
#ifndef APPS_COMMON_STREAM_CHECK_H_
#define APPS_COMMON_STREAM_CHECK_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "baton/net/address.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task.h"
#include "baton/runtime/task_group.h"

namespace baton::app {

// A pseudo-random byte stream addressable by offset: byte i of stream `key`
// depends only on (key, i), so writers and verifiers can cut it into chunks
// independently.
class PatternStream {
 public:
  explicit PatternStream(uint64_t key) : key_(key) {}

  void Fill(uint64_t offset, char* out, size_t n) const;
  std::string Bytes(uint64_t offset, size_t n) const;
  // Index of the first byte of `got` that differs from the stream at
  // `offset`, or std::string::npos.
  size_t Mismatch(uint64_t offset, std::string_view got) const;

 private:
  uint64_t Word(uint64_t index) const;

  uint64_t key_;
};

// The PatternStream key of connection `id` of a StreamClient seeded `seed`.
uint64_t StreamKey(uint32_t seed, int id);

// A size in [lo, hi], log-uniformly distributed (small sizes are as common
// as large ones).
size_t LogUniform(std::mt19937_64& rng, size_t lo, size_t hi);

struct StreamClientOptions {
  // How write sizes in [1, max_write] are drawn: log-uniformly (small writes
  // as common as large ones: the tests' choice) or uniformly (fewer, larger
  // writes on average: the demo's).
  enum class WriteSizes { kLogUniform, kUniform };

  Address server;
  int connections = 100;
  uint32_t seed = 1;
  size_t max_write = 64 * 1024;  // write sizes are 1..max_write bytes
  WriteSizes write_sizes = WriteSizes::kLogUniform;
  size_t window = 256 * 1024;  // sent, not yet echoed: at most this (+1 write)
  // Zero: write whenever the window allows (a saturating load). Otherwise
  // each connection writes one chunk per interval (starting at a random
  // phase) and waits for its echo: a light load whose read gaps are the
  // latency of each write, so a pause shows as itself.
  absl::Duration write_interval;
  // Keep every gap between reads (StreamResult::gaps), not only the longest.
  bool record_gaps = false;
  absl::Duration connect_timeout = absl::Seconds(20);
};

// What one connection saw.
struct StreamResult {
  int id = 0;
  bool connected = false;
  uint64_t sent = 0;
  uint64_t verified = 0;        // echoed back and equal to what was sent
  int64_t first_mismatch = -1;  // stream offset of the first wrong byte
  std::string error;            // the first error, empty if none
  absl::Duration max_gap;       // longest wait between reads, bytes owed
  // Every such wait, with record_gaps, once the client thread has ended
  // (after Finish()); empty otherwise.
  std::vector<absl::Duration> gaps;
  bool finished = false;  // every byte echoed, then a clean end of stream
  bool ok() const {
    return connected && error.empty() && first_mismatch < 0 && finished &&
           sent == verified;
  }
  std::string ToString() const;
};

class StreamClient {
 public:
  explicit StreamClient(StreamClientOptions options);
  // Cancels whatever still runs (bounded; aborts the process if the client
  // thread does not end) and joins the thread.
  ~StreamClient();
  StreamClient(const StreamClient&) = delete;
  StreamClient& operator=(const StreamClient&) = delete;

  // Starts the thread and the connections; returns once the thread's
  // reactor runs (or with the error that it could not be created). The
  // connections go on connecting meanwhile.
  absl::Status Launch();
  // Launch(), then waits until every connection is established; returns
  // the first connection's failure or a deadline error otherwise.
  absl::Status Start();

  // Waits until every connection has verified at least `bytes` more bytes
  // than when this was called. Fails at once if any connection fails.
  absl::Status WaitForProgress(uint64_t bytes, absl::Duration timeout);
  // Waits until every connection has verified at least `bytes` in total.
  absl::Status WaitVerified(uint64_t bytes, absl::Duration timeout);

  // Stops sending, waits until every byte sent has been echoed, half-closes
  // and expects the server's end of stream (no byte more), then closes.
  // On timeout the remaining connections are cancelled and marked failed.
  // Returns the first failure.
  absl::Status Finish(absl::Duration timeout);

  // A snapshot (final after Finish()).
  std::vector<StreamResult> Results() const;
  uint64_t TotalVerified() const;
  uint32_t seed() const { return options_.seed; }
  // "seed=N, C connections: S bytes sent, V verified, F not ok, max gap G"
  // plus the first few failures.
  std::string Summary() const;

 private:
  struct Conn;
  void ThreadMain();
  Task<void> Main();
  Task<void> RunConnection(Conn* c);
  absl::Status FirstFailure() const;
  StreamResult ResultOf(const Conn& c, bool with_gaps) const;
  void CancelAndJoin(absl::Duration bound);

  StreamClientOptions options_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::thread thread_;
  std::unique_ptr<Reactor> reactor_;  // created on, and run by, thread_
  TaskGroup group_;                   // reactor thread only
  std::atomic<bool> reactor_ready_{false};
  std::atomic<bool> thread_done_{false};
  std::atomic<bool> stop_sending_{false};
  std::atomic<int> settled_{0};  // connections connected or failed
  mutable std::mutex mu_;
  absl::Status thread_status_;
};

}  // namespace baton::app

#endif  // APPS_COMMON_STREAM_CHECK_H_
