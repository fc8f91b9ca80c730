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
// Version history: 1 = first; 2 = per-connection `closing` (Closing).
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
#include "baton/net/connection.h"

namespace baton::handoff {

inline constexpr uint32_t kWireVersion = 3;
inline constexpr uint32_t kMessageMagic = 0x4e4f5442;   // "BTON"
inline constexpr uint32_t kSnapshotMagic = 0x534e5442;  // "BTNS"
inline constexpr size_t kMaxFds = 253;                  // SCM_MAX_FD
inline constexpr size_t kMaxMessageBody = 4096;

enum class MessageType : uint16_t {
  kHello = 1,        // child -> parent: {u32 pid}
  kListeners = 2,    // parent -> child: {u32 count}, listening fds
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
