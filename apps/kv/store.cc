#include "kv/store.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "kv/resp.h"
#include "kv/view.h"

namespace baton::kv {

// --- Glob
// ---------------------------------------------------------------------

namespace {

// Matches one pattern token other than '*' (a literal, '?', "\x" or a
// "[...]" class) at pattern[p] against `c`; sets *next past the token.
// Follows Redis's stringmatchlen: an unterminated class runs to the end of
// the pattern, ranges may be reversed ([z-a]), a trailing '\' is literal.
bool MatchToken(std::string_view pattern, size_t p, char c, size_t* next) {
  const size_t n = pattern.size();
  const char t = pattern[p];
  if (t == '?') {
    *next = p + 1;
    return true;
  }
  if (t == '\\' && p + 1 < n) {
    *next = p + 2;
    return pattern[p + 1] == c;
  }
  if (t != '[') {
    *next = p + 1;
    return t == c;
  }
  size_t i = p + 1;
  bool negate = false;
  if (i < n && pattern[i] == '^') {
    negate = true;
    ++i;
  }
  bool match = false;
  while (i < n) {
    if (pattern[i] == '\\' && i + 1 < n) {
      if (pattern[i + 1] == c) match = true;
      i += 2;
    } else if (pattern[i] == ']') {
      ++i;
      break;
    } else if (i + 2 < n && pattern[i + 1] == '-') {
      auto lo = static_cast<unsigned char>(pattern[i]);
      auto hi = static_cast<unsigned char>(pattern[i + 2]);
      if (lo > hi) std::swap(lo, hi);
      const auto uc = static_cast<unsigned char>(c);
      if (uc >= lo && uc <= hi) match = true;
      i += 3;
    } else {
      if (pattern[i] == c) match = true;
      ++i;
    }
  }
  *next = i;
  return match != negate;
}

}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view s) {
  constexpr size_t kNone = std::string_view::npos;
  size_t p = 0;
  size_t i = 0;
  size_t star_p = kNone;  // pattern index just after the last '*' seen
  size_t star_i = 0;      // string index that '*' was last tried to end at
  while (i < s.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      while (p < pattern.size() && pattern[p] == '*') ++p;
      if (p == pattern.size()) return true;
      star_p = p;
      star_i = i;
      continue;
    }
    size_t next = 0;
    if (p < pattern.size() && MatchToken(pattern, p, s[i], &next)) {
      p = next;
      ++i;
      continue;
    }
    if (star_p == kNone) return false;
    // Let the last '*' swallow one more character and retry from there.
    p = star_p;
    i = ++star_i;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// --- Store: helpers ----------------------------------------------------------

Store::Entry* Store::Find(std::string_view key, absl::Time now) {
  auto it = map_.find(Av(key));
  if (it == map_.end()) return nullptr;
  if (it->second.deadline <= now) {
    Erase(it);
    ++expired_;
    return nullptr;
  }
  return &it->second;
}

void Store::Erase(Map::iterator it) {
  if (it->second.deadline != absl::InfiniteFuture()) {
    deadlines_.erase({it->second.deadline, it->first});
  }
  map_.erase(it);
}

bool Store::EraseKey(std::string_view key) {
  auto it = map_.find(Av(key));
  if (it == map_.end()) return false;
  Erase(it);
  return true;
}

void Store::SetDeadline(std::string_view key, Entry* entry,
                        absl::Time deadline) {
  if (entry->deadline == deadline) return;
  if (entry->deadline != absl::InfiniteFuture()) {
    deadlines_.erase({entry->deadline, std::string(key)});
  }
  entry->deadline = deadline;
  if (deadline != absl::InfiniteFuture()) {
    deadlines_.insert({deadline, std::string(key)});
  }
}

void Store::PutString(std::string_view key, std::string_view value) {
  auto [it, inserted] = map_.try_emplace(Av(key));
  Entry& e = it->second;
  if (!inserted) SetDeadline(key, &e, absl::InfiniteFuture());
  if (auto* s = std::get_if<std::string>(&e.value)) {
    s->assign(value);
  } else {
    e.value = std::string(value);
  }
}

// --- Strings
// -------------------------------------------------------------------

absl::StatusOr<std::optional<std::string>> Store::Get(std::string_view key,
                                                      absl::Time now) {
  absl::MutexLock lock(&mu_);
  Entry* e = Find(key, now);
  if (e == nullptr) return std::nullopt;
  auto* s = std::get_if<std::string>(&e->value);
  if (s == nullptr) return absl::FailedPreconditionError(kWrongTypeError);
  return *s;
}

absl::StatusOr<SetResult> Store::Set(std::string_view key,
                                     std::string_view value,
                                     const SetOptions& options,
                                     absl::Time now) {
  absl::MutexLock lock(&mu_);
  Entry* e = Find(key, now);
  SetResult result;
  if (options.get && e != nullptr) {
    auto* s = std::get_if<std::string>(&e->value);
    if (s == nullptr) return absl::FailedPreconditionError(kWrongTypeError);
    result.previous = *s;
  }
  if ((options.nx && e != nullptr) || (options.xx && e == nullptr)) {
    return result;
  }
  const absl::Time keep =
      e != nullptr && options.keep_ttl ? e->deadline : absl::InfiniteFuture();
  PutString(key, value);
  Entry* fresh = &map_.find(Av(key))->second;
  if (options.deadline.has_value()) {
    if (*options.deadline <= now) {
      EraseKey(key);  // already past: written and expired at once
    } else {
      SetDeadline(key, fresh, *options.deadline);
    }
  } else {
    SetDeadline(key, fresh, keep);
  }
  result.written = true;
  return result;
}

absl::StatusOr<std::optional<std::string>> Store::GetSet(std::string_view key,
                                                         std::string_view value,
                                                         absl::Time now) {
  absl::MutexLock lock(&mu_);
  Entry* e = Find(key, now);
  std::optional<std::string> previous;
  if (e != nullptr) {
    auto* s = std::get_if<std::string>(&e->value);
    if (s == nullptr) return absl::FailedPreconditionError(kWrongTypeError);
    previous = std::move(*s);
  }
  PutString(key, value);
  return previous;
}

absl::StatusOr<int64_t> Store::IncrBy(std::string_view key, int64_t delta,
                                      absl::Time now) {
  absl::MutexLock lock(&mu_);
  Entry* e = Find(key, now);
  int64_t current = 0;
  if (e != nullptr) {
    auto* s = std::get_if<std::string>(&e->value);
    if (s == nullptr) return absl::FailedPreconditionError(kWrongTypeError);
    if (!ParseInt64(*s, &current)) {
      return absl::InvalidArgumentError(kNotIntegerError);
    }
  }
  int64_t result = 0;
  if (__builtin_add_overflow(current, delta, &result)) {
    return absl::OutOfRangeError(kOverflowError);
  }
  if (e == nullptr) {
    PutString(key, absl::StrCat(result));
  } else {
    std::get<std::string>(e->value) = absl::StrCat(result);  // keeps deadline
  }
  return result;
}

absl::StatusOr<size_t> Store::Append(std::string_view key,
                                     std::string_view value, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Entry* e = Find(key, now);
  if (e == nullptr) {
    PutString(key, value);
    return value.size();
  }
  auto* s = std::get_if<std::string>(&e->value);
  if (s == nullptr) return absl::FailedPreconditionError(kWrongTypeError);
  s->append(value);
  return s->size();
}

absl::StatusOr<size_t> Store::Strlen(std::string_view key, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Entry* e = Find(key, now);
  if (e == nullptr) return 0;
  auto* s = std::get_if<std::string>(&e->value);
  if (s == nullptr) return absl::FailedPreconditionError(kWrongTypeError);
  return s->size();
}

std::vector<std::optional<std::string>> Store::MGet(
    absl::Span<const std::string_view> keys, absl::Time now) {
  absl::MutexLock lock(&mu_);
  std::vector<std::optional<std::string>> values;
  values.reserve(keys.size());
  for (std::string_view key : keys) {
    Entry* e = Find(key, now);
    auto* s = e == nullptr ? nullptr : std::get_if<std::string>(&e->value);
    values.push_back(s == nullptr ? std::nullopt
                                  : std::optional<std::string>(*s));
  }
  return values;
}

void Store::MSet(absl::Span<const std::string_view> keys_and_values,
                 absl::Time /*now*/) {
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i + 1 < keys_and_values.size(); i += 2) {
    PutString(keys_and_values[i], keys_and_values[i + 1]);
  }
}

