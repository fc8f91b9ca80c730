#include "baton/handoff/systemd.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "baton/runtime/log.h"

namespace baton::handoff {
namespace {

constexpr int kListenFdsStart = 3;  // SD_LISTEN_FDS_START

void LogOnce(const std::string& what) {
  static std::atomic<bool> logged{false};
  if (!logged.exchange(true))
    Log("systemd notify: %s (not logged again)", what);
}

}  // namespace

uint64_t MonotonicUsec() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 +
         static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

void Notify(std::string_view state) {
  const char* path = getenv(kNotifySocketEnv);
  if (path == nullptr || path[0] == '\0') return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const size_t len = strlen(path);
  if ((path[0] != '/' && path[0] != '@') || len >= sizeof(addr.sun_path)) {
    LogOnce(absl::StrCat("unusable ", kNotifySocketEnv, "=", path));
    return;
  }
  memcpy(addr.sun_path, path, len);
  if (path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  const auto addr_len =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    LogOnce(absl::StrCat("socket: ", strerror(errno)));
    return;
  }
  ssize_t n;
  do {
    n = sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
               reinterpret_cast<const sockaddr*>(&addr), addr_len);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    LogOnce(absl::StrCat("sending to ", path, ": ", strerror(errno)));
  }
  close(fd);
}

absl::StatusOr<std::vector<ActivatedSocket>> TakeActivatedSockets() {
  std::vector<ActivatedSocket> sockets;
  const char* pid_env = getenv("LISTEN_PID");
  const char* fds_env = getenv("LISTEN_FDS");
  const char* names_env = getenv("LISTEN_FDNAMES");
  int pid = 0;
  int count = 0;
  const bool ours =
      pid_env != nullptr && absl::SimpleAtoi(pid_env, &pid) && pid == getpid();
  const std::string names = names_env == nullptr ? "" : names_env;
  const std::string count_text = fds_env == nullptr ? "" : fds_env;
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  if (!ours) return sockets;
  if (!absl::SimpleAtoi(count_text, &count) || count < 0 || count > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket activation: LISTEN_FDS=", count_text,
                     " is not a number of descriptors"));
  }
  std::vector<std::string> split;
  if (!names.empty()) split = absl::StrSplit(names, ':');
  for (int i = 0; i < count; ++i) {
    const int fd = kListenFdsStart + i;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("socket activation: fd ", fd, " (of LISTEN_FDS=", count,
                       ") is not an open socket"));
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    sockets.push_back({fd, static_cast<size_t>(i) < split.size()
                               ? split[static_cast<size_t>(i)]
                               : "unknown"});
  }
  return sockets;
}

}  // namespace baton::handoff
