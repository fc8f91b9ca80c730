#include "common/stream_check.h"

#include <sys/socket.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "baton/net/connection.h"
#include "baton/net/listener.h"
#include "baton/runtime/timer.h"

namespace baton::app {
namespace {

uint64_t SplitMix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Polls `condition` every `every` until it holds (true) or `timeout` passes
// (false; the condition is evaluated once more at the deadline).
template <typename Condition>
bool WaitUntil(Condition condition, absl::Duration timeout,
               absl::Duration every = absl::Milliseconds(2)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) return condition();
    absl::SleepFor(std::min(every, deadline - absl::Now()));
  }
  return true;
}

}  // namespace

// --- PatternStream
// ---------------------------------------------------------------

uint64_t PatternStream::Word(uint64_t index) const {
  return SplitMix(key_ + index * 0x9E3779B97F4A7C15ull);
}

void PatternStream::Fill(uint64_t offset, char* out, size_t n) const {
  while (n > 0) {
    const uint64_t word = Word(offset / 8);
    for (size_t j = offset % 8; j < 8 && n > 0; ++j, ++offset, --n) {
      *out++ = static_cast<char>(word >> (8 * j));
    }
  }
}

std::string PatternStream::Bytes(uint64_t offset, size_t n) const {
  std::string s(n, '\0');
  Fill(offset, s.data(), n);
  return s;
}

size_t PatternStream::Mismatch(uint64_t offset, std::string_view got) const {
  char expected[4096];
  for (size_t done = 0; done < got.size();) {
    const size_t n = std::min(sizeof(expected), got.size() - done);
    Fill(offset + done, expected, n);
    if (std::memcmp(expected, got.data() + done, n) != 0) {
      for (size_t i = 0; i < n; ++i) {
        if (expected[i] != got[done + i]) return done + i;
      }
    }
    done += n;
  }
  return std::string::npos;
}

uint64_t StreamKey(uint32_t seed, int id) {
  return SplitMix((static_cast<uint64_t>(seed) << 32) |
                  static_cast<uint32_t>(id));
}

size_t LogUniform(std::mt19937_64& rng, size_t lo, size_t hi) {
  std::uniform_real_distribution<double> dist(
      std::log(static_cast<double>(lo)), std::log(static_cast<double>(hi) + 1));
  return std::clamp(static_cast<size_t>(std::exp(dist(rng))), lo, hi);
}

// --- StreamClient
// ----------------------------------------------------------------

struct StreamClient::Conn {
  int id = 0;
  std::atomic<bool> connected{false};
  std::atomic<bool> failed{false};
  std::atomic<bool> finished{false};
  std::atomic<bool> done{false};  // the coroutine has ended
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> verified{0};
  std::atomic<int64_t> max_gap_ns{0};
  std::vector<absl::Duration> gaps;  // reactor thread, until it ends
  mutable std::mutex mu;
  std::string error;
  int64_t first_mismatch = -1;

  void Fail(std::string why, int64_t mismatch = -1) {
    std::lock_guard<std::mutex> lock(mu);
    if (error.empty()) error = std::move(why);
    if (mismatch >= 0 && first_mismatch < 0) first_mismatch = mismatch;
    failed.store(true);
  }
};

std::string StreamResult::ToString() const {
  std::string s =
      absl::StrFormat("connection %d: %s, %d sent, %d verified, max gap %s", id,
                      connected ? "connected" : "not connected", sent, verified,
                      absl::FormatDuration(max_gap));
  if (first_mismatch >= 0) {
    absl::StrAppend(&s, ", first wrong byte at offset ", first_mismatch);
  }
  if (!error.empty()) absl::StrAppend(&s, ", error: ", error);
  if (!finished) absl::StrAppend(&s, ", not finished");
  return s;
}

StreamClient::StreamClient(StreamClientOptions options)
    : options_(std::move(options)) {
  for (int i = 0; i < options_.connections; ++i) {
    conns_.push_back(std::make_unique<Conn>());
    conns_.back()->id = i;
  }
}

StreamClient::~StreamClient() {
  if (!thread_.joinable()) return;
  stop_sending_.store(true);
  CancelAndJoin(absl::Seconds(20));
}