// --- Keys
// ------------------------------------------------------------------------

size_t Store::Del(absl::Span<const std::string_view> keys, absl::Time now) {
  absl::MutexLock lock(&mu_);
  size_t deleted = 0;
  for (std::string_view key : keys) {
    if (Find(key, now) != nullptr && EraseKey(key)) ++deleted;
  }
  return deleted;
}

size_t Store::Exists(absl::Span<const std::string_view> keys, absl::Time now) {
  absl::MutexLock lock(&mu_);
  size_t found = 0;
  for (std::string_view key : keys) {
    if (Find(key, now) != nullptr) ++found;
  }
  return found;
}

bool Store::Expire(std::string_view key, absl::Time deadline,
                   ExpireCondition condition, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Entry* e = Find(key, now);
  if (e == nullptr) return false;
  const bool has_deadline = e->deadline != absl::InfiniteFuture();
  switch (condition) {
    case ExpireCondition::kAlways:
      break;
    case ExpireCondition::kNx:
      if (has_deadline) return false;
      break;
    case ExpireCondition::kXx:
      if (!has_deadline) return false;
      break;
    case ExpireCondition::kGt:  // no deadline counts as infinite
      if (!has_deadline || deadline <= e->deadline) return false;
      break;
    case ExpireCondition::kLt:
      if (has_deadline && deadline >= e->deadline) return false;
      break;
  }
  if (deadline <= now) {
    EraseKey(key);
  } else {
    SetDeadline(key, e, deadline);
  }
  return true;
}

