// Fuzzes the handoff snapshot decoder (DecodeSnapshot): arbitrary bytes must
// be refused or decoded, never crash or allocate absurdly, and a decoded
// snapshot re-encodes to exactly the input (the format is canonical), which
// decodes to the same snapshot again.
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
    std::fprintf(stderr, "wire_snapshot_fuzzer: property failed: %s\n", what);
    std::abort();
  }
}

bool Same(const baton::handoff::Snapshot& a,
          const baton::handoff::Snapshot& b) {
  if (a.app_state != b.app_state ||
      a.connections.size() != b.connections.size()) {
    return false;
  }
  for (size_t i = 0; i < a.connections.size(); ++i) {
    const baton::DetachedConnection& x = a.connections[i];
    const baton::DetachedConnection& y = b.connections[i];
    if (x.service != y.service || x.closing != y.closing ||
        x.inbound != y.inbound || x.outbound != y.outbound ||
        x.state != y.state) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace baton::handoff;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<Snapshot> s = DecodeSnapshot(in);
  if (!s.ok()) return 0;
  size_t payload = s->app_state.size();
  for (const baton::DetachedConnection& c : s->connections) {
    Check(c.fd == -1, "decoded connections carry no fd");
    payload += c.inbound.size() + c.outbound.size() + c.state.size();
  }
  Check(payload <= size, "decoded bytes fit in the input");
  std::string again = EncodeSnapshot(*s);
  Check(again == in, "re-encodes to the same bytes");
  absl::StatusOr<Snapshot> back = DecodeSnapshot(again);
  Check(back.ok() && Same(*s, *back), "re-encoded snapshot decodes the same");
  return 0;
}
