// The handoff wire format: control messages and the state snapshot.
//
// Control messages travel over the handoff channel (one SOCK_SEQPACKET
// datagram each, at most kMaxMessageBody bytes of body, at most kMaxFds
// descriptors). Every message starts with a fixed header carrying the magic
// and the protocol version; a receiver refuses a message whose version is
// not its own, naming both versions.
//
// Everything bulky — the application's state and each connection's
// unconsumed inbound and unsent outbound bytes — goes in one Snapshot,
// encoded into a sealed memfd whose descriptor is sent in a kState message.
// Snapshot layout (little-endian, every length checked on decode):
//
//   u32 magic "BTNS"  u32 version  u64 app_state_len  app_state bytes
//   u32 connection_count
//   per connection: u32 service  u32 closing  u64 inbound_len
//                   u64 outbound_len  u64 state_len  inbound  outbound  state
//
// Version history: 1 = first; 2 = per-connection `closing` (Closing);
// 3 = the freeze start in kState; 4 = named extra listeners and the
// lineage's handoff history in kListeners (ListenersBody).
//
// Connection fds are sent afterwards in kConnections batches whose body is
// {u32 first, u32 count}: fd i of the batch belongs to record first + i.
//
//   std::string bytes = EncodeSnapshot(snapshot);
//   absl::StatusOr<Snapshot> back = DecodeSnapshot(bytes);
#ifndef BATON_HANDOFF_WIRE_H_
#define BATON_HANDOFF_WIRE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "baton/net/connection.h"

namespace baton::handoff {

inline constexpr uint32_t kWireVersion = 4;
inline constexpr uint32_t kMessageMagic = 0x4e4f5442;   // "BTON"
inline constexpr uint32_t kSnapshotMagic = 0x534e5442;  // "BTNS"
inline constexpr size_t kMaxFds = 253;                  // SCM_MAX_FD
inline constexpr size_t kMaxMessageBody = 4096;

enum class MessageType : uint16_t {
  kHello = 1,        // child -> parent: {u32 pid}
  kListeners = 2,    // parent -> child: ListenersBody, listening fds
  kReady = 3,        // child -> parent: initialised
  kState = 4,        // parent -> child: {u32 connections, u32 restart,
                     //   u64 freeze start, CLOCK_MONOTONIC µs}, memfd
  kConnections = 5,  // parent -> child: {u32 first, u32 count}, fds
  kAck = 6,          // child -> parent: {u32 adopted so far}
  kAbort = 7,        // either way: reason text
};
std::string_view MessageTypeName(MessageType type);

struct Message {
  MessageType type = MessageType::kAbort;
  uint32_t version = kWireVersion;
  std::string body;
  std::vector<int> fds;  // owned by whoever holds the Message
};

// Header + body as sent (fds travel beside it).
std::string EncodeMessage(const Message& m);
// Parses a received datagram; `fds` are attached by the caller. Checks magic,
// size and version against `expected_version`.
absl::StatusOr<Message> DecodeMessage(std::string_view datagram,
                                      uint32_t expected_version);

struct Snapshot {
  std::string app_state;
  std::vector<DetachedConnection> connections;  // fds not encoded
};

std::string EncodeSnapshot(const Snapshot& snapshot,
                           uint32_t version = kWireVersion);
absl::StatusOr<Snapshot> DecodeSnapshot(
    std::string_view bytes, uint32_t expected_version = kWireVersion);

// One handoff as one side saw it (Supervisor::handoff_history()).
struct HandoffRecord {
  enum class Role : uint8_t { kParent = 0, kChild = 1 };
  Role role = Role::kParent;
  bool ok = false;          // complete; else rolled back (parent) or refused
  std::string reason = {};  // why not, when !ok
  int32_t pid = 0;          // the process that recorded it
  int32_t peer_pid = 0;
  uint32_t restart = 0;  // the lineage's restart number it made (if ok)
  uint32_t connections = 0;
  uint32_t listeners = 0;
  uint64_t inbound_bytes = 0;
  uint64_t outbound_bytes = 0;
  uint64_t app_state_bytes = 0;
  absl::Time when = absl::UnixEpoch();  // when it ended (wall clock)
  // Phases, InfiniteDuration() when this side does not know them. Parent:
  // ready (spawn to READY), freeze, transfer (state, fds, acks). Child:
  // paused (the old process's freeze to every connection served here, the
  // pause clients saw) and transfer (READY to served).
  absl::Duration ready = absl::InfiniteDuration();
  absl::Duration freeze = absl::InfiniteDuration();
  absl::Duration transfer = absl::InfiniteDuration();
  absl::Duration paused = absl::InfiniteDuration();
};

// The body of kListeners (version 4):
//   u32 server_count  u32 name_count  per name: u32 len, name bytes
//   u64 rolled_back (handoffs the lineage rolled back so far)
//   u32 record_count  per record: the HandoffRecord fields (fixed part,
//                     then u32 reason_len and the reason)
// The message carries server_count + name_count fds: the Server's listening
// sockets, then one per name in order (extra listeners an app asks for by
// name, e.g. "admin"). The records are the parent's handoff history, oldest
// first, so a new process shows what happened before it; the encoder drops
// the oldest records (and shortens reasons) to fit kMaxMessageBody.
struct ListenersBody {
  uint32_t server_count = 0;
  std::vector<std::string> names;
  uint64_t rolled_back = 0;
  std::vector<HandoffRecord> history;
};
std::string EncodeListeners(const ListenersBody& body);
// Checks every length, that names are distinct and non-empty and that
// server_count + names.size() == `fds` (DataLoss otherwise).
absl::StatusOr<ListenersBody> DecodeListeners(std::string_view body,
                                              size_t fds);

// Little helpers for the small fixed bodies. (Variadic rather than an
// initializer_list: GCC 12 miscompiles initializer_lists inside coroutines.)
template <typename... U32>
std::string EncodeU32s(U32... values) {
  std::string out;
  (out.append(reinterpret_cast<const char*>(&values), sizeof(uint32_t)), ...);
  static_assert((std::is_same_v<U32, uint32_t> && ...));
  return out;
}
absl::StatusOr<std::vector<uint32_t>> DecodeU32s(std::string_view body,
                                                 size_t count);

}  // namespace baton::handoff

#endif  // BATON_HANDOFF_WIRE_H_
