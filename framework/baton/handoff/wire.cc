#include "baton/handoff/wire.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace baton::handoff {
namespace {

struct MessageHeader {
  uint32_t magic;
  uint16_t version;
  uint16_t type;
  uint32_t body_size;
};
static_assert(sizeof(MessageHeader) == 12);

template <typename T>
void Put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(value));
}

// Reads fixed-size values and length-prefixed byte runs, refusing to run
// past the end.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  template <typename T>
  bool Get(T* value) {
    if (bytes_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool Take(uint64_t n, std::string* out) {
    if (bytes_.size() - pos_ < n) return false;
    out->assign(bytes_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  size_t remaining() const { return bytes_.size() - pos_; }

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
};

}  // namespace

std::string_view MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kHello:
      return "HELLO";
    case MessageType::kListeners:
      return "LISTENERS";
    case MessageType::kReady:
      return "READY";
    case MessageType::kState:
      return "STATE";
    case MessageType::kConnections:
      return "CONNECTIONS";
    case MessageType::kAck:
      return "ACK";
    case MessageType::kAbort:
      return "ABORT";
  }
  return "UNKNOWN";
}

std::string EncodeMessage(const Message& m) {
  std::string out;
  MessageHeader h{kMessageMagic, static_cast<uint16_t>(m.version),
                  static_cast<uint16_t>(m.type),
                  static_cast<uint32_t>(m.body.size())};
  Put(out, h);
  out.append(m.body);
  return out;
}

absl::StatusOr<Message> DecodeMessage(std::string_view datagram,
                                      uint32_t expected_version) {
  MessageHeader h;
  Reader r(datagram);
  if (!r.Get(&h) || h.magic != kMessageMagic) {
    return absl::DataLossError(absl::StrFormat(
        "handoff message of %d bytes has no valid header", datagram.size()));
  }
  if (h.version != expected_version) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "handoff wire version mismatch: peer speaks version %d, this binary "
        "speaks version %d",
        h.version, expected_version));
  }
  if (h.body_size != r.remaining() || h.body_size > kMaxMessageBody) {
    return absl::DataLossError(
        absl::StrFormat("handoff message body is %d bytes, header says %d",
                        r.remaining(), h.body_size));
  }
  if (h.type < 1 || h.type > 7) {
    return absl::DataLossError(
        absl::StrFormat("unknown handoff message type %d", h.type));
  }
  Message m;
  m.type = static_cast<MessageType>(h.type);
  m.version = h.version;
  m.body.assign(datagram.substr(sizeof(h)));
  return m;
}

std::string EncodeSnapshot(const Snapshot& s, uint32_t version) {
  size_t total = 4 + 4 + 8 + s.app_state.size() + 4;
  for (const auto& c : s.connections) {
    total +=
        4 + 4 + 8 * 3 + c.inbound.size() + c.outbound.size() + c.state.size();
  }
  std::string out;
  out.reserve(total);
  Put(out, kSnapshotMagic);
  Put(out, version);
  Put(out, static_cast<uint64_t>(s.app_state.size()));
  out.append(s.app_state);
  Put(out, static_cast<uint32_t>(s.connections.size()));
  for (const auto& c : s.connections) {
    Put(out, c.service);
    Put(out, static_cast<uint32_t>(c.closing));
    Put(out, static_cast<uint64_t>(c.inbound.size()));
    Put(out, static_cast<uint64_t>(c.outbound.size()));
    Put(out, static_cast<uint64_t>(c.state.size()));
    out.append(c.inbound);
    out.append(c.outbound);
    out.append(c.state);
  }
  return out;
}

absl::StatusOr<Snapshot> DecodeSnapshot(std::string_view bytes,
                                        uint32_t expected_version) {
  Reader r(bytes);
  uint32_t magic = 0, version = 0, count = 0;
  uint64_t app_len = 0;
  if (!r.Get(&magic) || magic != kSnapshotMagic || !r.Get(&version)) {
    return absl::DataLossError("handoff snapshot has no valid header");
  }
  if (version != expected_version) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "handoff snapshot version %d, this binary reads version %d", version,
        expected_version));
  }
  Snapshot s;
  if (!r.Get(&app_len) || !r.Take(app_len, &s.app_state) || !r.Get(&count)) {
    return absl::DataLossError("handoff snapshot truncated in app state");
  }
  // Each record needs at least 32 bytes: refuse absurd counts up front.
  if (count > r.remaining() / 32) {
    return absl::DataLossError(
        absl::StrFormat("handoff snapshot claims %d connections in %d bytes",
                        count, r.remaining()));
  }
  s.connections.resize(count);
  for (uint32_t i = 0; i < count; ++i) {
    DetachedConnection& c = s.connections[i];
    uint32_t closing = 0;
    uint64_t in = 0, out = 0, st = 0;
    if (!r.Get(&c.service) || !r.Get(&closing) || !r.Get(&in) || !r.Get(&out) ||
        !r.Get(&st) || !r.Take(in, &c.inbound) || !r.Take(out, &c.outbound) ||
        !r.Take(st, &c.state)) {
      return absl::DataLossError(absl::StrFormat(
          "handoff snapshot truncated in connection %d of %d", i, count));
    }
    if (closing > static_cast<uint32_t>(Closing::kLinger)) {
      return absl::DataLossError(absl::StrFormat(
          "handoff snapshot: connection %d has unknown closing mode %d", i,
          closing));
    }
    c.closing = static_cast<Closing>(closing);
  }
  if (r.remaining() != 0) {
    return absl::DataLossError(absl::StrFormat(
        "handoff snapshot has %d trailing bytes", r.remaining()));
  }
  return s;
}

