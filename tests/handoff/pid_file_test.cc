// PidFile: an atomic replace through a temporary file that is never a name
// someone could plant a symlink at, and errors before serving.
#include "baton/handoff/pid_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "support/process.h"
#include "support/status_macros.h"

namespace baton::handoff {
namespace {

using test_support::ReadFile;
using test_support::TestDirectory;

int CountEntries(const std::string& dir) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    (void)e;
    ++n;
  }
  return n;
}

TEST(PidFileTest, CommitWritesThePidAndLeavesNothingElse) {
  TestDirectory dir;
  const std::string path = dir.path() + "/server.pid";
  absl::StatusOr<PidFile> file = PidFile::Prepare(path);
  ASSERT_OK(file);
  // Prepared, not committed: the path does not exist yet.
  EXPECT_FALSE(std::filesystem::exists(path));
  ASSERT_OK(file->Commit(4242));
  EXPECT_EQ(ReadFile(path), "4242\n");
  EXPECT_EQ(CountEntries(dir.path()), 1);
  struct stat st;
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST(PidFileTest, ReplacesAnExistingFileAtomically) {
  TestDirectory dir;
  const std::string path = dir.path() + "/server.pid";
  absl::StatusOr<PidFile> first = PidFile::Prepare(path);
  ASSERT_OK(first);
  ASSERT_OK(first->Commit(1));
  absl::StatusOr<PidFile> second = PidFile::Prepare(path);
  ASSERT_OK(second);
  EXPECT_EQ(ReadFile(path), "1\n");  // untouched until the commit
  ASSERT_OK(second->Commit(2));
  EXPECT_EQ(ReadFile(path), "2\n");
  EXPECT_EQ(CountEntries(dir.path()), 1);
}

// The name an earlier version used (PATH.tmp.PID) was predictable: a symlink
// planted there had its target overwritten.
TEST(PidFileTest, APlantedSymlinkIsNeverFollowed) {
  TestDirectory dir;
  const std::string path = dir.path() + "/server.pid";
  const std::string victim = dir.path() + "/victim";
  {
    std::FILE* f = std::fopen(victim.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("precious\n", f);
    std::fclose(f);
  }
  for (const std::string& name :
       {absl::StrCat(path, ".tmp.", getpid()), absl::StrCat(path, ".tmp"),
        absl::StrCat(path, ".tmp.XXXXXX")}) {
    ASSERT_EQ(symlink(victim.c_str(), name.c_str()), 0) << name;
  }
  absl::StatusOr<PidFile> file = PidFile::Prepare(path);
  ASSERT_OK(file);
  ASSERT_OK(file->Commit(getpid()));
  EXPECT_EQ(ReadFile(victim), "precious\n");
  EXPECT_EQ(ReadFile(path), absl::StrCat(getpid(), "\n"));
  struct stat st;
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(CountEntries(dir.path()), 5);  // victim, 3 links, the pid file
}

TEST(PidFileTest, AnUncommittedFileLeavesNoTemporaryBehind) {
  TestDirectory dir;
  const std::string path = dir.path() + "/server.pid";
  {
    absl::StatusOr<PidFile> file = PidFile::Prepare(path);
    ASSERT_OK(file);
    EXPECT_EQ(CountEntries(dir.path()), 1);  // the temporary
  }
  EXPECT_EQ(CountEntries(dir.path()), 0);
}

TEST(PidFileTest, AMissingDirectoryIsAnErrorNamingThePath) {
  absl::StatusOr<PidFile> file = PidFile::Prepare("/nonexistent/x.pid");
  ASSERT_FALSE(file.ok());
  EXPECT_TRUE(absl::IsNotFound(file.status())) << file.status();
  EXPECT_THAT(std::string(file.status().message()),
              ::testing::HasSubstr("/nonexistent/x.pid"));
}

TEST(PidFileTest, AnEmptyPathDoesNothing) {
  absl::StatusOr<PidFile> file = PidFile::Prepare("");
  ASSERT_OK(file);
  EXPECT_OK(file->Commit(1));
}

}  // namespace
}  // namespace baton::handoff