std::optional<absl::Duration> Store::TimeToLive(std::string_view key,
                                                absl::Time now) {
  absl::MutexLock lock(&mu_);
  Entry* e = Find(key, now);
  if (e == nullptr) return std::nullopt;
  if (e->deadline == absl::InfiniteFuture()) return absl::InfiniteDuration();
  return e->deadline - now;
}

bool Store::Persist(std::string_view key, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Entry* e = Find(key, now);
  if (e == nullptr || e->deadline == absl::InfiniteFuture()) return false;
  SetDeadline(key, e, absl::InfiniteFuture());
  return true;
}

std::string_view Store::TypeName(std::string_view key, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Entry* e = Find(key, now);
  if (e == nullptr) return "none";
  return std::holds_alternative<std::string>(e->value) ? "string" : "list";
}

size_t Store::Size(absl::Time now) {
  absl::MutexLock lock(&mu_);
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    EraseKey(deadlines_.begin()->second);
    ++expired_;
  }
  return map_.size();
}

uint64_t Store::ExpiredCount() {
  absl::MutexLock lock(&mu_);
  return expired_;
}

size_t Store::VolatileCount() {
  absl::MutexLock lock(&mu_);
  return deadlines_.size();
}

void Store::FlushAll() {
  absl::MutexLock lock(&mu_);
  map_.clear();
  deadlines_.clear();
}

std::vector<std::string> Store::Keys(std::string_view pattern, absl::Time now) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> keys;
  const bool all = pattern == "*";
  for (const auto& [key, entry] : map_) {
    if (entry.deadline <= now) continue;  // expired: not reported
    if (all || GlobMatch(pattern, key)) keys.push_back(key);
  }
  return keys;
}

// --- Lists
// -----------------------------------------------------------------------

absl::StatusOr<size_t> Store::Push(std::string_view key,
                                   absl::Span<const std::string_view> values,
                                   bool left, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Entry* e = Find(key, now);
  if (e == nullptr) {
    e = &map_.try_emplace(Av(key)).first->second;
    e->value = List();
  }
  auto* list = std::get_if<List>(&e->value);
  if (list == nullptr) return absl::FailedPreconditionError(kWrongTypeError);
  for (std::string_view v : values) {
    if (left) {
      list->emplace_front(v);
    } else {
      list->emplace_back(v);
    }
  }
  return list->size();
}

