// DenyIoUringSetup: a seccomp filter that makes io_uring_setup fail with a
// chosen errno, as Docker's default profile (EPERM), a kernel with
// kernel.io_uring_disabled=2 (EPERM) or a small RLIMIT_MEMLOCK (ENOMEM) do.
// Every other system call is allowed. The filter is inherited by children
// and survives exec (PR_SET_NO_NEW_PRIVS is set, so no privilege is
// needed), which is how a server and every process it hands over to run
// under it. Header-only: the tests and tests/tools/deny_io_uring.cc use it.
//
//   if (absl::Status s = DenyIoUringSetup(EPERM); !s.ok()) ...;
//   execv(server, argv);
#ifndef BATON_TESTS_SUPPORT_DENY_IO_URING_H_
#define BATON_TESTS_SUPPORT_DENY_IO_URING_H_

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstddef>

#include "absl/status/status.h"

namespace baton::test_support {

#if defined(__x86_64__)
inline constexpr unsigned kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
inline constexpr unsigned kAuditArch = AUDIT_ARCH_AARCH64;
#else
#error "DenyIoUringSetup: unknown architecture"
#endif

inline absl::Status DenyIoUringSetup(int err) {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(
          BPF_RET | BPF_K,
          SECCOMP_RET_ERRNO | (static_cast<unsigned>(err) & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{
      static_cast<unsigned short>(sizeof(filter) / sizeof(filter[0])), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return absl::ErrnoToStatus(errno, "prctl(PR_SET_NO_NEW_PRIVS)");
  }
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    return absl::ErrnoToStatus(errno, "prctl(PR_SET_SECCOMP)");
  }
  return absl::OkStatus();
}

}  // namespace baton::test_support

#endif  // BATON_TESTS_SUPPORT_DENY_IO_URING_H_
