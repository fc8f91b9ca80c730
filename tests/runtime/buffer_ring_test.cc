// Tests for BufferRing: argument validation, and buffers travelling kernel ->
// View() -> Recycle() -> kernel on a real io_uring.
#include "baton/runtime/buffer_ring.h"

#include <gtest/gtest.h>
#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "baton/runtime/io.h"
#include "baton/runtime/reactor.h"
#include "baton/runtime/task.h"
#include "runtime/runtime_test_util.h"

namespace baton {
namespace {

constexpr uint16_t kGroup = 7;

// A plain io_uring (no reactor) and a connected socket pair.
class BufferRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int ret = io_uring_queue_init(16, &ring_, 0);
    if (ret < 0) {
      GTEST_SKIP() << "io_uring unavailable: " << strerror(-ret);
    }
    ring_ready_ = true;
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv_), 0)
        << strerror(errno);
  }

  void TearDown() override {
    for (int fd : sv_) {
      if (fd >= 0) close(fd);
    }
  }

  ~BufferRingTest() override {
    // After every BufferRing of the test (they unregister from the ring).
    if (ring_ready_) io_uring_queue_exit(&ring_);
  }

  absl::StatusOr<std::unique_ptr<BufferRing>> Create(unsigned count,
                                                     unsigned size) {
    return BufferRing::Create(&ring_, kGroup, count, size);
  }

  // Sends `data` on the peer socket.
  void Send(const std::string& data) {
    ASSERT_EQ(write(sv_[1], data.data(), data.size()),
              static_cast<ssize_t>(data.size()));
  }

  struct Completion {
    int32_t res = 0;
    uint32_t flags = 0;
    bool has_buffer() const { return (flags & IORING_CQE_F_BUFFER) != 0; }
    uint16_t bid() const { return flags >> IORING_CQE_BUFFER_SHIFT; }
  };

  // One recv that lets the kernel pick a buffer of group `group`.
  Completion RecvSelect(uint16_t group = kGroup) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    io_uring_prep_recv(sqe, sv_[0], nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = group;
    Completion c;
    EXPECT_EQ(io_uring_submit(&ring_), 1);
    io_uring_cqe* cqe = nullptr;
    int ret = io_uring_wait_cqe(&ring_, &cqe);
    EXPECT_EQ(ret, 0) << strerror(-ret);
    if (ret == 0) {
      c.res = cqe->res;
      c.flags = cqe->flags;
      io_uring_cqe_seen(&ring_, cqe);
    }
    return c;
  }

  io_uring ring_{};
  bool ring_ready_ = false;
  int sv_[2] = {-1, -1};
};

