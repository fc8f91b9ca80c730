// consumer_echo: the echo server of apps/echo, built outside baton's tree
// against an installed baton (tests/install/consumer_test.sh builds it with
// find_package(baton) and with pkg-config, then checks it echoes).
#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "baton/app/server_main.h"
#include "baton/net/connection.h"
#include "baton/runtime/task.h"
#include "baton/version.h"

namespace {

constexpr size_t kMaxUnsent = 1 << 20;

baton::Task<void> Echo(baton::Connection& conn) {
  while (true) {
    if (conn.inbound().empty()) {
      absl::StatusOr<size_t> n = co_await conn.Read();
      if (!n.ok() || (*n == 0 && conn.inbound().empty())) co_return;
    }
    conn.Write(conn.inbound());
    conn.Consume(conn.inbound().size());
    if (!(co_await conn.Drain(kMaxUnsent)).ok()) co_return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string usage =
      std::string(
          "consumer_echo --listen HOST:PORT: echoes every byte (baton ") +
      baton::kVersion + ")";
  baton::app::ParseFlags(argc, argv, usage.c_str());
  return baton::app::RunServer(Echo);
}
