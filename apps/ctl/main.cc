// baton-ctl: prints what a baton server's admin endpoint (--admin) reports.
//
//   baton-ctl --admin 127.0.0.1:9000 connections   # a table, one per line
//   baton-ctl --admin 127.0.0.1:9000 handoffs      # the lineage's handoffs
//   baton-ctl --admin 127.0.0.1:9000 metrics       # Prometheus text
//   baton-ctl --admin 127.0.0.1:9000 --json connections
//
// One plain blocking HTTP/1.1 GET (the endpoint answers with Content-Length
// and closes). Exit status: 0 on 200, 1 on any other answer or error.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "baton/net/address.h"

ABSL_FLAG(std::string, admin, "127.0.0.1:9000",
          "HOST:PORT of the server's --admin endpoint");
ABSL_FLAG(bool, json, false, "print JSON instead of a table");
ABSL_FLAG(int, timeout_ms, 5000, "give up after this long without an answer");

namespace {

int Fail(const std::string& why) {
  std::fprintf(stderr, "baton-ctl: %s\n", why.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "baton-ctl --admin HOST:PORT [--json] connections|handoffs|metrics");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    return Fail("expected one command: connections, handoffs or metrics");
  }
  const std::string command = args[1];
  std::string path;
  if (command == "connections" || command == "handoffs") {
    path = absl::StrCat("/", command,
                        absl::GetFlag(FLAGS_json) ? "" : "?format=text");
  } else if (command == "metrics") {
    path = "/metrics";
  } else {
    return Fail(absl::StrCat("unknown command ", command));
  }
  absl::StatusOr<baton::Address> address =
      baton::Address::Parse(absl::GetFlag(FLAGS_admin));
  if (!address.ok()) return Fail(address.status().ToString());

  int fd = socket(address->family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, address->sa(), address->length()) != 0) {
    return Fail(absl::StrCat("connect ", address->ToString(), ": ",
                             std::strerror(errno)));
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: ", address->ToString(),
                   "\r\nConnection: close\r\n\r\n");
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return Fail(absl::StrCat("send: ", std::strerror(errno)));
  }
  std::string response;
  char buf[65536];
  while (true) {
    pollfd p{fd, POLLIN, 0};
    int ready = poll(&p, 1, absl::GetFlag(FLAGS_timeout_ms));
    if (ready == 0) return Fail("timed out waiting for the answer");
    if (ready < 0 && errno == EINTR) continue;
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(absl::StrCat("recv: ", std::strerror(errno)));
    if (n == 0) break;
    response.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  const size_t end = response.find("\r\n\r\n");
  if (end == std::string::npos) return Fail("malformed answer");
  const std::string status = response.substr(0, response.find("\r\n"));
  std::fwrite(response.data() + end + 4, 1, response.size() - end - 4, stdout);
  if (status.find(" 200 ") == std::string::npos) return Fail(status);
  return 0;
}
