#include "baton/app/server_main.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <climits>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "baton/app/admin.h"
#include "baton/handoff/wire.h"
#include "baton/runtime/log.h"
#include "baton/runtime/reactor.h"
#include "baton/version.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0",
          "HOST:PORT or [V6]:PORT to listen on; port 0 picks a free port");
ABSL_FLAG(int, threads, 0, "reactor threads; 0 means one per core");
ABSL_FLAG(std::string, pid_file, "",
          "file to hold the serving process id (rewritten after a handoff)");
ABSL_FLAG(size_t, max_inbound, 1 << 20,
          "unconsumed bytes a connection may hold before it stops receiving "
          "(back-pressure); a request must fit in it to be parsed whole");
ABSL_FLAG(absl::Duration, handoff_ready_timeout, absl::Seconds(10),
          "how long a new process may take to report READY before rollback");
ABSL_FLAG(absl::Duration, handoff_grace, absl::Seconds(1),
          "how long busy handlers get to reach a wait before they are "
          "cancelled during a handoff or stop");
ABSL_FLAG(std::string, admin, "",
          "HOST:PORT of the HTTP admin endpoint (/connections, /handoffs, "
          "/metrics); empty: none; port 0 picks one, printed as \"admin "
          "listening on HOST:PORT\"; its socket moves with every handoff");
ABSL_FLAG(absl::Duration, handoff_ack_timeout, absl::Seconds(10),
          "how long the new process may take to acknowledge a batch");

namespace baton::app {
namespace {

std::vector<std::string> g_argv;
const handoff::Supervisor* g_supervisor = nullptr;

std::string SelfExecutable() {
  char path[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return g_argv.empty() ? "" : g_argv[0];
  return std::string(path, static_cast<size_t>(n));
}

// A process started with stdin, stdout or stderr closed would hand those
// numbers to its first sockets, and then log into a client's connection:
// /dev/null takes any that are missing.
void OpenStandardStreams() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (fcntl(fd, F_GETFD) >= 0) continue;
    int null = open("/dev/null", O_RDWR);  // not CLOEXEC: it is fd 0-2
    if (null >= 0 && null != fd) {
      dup2(null, fd);
      close(null);
    }
  }
}

std::string ProgramName() {
  std::string name = g_argv.empty() ? "baton" : g_argv[0];
  size_t slash = name.rfind('/');
  return slash == std::string::npos ? name : name.substr(slash + 1);
}

}  // namespace

void ParseFlags(int argc, char** argv, const char* usage) {
  OpenStandardStreams();
  // Block the signals the supervisor reads from its signalfd before the app
  // can start any thread: threads inherit the mask, and a thread with
  // SIGUSR2 or SIGHUP unblocked would let its default action kill the
  // server. SIGPIPE is ignored (writes fail with EPIPE instead).
  sigset_t handled;
  sigemptyset(&handled);
  for (int s : {SIGUSR2, SIGHUP, SIGTERM, SIGINT}) sigaddset(&handled, s);
  pthread_sigmask(SIG_BLOCK, &handled, nullptr);
  signal(SIGPIPE, SIG_IGN);
  g_argv.assign(argv, argv + argc);
  // absl spells flags with '_'; accept the '-' spelling users type.
  std::vector<std::string> args(argv, argv + argc);
  for (size_t i = 1; i < args.size(); ++i) {
    std::string& a = args[i];
    if (a.rfind("--", 0) != 0) continue;
    size_t end = a.find('=');
    if (end == std::string::npos) end = a.size();
    for (size_t j = 2; j < end; ++j) {
      if (a[j] == '-') a[j] = '_';
    }
  }
  std::vector<char*> normalized;
  for (auto& a : args) normalized.push_back(a.data());
  absl::SetProgramUsageMessage(usage);
  // --help lists every flag of the app and of baton (absl's default shows
  // only flags defined in a file named after the binary: none), but not
  // absl's own (--helpfull has those).
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view file) {
    return !absl::StrContains(file, "absl/");
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  config.normalize_filename = [](absl::string_view file) {
    for (absl::string_view root : {"framework/", "apps/"}) {
      if (size_t at = file.rfind(root); at != absl::string_view::npos) {
        return std::string(file.substr(at));
      }
    }
    return std::string(file);
  };
  config.version_string = [] {
    return absl::StrCat(ProgramName(), " (baton ", kVersion,
                        ", handoff wire version ", handoff::kWireVersion,
                        ")\n");
  };
  absl::SetFlagsUsageConfig(config);
  absl::ParseCommandLine(static_cast<int>(normalized.size()),
                         normalized.data());
}

const handoff::Supervisor* CurrentSupervisor() { return g_supervisor; }

int RunFiberServer(fiber::FiberHandler handler, handoff::AppHooks hooks) {
  return RunServer(fiber::ServeInFiber(std::move(handler)), std::move(hooks));
}

int RunServer(ConnectionHandler handler, handoff::AppHooks hooks) {
#ifdef NDEBUG
  // Debian builds abseil without NDEBUG, so every absl::Mutex::Lock also
  // runs the deadlock detector (GraphCycles::GetId was 1.6% of baton-kv's
  // CPU under redis-benchmark). Debug and sanitizer builds keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  absl::StatusOr<Address> address = Address::Parse(absl::GetFlag(FLAGS_listen));
  if (!address.ok()) {
    Log("--listen: %s", address.status().ToString());
    return 2;
  }
  ServerOptions options;
  options.address = *address;
  options.threads = absl::GetFlag(FLAGS_threads);
  if (options.threads <= 0) {
    options.threads = static_cast<int>(std::thread::hardware_concurrency());
  }
  options.reactor = ReactorOptions::FromEnv();
  options.listener.connection.max_inbound = absl::GetFlag(FLAGS_max_inbound);
  absl::StatusOr<std::unique_ptr<Reactor>> reactor =
      Reactor::Create(options.reactor);
  if (!reactor.ok()) {
    Log("%s", reactor.status().ToString());
    return 1;
  }
  handoff::SupervisorOptions sup;
  sup.pid_file = absl::GetFlag(FLAGS_pid_file);
  sup.ready_timeout = absl::GetFlag(FLAGS_handoff_ready_timeout);
  sup.grace = absl::GetFlag(FLAGS_handoff_grace);
  sup.ack_timeout = absl::GetFlag(FLAGS_handoff_ack_timeout);
  sup.executable = SelfExecutable();
  sup.argv = g_argv;

  // --admin: a named listener the supervisor carries, served beside the
  // app's background work (see baton/app/admin.h).
  std::unique_ptr<AdminServer> admin;
  if (const std::string flag = absl::GetFlag(FLAGS_admin); !flag.empty()) {
    absl::StatusOr<Address> admin_address = Address::Parse(flag);
    if (!admin_address.ok()) {
      Log("--admin: %s", admin_address.status().ToString());
      return 2;
    }
    sup.named_listeners.push_back({kAdminListener, *admin_address});
    hooks.background = WithAdmin(&admin, std::move(hooks.background));
  }

  Server server(options, std::move(handler));
  handoff::Supervisor supervisor(server, std::move(sup), std::move(hooks));
  if (!absl::GetFlag(FLAGS_admin).empty()) {
    admin = std::make_unique<AdminServer>(server, supervisor);
  }
  g_supervisor = &supervisor;
  int code = (*reactor)->BlockOn(supervisor.Run());
  g_supervisor = nullptr;
  return code;
}

}  // namespace baton::app