// Skips the test when the kernel has no provided-buffer rings (< 5.19).
#define CREATE_OR_SKIP(var, count, size)           \
  auto var##_or = Create(count, size);             \
  BATON_SKIP_IF_NO_IO_URING(var##_or.status());    \
  ASSERT_TRUE(var##_or.ok()) << var##_or.status(); \
  std::unique_ptr<BufferRing> var = *std::move(var##_or)

TEST_F(BufferRingTest, CreateRejectsInvalidArguments) {
  for (unsigned count : {0u, 3u, 6u, 100u, 1000u, 32769u, 65536u, 1u << 20}) {
    absl::StatusOr<std::unique_ptr<BufferRing>> r = Create(count, 64);
    EXPECT_TRUE(absl::IsInvalidArgument(r.status()))
        << "count " << count << ": " << r.status();
  }
  for (unsigned count : {1u, 4u, 512u}) {
    absl::StatusOr<std::unique_ptr<BufferRing>> r = Create(count, 0);
    EXPECT_TRUE(absl::IsInvalidArgument(r.status()))
        << "count " << count << " size 0: " << r.status();
  }
}

TEST_F(BufferRingTest, AcceptsPowersOfTwoUpTo32768) {
  for (unsigned count : {1u, 2u, 64u, 32768u}) {
    auto r = Create(count, 16);
    BATON_SKIP_IF_NO_IO_URING(r.status());
    ASSERT_TRUE(r.ok()) << "count " << count << ": " << r.status();
    EXPECT_EQ((*r)->count(), count);
    EXPECT_EQ((*r)->buffer_size(), 16u);
    EXPECT_EQ((*r)->group_id(), kGroup);
  }
}

TEST_F(BufferRingTest, ViewRecycleRoundTrip) {
  constexpr unsigned kCount = 4;
  constexpr unsigned kSize = 64;
  CREATE_OR_SKIP(br, kCount, kSize);
  const uint32_t seed = testutil::TestSeed();
  SCOPED_TRACE(testing::Message() << "seed=" << seed);
  std::mt19937 rng(seed);
  // Many more receives than buffers: only recycling keeps this going.
  for (unsigned i = 0; i < 8 * kCount; ++i) {
    std::string msg(1 + rng() % kSize, '\0');
    for (char& c : msg) c = static_cast<char>(rng());
    Send(msg);
    Completion c = RecvSelect();
    ASSERT_EQ(c.res, static_cast<int32_t>(msg.size())) << "receive " << i;
    ASSERT_TRUE(c.has_buffer()) << "receive " << i;
    ASSERT_LT(c.bid(), kCount);
    EXPECT_EQ(br->View(c.bid(), c.res), msg) << "receive " << i;
    br->Recycle(c.bid());
  }
}

TEST_F(BufferRingTest, ExhaustionThenRecycle) {
  constexpr unsigned kCount = 4;
  constexpr unsigned kSize = 32;
  CREATE_OR_SKIP(br, kCount, kSize);
  std::set<uint16_t> bids;
  for (unsigned i = 0; i < kCount; ++i) {
    const std::string msg = "message " + std::to_string(i);
    Send(msg);
    Completion c = RecvSelect();
    ASSERT_EQ(c.res, static_cast<int32_t>(msg.size()));
    ASSERT_TRUE(c.has_buffer());
    EXPECT_EQ(br->View(c.bid(), c.res), msg);
    bids.insert(c.bid());
  }
  EXPECT_EQ(bids.size(), kCount) << "each buffer handed out once";

  // Every buffer is out: the kernel has nowhere to put the bytes.
  Send("more");
  Completion empty = RecvSelect();
  EXPECT_EQ(empty.res, -ENOBUFS);
  EXPECT_FALSE(empty.has_buffer());

  // Giving one back makes room for exactly that buffer.
  const uint16_t returned = *bids.begin();
  br->Recycle(returned);
  Completion c = RecvSelect();
  ASSERT_EQ(c.res, 4);
  ASSERT_TRUE(c.has_buffer());
  EXPECT_EQ(c.bid(), returned);
  EXPECT_EQ(br->View(c.bid(), c.res), "more");
}

TEST_F(BufferRingTest, MessageLargerThanABufferIsSplit) {
  constexpr unsigned kCount = 2;
  constexpr unsigned kSize = 16;
  CREATE_OR_SKIP(br, kCount, kSize);
  const std::string msg = "0123456789abcdefghijklmnopqrstuvwxyz";  // 36 bytes
  Send(msg);
  std::string got;
  while (got.size() < msg.size()) {
    Completion c = RecvSelect();
    ASSERT_GT(c.res, 0);
    ASSERT_LE(c.res, static_cast<int32_t>(kSize));
    ASSERT_TRUE(c.has_buffer());
    got.append(br->View(c.bid(), c.res));
    br->Recycle(c.bid());
  }
  EXPECT_EQ(got, msg);
}

TEST_F(BufferRingTest, DestructionUnregistersTheGroup) {
  {
    CREATE_OR_SKIP(first, 4, 16);
    // The group id is taken while `first` lives.
    EXPECT_FALSE(Create(4, 16).ok());
  }
  // Unregistered: the same group can be registered again, and works.
  auto second_or = Create(4, 16);
  ASSERT_TRUE(second_or.ok()) << second_or.status();
  std::unique_ptr<BufferRing> second = *std::move(second_or);
  Send("again");
  Completion c = RecvSelect();
  ASSERT_EQ(c.res, 5);
  ASSERT_TRUE(c.has_buffer());
  EXPECT_EQ(second->View(c.bid(), c.res), "again");
}

}  // namespace
}  // namespace baton