absl::StatusOr<std::vector<std::string>> Store::Pop(std::string_view key,
                                                    size_t count, bool left,
                                                    absl::Time now) {
  absl::MutexLock lock(&mu_);
  Entry* e = Find(key, now);
  if (e == nullptr) return absl::NotFoundError("no such key");
  auto* list = std::get_if<List>(&e->value);
  if (list == nullptr) return absl::FailedPreconditionError(kWrongTypeError);
  std::vector<std::string> popped;
  count = std::min(count, list->size());
  popped.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    if (left) {
      popped.push_back(std::move(list->front()));
      list->pop_front();
    } else {
      popped.push_back(std::move(list->back()));
      list->pop_back();
    }
  }
  if (list->empty()) EraseKey(key);
  return popped;
}

absl::StatusOr<std::vector<std::string>> Store::Range(std::string_view key,
                                                      int64_t start,
                                                      int64_t stop,
                                                      absl::Time now) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  Entry* e = Find(key, now);
  if (e == nullptr) return out;
  auto* list = std::get_if<List>(&e->value);
  if (list == nullptr) return absl::FailedPreconditionError(kWrongTypeError);
  const auto len = static_cast<int64_t>(list->size());
  if (start < 0) start = start < -len ? 0 : len + start;
  if (stop < 0) stop = stop < -len ? -1 : len + stop;
  if (start > stop || start >= len) return out;
  if (stop >= len) stop = len - 1;
  out.reserve(static_cast<size_t>(stop - start + 1));
  auto first = list->begin() + start;
  out.assign(first, first + (stop - start + 1));
  return out;
}

absl::StatusOr<size_t> Store::Length(std::string_view key, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Entry* e = Find(key, now);
  if (e == nullptr) return 0;
  auto* list = std::get_if<List>(&e->value);
  if (list == nullptr) return absl::FailedPreconditionError(kWrongTypeError);
  return list->size();
}

// --- Expiry
// ----------------------------------------------------------------------

size_t Store::ExpireDue(absl::Time now, size_t limit) {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  while (n < limit && !deadlines_.empty() && deadlines_.begin()->first <= now) {
    EraseKey(deadlines_.begin()->second);
    ++n;
  }
  expired_ += n;
  return n;
}

// --- Snapshot
// --------------------------------------------------------------------
//
// Little-endian:
//   "BKVS"  u32 version  u64 body_len  u64 checksum(body)  body
// body:
//   u64 key_count
//   per key: u8 type (1 string, 2 list)  u8 has_deadline
//            [i64 deadline, Unix nanoseconds, if has_deadline]
//            u64 key_len  key
//            string: u64 len  bytes
//            list:   u64 count  count x (u64 len  bytes)

namespace {

constexpr char kMagic[4] = {'B', 'K', 'V', 'S'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderSize = 4 + 4 + 8 + 8;
constexpr uint8_t kTypeString = 1;
constexpr uint8_t kTypeList = 2;

// FNV-1a over 64-bit words (then the tail bytes): cheap, and enough to tell
// a damaged blob from a good one. Not a defence against tampering (the memfd
// is sealed and private to the two processes).
uint64_t Checksum(std::string_view data) {
  constexpr uint64_t kPrime = 0x100000001b3ULL;
  uint64_t h = 0xcbf29ce484222325ULL;
  size_t i = 0;
  for (; i + 8 <= data.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, data.data() + i, 8);
    h = (h ^ word) * kPrime;
  }
  for (; i < data.size(); ++i) {
    h = (h ^ static_cast<unsigned char>(data[i])) * kPrime;
  }
  return h;
}

void PutU8(std::string* out, uint8_t v) {
  out->push_back(static_cast<char>(v));
}

void PutU32(std::string* out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, sizeof(b));
}

void PutU64(std::string* out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, sizeof(b));
}

void PutBytes(std::string* out, std::string_view bytes) {
  PutU64(out, bytes.size());
  out->append(bytes);
}

class Reader {
 public:
  explicit Reader(std::string_view data, size_t base)
      : data_(data), base_(base) {}
  size_t remaining() const { return data_.size() - pos_; }
  size_t offset() const { return base_ + pos_; }

