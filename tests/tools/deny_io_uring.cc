// baton-deny-io-uring: runs a program where io_uring_setup fails.
//
//   baton-deny-io-uring [--errno=EPERM|ENOMEM|ENOSYS|EACCES] PROGRAM ARGS...
//
// Installs the seccomp filter of tests/support/deny_io_uring.h, then execs
// PROGRAM in its place (same pid), so a server under test, and every
// process it hands over to, sees io_uring refused as in a Docker container.
#include "support/deny_io_uring.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  int first = 1;
  int err = EPERM;
  if (argc > 1 && std::strncmp(argv[1], "--errno=", 8) == 0) {
    const std::string name = argv[1] + 8;
    err = name == "ENOMEM"   ? ENOMEM
          : name == "ENOSYS" ? ENOSYS
          : name == "EACCES" ? EACCES
                             : EPERM;
    first = 2;
  }
  if (first >= argc) {
    std::fprintf(stderr, "usage: %s [--errno=E] PROGRAM ARGS...\n", argv[0]);
    return 2;
  }
  if (absl::Status s = baton::test_support::DenyIoUringSetup(err); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  execv(argv[first], argv + first);
  std::fprintf(stderr, "exec %s: %s\n", argv[first], std::strerror(errno));
  return 127;
}
