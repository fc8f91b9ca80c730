#include "baton/handoff/pid_file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"

namespace baton::handoff {

absl::StatusOr<PidFile> PidFile::Prepare(std::string path) {
  PidFile file;
  if (path.empty()) return file;
  std::string tmp = absl::StrCat(path, ".tmp.XXXXXX");
  int fd = mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("--pid-file ", path,
                            ": cannot create a file in its directory"));
  }
  // mkostemp creates 0600; a pid file is for every user to read.
  if (fchmod(fd, 0644) != 0) {
    int err = errno;
    close(fd);
    unlink(tmp.c_str());
    return absl::ErrnoToStatus(err, absl::StrCat("fchmod ", tmp));
  }
  file.path_ = std::move(path);
  file.tmp_ = std::move(tmp);
  file.fd_ = fd;
  return file;
}

PidFile::PidFile(PidFile&& other) noexcept
    : path_(std::move(other.path_)),
      tmp_(std::move(other.tmp_)),
      fd_(std::exchange(other.fd_, -1)) {}

PidFile& PidFile::operator=(PidFile&& other) noexcept {
  if (this != &other) {
    Discard();
    path_ = std::move(other.path_);
    tmp_ = std::move(other.tmp_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

PidFile::~PidFile() { Discard(); }

void PidFile::Discard() {
  if (fd_ < 0) return;
  close(fd_);
  unlink(tmp_.c_str());
  fd_ = -1;
}

absl::Status PidFile::Commit(pid_t pid) {
  if (path_.empty()) return absl::OkStatus();
  if (fd_ < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("pid file ", path_, " already committed"));
  }
  const std::string text = absl::StrCat(pid, "\n");
  const bool written =
      write(fd_, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  int err = written ? 0 : errno;
  close(fd_);
  fd_ = -1;
  if (written && rename(tmp_.c_str(), path_.c_str()) != 0) err = errno;
  if (err != 0 || !written) {
    unlink(tmp_.c_str());
    return absl::ErrnoToStatus(err != 0 ? err : EIO,
                               absl::StrCat("writing --pid-file ", path_));
  }
  return absl::OkStatus();
}

}  // namespace baton::handoff
