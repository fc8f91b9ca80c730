#include "kv/commands.h"

#include <limits>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kv/resp.h"
#include "kv/view.h"

namespace baton::kv {
namespace {

constexpr std::string_view kSyntaxError = "ERR syntax error";

// One command being run.
struct Call {
  absl::Span<const std::string_view> args;
  absl::Time now;
  std::string* out;
  Store* store;
  const Dispatcher::InfoSource* info;
  int64_t commands_processed;  // before this one
};

using Handler = Action (*)(Call&);

struct Spec {
  std::string_view name;  // lower case, as Redis reports it
  int arity;              // > 0: exactly; < 0: at least -arity
  Handler handler;
};

// --- Reply helpers ---

Action Ok(Call& c) {
  AppendSimpleString(c.out, "OK");
  return Action::kContinue;
}

Action Err(Call& c, std::string_view message) {
  AppendError(c.out, message);
  return Action::kContinue;
}

Action Int(Call& c, int64_t v) {
  AppendInteger(c.out, v);
  return Action::kContinue;
}

Action ArityError(Call& c, std::string_view name) {
  return Err(c, absl::StrCat("ERR wrong number of arguments for '", Av(name),
                             "' command"));
}

// A Store error carries its Redis error line as its message.
Action StatusError(Call& c, const absl::Status& status) {
  return Err(c, Sv(status.message()));
}

Action OptionalBulk(Call& c, const std::optional<std::string>& v) {
  if (v.has_value()) {
    AppendBulkString(c.out, *v);
  } else {
    AppendNullBulkString(c.out);
  }
  return Action::kContinue;
}

Action BulkArray(Call& c, const std::vector<std::string>& values) {
  AppendArrayHeader(c.out, values.size());
  for (const std::string& v : values) AppendBulkString(c.out, v);
  return Action::kContinue;
}

bool Is(std::string_view arg, std::string_view word) {
  return absl::EqualsIgnoreCase(Av(arg), Av(word));
}

// Unix milliseconds of `t` (Redis keeps deadlines in integer ms).
int64_t UnixMillis(absl::Time t) { return absl::ToUnixMillis(t); }

// `amount` in `unit_ms` milliseconds from `now` (or an absolute Unix time in
// unit_ms milliseconds when `absolute`) as a deadline; nullopt when it
// overflows, as Redis's "invalid expire time".
std::optional<absl::Time> DeadlineFrom(int64_t amount, int64_t unit_ms,
                                       bool absolute, absl::Time now) {
  int64_t ms = 0;
  if (__builtin_mul_overflow(amount, unit_ms, &ms)) return std::nullopt;
  if (!absolute && __builtin_add_overflow(ms, UnixMillis(now), &ms)) {
    return std::nullopt;
  }
  return absl::FromUnixMillis(ms);
}

// --- Connection and server ---

Action Ping(Call& c) {
  if (c.args.size() > 2) return ArityError(c, "ping");
  if (c.args.size() == 2) {
    AppendBulkString(c.out, c.args[1]);
  } else {
    AppendSimpleString(c.out, "PONG");
  }
  return Action::kContinue;
}

Action Echo(Call& c) {
  AppendBulkString(c.out, c.args[1]);
  return Action::kContinue;
}

Action Quit(Call& c) {
  Ok(c);
  return Action::kClose;
}

Action Select(Call& c) {
  int64_t db = 0;
  if (!ParseInt64(c.args[1], &db)) return Err(c, kNotIntegerError);
  if (db != 0) return Err(c, "ERR DB index is out of range");
  return Ok(c);
}

Action Command(Call& c) {
  if (c.args.size() == 1) {
    AppendArrayHeader(c.out, 0);  // no command table: clients cope
    return Action::kContinue;
  }
  std::string_view sub = c.args[1];
  if (Is(sub, "count")) {
    if (c.args.size() != 2) return ArityError(c, "command|count");
    return Int(c, Dispatcher::CommandCount());
  }
  if (Is(sub, "docs") || Is(sub, "info") || Is(sub, "list")) {
    AppendArrayHeader(c.out, 0);
    return Action::kContinue;
  }
  return Err(c, absl::StrCat("ERR unknown subcommand '", Av(sub),
                             "'. Try COMMAND HELP."));
}

Action Config(Call& c) {
  std::string_view sub = c.args[1];
  if (Is(sub, "get")) {
    if (c.args.size() < 3) return ArityError(c, "config|get");
    // What redis-benchmark asks; every other parameter is unknown here.
    static constexpr std::pair<std::string_view, std::string_view> kParams[] = {
        {"save", ""}, {"appendonly", "no"}};
    std::vector<std::pair<std::string_view, std::string_view>> found;
    for (const auto& param : kParams) {
      for (size_t i = 2; i < c.args.size(); ++i) {
        if (GlobMatch(absl::AsciiStrToLower(Av(c.args[i])), param.first)) {
          found.push_back(param);
          break;
        }
      }
    }
    AppendArrayHeader(c.out, found.size() * 2);
    for (const auto& [name, value] : found) {
      AppendBulkString(c.out, name);
      AppendBulkString(c.out, value);
    }
    return Action::kContinue;
  }
  if (Is(sub, "set")) {
    return Err(c, absl::StrCat("ERR Unknown option or number of arguments "
                               "for CONFIG SET - '",
                               Av(c.args.size() > 2 ? c.args[2] : ""), "'"));
  }
  if (Is(sub, "resetstat")) return Ok(c);
  return Err(c, absl::StrCat("ERR unknown subcommand '", Av(sub),
                             "'. Try CONFIG HELP."));
}

// INFO [section ...]: every section for none, "all", "everything" or
// "default"; unknown names select nothing.
std::string InfoText(Call& c, absl::Span<const std::string_view> wanted) {
  ServerInfo info;
  if (*c.info) info = (*c.info)();
  bool all = wanted.empty();
  bool keyspace = false;
  for (std::string_view w : wanted) {
    all = all || Is(w, "all") || Is(w, "everything") || Is(w, "default");
    keyspace = keyspace || Is(w, "keyspace");
  }
  // Counting keys deletes the expired ones: only when they are asked for,
  // so that "INFO stats" observes expiry without causing it.
  const uint64_t expired = c.store->ExpiredCount();
  const size_t keys = all || keyspace ? c.store->Size(c.now) : 0;
  const size_t expires = c.store->VolatileCount();
  const auto uptime = absl::ToInt64Seconds(info.uptime);
  const handoff::HandoffStats& h = info.handoff;
  struct Section {
    std::string_view name;
    std::string body;
  };
  const Section sections[] = {
      {"server", absl::StrCat("redis_version:7.0.0-baton\r\n"
                              "redis_mode:standalone\r\n"
                              "os:Linux\r\n"
                              "arch_bits:64\r\n"
                              "multiplexing_api:io_uring\r\n"
                              "process_id:",
                              info.process_id, "\r\ntcp_port:", info.tcp_port,
                              "\r\nbaton_threads:", info.threads,
                              "\r\nuptime_in_seconds:", uptime,
                              "\r\nuptime_in_days:", uptime / 86400, "\r\n")},
      {"clients",
       absl::StrCat("connected_clients:", info.connected_clients, "\r\n")},
      {"stats",
       absl::StrCat(
           "total_connections_received:", info.total_connections_received,
           "\r\ntotal_commands_processed:", c.commands_processed + 1,
           "\r\nexpired_keys:", expired, "\r\n")},
      {"handoff",
       absl::StrCat(
           "restarts:", h.restarts, "\r\nlast_connections_moved:",
           h.connections, "\r\nlast_inbound_bytes_moved:", h.inbound_bytes,
           "\r\nlast_outbound_bytes_moved:", h.outbound_bytes,
           "\r\nlast_app_state_bytes:", h.app_state_bytes,
           "\r\nlast_bytes_moved:",
           h.inbound_bytes + h.outbound_bytes + h.app_state_bytes, "\r\n")},
      {"keyspace", keys == 0 ? std::string()
                             : absl::StrCat("db0:keys=", keys, ",expires=",
                                            expires, ",avg_ttl=0\r\n")},
  };
  std::string text;
  for (const Section& s : sections) {
    bool selected = all;
    for (std::string_view w : wanted) selected = selected || Is(w, s.name);
    if (!selected) continue;
    if (!text.empty()) text += "\r\n";
    std::string title(s.name);
    title[0] = absl::ascii_toupper(title[0]);
    absl::StrAppend(&text, "# ", title, "\r\n", s.body);
  }
  return text;
}

Action Info(Call& c) {
  std::string text = InfoText(c, c.args.subspan(1));
  AppendBulkString(c.out, text);
  return Action::kContinue;
}

Action DbSize(Call& c) {
  return Int(c, static_cast<int64_t>(c.store->Size(c.now)));
}

Action FlushAll(Call& c) {
  if (c.args.size() > 2 || (c.args.size() == 2 && !Is(c.args[1], "async") &&
                            !Is(c.args[1], "sync"))) {
    return Err(c, kSyntaxError);
  }
  c.store->FlushAll();
  return Ok(c);
}

Action Keys(Call& c) { return BulkArray(c, c.store->Keys(c.args[1], c.now)); }

Action Type(Call& c) {
  AppendSimpleString(c.out, c.store->TypeName(c.args[1], c.now));
  return Action::kContinue;
}

// --- Strings ---

Action Get(Call& c) {
  absl::StatusOr<std::optional<std::string>> v = c.store->Get(c.args[1], c.now);
  if (!v.ok()) return StatusError(c, v.status());
  return OptionalBulk(c, *v);
}

Action Set(Call& c) {
  SetOptions options;
  bool has_expire = false;
  for (size_t i = 3; i < c.args.size(); ++i) {
    std::string_view opt = c.args[i];
    const bool has_next = i + 1 < c.args.size();
    if (Is(opt, "nx") && !options.xx) {
      options.nx = true;
    } else if (Is(opt, "xx") && !options.nx) {
      options.xx = true;
    } else if (Is(opt, "get")) {
      options.get = true;
    } else if (Is(opt, "keepttl") && !has_expire) {
      options.keep_ttl = true;
    } else if ((Is(opt, "ex") || Is(opt, "px") || Is(opt, "exat") ||
                Is(opt, "pxat")) &&
               !has_expire && !options.keep_ttl && has_next) {
      int64_t amount = 0;
      if (!ParseInt64(c.args[++i], &amount)) {
        return Err(c, kNotIntegerError);
      }
      const bool seconds = Is(opt, "ex") || Is(opt, "exat");
      const bool absolute = Is(opt, "exat") || Is(opt, "pxat");
      std::optional<absl::Time> deadline =
          amount <= 0
              ? std::nullopt
              : DeadlineFrom(amount, seconds ? 1000 : 1, absolute, c.now);
      if (!deadline.has_value()) {
        return Err(c, "ERR invalid expire time in 'set' command");
      }
      options.deadline = deadline;
      has_expire = true;
    } else {
      return Err(c, kSyntaxError);
    }
  }
  absl::StatusOr<SetResult> r =
      c.store->Set(c.args[1], c.args[2], options, c.now);
  if (!r.ok()) return StatusError(c, r.status());
  if (options.get) return OptionalBulk(c, r->previous);
  if (!r->written) {
    AppendNullBulkString(c.out);
    return Action::kContinue;
  }
  return Ok(c);
}

Action GetSet(Call& c) {
  absl::StatusOr<std::optional<std::string>> v =
      c.store->GetSet(c.args[1], c.args[2], c.now);
  if (!v.ok()) return StatusError(c, v.status());
  return OptionalBulk(c, *v);
}

Action IncrByAmount(Call& c, int64_t delta) {
  absl::StatusOr<int64_t> v = c.store->IncrBy(c.args[1], delta, c.now);
  if (!v.ok()) return StatusError(c, v.status());
  return Int(c, *v);
}

Action Incr(Call& c) { return IncrByAmount(c, 1); }
Action Decr(Call& c) { return IncrByAmount(c, -1); }

Action IncrBy(Call& c) {
  int64_t delta = 0;
  if (!ParseInt64(c.args[2], &delta)) return Err(c, kNotIntegerError);
  return IncrByAmount(c, delta);
}

Action DecrBy(Call& c) {
  int64_t delta = 0;
  if (!ParseInt64(c.args[2], &delta)) return Err(c, kNotIntegerError);
  if (delta == std::numeric_limits<int64_t>::min()) {
    return Err(c, "ERR decrement would overflow");
  }
  return IncrByAmount(c, -delta);
}

Action Append(Call& c) {
  absl::StatusOr<size_t> n = c.store->Append(c.args[1], c.args[2], c.now);
  if (!n.ok()) return StatusError(c, n.status());
  return Int(c, static_cast<int64_t>(*n));
}

Action Strlen(Call& c) {
  absl::StatusOr<size_t> n = c.store->Strlen(c.args[1], c.now);
  if (!n.ok()) return StatusError(c, n.status());
  return Int(c, static_cast<int64_t>(*n));
}

Action MGet(Call& c) {
  std::vector<std::optional<std::string>> values =
      c.store->MGet(c.args.subspan(1), c.now);
  AppendArrayHeader(c.out, values.size());
  for (const auto& v : values) OptionalBulk(c, v);
  return Action::kContinue;
}

Action MSet(Call& c) {
  if (c.args.size() % 2 == 0) return ArityError(c, "mset");
  c.store->MSet(c.args.subspan(1), c.now);
  return Ok(c);
}

// --- Keys ---

Action Del(Call& c) {
  return Int(c, static_cast<int64_t>(c.store->Del(c.args.subspan(1), c.now)));
}

Action Exists(Call& c) {
  return Int(c,
             static_cast<int64_t>(c.store->Exists(c.args.subspan(1), c.now)));
}

Action ExpireGeneric(Call& c, std::string_view name, int64_t unit_ms) {
  int64_t amount = 0;
  if (!ParseInt64(c.args[2], &amount)) return Err(c, kNotIntegerError);
  bool nx = false, xx = false, gt = false, lt = false;
  for (size_t i = 3; i < c.args.size(); ++i) {
    std::string_view opt = c.args[i];
    if (Is(opt, "nx")) {
      nx = true;
    } else if (Is(opt, "xx")) {
      xx = true;
    } else if (Is(opt, "gt")) {
      gt = true;
    } else if (Is(opt, "lt")) {
      lt = true;
    } else {
      return Err(c, absl::StrCat("ERR Unsupported option ", Av(opt)));
    }
  }
  if (nx && (xx || gt || lt)) {
    return Err(c,
               "ERR NX and XX, GT or LT options at the same time are not "
               "compatible");
  }
  if (gt && lt) {
    return Err(c, "ERR GT and LT options at the same time are not compatible");
  }
  ExpireCondition condition = ExpireCondition::kAlways;
  if (nx) condition = ExpireCondition::kNx;
  if (xx) condition = ExpireCondition::kXx;
  if (gt) condition = ExpireCondition::kGt;
  if (lt) condition = ExpireCondition::kLt;
  std::optional<absl::Time> deadline =
      DeadlineFrom(amount, unit_ms, /*absolute=*/false, c.now);
  if (!deadline.has_value()) {
    return Err(
        c, absl::StrCat("ERR invalid expire time in '", Av(name), "' command"));
  }
  return Int(c, c.store->Expire(c.args[1], *deadline, condition, c.now));
}

Action Expire(Call& c) { return ExpireGeneric(c, "expire", 1000); }
Action PExpire(Call& c) { return ExpireGeneric(c, "pexpire", 1); }

Action TtlGeneric(Call& c, bool millis) {
  std::optional<absl::Duration> ttl = c.store->TimeToLive(c.args[1], c.now);
  if (!ttl.has_value()) return Int(c, -2);
  if (*ttl == absl::InfiniteDuration()) return Int(c, -1);
  const int64_t ms = absl::ToInt64Milliseconds(*ttl);
  return Int(c, millis ? ms : (ms + 500) / 1000);
}

Action Ttl(Call& c) { return TtlGeneric(c, false); }
Action PTtl(Call& c) { return TtlGeneric(c, true); }

Action Persist(Call& c) { return Int(c, c.store->Persist(c.args[1], c.now)); }

// --- Lists ---

Action Push(Call& c, bool left) {
  absl::StatusOr<size_t> n =
      c.store->Push(c.args[1], c.args.subspan(2), left, c.now);
  if (!n.ok()) return StatusError(c, n.status());
  return Int(c, static_cast<int64_t>(*n));
}

Action LPush(Call& c) { return Push(c, true); }
Action RPush(Call& c) { return Push(c, false); }

Action Pop(Call& c, bool left, std::string_view name) {
  if (c.args.size() > 3) return ArityError(c, name);
  const bool has_count = c.args.size() == 3;
  int64_t count = 1;
  if (has_count && (!ParseInt64(c.args[2], &count) || count < 0)) {
    return Err(c, "ERR value is out of range, must be positive");
  }
  absl::StatusOr<std::vector<std::string>> popped =
      c.store->Pop(c.args[1], static_cast<size_t>(count), left, c.now);
  if (absl::IsNotFound(popped.status())) {  // no such key
    if (has_count) {
      AppendNullArray(c.out);
    } else {
      AppendNullBulkString(c.out);
    }
    return Action::kContinue;
  }
  if (!popped.ok()) return StatusError(c, popped.status());
  if (!has_count) {
    AppendBulkString(c.out, popped->front());  // a list is never empty
    return Action::kContinue;
  }
  return BulkArray(c, *popped);
}

Action LPop(Call& c) { return Pop(c, true, "lpop"); }
Action RPop(Call& c) { return Pop(c, false, "rpop"); }

Action LRange(Call& c) {
  int64_t start = 0;
  int64_t stop = 0;
  if (!ParseInt64(c.args[2], &start) || !ParseInt64(c.args[3], &stop)) {
    return Err(c, kNotIntegerError);
  }
  absl::StatusOr<std::vector<std::string>> values =
      c.store->Range(c.args[1], start, stop, c.now);
  if (!values.ok()) return StatusError(c, values.status());
  return BulkArray(c, *values);
}

Action LLen(Call& c) {
  absl::StatusOr<size_t> n = c.store->Length(c.args[1], c.now);
  if (!n.ok()) return StatusError(c, n.status());
  return Int(c, static_cast<int64_t>(*n));
}

constexpr Spec kSpecs[] = {
    {"ping", -1, Ping},
    {"echo", 2, Echo},
    {"quit", -1, Quit},
    {"select", 2, Select},
    {"command", -1, Command},
    {"config", -2, Config},
    {"info", -1, Info},
    {"dbsize", 1, DbSize},
    {"flushall", -1, FlushAll},
    {"keys", 2, Keys},
    {"type", 2, Type},
    {"get", 2, Get},
    {"set", -3, Set},
    {"getset", 3, GetSet},
    {"mget", -2, MGet},
    {"mset", -3, MSet},
    {"incr", 2, Incr},
    {"decr", 2, Decr},
    {"incrby", 3, IncrBy},
    {"decrby", 3, DecrBy},
    {"append", 3, Append},
    {"strlen", 2, Strlen},
    {"del", -2, Del},
    {"exists", -2, Exists},
    {"expire", -3, Expire},
    {"pexpire", -3, PExpire},
    {"ttl", 2, Ttl},
    {"pttl", 2, PTtl},
    {"persist", 2, Persist},
    {"lpush", -3, LPush},
    {"rpush", -3, RPush},
    {"lpop", -2, LPop},
    {"rpop", -2, RPop},
    {"lrange", 4, LRange},
    {"llen", 2, LLen},
};

const Spec* FindSpec(std::string_view name) {
  static const auto* const table = [] {
    auto* t = new absl::flat_hash_map<std::string_view, const Spec*>();
    for (const Spec& s : kSpecs) t->emplace(s.name, &s);
    return t;
  }();
  if (name.size() > 16) return nullptr;
  char lower[16];
  for (size_t i = 0; i < name.size(); ++i) {
    lower[i] = absl::ascii_tolower(static_cast<unsigned char>(name[i]));
  }
  auto it = table->find(std::string_view(lower, name.size()));
  return it == table->end() ? nullptr : it->second;
}

// Redis's wording, including the trailing space after each argument:
// "unknown command 'foo', with args beginning with: 'a' 'b' ".
std::string UnknownCommand(absl::Span<const std::string_view> args) {
  std::string listed;
  for (size_t i = 1; i < args.size() && listed.size() < 128; ++i) {
    absl::StrAppend(&listed, "'", Av(args[i].substr(0, 128 - listed.size())),
                    "' ");
  }
  return absl::StrCat("ERR unknown command '", Av(args[0].substr(0, 128)),
                      "', with args beginning with: ", listed);
}

}  // namespace

Dispatcher::Dispatcher(Store* store, InfoSource info)
    : store_(store), info_(std::move(info)) {}

int64_t Dispatcher::CommandCount() {
  return static_cast<int64_t>(std::size(kSpecs));
}

Action Dispatcher::Execute(absl::Span<const std::string_view> args,
                           absl::Time now, std::string* out) {
  Call call{
      args,   now,
      out,    store_,
      &info_, commands_processed_.fetch_add(1, std::memory_order_relaxed)};
  const Spec* spec = FindSpec(args[0]);
  if (spec == nullptr) return Err(call, UnknownCommand(args));
  const auto argc = static_cast<int>(args.size());
  if ((spec->arity > 0 && argc != spec->arity) ||
      (spec->arity < 0 && argc < -spec->arity)) {
    return ArityError(call, spec->name);
  }
  return spec->handler(call);
}

}  // namespace baton::kv
