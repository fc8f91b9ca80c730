// Store: the data of baton-kv. Keys map to strings or lists; any key may
// carry a deadline (absl::Time) after which it no longer exists.
//
// Expiry is lazy (every operation that finds a key past its deadline deletes
// it first) and periodic (ExpireDue() deletes keys whose deadline passed,
// earliest first, from an index ordered by deadline; baton-kv calls it ten
// times a second). Every operation takes the current time as a parameter, so
// tests drive the clock and never sleep.
//
// Thread safety: one absl::Mutex guards everything; every public method is
// atomic and callable from any thread (each reactor thread of the server
// calls it). Sharding the map by key hash, one mutex per shard, is the
// obvious next step when one lock becomes the bottleneck.
//
// Errors are absl::Status values whose message is the Redis error line
// without its '-' ("WRONGTYPE Operation against a key holding the wrong kind
// of value"), so the command layer sends them as they are.
//
// Serialize() captures the whole dataset, deadlines as absolute Unix times,
// for a hot restart; Deserialize() replaces the dataset with one. The blob is
// versioned, every length is checked against what remains, and a checksum
// covers it: a truncated or corrupt blob is refused with a DataLoss error
// saying what is wrong.
//
//   Store store;
//   store.Set("k", "v", {.deadline = now + absl::Seconds(10)}, now);
//   absl::StatusOr<std::optional<std::string>> v = store.Get("k", now);
#ifndef APPS_KV_STORE_H_
#define APPS_KV_STORE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace baton::kv {

// Redis's error lines (without the leading '-').
inline constexpr char kWrongTypeError[] =
    "WRONGTYPE Operation against a key holding the wrong kind of value";
inline constexpr char kNotIntegerError[] =
    "ERR value is not an integer or out of range";
inline constexpr char kOverflowError[] =
    "ERR increment or decrement would overflow";

// Redis's glob (KEYS, CONFIG GET): * ? [abc] [^a] [a-z] and \x (x taken
// literally). Runs in O(|pattern| * |s|); no recursion.
bool GlobMatch(std::string_view pattern, std::string_view s);

struct SetOptions {
  std::optional<absl::Time> deadline;  // EX / PX, made absolute
  bool nx = false;                     // only if the key does not exist
  bool xx = false;                     // only if it exists
  bool keep_ttl = false;               // KEEPTTL: keep an existing deadline
  bool get = false;                    // GET: report the previous value
};

struct SetResult {
  bool written = false;
  std::optional<std::string> previous;  // with SetOptions::get
};

enum class ExpireCondition { kAlways, kNx, kXx, kGt, kLt };

class Store {
 public:
  Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // --- Strings ---
  // nullopt: no such key.
  absl::StatusOr<std::optional<std::string>> Get(std::string_view key,
                                                 absl::Time now);
  // Clears any deadline unless options.keep_ttl. WRONGTYPE only with
  // options.get on a list.
  absl::StatusOr<SetResult> Set(std::string_view key, std::string_view value,
                                const SetOptions& options, absl::Time now);
  absl::StatusOr<std::optional<std::string>> GetSet(std::string_view key,
                                                    std::string_view value,
                                                    absl::Time now);
  // The new value; the deadline is kept. A missing key counts as 0.
  absl::StatusOr<int64_t> IncrBy(std::string_view key, int64_t delta,
                                 absl::Time now);
  // The new length.
  absl::StatusOr<size_t> Append(std::string_view key, std::string_view value,
                                absl::Time now);
  absl::StatusOr<size_t> Strlen(std::string_view key, absl::Time now);
  // One entry per key; nullopt for a missing key or a list.
  std::vector<std::optional<std::string>> MGet(
      absl::Span<const std::string_view> keys, absl::Time now);
  // keys_and_values: k1 v1 k2 v2 ... (even size). Clears deadlines.
  void MSet(absl::Span<const std::string_view> keys_and_values, absl::Time now);

  // --- Keys ---
  // How many of `keys` were deleted / exist (a key named twice counts twice
  // for Exists, as in Redis).
  size_t Del(absl::Span<const std::string_view> keys, absl::Time now);
  size_t Exists(absl::Span<const std::string_view> keys, absl::Time now);
  // Sets the deadline (a deadline not after `now` deletes the key). False if
  // the key does not exist or `condition` does not hold.
  bool Expire(std::string_view key, absl::Time deadline,
              ExpireCondition condition, absl::Time now);
  // Time left: nullopt (-2 in Redis) if no such key, InfiniteDuration() (-1)
  // if it has no deadline.
  std::optional<absl::Duration> TimeToLive(std::string_view key,
                                           absl::Time now);
  // Removes the deadline; false if there was none or no key.
  bool Persist(std::string_view key, absl::Time now);
  // "string", "list" or "none" (TYPE).
  std::string_view TypeName(std::string_view key, absl::Time now);
  // Keys that exist at `now` (deletes the expired ones first).
  size_t Size(absl::Time now);
  // Keys with a deadline (INFO's keyspace line).
  size_t VolatileCount();
  void FlushAll();
  // Every live key matching the glob, in no particular order.
  std::vector<std::string> Keys(std::string_view pattern, absl::Time now);

  // --- Lists ---
  // Pushes each value in turn at the head (left) or tail; the new length.
  absl::StatusOr<size_t> Push(std::string_view key,
                              absl::Span<const std::string_view> values,
                              bool left, absl::Time now);
  // Pops up to `count` elements (NotFound if there is no such key). An
  // emptied list is deleted.
  absl::StatusOr<std::vector<std::string>> Pop(std::string_view key,
                                               size_t count, bool left,
                                               absl::Time now);
  // Redis LRANGE indexes: negative counts from the end, both inclusive.
  absl::StatusOr<std::vector<std::string>> Range(std::string_view key,
                                                 int64_t start, int64_t stop,
                                                 absl::Time now);
  absl::StatusOr<size_t> Length(std::string_view key, absl::Time now);

  // --- Expiry ---
  // Deletes up to `limit` keys whose deadline is not after `now`, earliest
  // first; returns how many.
  size_t ExpireDue(absl::Time now, size_t limit);
  // Keys deleted because their deadline passed (by any of the paths above,
  // or by a lookup that found them expired), in this process.
  uint64_t ExpiredCount();

  // --- Snapshot ---
  // Every key alive at `now`, with its deadline.
  std::string Serialize(absl::Time now);
  // Replaces the whole dataset with the blob's (keys whose deadline is not
  // after `now` are dropped). On error the store is unchanged.
  absl::Status Deserialize(std::string_view blob, absl::Time now);

 private:
  using List = std::deque<std::string>;
  struct Entry {
    std::variant<std::string, List> value;
    absl::Time deadline = absl::InfiniteFuture();
  };
  using Map = absl::flat_hash_map<std::string, Entry>;
  using Deadlines = absl::btree_set<std::pair<absl::Time, std::string>>;

  // The live entry of `key` (an expired one is deleted), or nullptr.
  Entry* Find(std::string_view key, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Erase(Map::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool EraseKey(std::string_view key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetDeadline(std::string_view key, Entry* entry, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Overwrites (or creates) `key` as a string, clearing its deadline.
  void PutString(std::string_view key, std::string_view value)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  Map map_ ABSL_GUARDED_BY(mu_);
  Deadlines deadlines_ ABSL_GUARDED_BY(mu_);  // (deadline, key) of each key
                                              // that has one
  uint64_t expired_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace baton::kv

#endif  // APPS_KV_STORE_H_