absl::Status StreamClient::Launch() {
  if (thread_.joinable()) return absl::FailedPreconditionError("launched");
  thread_ = std::thread([this] { ThreadMain(); });
  // Creating a reactor takes a few system calls; the bound only guards
  // against a thread that never gets to run.
  if (!WaitUntil([&] { return reactor_ready_.load() || thread_done_.load(); },
                 options_.connect_timeout)) {
    return absl::DeadlineExceededError("the client thread did not start");
  }
  std::lock_guard<std::mutex> lock(mu_);
  return thread_status_;
}

absl::Status StreamClient::Start() {
  if (absl::Status launched = Launch(); !launched.ok()) return launched;
  const int n = options_.connections;
  const bool settled =
      WaitUntil([&] { return thread_done_.load() || settled_.load() == n; },
                options_.connect_timeout);
  if (!settled) {
    return absl::DeadlineExceededError(absl::StrFormat(
        "seed=%u: %d of %d connections established within %s", seed(),
        settled_.load(), n, absl::FormatDuration(options_.connect_timeout)));
  }
  return FirstFailure();
}

void StreamClient::ThreadMain() {
  absl::StatusOr<std::unique_ptr<Reactor>> reactor = Reactor::Create();
  if (!reactor.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    thread_status_ = reactor.status();
    thread_done_.store(true);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    reactor_ = *std::move(reactor);
  }
  reactor_ready_.store(true);
  reactor_->BlockOn(Main());
  // Destroyed on its own thread (the ring may be single-issuer), under mu_
  // so that CancelAndJoin() never schedules on a destroyed reactor.
  std::lock_guard<std::mutex> lock(mu_);
  reactor_.reset();
  thread_done_.store(true);
}

Task<void> StreamClient::Main() {
  for (auto& c : conns_) group_.Spawn(RunConnection(c.get()));
  co_await group_.Join();
}

Task<void> StreamClient::RunConnection(Conn* c) {
  absl::StatusOr<Connection> conn = co_await Connect(options_.server);
  if (!conn.ok()) {
    c->Fail(absl::StrCat("connect: ", conn.status().ToString()));
    settled_.fetch_add(1);
    c->done.store(true);
    co_return;
  }
  c->connected.store(true);
  settled_.fetch_add(1);

  const uint64_t key = StreamKey(options_.seed, c->id);
  const PatternStream stream(key);
  std::mt19937_64 sizes(SplitMix(key));
  std::string chunk;
  uint64_t sent = 0;
  uint64_t verified = 0;
  int64_t max_gap_ns = 0;
  absl::Time last_read = absl::Now();
  bool ok = true;
  const absl::Duration interval = options_.write_interval;
  absl::Time next_write =
      absl::Now() +
      (interval > absl::ZeroDuration()
           ? interval * (static_cast<double>(sizes() % 1000) / 1000.0)
           : absl::ZeroDuration());
  auto write_one = [&] {
    const size_t n =
        options_.write_sizes == StreamClientOptions::WriteSizes::kUniform
            ? 1 + sizes() % options_.max_write
            : LogUniform(sizes, 1, options_.max_write);
    chunk.resize(n);
    stream.Fill(sent, chunk.data(), n);
    conn->Write(chunk);
    sent += n;
  };
  while (true) {
    if (interval > absl::ZeroDuration() && sent == verified) {
      // Paced: the previous write came back; the next one at its tick.
      const absl::Duration wait = next_write - absl::Now();
      if (wait > absl::ZeroDuration()) {
        absl::Status slept = co_await Sleep(wait);
        if (!slept.ok()) {
          c->Fail(absl::StrCat("between writes: ", slept.ToString()));
          ok = false;
          break;
        }
      }
      next_write = std::max(next_write + interval, absl::Now());
      if (!stop_sending_.load(std::memory_order_relaxed)) {
        write_one();
        last_read = absl::Now();  // the gap to come is this write's latency
        c->sent.store(sent, std::memory_order_relaxed);
      }
    } else if (interval == absl::ZeroDuration() &&
               !stop_sending_.load(std::memory_order_relaxed)) {
      while (sent - verified < options_.window) write_one();
      c->sent.store(sent, std::memory_order_relaxed);
    }
    if (verified == sent) break;  // stopped, and every byte came back
    absl::StatusOr<size_t> r = co_await conn->Read();
    const absl::Time now = absl::Now();
    const int64_t gap_ns = absl::ToInt64Nanoseconds(now - last_read);
    if (options_.record_gaps) c->gaps.push_back(now - last_read);
    max_gap_ns = std::max(max_gap_ns, gap_ns);
    c->max_gap_ns.store(max_gap_ns, std::memory_order_relaxed);
    last_read = now;
    // ResourceExhausted only says the inbound buffer is full: verify it.
    if (!r.ok() && !absl::IsResourceExhausted(r.status())) {
      c->Fail(absl::StrFormat("read after %d of %d bytes echoed: %s", verified,
                              sent, r.status().ToString()));
      ok = false;
      break;
    }
    if (r.ok() && *r == 0) {
      c->Fail(absl::StrFormat(
          "end of stream from the server after %d of %d bytes echoed", verified,
          sent));
      ok = false;
      break;
    }
    const std::string_view in = conn->inbound();
    const uint64_t owed = sent - verified;
    const size_t bad = stream.Mismatch(
        verified, in.substr(0, std::min<uint64_t>(in.size(), owed)));
    if (bad != std::string::npos) {
      c->Fail(absl::StrFormat("echoed byte at offset %d differs from the "
                              "byte sent (%d sent)",
                              verified + bad, sent),
              static_cast<int64_t>(verified + bad));
      ok = false;
      break;
    }
    if (in.size() > owed) {
      c->Fail(absl::StrFormat("%d bytes echoed but only %d sent",
                              verified + in.size(), sent),
              static_cast<int64_t>(sent));
      ok = false;
      break;
    }
    verified += in.size();
    conn->Consume(in.size());
    c->verified.store(verified, std::memory_order_relaxed);
  }
  if (ok) {
    // Half-close: the echo server answers with its end of stream, and must
    // not send a byte more.
    ::shutdown(conn->fd(), SHUT_WR);
    absl::StatusOr<size_t> r = co_await conn->Read();
    if (!r.ok()) {
      c->Fail(absl::StrCat("waiting for the server's end of stream: ",
                           r.status().ToString()));
    } else if (*r != 0 || !conn->inbound().empty()) {
      c->Fail(absl::StrFormat("%d bytes after every byte was echoed",
                              conn->inbound().size()),
              static_cast<int64_t>(verified));
    } else {
      c->finished.store(true);
    }
  }
  co_await conn->Close();
  c->done.store(true);
}

