// How a connection ends: a peer reset is an error (never a silent end of
// stream, never a crash), a peer's half-close is an end of stream after all
// its data, and the other direction keeps working.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "baton/net/address.h"
#include "baton/net/connection.h"
#include "baton/net/listener.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task_group.h"
#include "baton/runtime/timer.h"
#include "net/net_test_util.h"

namespace baton {
namespace {

using net_test::PollUntil;

// Makes close() send a RST instead of a FIN.
void SetResetOnClose(int fd) {
  linger lg{.l_onoff = 1, .l_linger = 0};
  ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0)
      << strerror(errno);
}

// Whether the kernel has seen the peer's reset (or any error) on `fd`.
bool SocketHasError(int fd) {
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP)) != 0;
}

// What a sequence of Read() calls returned, until the first non-OK status or
// end of stream.
struct ReadLog {
  std::vector<size_t> counts;  // OK results, in order (0 = end of stream)
  absl::Status final_status;   // the first non-OK result
  size_t bytes = 0;
  std::string data;
  bool saw_eof() const { return !counts.empty() && counts.back() == 0; }
};

Task<void> ReadUntilEnd(Connection* c, ReadLog* log) {
  while (true) {
    absl::StatusOr<size_t> n = co_await c->Read();
    if (!n.ok()) {
      log->final_status = n.status();
      co_return;
    }
    log->counts.push_back(*n);
    if (*n == 0) co_return;
    log->bytes += c->inbound().size();
    log->data.append(c->inbound());
    c->Consume(c->inbound().size());
  }
}

class PeerResetTest : public net_test::ListenerFixture {};

// The server waits in Read() when the reset arrives.
TEST_P(PeerResetTest, ResetWhileWaitingInReadIsAnError) {
  ReadLog log;
  absl::Status error_after;
  bool eof_flag = true;
  reactor_->BlockOn([](Listener* l, Address to, ReadLog* log,
                       absl::Status* error_after,
                       bool* eof_flag) -> Task<void> {
    absl::StatusOr<Connection> client = co_await Connect(to);
    absl::StatusOr<Connection> server = co_await l->Accept();
    if (!client.ok() || !server.ok()) {
      ADD_FAILURE() << client.status() << " " << server.status();
      co_return;
    }
    TaskGroup reader;
    reader.Spawn(ReadUntilEnd(&*server, log));
    client->Write("hello");
    co_await client->Flush();
    // The server has the bytes and waits for more.
    co_await PollUntil([&] { return log->bytes == 5; }, absl::Seconds(5));
    SetResetOnClose(client->fd());
    co_await client->Close();
    co_await reader.Join();
    *error_after = server->error();
    *eof_flag = server->eof();
    co_await server->Close();
  }(&*listener_, address_, &log, &error_after, &eof_flag));
  EXPECT_EQ(log.data, "hello");
  EXPECT_FALSE(log.saw_eof()) << "a reset was reported as end of stream";
  EXPECT_FALSE(log.final_status.ok());
  EXPECT_NE(log.final_status.message().find("reset"), std::string::npos)
      << log.final_status;
  EXPECT_FALSE(error_after.ok());
  EXPECT_FALSE(eof_flag);
}

// The reset (after some data) arrives before the server reads at all: the
// data may be delivered, then the error; never an end of stream.
TEST_P(PeerResetTest, ResetBeforeFirstReadIsAnError) {
  ReadLog log;
  bool kernel_saw_reset = false;
  reactor_->BlockOn([](Listener* l, Address to, ReadLog* log,
                       bool* kernel_saw_reset) -> Task<void> {
    absl::StatusOr<Connection> client = co_await Connect(to);
    absl::StatusOr<Connection> server = co_await l->Accept();
    if (!client.ok() || !server.ok()) {
      ADD_FAILURE() << client.status() << " " << server.status();
      co_return;
    }
    client->Write("data before reset");
    co_await client->Flush();
    SetResetOnClose(client->fd());
    co_await client->Close();
    const int fd = server->fd();
    *kernel_saw_reset = co_await PollUntil([fd] { return SocketHasError(fd); },
                                           absl::Seconds(5));
    co_await ReadUntilEnd(&*server, log);
    co_await server->Close();
  }(&*listener_, address_, &log, &kernel_saw_reset));
  ASSERT_TRUE(kernel_saw_reset);
  EXPECT_FALSE(log.saw_eof()) << "a reset was reported as end of stream";
  EXPECT_FALSE(log.final_status.ok());
  // Whatever was delivered is a prefix of what was sent.
  EXPECT_EQ(std::string("data before reset").substr(0, log.data.size()),
            log.data);
}

