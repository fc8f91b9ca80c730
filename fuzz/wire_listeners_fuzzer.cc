// Fuzzes the kListeners body decoder (DecodeListeners): arbitrary bodies
// (up to kMaxMessageBody, as the channel delivers) must be refused or
// decoded, never crash; a decoded body re-encodes to one that decodes to the
// same ListenersBody (negative phase durations all mean "unknown", so the
// bytes may differ), and the descriptor count is checked.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "baton/handoff/wire.h"

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "wire_listeners_fuzzer: property failed: %s\n", what);
    std::abort();
  }
}

bool Same(const baton::handoff::HandoffRecord& a,
          const baton::handoff::HandoffRecord& b) {
  return a.role == b.role && a.ok == b.ok && a.reason == b.reason &&
         a.pid == b.pid && a.peer_pid == b.peer_pid && a.restart == b.restart &&
         a.connections == b.connections && a.listeners == b.listeners &&
         a.inbound_bytes == b.inbound_bytes &&
         a.outbound_bytes == b.outbound_bytes &&
         a.app_state_bytes == b.app_state_bytes && a.when == b.when &&
         a.ready == b.ready && a.freeze == b.freeze &&
         a.transfer == b.transfer && a.paused == b.paused;
}

bool Same(const baton::handoff::ListenersBody& a,
          const baton::handoff::ListenersBody& b) {
  if (a.server_count != b.server_count || a.names != b.names ||
      a.rolled_back != b.rolled_back || a.history.size() != b.history.size()) {
    return false;
  }
  for (size_t i = 0; i < a.history.size(); ++i) {
    if (!Same(a.history[i], b.history[i])) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace baton::handoff;
  if (size < 1 || size - 1 > kMaxMessageBody) return 0;
  // The first byte picks the descriptor count the message "carries":
  // mostly the count the body claims, so that decoding gets past the check.
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  size_t fds = data[0];
  if (data[0] >= 0x80 && body.size() >= 8) {
    uint32_t servers = 0, names = 0;
    __builtin_memcpy(&servers, body.data(), 4);
    __builtin_memcpy(&names, body.data() + 4, 4);
    fds = static_cast<size_t>(servers) + names;
  }
  absl::StatusOr<ListenersBody> b = DecodeListeners(body, fds);
  if (!b.ok()) return 0;
  Check(b->server_count + b->names.size() == fds, "descriptor count checked");
  for (const std::string& name : b->names) {
    Check(!name.empty(), "names are non-empty");
  }
  std::string again = EncodeListeners(*b);
  Check(again.size() <= kMaxMessageBody, "re-encoded body fits a message");
  absl::StatusOr<ListenersBody> back = DecodeListeners(again, fds);
  Check(back.ok() && Same(*b, *back), "re-encoded body decodes the same");
  return 0;
}