absl::Status StreamClient::FirstFailure() const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!thread_status_.ok()) return thread_status_;
  }
  for (const auto& c : conns_) {
    if (!c->failed.load()) continue;
    std::lock_guard<std::mutex> lock(c->mu);
    return absl::AbortedError(absl::StrFormat(
        "seed=%u: connection %d failed: %s", seed(), c->id, c->error));
  }
  return absl::OkStatus();
}

absl::Status StreamClient::WaitVerified(uint64_t bytes,
                                        absl::Duration timeout) {
  absl::Status failure;
  const bool reached = WaitUntil(
      [&] {
        failure = FirstFailure();
        if (!failure.ok()) return true;
        for (const auto& c : conns_) {
          if (c->verified.load(std::memory_order_relaxed) < bytes) return false;
        }
        return true;
      },
      timeout);
  if (!failure.ok()) return failure;
  if (reached) return absl::OkStatus();
  const Conn* slowest = conns_.front().get();
  for (const auto& c : conns_) {
    if (c->verified.load() < slowest->verified.load()) slowest = c.get();
  }
  return absl::DeadlineExceededError(absl::StrFormat(
      "seed=%u: after %s connection %d has verified only %d of %d bytes "
      "needed (%d sent)",
      seed(), absl::FormatDuration(timeout), slowest->id,
      slowest->verified.load(), bytes, slowest->sent.load()));
}

absl::Status StreamClient::WaitForProgress(uint64_t bytes,
                                           absl::Duration timeout) {
  std::vector<uint64_t> target;
  for (const auto& c : conns_) target.push_back(c->verified.load() + bytes);
  absl::Status failure;
  const bool reached = WaitUntil(
      [&] {
        failure = FirstFailure();
        if (!failure.ok()) return true;
        for (size_t i = 0; i < conns_.size(); ++i) {
          if (conns_[i]->verified.load(std::memory_order_relaxed) < target[i]) {
            return false;
          }
        }
        return true;
      },
      timeout);
  if (!failure.ok()) return failure;
  if (reached) return absl::OkStatus();
  size_t worst = 0;
  int64_t worst_missing = 0;
  for (size_t i = 0; i < conns_.size(); ++i) {
    const int64_t missing = static_cast<int64_t>(target[i]) -
                            static_cast<int64_t>(conns_[i]->verified.load());
    if (missing > worst_missing) {
      worst = i;
      worst_missing = missing;
    }
  }
  return absl::DeadlineExceededError(absl::StrFormat(
      "seed=%u: after %s connection %d still lacks %d of the %d bytes of "
      "progress needed (%d sent, %d verified)",
      seed(), absl::FormatDuration(timeout), worst, worst_missing, bytes,
      conns_[worst]->sent.load(), conns_[worst]->verified.load()));
}