// The server is blocked writing to a client that does not read when the
// client resets: Flush() fails instead of waiting forever, and so does the
// next Read().
TEST_P(PeerResetTest, ResetWhileWritingFailsFlushAndRead) {
  absl::Status flush;
  absl::StatusOr<size_t> read_after = absl::UnknownError("not run");
  uint64_t sent = 0;
  reactor_->BlockOn([](Listener* l, Address to, absl::Status* flush,
                       absl::StatusOr<size_t>* read_after,
                       uint64_t* sent) -> Task<void> {
    int fd = net_test::RawConnect(to, /*rcvbuf=*/16 * 1024);
    if (fd < 0) {
      ADD_FAILURE() << strerror(errno);
      co_return;
    }
    absl::StatusOr<Connection> server = co_await l->Accept();
    if (!server.ok()) {
      ADD_FAILURE() << server.status();
      close(fd);
      co_return;
    }
    server->Write(std::string(8 << 20, 'x'));
    // Wait until the send is stuck: nothing more leaves for 20 polls.
    uint64_t last = 0;
    int unchanged = 0;
    co_await PollUntil(
        [&] {
          unchanged = server->bytes_sent() == last ? unchanged + 1 : 0;
          last = server->bytes_sent();
          return unchanged >= 20 && server->outbound_size() > 0;
        },
        absl::Seconds(5));
    TaskGroup flusher;
    flusher.Spawn([](Connection* c, absl::Status* flush) -> Task<void> {
      *flush = co_await c->Flush();
    }(&*server, flush));
    co_await Yield();
    SetResetOnClose(fd);
    close(fd);
    co_await flusher.Join();
    *read_after = co_await server->Read();
    *sent = server->bytes_sent();
    co_await server->Close();
  }(&*listener_, address_, &flush, &read_after, &sent));
  EXPECT_GT(sent, 0u);
  EXPECT_FALSE(flush.ok()) << "Flush succeeded with the peer gone";
  EXPECT_FALSE(read_after.ok())
      << "Read returned " << *read_after << " after a reset";
}

// The client sends its data and shuts down its sending side: the server reads
// every byte, then end of stream (again on every later Read()); it can still
// write, and the client receives all of it before the server's own close.
TEST_P(PeerResetTest, HalfCloseDeliversDataThenEndOfStream) {
  const uint32_t seed = test_support::TestSeed(5001);
  SCOPED_TRACE(test_support::SeedTrace(seed));
  const app::PatternStream stream(seed);
  const std::string request = stream.Bytes(0, 300000);
  const std::string reply = stream.Bytes(1 << 20, 500000);
  ReadLog server_log;
  ReadLog client_log;
  absl::StatusOr<size_t> read_after_eof = absl::UnknownError("not run");
  bool server_eof_flag = false;
  absl::Status reply_flush;
  reactor_->BlockOn(
      [](Listener* l, Address to, const std::string* request,
         const std::string* reply, ReadLog* server_log, ReadLog* client_log,
         absl::StatusOr<size_t>* read_after_eof, bool* server_eof_flag,
         absl::Status* reply_flush) -> Task<void> {
        absl::StatusOr<Connection> client = co_await Connect(to);
        absl::StatusOr<Connection> server = co_await l->Accept();
        if (!client.ok() || !server.ok()) {
          ADD_FAILURE() << client.status() << " " << server.status();
          co_return;
        }
        client->Write(*request);
        if (!(co_await client->Flush()).ok()) ADD_FAILURE() << "client flush";
        EXPECT_EQ(shutdown(client->fd(), SHUT_WR), 0) << strerror(errno);

        co_await ReadUntilEnd(&*server, server_log);
        *server_eof_flag = server->eof();
        *read_after_eof = co_await server->Read();
        // The client reads the reply (concurrently: it may not fit in the
        // socket buffers) until the server closes.
        TaskGroup client_reader;
        client_reader.Spawn(ReadUntilEnd(&*client, client_log));
        server->Write(*reply);
        *reply_flush = co_await server->Flush();
        co_await server->Close();
        co_await client_reader.Join();
        co_await client->Close();
      }(&*listener_, address_, &request, &reply, &server_log, &client_log,
                                    &read_after_eof, &server_eof_flag,
                                    &reply_flush));
  EXPECT_TRUE(server_log.final_status.ok()) << server_log.final_status;
  EXPECT_TRUE(server_log.saw_eof());
  EXPECT_TRUE(server_log.data == request)
      << "server got " << server_log.data.size() << " of " << request.size()
      << " bytes before end of stream";
  EXPECT_TRUE(server_eof_flag);
  ASSERT_TRUE(read_after_eof.ok()) << read_after_eof.status();
  EXPECT_EQ(*read_after_eof, 0u);
  EXPECT_TRUE(reply_flush.ok()) << reply_flush;
  EXPECT_TRUE(client_log.final_status.ok()) << client_log.final_status;
  EXPECT_TRUE(client_log.saw_eof());
  EXPECT_TRUE(client_log.data == reply)
      << "client got " << client_log.data.size() << " of " << reply.size();
}

INSTANTIATE_TEST_SUITE_P(ReceiveModes, PeerResetTest,
                         ::testing::ValuesIn(net_test::kReceiveModes),
                         net_test::ReceiveModeName);

}  // namespace
}  // namespace baton