  absl::Status U8(const char* what, uint8_t* v) {
    if (absl::Status s = Need(1, what); !s.ok()) return s;
    *v = static_cast<uint8_t>(data_[pos_++]);
    return absl::OkStatus();
  }
  absl::Status U64(const char* what, uint64_t* v) {
    if (absl::Status s = Need(8, what); !s.ok()) return s;
    *v = 0;
    for (int i = 0; i < 8; ++i) {
      *v |= static_cast<uint64_t>(static_cast<unsigned char>(data_[pos_ + i]))
            << (8 * i);
    }
    pos_ += 8;
    return absl::OkStatus();
  }
  absl::Status Bytes(const char* what, std::string_view* v) {
    uint64_t len = 0;
    if (absl::Status s = U64(what, &len); !s.ok()) return s;
    if (len > remaining()) {
      return absl::DataLossError(absl::StrCat(
          "kv snapshot corrupt: ", what, " claims ", len, " bytes at offset ",
          offset(), ", only ", remaining(), " left"));
    }
    *v = data_.substr(pos_, len);
    pos_ += len;
    return absl::OkStatus();
  }

 private:
  absl::Status Need(size_t n, const char* what) {
    if (remaining() >= n) return absl::OkStatus();
    return absl::DataLossError(absl::StrCat(
        "kv snapshot truncated: ", what, " needs ", n, " bytes at offset ",
        offset(), ", ", remaining(), " left"));
  }
  std::string_view data_;
  size_t base_;
  size_t pos_ = 0;
};

uint32_t LoadU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return v;
}

uint64_t LoadU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) {
    v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return v;
}

}  // namespace

std::string Store::Serialize(absl::Time now) {
  absl::MutexLock lock(&mu_);
  // Size first, so the blob is written in place with a single allocation.
  size_t body_size = 8;
  uint64_t count = 0;
  for (const auto& [key, entry] : map_) {
    if (entry.deadline <= now) continue;
    ++count;
    body_size += 2 + 8 + key.size();
    if (entry.deadline != absl::InfiniteFuture()) body_size += 8;
    if (const auto* s = std::get_if<std::string>(&entry.value)) {
      body_size += 8 + s->size();
    } else {
      const List& list = std::get<List>(entry.value);
      body_size += 8 + 8 * list.size();
      for (const std::string& v : list) body_size += v.size();
    }
  }
  std::string blob;
  blob.reserve(kHeaderSize + body_size);
  blob.append(kMagic, sizeof(kMagic));
  PutU32(&blob, kVersion);
  PutU64(&blob, body_size);
  PutU64(&blob, 0);  // checksum, patched below
  PutU64(&blob, count);
  for (const auto& [key, entry] : map_) {
    if (entry.deadline <= now) continue;
    const auto* s = std::get_if<std::string>(&entry.value);
    PutU8(&blob, s != nullptr ? kTypeString : kTypeList);
    if (entry.deadline == absl::InfiniteFuture()) {
      PutU8(&blob, 0);
    } else {
      PutU8(&blob, 1);
      PutU64(&blob, static_cast<uint64_t>(absl::ToUnixNanos(entry.deadline)));
    }
    PutBytes(&blob, key);
    if (s != nullptr) {
      PutBytes(&blob, *s);
    } else {
      const List& list = std::get<List>(entry.value);
      PutU64(&blob, list.size());
      for (const std::string& v : list) PutBytes(&blob, v);
    }
  }
  const uint64_t checksum =
      Checksum(std::string_view(blob).substr(kHeaderSize));
  for (int i = 0; i < 8; ++i) {
    blob[16 + i] = static_cast<char>(checksum >> (8 * i));
  }
  return blob;
}

