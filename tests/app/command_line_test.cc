// The command line every app shares (baton/app/server_main.h): --help lists
// every flag of the app and of baton with its default, --version names
// baton's version and the handoff wire version, and a --pid-file that
// cannot be written is a start-up error, not a warning.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "baton/handoff/wire.h"
#include "baton/version.h"
#include "support/process.h"

namespace baton::test_support {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct AppFlags {
  std::string app;
  std::vector<std::string> own_flags;  // defined by the app itself
};

class CommandLineTest : public ::testing::TestWithParam<AppFlags> {};

TEST_P(CommandLineTest, HelpListsEveryFlagWithItsDefault) {
  std::string out;
  RunTool({AppBinaryPath(GetParam().app), "--help"}, &out);
  std::vector<std::string> flags = {"--listen",
                                    "--threads",
                                    "--pid_file",
                                    "--max_inbound",
                                    "--handoff_grace",
                                    "--handoff_ready_timeout",
                                    "--handoff_ack_timeout"};
  flags.insert(flags.end(), GetParam().own_flags.begin(),
               GetParam().own_flags.end());
  for (const std::string& flag : flags) {
    EXPECT_THAT(out, HasSubstr(absl::StrCat(flag, " ("))) << out;
  }
  EXPECT_THAT(out, HasSubstr("default: \"127.0.0.1:0\""));
  EXPECT_THAT(out, Not(HasSubstr("No flags matched")));
  // absl's own flags stay in --helpfull.
  EXPECT_THAT(out, Not(HasSubstr("--flagfile")));
}

TEST_P(CommandLineTest, VersionNamesBatonAndTheWireVersion) {
  std::string out;
  EXPECT_EQ(RunTool({AppBinaryPath(GetParam().app), "--version"}, &out), 0);
  EXPECT_THAT(out, HasSubstr(absl::StrCat("baton-", GetParam().app, " (baton ",
                                          kVersion, ", handoff wire version ",
                                          handoff::kWireVersion, ")")))
      << out;
}

INSTANTIATE_TEST_SUITE_P(
    Apps, CommandLineTest,
    ::testing::Values(AppFlags{"echo", {"--consume_chunk"}},
                      AppFlags{"httpd", {"--max_header_bytes"}},
                      AppFlags{"kv", {"--max_bulk_bytes", "--max_array"}}),
    [](const auto& info) { return info.param.app; });

TEST(PidFileStartTest, AnUnwritablePidFileFailsTheStart) {
  std::string out;
  const int code = RunTool({AppBinaryPath("echo"), "--listen=127.0.0.1:0",
                            "--pid-file=/nonexistent/dir/x.pid"},
                           &out);
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, HasSubstr("/nonexistent/dir/x.pid")) << out;
  EXPECT_THAT(out, Not(HasSubstr("listening on"))) << out;
}

}  // namespace
}  // namespace baton::test_support
