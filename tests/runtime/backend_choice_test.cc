// Which backend a Reactor runs: epoll when asked (ReactorOptions::backend,
// BATON_BACKEND), and by default io_uring unless io_uring_setup is refused
// (EPERM, ENOSYS, EACCES, ENOMEM), which a seccomp filter in a child process
// makes it do; an explicit io_uring where it is refused is an error.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "baton/runtime/io.h"
#include "baton/runtime/reactor.h"
#include "support/deny_io_uring.h"

namespace baton {
namespace {

TEST(BackendChoiceTest, EpollWhenAsked) {
  ReactorOptions options;
  options.backend = BackendChoice::kEpoll;
  absl::StatusOr<std::unique_ptr<Reactor>> r = Reactor::Create(options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->backend(), BackendKind::kEpoll);
  EXPECT_EQ((*r)->buffer_ring(), nullptr);
  // And it runs operations: a recv of bytes already there, one parked.
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  ASSERT_EQ(write(sv[1], "ab", 2), 2);
  char buf[8];
  int32_t first = (*r)->BlockOn([](int fd, char* b) -> Task<int32_t> {
    co_return co_await Io(IoRequest::Recv(fd, b, 8));
  }(sv[0], buf));
  EXPECT_EQ(first, 2);
  int32_t second =
      (*r)->BlockOn([](int fd, int peer, char* b) -> Task<int32_t> {
        co_await Yield();
        auto recv = Io(IoRequest::Recv(fd, b, 8));
        // Written after the recv is parked: the next Wait sees it.
        (*Reactor::Current()).Schedule([peer] {
          [[maybe_unused]] ssize_t n = write(peer, "xyz", 3);
        });
        co_return co_await recv;
      }(sv[0], sv[1], buf));
  EXPECT_EQ(second, 3);
  (*r)->ForgetFd(sv[0], true);
  close(sv[0]);
  close(sv[1]);
  EXPECT_EQ((*r)->inflight(), 0);
}

TEST(BackendChoiceTest, ReadsBatonBackend) {
  setenv("BATON_BACKEND", "epoll", 1);
  ReactorOptions epoll = ReactorOptions::FromEnv();
  setenv("BATON_BACKEND", "io_uring", 1);
  ReactorOptions uring = ReactorOptions::FromEnv();
  unsetenv("BATON_BACKEND");
  ReactorOptions automatic = ReactorOptions::FromEnv();
  EXPECT_EQ(epoll.backend, BackendChoice::kEpoll);
  EXPECT_EQ(uring.backend, BackendChoice::kIoUring);
  EXPECT_EQ(automatic.backend, BackendChoice::kAuto);
}

// In a child under the filter: exit 0 if the choice is right, else a code
// that says what went wrong.
int ChooseUnderFilter(int err) {
  if (!test_support::DenyIoUringSetup(err).ok()) return 10;
  absl::StatusOr<std::unique_ptr<Reactor>> automatic =
      Reactor::Create(ReactorOptions());
  if (!automatic.ok()) return 11;
  if ((*automatic)->backend() != BackendKind::kEpoll) return 12;
  automatic->reset();
  ReactorOptions forced;
  forced.backend = BackendChoice::kIoUring;
  absl::StatusOr<std::unique_ptr<Reactor>> refused = Reactor::Create(forced);
  if (refused.ok()) return 13;
  if (refused.status().message().find("BATON_BACKEND=epoll") ==
      std::string::npos) {
    return 14;
  }
  return 0;
}

class RefusedTest : public ::testing::TestWithParam<int> {};

TEST_P(RefusedTest, AutomaticFallsBackToEpollExplicitIoUringFails) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(ChooseUnderFilter(GetParam()));
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "10: no filter, 11: no reactor, 12: not epoll, 13: io_uring "
         "created, 14: error does not say how to run without it";
}

INSTANTIATE_TEST_SUITE_P(Errors, RefusedTest,
                         ::testing::Values(EPERM, ENOSYS, EACCES, ENOMEM),
                         [](const auto& info) {
                           switch (info.param) {
                             case EPERM:
                               return std::string("EPERM");
                             case ENOSYS:
                               return std::string("ENOSYS");
                             case EACCES:
                               return std::string("EACCES");
                             default:
                               return std::string("ENOMEM");
                           }
                         });

TEST(BackendChoiceTest, OtherSetupErrorsAreNotHidden) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (!test_support::DenyIoUringSetup(EFAULT).ok()) _exit(10);
    absl::StatusOr<std::unique_ptr<Reactor>> r =
        Reactor::Create(ReactorOptions());
    _exit(r.ok() ? 11 : 0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "EFAULT must fail, not fall back";
}

}  // namespace
}  // namespace baton