namespace {

constexpr size_t kMaxReason = 200;
constexpr size_t kMaxName = 64;

int64_t DurationUs(absl::Duration d) {
  return d == absl::InfiniteDuration() ? -1 : absl::ToInt64Microseconds(d);
}
absl::Duration UsDuration(int64_t us) {
  return us < 0 ? absl::InfiniteDuration() : absl::Microseconds(us);
}

void PutRecord(std::string& out, const HandoffRecord& r) {
  Put(out, static_cast<uint8_t>(r.role));
  Put(out, static_cast<uint8_t>(r.ok ? 1 : 0));
  Put(out, r.pid);
  Put(out, r.peer_pid);
  Put(out, r.restart);
  Put(out, r.connections);
  Put(out, r.listeners);
  Put(out, r.inbound_bytes);
  Put(out, r.outbound_bytes);
  Put(out, r.app_state_bytes);
  Put(out, absl::ToUnixMicros(r.when));
  for (absl::Duration d : {r.ready, r.freeze, r.transfer, r.paused}) {
    Put(out, DurationUs(d));
  }
  std::string_view reason = r.reason;
  if (reason.size() > kMaxReason) reason = reason.substr(0, kMaxReason);
  Put(out, static_cast<uint32_t>(reason.size()));
  out.append(reason);
}

bool GetRecord(Reader& r, HandoffRecord* rec) {
  uint8_t role = 0, ok = 0;
  int64_t when = 0;
  int64_t phases[4] = {};
  uint32_t reason_len = 0;
  if (!r.Get(&role) || !r.Get(&ok) || !r.Get(&rec->pid) ||
      !r.Get(&rec->peer_pid) || !r.Get(&rec->restart) ||
      !r.Get(&rec->connections) || !r.Get(&rec->listeners) ||
      !r.Get(&rec->inbound_bytes) || !r.Get(&rec->outbound_bytes) ||
      !r.Get(&rec->app_state_bytes) || !r.Get(&when)) {
    return false;
  }
  for (int64_t& p : phases) {
    if (!r.Get(&p)) return false;
  }
  if (!r.Get(&reason_len) || reason_len > kMaxReason ||
      !r.Take(reason_len, &rec->reason) || role > 1 || ok > 1) {
    return false;
  }
  rec->role = static_cast<HandoffRecord::Role>(role);
  rec->ok = ok == 1;
  rec->when = absl::FromUnixMicros(when);
  rec->ready = UsDuration(phases[0]);
  rec->freeze = UsDuration(phases[1]);
  rec->transfer = UsDuration(phases[2]);
  rec->paused = UsDuration(phases[3]);
  return true;
}

}  // namespace

std::string EncodeListeners(const ListenersBody& body) {
  std::string head;
  Put(head, body.server_count);
  Put(head, static_cast<uint32_t>(body.names.size()));
  for (const std::string& name : body.names) {
    Put(head, static_cast<uint32_t>(name.size()));
    head.append(name);
  }
  Put(head, body.rolled_back);
  std::vector<std::string> records;
  for (const HandoffRecord& r : body.history) {
    records.emplace_back();
    PutRecord(records.back(), r);
  }
  // The newest records that fit.
  size_t first = 0, size = head.size() + 4;
  for (const std::string& r : records) size += r.size();
  while (size > kMaxMessageBody && first < records.size()) {
    size -= records[first++].size();
  }
  std::string out = std::move(head);
  Put(out, static_cast<uint32_t>(records.size() - first));
  for (size_t i = first; i < records.size(); ++i) out.append(records[i]);
  return out;
}

absl::StatusOr<ListenersBody> DecodeListeners(std::string_view bytes,
                                              size_t fds) {
  Reader r(bytes);
  ListenersBody body;
  uint32_t names = 0, records = 0;
  if (!r.Get(&body.server_count) || !r.Get(&names) ||
      names > r.remaining() / 4) {
    return absl::DataLossError("handoff LISTENERS body truncated");
  }
  for (uint32_t i = 0; i < names; ++i) {
    uint32_t len = 0;
    std::string name;
    if (!r.Get(&len) || len == 0 || len > kMaxName || !r.Take(len, &name)) {
      return absl::DataLossError(
          absl::StrFormat("handoff LISTENERS: bad name %d of %d", i, names));
    }
    for (const std::string& seen : body.names) {
      if (seen == name) {
        return absl::DataLossError(
            absl::StrFormat("handoff LISTENERS: name %s twice", name));
      }
    }
    body.names.push_back(std::move(name));
  }
  if (static_cast<uint64_t>(body.server_count) + names != fds) {
    return absl::DataLossError(absl::StrFormat(
        "handoff LISTENERS names %d server and %d named listeners but "
        "carries %d descriptors",
        body.server_count, names, fds));
  }
  if (!r.Get(&body.rolled_back) || !r.Get(&records) ||
      records > r.remaining() / 64) {
    return absl::DataLossError("handoff LISTENERS history truncated");
  }
  body.history.resize(records);
  for (uint32_t i = 0; i < records; ++i) {
    if (!GetRecord(r, &body.history[i])) {
      return absl::DataLossError(absl::StrFormat(
          "handoff LISTENERS: history record %d of %d malformed", i, records));
    }
  }
  if (r.remaining() != 0) {
    return absl::DataLossError(absl::StrFormat(
        "handoff LISTENERS body has %d trailing bytes", r.remaining()));
  }
  return body;
}

absl::StatusOr<std::vector<uint32_t>> DecodeU32s(std::string_view body,
                                                 size_t count) {
  if (body.size() != count * 4) {
    return absl::DataLossError(
        absl::StrFormat("handoff message body is %d bytes, expected %d",
                        body.size(), count * 4));
  }
  std::vector<uint32_t> out(count);
  if (count > 0) std::memcpy(out.data(), body.data(), body.size());
  return out;
}

}  // namespace baton::handoff
