// Writes seed inputs for the wire fuzzers with the real encoders:
// <dir>/wire_message/, <dir>/wire_snapshot/ and <dir>/wire_listeners/ (the
// latter prefixed with the descriptor-count byte wire_listeners_fuzzer
// reads). Run when the wire format changes and commit the files:
//
//   build-fuzz/fuzz/make_wire_seeds fuzz/corpus
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/time/time.h"
#include "baton/handoff/wire.h"

namespace {

using namespace baton::handoff;

void Write(const std::filesystem::path& dir, const std::string& name,
           const std::string& bytes) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

Message Make(MessageType type, std::string body) {
  Message m;
  m.type = type;
  m.body = std::move(body);
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root = argv[1];

  const std::filesystem::path msg = root / "wire_message";
  Write(msg, "hello",
        EncodeMessage(Make(MessageType::kHello, EncodeU32s(42u))));
  Write(msg, "ready", EncodeMessage(Make(MessageType::kReady, "")));
  Write(msg, "state",
        EncodeMessage(Make(MessageType::kState, EncodeU32s(3u, 1u, 7u, 0u))));
  Write(msg, "connections",
        EncodeMessage(Make(MessageType::kConnections, EncodeU32s(0u, 2u))));
  Write(msg, "ack", EncodeMessage(Make(MessageType::kAck, EncodeU32s(2u))));
  Write(msg, "abort",
        EncodeMessage(Make(MessageType::kAbort, "child failed to start")));
  Message old = Make(MessageType::kHello, EncodeU32s(1u));
  old.version = 3;
  Write(msg, "old_version", EncodeMessage(old));

  const std::filesystem::path snap = root / "wire_snapshot";
  Snapshot empty;
  Write(snap, "empty", EncodeSnapshot(empty));
  Snapshot s;
  s.app_state = "kv:3 keys";
  for (uint32_t i = 0; i < 3; ++i) {
    baton::DetachedConnection c;
    c.service = i;
    c.closing = static_cast<baton::Closing>(i);
    c.inbound = i == 0 ? "" : "GET /x HTTP/1.1\r\n";
    c.outbound = i == 2 ? "HTTP/1.1 200 OK\r\n\r\n" : "";
    c.state = i == 1 ? "st" : "";
    s.connections.push_back(c);
  }
  Write(snap, "three_connections", EncodeSnapshot(s));
  Write(snap, "old_version", EncodeSnapshot(s, 3));
  std::string truncated = EncodeSnapshot(s);
  truncated.resize(truncated.size() - 5);
  Write(snap, "truncated", truncated);

  const std::filesystem::path lis = root / "wire_listeners";
  ListenersBody none;
  none.server_count = 1;
  Write(lis, "one_listener", std::string(1, '\x80') + EncodeListeners(none));
  ListenersBody b;
  b.server_count = 2;
  b.names = {"admin", "metrics"};
  b.rolled_back = 1;
  HandoffRecord ok;
  ok.ok = true;
  ok.pid = 100;
  ok.peer_pid = 101;
  ok.restart = 1;
  ok.connections = 5;
  ok.listeners = 2;
  ok.inbound_bytes = 10;
  ok.when = absl::FromUnixSeconds(1700000000);
  ok.ready = absl::Milliseconds(20);
  ok.freeze = absl::Microseconds(300);
  ok.transfer = absl::Milliseconds(1);
  HandoffRecord failed;
  failed.role = HandoffRecord::Role::kChild;
  failed.reason = "wire version mismatch";
  failed.pid = 102;
  b.history = {ok, failed};
  Write(lis, "named_with_history", std::string(1, '\x80') + EncodeListeners(b));
  Write(lis, "wrong_fd_count", std::string(1, '\x01') + EncodeListeners(b));
  return 0;
}
