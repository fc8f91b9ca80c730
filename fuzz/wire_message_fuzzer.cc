// Fuzzes the handoff control message decoder (DecodeMessage, and DecodeU32s
// on the bodies it returns): arbitrary datagrams must be refused or decoded,
// never crash, and a decoded message re-encodes to exactly the datagram.
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
    std::fprintf(stderr, "wire_message_fuzzer: property failed: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace baton::handoff;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<Message> m = DecodeMessage(in, kWireVersion);
  if (!m.ok()) return 0;
  Check(m->version == kWireVersion, "decoded version is the expected one");
  Check(m->body.size() <= kMaxMessageBody, "body within kMaxMessageBody");
  Check(m->fds.empty(), "no fds attached by the decoder");
  Check(EncodeMessage(*m) == in, "re-encodes to the same datagram");
  for (size_t count = 0; count <= 3; ++count) {
    absl::StatusOr<std::vector<uint32_t>> v = DecodeU32s(m->body, count);
    Check(v.ok() == (m->body.size() == count * 4), "DecodeU32s checks size");
    if (v.ok()) {
      std::string back;
      for (uint32_t x : *v) back += EncodeU32s(x);
      Check(back == m->body, "DecodeU32s round trip");
    }
  }
  return 0;
}
