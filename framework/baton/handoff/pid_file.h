// PidFile: the file naming the serving process, replaced atomically.
//
// Prepare() creates the temporary file that Commit() later renames over the
// path: a fresh name in the same directory (mkostemp: O_EXCL, so a symlink
// or file planted there is never followed or overwritten; O_CLOEXEC). It is
// done early so that a path that cannot be written is an error before the
// process serves: at start-up (exit non-zero) or, in a handoff child, before
// READY (the old process rolls back and keeps serving). Commit() writes
// "PID\n", fsyncs nothing (a pid file need not survive a crash) and
// renames; a reader sees the old file or the new one, never a partial one.
// An uncommitted PidFile removes its temporary file when destroyed. An
// empty path makes a PidFile that does nothing.
//
//   absl::StatusOr<PidFile> pid_file = PidFile::Prepare("/run/echo.pid");
//   if (!pid_file.ok()) return Fail(pid_file.status());
//   ... serve ...
//   absl::Status s = pid_file->Commit(getpid());
#ifndef BATON_HANDOFF_PID_FILE_H_
#define BATON_HANDOFF_PID_FILE_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace baton::handoff {

class PidFile {
 public:
  static absl::StatusOr<PidFile> Prepare(std::string path);
  PidFile() = default;
  PidFile(PidFile&& other) noexcept;
  PidFile& operator=(PidFile&& other) noexcept;
  ~PidFile();

  // Writes `pid` and renames the temporary file over the path. Once only.
  absl::Status Commit(pid_t pid);
  const std::string& path() const { return path_; }

 private:
  void Discard();
  std::string path_;
  std::string tmp_;
  int fd_ = -1;
};

}  // namespace baton::handoff

#endif  // BATON_HANDOFF_PID_FILE_H_
