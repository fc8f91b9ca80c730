// StreamClient: a verifying echo load, written with baton, on its own thread.
//
// M connections to an echo server. Each sends a seeded pseudo-random byte
// stream (connection i's stream depends only on (seed, i)) in random write
// sizes (1 B to max_write, log-uniform), keeps at most `window` bytes sent
// but not yet echoed (so it never deadlocks against the server's
// back-pressure: it always reads what it is owed), and compares every echoed
// byte with what it sent. It records, per connection, the bytes sent and
// verified, the stream offset of the first wrong byte, the first error
// (connect failure, reset, unexpected end of stream, extra bytes), and the
// longest gap between two reads while bytes were owed (the pause a client
// sees, e.g. during a handoff).
//
// The client runs on a std::thread with its own Reactor; every method here
// is for the test's thread and waits by polling with a deadline.
//
//   StreamClient client({.server = server.address(), .connections = 200});
//   ASSERT_OK(client.Start());
//   ASSERT_OK(client.WaitForProgress(64 * 1024, absl::Seconds(30)));
//   ... restart the server ...
//   ASSERT_OK(client.Finish(absl::Seconds(30)));
//   for (const StreamResult& r : client.Results()) EXPECT_TRUE(r.ok());
#ifndef BATON_TESTS_SUPPORT_STREAM_CLIENT_H_
#define BATON_TESTS_SUPPORT_STREAM_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "baton/net/address.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task.h"
#include "baton/runtime/task_group.h"

namespace baton::test_support {

struct StreamClientOptions {
  Address server;
  int connections = 100;
  uint32_t seed = 1;
  size_t max_write = 64 * 1024;  // write sizes are 1..max_write bytes
  size_t window = 256 * 1024;  // sent, not yet echoed: at most this (+1 write)
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
  bool finished = false;        // every byte echoed, then a clean EOF
  bool ok() const {
    return connected && error.empty() && first_mismatch < 0 && finished &&
           sent == verified;
  }
  std::string ToString() const;
};

class StreamClient {
 public:
  explicit StreamClient(StreamClientOptions options);
  // Cancels whatever still runs (bounded) and joins the thread.
  ~StreamClient();
  StreamClient(const StreamClient&) = delete;
  StreamClient& operator=(const StreamClient&) = delete;

  // Starts the thread and the connections; returns once every connection
  // is established (or an error: a connection failed, or the deadline).
  absl::Status Start();

  // Waits until every connection has verified at least `bytes` more bytes
  // than when this was called. Fails at once if any connection fails.
  absl::Status WaitForProgress(uint64_t bytes, absl::Duration timeout);
  // Waits until every connection has verified at least `bytes` in total.
  absl::Status WaitVerified(uint64_t bytes, absl::Duration timeout);

  // Stops sending, waits until every byte sent has been echoed, half-closes
  // and expects the server's end of stream (no byte more), then closes.
  // On timeout the remaining connections are cancelled and marked failed.
  absl::Status Finish(absl::Duration timeout);

  // A snapshot (final after Finish()).
  std::vector<StreamResult> Results() const;
  uint64_t TotalVerified() const;
  uint32_t seed() const { return options_.seed; }
  // "seed=N, C connections: S sent, V verified, F failed, max gap G" plus
  // the first few failures.
  std::string Summary() const;

 private:
  struct Conn;
  void ThreadMain();
  Task<void> Main();
  Task<void> RunConnection(Conn* c);
  absl::Status FirstFailure() const;
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
  std::mutex mu_;
  absl::Status thread_status_;
};

}  // namespace baton::test_support

#endif  // BATON_TESTS_SUPPORT_STREAM_CLIENT_H_