void StreamClient::CancelAndJoin(absl::Duration bound) {
  if (!thread_.joinable()) return;
  // Cancel again every 100 ms: a connection may still be connecting.
  const bool done = WaitUntil(
      [&] {
        std::lock_guard<std::mutex> lock(mu_);
        if (thread_done_.load()) return true;
        if (reactor_ != nullptr) {
          reactor_->Schedule([this] { group_.CancelAll(); });
        }
        return false;
      },
      bound, absl::Milliseconds(100));
  if (!done) {
    std::fprintf(stderr,
                 "StreamClient (seed=%u): the client thread did not end %s "
                 "after cancellation; aborting\n",
                 seed(), absl::FormatDuration(bound).c_str());
    std::abort();
  }
  thread_.join();
}

absl::Status StreamClient::Finish(absl::Duration timeout) {
  if (!thread_.joinable()) {
    return absl::FailedPreconditionError("not running");
  }
  stop_sending_.store(true);
  const bool done = WaitUntil([&] { return thread_done_.load(); }, timeout);
  absl::Status status;
  if (!done) {
    std::vector<std::string> owed;
    for (const auto& c : conns_) {
      if (c->done.load()) continue;
      const uint64_t sent = c->sent.load();
      const uint64_t verified = c->verified.load();
      if (owed.size() < 5) {
        owed.push_back(absl::StrFormat("connection %d: %d of %d echoed", c->id,
                                       verified, sent));
      }
      c->Fail(absl::StrFormat(
          "Finish timed out after %s with %d of %d bytes echoed",
          absl::FormatDuration(timeout), verified, sent));
    }
    status = absl::DeadlineExceededError(absl::StrFormat(
        "seed=%u: connections still owed bytes %s after Finish(): %s", seed(),
        absl::FormatDuration(timeout), absl::StrJoin(owed, "; ")));
  }
  CancelAndJoin(absl::Seconds(20));
  if (!status.ok()) return status;
  return FirstFailure();
}

StreamResult StreamClient::ResultOf(const Conn& c, bool with_gaps) const {
  StreamResult r;
  r.id = c.id;
  r.connected = c.connected.load();
  r.sent = c.sent.load();
  r.verified = c.verified.load();
  r.max_gap = absl::Nanoseconds(c.max_gap_ns.load());
  r.finished = c.finished.load();
  // The reactor thread appends to c.gaps until it ends.
  if (with_gaps && thread_done_.load()) r.gaps = c.gaps;
  std::lock_guard<std::mutex> lock(c.mu);
  r.error = c.error;
  r.first_mismatch = c.first_mismatch;
  return r;
}

std::vector<StreamResult> StreamClient::Results() const {
  std::vector<StreamResult> out;
  for (const auto& c : conns_) out.push_back(ResultOf(*c, /*with_gaps=*/true));
  return out;
}

uint64_t StreamClient::TotalVerified() const {
  uint64_t total = 0;
  for (const auto& c : conns_) total += c->verified.load();
  return total;
}

std::string StreamClient::Summary() const {
  uint64_t sent = 0;
  uint64_t verified = 0;
  int failed = 0;
  absl::Duration max_gap;
  std::vector<std::string> failures;
  for (const auto& c : conns_) {
    const StreamResult r = ResultOf(*c, /*with_gaps=*/false);
    sent += r.sent;
    verified += r.verified;
    max_gap = std::max(max_gap, r.max_gap);
    if (r.ok()) continue;
    ++failed;
    if (failures.size() < 5) failures.push_back(r.ToString());
  }
  std::string s = absl::StrFormat(
      "seed=%u, %d connections: %d bytes sent, %d verified, %d not ok, max "
      "client-visible gap %s",
      seed(), conns_.size(), sent, verified, failed,
      absl::FormatDuration(max_gap));
  for (const std::string& f : failures) absl::StrAppend(&s, "\n  ", f);
  return s;
}

}  // namespace baton::app
