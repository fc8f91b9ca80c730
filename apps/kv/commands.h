// Dispatcher: runs one Redis command against a Store and appends its RESP2
// reply. Command names are case-insensitive; argument counts, option syntax
// and error lines are those of Redis 7.0 for the commands baton-kv supports:
//
//   PING ECHO QUIT SELECT COMMAND CONFIG INFO DBSIZE FLUSHALL KEYS TYPE
//   GET SET GETSET MGET MSET INCR DECR INCRBY DECRBY APPEND STRLEN
//   DEL EXISTS EXPIRE PEXPIRE TTL PTTL PERSIST
//   LPUSH RPUSH LPOP RPOP LRANGE LLEN
//
// The time is a parameter (tests drive it); server facts for INFO come from
// a callback the server provides.
//
//   Dispatcher dispatcher(&store, [] { return CurrentServerInfo(); });
//   std::string out;
//   if (dispatcher.Execute(cmd.args, absl::Now(), &out) == Action::kClose) ...
#ifndef APPS_KV_COMMANDS_H_
#define APPS_KV_COMMANDS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "baton/handoff/supervisor.h"
#include "kv/store.h"

namespace baton::kv {

// What INFO reports about the server (not the data).
struct ServerInfo {
  int64_t process_id = 0;
  uint16_t tcp_port = 0;
  int threads = 0;
  absl::Duration uptime;  // of this process
  int64_t connected_clients = 0;
  int64_t total_connections_received = 0;  // by this process
  handoff::HandoffStats handoff;           // the last hot restart
};

enum class Action {
  kContinue,
  kClose,  // QUIT: the reply is the last thing the client gets
};

class Dispatcher {
 public:
  using InfoSource = std::function<ServerInfo()>;
  explicit Dispatcher(Store* store, InfoSource info = nullptr);

  // Runs `args` (args[0] is the command name; not empty) and appends the
  // reply to *out.
  Action Execute(absl::Span<const std::string_view> args, absl::Time now,
                 std::string* out);

  // Commands run by this dispatcher (INFO's total_commands_processed).
  int64_t commands_processed() const {
    return commands_processed_.load(std::memory_order_relaxed);
  }
  // How many commands baton-kv knows (COMMAND COUNT).
  static int64_t CommandCount();

 private:
  Store* store_;
  InfoSource info_;
  std::atomic<int64_t> commands_processed_{0};
};

}  // namespace baton::kv

#endif  // APPS_KV_COMMANDS_H_