absl::Status Store::Deserialize(std::string_view blob, absl::Time now) {
  if (blob.size() < kHeaderSize) {
    return absl::DataLossError(
        absl::StrCat("kv snapshot truncated: ", blob.size(),
                     " bytes, the header alone is ", kHeaderSize));
  }
  if (std::memcmp(blob.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError("kv snapshot corrupt: bad magic (not BKVS)");
  }
  const uint32_t version = LoadU32(blob.data() + 4);
  if (version != kVersion) {
    return absl::DataLossError(absl::StrCat("kv snapshot version ", version,
                                            " is not supported (this binary "
                                            "reads version ",
                                            kVersion, ")"));
  }
  const uint64_t body_len = LoadU64(blob.data() + 8);
  const uint64_t checksum = LoadU64(blob.data() + 16);
  const std::string_view body = blob.substr(kHeaderSize);
  if (body_len != body.size()) {
    return absl::DataLossError(absl::StrCat(
        "kv snapshot ", body_len > body.size() ? "truncated" : "corrupt",
        ": header says ", body_len, " body bytes, blob has ", body.size()));
  }
  if (Checksum(body) != checksum) {
    return absl::DataLossError("kv snapshot corrupt: checksum mismatch");
  }

  Reader r(body, kHeaderSize);
  uint64_t count = 0;
  if (absl::Status s = r.U64("key count", &count); !s.ok()) return s;
  // The smallest entry is 18 bytes (type, flag, key length, value length).
  if (count > r.remaining() / 18) {
    return absl::DataLossError(absl::StrCat("kv snapshot corrupt: ", count,
                                            " keys cannot fit in ",
                                            r.remaining(), " bytes"));
  }
  Map map;
  Deadlines deadlines;
  map.reserve(count);
  for (uint64_t k = 0; k < count; ++k) {
    uint8_t type = 0;
    uint8_t has_deadline = 0;
    if (absl::Status s = r.U8("type", &type); !s.ok()) return s;
    if (type != kTypeString && type != kTypeList) {
      return absl::DataLossError(
          absl::StrCat("kv snapshot corrupt: unknown value type ", type,
                       " at offset ", r.offset() - 1));
    }
    if (absl::Status s = r.U8("deadline flag", &has_deadline); !s.ok()) {
      return s;
    }
    if (has_deadline > 1) {
      return absl::DataLossError(
          absl::StrCat("kv snapshot corrupt: deadline flag ", has_deadline,
                       " at offset ", r.offset() - 1));
    }
    absl::Time deadline = absl::InfiniteFuture();
    if (has_deadline == 1) {
      uint64_t ns = 0;
      if (absl::Status s = r.U64("deadline", &ns); !s.ok()) return s;
      deadline = absl::FromUnixNanos(static_cast<int64_t>(ns));
    }
    std::string_view key;
    if (absl::Status s = r.Bytes("key", &key); !s.ok()) return s;
    Entry entry;
    entry.deadline = deadline;
    if (type == kTypeString) {
      std::string_view value;
      if (absl::Status s = r.Bytes("string value", &value); !s.ok()) return s;
      entry.value = std::string(value);
    } else {
      uint64_t n = 0;
      if (absl::Status s = r.U64("list length", &n); !s.ok()) return s;
      if (n == 0 || n > r.remaining() / 8) {
        return absl::DataLossError(absl::StrCat(
            "kv snapshot corrupt: list of ", n, " elements at offset ",
            r.offset() - 8, " with ", r.remaining(), " bytes left"));
      }
      List list;
      for (uint64_t i = 0; i < n; ++i) {
        std::string_view v;
        if (absl::Status s = r.Bytes("list element", &v); !s.ok()) return s;
        list.emplace_back(v);
      }
      entry.value = std::move(list);
    }
    if (deadline <= now) continue;  // expired on the way
    auto [it, inserted] = map.try_emplace(Av(key), std::move(entry));
    if (!inserted) {
      return absl::DataLossError(absl::StrCat("kv snapshot corrupt: key '",
                                              Av(key), "' appears twice"));
    }
    if (deadline != absl::InfiniteFuture()) {
      deadlines.insert({deadline, std::string(key)});
    }
  }
  if (r.remaining() != 0) {
    return absl::DataLossError(
        absl::StrCat("kv snapshot corrupt: ", r.remaining(),
                     " trailing bytes after ", count, " keys"));
  }
  absl::MutexLock lock(&mu_);
  map_ = std::move(map);
  deadlines_ = std::move(deadlines);
  return absl::OkStatus();
}

}  // namespace baton::kv
