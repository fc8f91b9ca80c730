// The test plays systemd: it owns the NOTIFY_SOCKET a Type=notify-reload
// unit would get (with NotifyAccess=all) and passes a listening socket the
// way socket activation does (fd 3, LISTEN_FDS=1, LISTEN_PID). It checks
// the exact messages, who sent each (SCM_CREDENTIALS) and their order
// across restarts by SIGHUP and SIGUSR2, a rolled-back handoff and a stop;
// and that the activated socket itself is served, the same one throughout.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/stream_check.h"
#include "handoff/handoff_test_util.h"
#include "support/process.h"

namespace baton::test_support {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(60);

uint64_t MonotonicUsecNow() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 +
         static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

struct Notification {
  pid_t sender = 0;
  std::string text;
  // The KEY=VALUE lines, in order.
  std::vector<std::string> lines() const {
    return absl::StrSplit(text, '\n', absl::SkipEmpty());
  }
  std::optional<std::string> Get(const std::string& key) const {
    for (const std::string& line : lines()) {
      if (absl::StartsWith(line, key + "=")) return line.substr(key.size() + 1);
    }
    return std::nullopt;
  }
};

// systemd's side of sd_notify: an abstract-namespace datagram socket that
// learns each sender's pid from the kernel.
class NotifySocket {
 public:
  NotifySocket() {
    name_ = absl::StrCat("@baton-systemd-test-", getpid(), "-",
                         absl::ToUnixNanos(absl::Now()));
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int on = 1;
    setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name_.data(), name_.size());
    addr.sun_path[0] = '\0';
    ok_ = bind(fd_, reinterpret_cast<sockaddr*>(&addr),
               static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) +
                                      name_.size())) == 0;
  }
  ~NotifySocket() { close(fd_); }
  bool ok() const { return ok_; }
  const std::string& name() const { return name_; }

  // The next message, or nullopt after `timeout`.
  std::optional<Notification> Next(absl::Duration timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) <=
        0) {
      return std::nullopt;
    }
    char buffer[4096];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    iovec iov{buffer, sizeof(buffer)};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(fd_, &msg, MSG_DONTWAIT);
    if (n < 0) return std::nullopt;
    Notification note;
    note.text.assign(buffer, static_cast<size_t>(n));
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
         c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        ucred cred;
        std::memcpy(&cred, CMSG_DATA(c), sizeof(cred));
        note.sender = cred.pid;
      }
    }
    return note;
  }

 private:
  std::string name_;
  int fd_ = -1;
  bool ok_ = false;
};

// A listening TCP socket on 127.0.0.1:0, as a .socket unit with
// ReusePort=yes makes it (the second reactor binds its own beside it).
int ActivatedListener(uint16_t* port, uint64_t* inode) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, 128) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  struct stat st;
  fstat(fd, &st);
  *inode = st.st_ino;
  return fd;
}

class SystemdTest : public ::testing::Test {
 protected:
  // Expects the next message to come from `pid` and start with `first`.
  Notification Expect(pid_t pid, const std::string& first) {
    std::optional<Notification> note = notify_.Next(kWait);
    if (!note.has_value()) {
      ADD_FAILURE() << "no notification (expected " << first << " from pid "
                    << pid << ")";
      return {};
    }
    EXPECT_EQ(note->sender, pid) << note->text;
    EXPECT_FALSE(note->lines().empty());
    if (!note->lines().empty()) {
      EXPECT_EQ(note->lines()[0], first) << note->text;
    }
    return *note;
  }
  // RELOADING=1 from `pid`, stamped between `before` and now.
  void ExpectReloading(pid_t pid, uint64_t before) {
    Notification n = Expect(pid, "RELOADING=1");
    uint64_t usec = 0;
    ASSERT_TRUE(absl::SimpleAtoi(n.Get("MONOTONIC_USEC").value_or(""), &usec))
        << n.text;
    EXPECT_GE(usec, before);
    EXPECT_LE(usec, MonotonicUsecNow());
  }
  void ExpectNewMainPid(pid_t pid) {
    Notification n = Expect(pid, absl::StrCat("MAINPID=", pid));
    EXPECT_EQ(n.lines().size() >= 2 ? n.lines()[1] : "", "READY=1") << n.text;
  }
  void ExpectNothingMore() {
    std::optional<Notification> extra = notify_.Next(absl::Milliseconds(200));
    EXPECT_FALSE(extra.has_value()) << (extra ? extra->text : "");
  }

  NotifySocket notify_;
};

TEST_F(SystemdTest,
       NotifiesEveryStateChangeInOrderAndServesTheActivatedSocket) {
  ASSERT_TRUE(notify_.ok());
  const uint32_t seed = TestSeed(7300);
  SCOPED_TRACE(SeedTrace(seed));
  uint16_t port = 0;
  uint64_t inode = 0;
  const int listener = ActivatedListener(&port, &inode);
  ASSERT_GE(listener, 0);

  TestDirectory dir;
  ServerProcess::Options options = EchoServer(
      dir.path(), {"--threads=2"},
      {absl::StrCat("NOTIFY_SOCKET=", notify_.name()),
       // The first handoff fails: the reload must end with READY=1 anyway.
       "BATON_HANDOFF_FAULT=child:after_hello"});
  options.activated_socket = listener;
  options.activated_name = "echo";
  ServerProcess server(options);
  ASSERT_OK(server.Start());
  close(listener);  // the server holds the only copy now
  EXPECT_EQ(server.port(), port) << "bound its own socket instead";
  {
    Notification ready = Expect(server.pid(), "READY=1");
    EXPECT_THAT(ready.Get("STATUS").value_or(""),
                HasSubstr(absl::StrCat(":", port)));
  }
  EXPECT_THAT(server.Log(), HasSubstr("socket activation"));

  app::StreamClient client(Streams(server.address(), 8, seed));
  ASSERT_OK(client.Start());
  ASSERT_OK(client.WaitVerified(8 * 1024, kWait));

  // A rolled-back reload.
  uint64_t before = MonotonicUsecNow();
  ASSERT_OK(server.RestartExpectRollback());
  ExpectReloading(server.pid(), before);
  {
    Notification again = Expect(server.pid(), "READY=1");
    EXPECT_THAT(again.Get("STATUS").value_or(""), HasSubstr("handoff failed"));
  }

  // Reloads that hand over: by SIGHUP, SIGUSR2, SIGHUP.
  for (int signo : {SIGHUP, SIGUSR2, SIGHUP}) {
    SCOPED_TRACE(absl::StrCat("signal ", signo));
    before = MonotonicUsecNow();
    absl::StatusOr<RestartResult> r = server.Restart(signo);
    ASSERT_OK(r);
    ExpectCleanExit(*r);
    ExpectReloading(r->old_pid, before);
    ExpectNewMainPid(r->new_pid);
    ASSERT_OK(client.WaitForProgress(8 * 1024, kWait));
    // The activated socket moved with every handoff.
    absl::StatusOr<std::set<uint64_t>> listening = ListeningInodes(port);
    ASSERT_OK(listening);
    EXPECT_TRUE(listening->count(inode)) << "activated socket " << inode;
  }
  ASSERT_OK(client.Finish(kWait));
  ExpectStreamsIntact(client);

  const pid_t last = server.pid();
  ASSERT_OK(server.Stop());
  Expect(last, "STOPPING=1");
  ExpectNothingMore();
}

}  // namespace
}  // namespace baton::test_support
