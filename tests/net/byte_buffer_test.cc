// ByteBuffer: a contiguous FIFO of bytes, checked against a std::string
// model over seeded random sequences of operations.
#include "baton/net/byte_buffer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <utility>

#include "absl/strings/str_format.h"
#include "net/net_test_util.h"

namespace baton {
namespace {

constexpr size_t kMinCapacity = 256;  // the first allocation

// Checks everything observable against the model.
void ExpectMatches(const ByteBuffer& b, const std::string& model) {
  ASSERT_EQ(b.size(), model.size());
  EXPECT_EQ(b.empty(), model.empty());
  ASSERT_EQ(b.view(), model);
  EXPECT_EQ(b.view().data(), b.data());
  EXPECT_EQ(b.ToString(), model);
  EXPECT_GE(b.capacity(), b.size());
  EXPECT_LE(b.tail_room(), b.capacity() - b.size());
}

std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(ByteBufferTest, StartsEmpty) {
  ByteBuffer b;
  EXPECT_EQ(b.size(), 0u);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_EQ(b.tail_room(), 0u);
  EXPECT_EQ(b.view(), "");
  EXPECT_EQ(b.ToString(), "");
}

TEST(ByteBufferTest, ConstructFromBytes) {
  ByteBuffer b("hello");
  EXPECT_EQ(b.view(), "hello");
  EXPECT_EQ(b.size(), 5u);
}

TEST(ByteBufferTest, AppendAndConsumeKeepOrder) {
  ByteBuffer b;
  b.Append("GET / HTTP/1.1\r\n");
  b.Append("Host: x\r\n");
  EXPECT_EQ(b.view(), "GET / HTTP/1.1\r\nHost: x\r\n");
  const char* before = b.data();
  b.Consume(4);
  // Consume never moves the remaining bytes.
  EXPECT_EQ(b.data(), before + 4);
  EXPECT_EQ(b.view(), "/ HTTP/1.1\r\nHost: x\r\n");
  b.Append("\r\n");
  EXPECT_EQ(b.view(), "/ HTTP/1.1\r\nHost: x\r\n\r\n");
}

TEST(ByteBufferTest, AppendEmptyDoesNotAllocate) {
  ByteBuffer b;
  b.Append("");
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_TRUE(b.empty());
}

TEST(ByteBufferTest, ConsumingEverythingRewinds) {
  ByteBuffer b;
  b.Append(std::string(100, 'a'));
  const size_t capacity = b.capacity();
  b.Consume(40);
  EXPECT_LT(b.tail_room(), capacity - 60);
  b.Consume(60);
  EXPECT_TRUE(b.empty());
  // All the storage is tail room again, and it is kept.
  EXPECT_EQ(b.capacity(), capacity);
  EXPECT_EQ(b.tail_room(), capacity);
}

TEST(ByteBufferTest, ReserveThenCommit) {
  ByteBuffer b;
  b.Append("abc");
  char* room = b.Reserve(1000);
  ASSERT_NE(room, nullptr);
  EXPECT_GE(b.tail_room(), 1000u);
  EXPECT_EQ(room, b.data() + b.size());
  // Reserving does not change the contents.
  EXPECT_EQ(b.view(), "abc");
  std::memcpy(room, "defgh", 5);
  b.Commit(3);  // only part of what was reserved
  EXPECT_EQ(b.view(), "abcdef");
  // A later Reserve returns room right after the committed bytes.
  char* more = b.Reserve(2);
  EXPECT_EQ(more, b.data() + b.size());
  std::memcpy(more, "XY", 2);
  b.Commit(2);
  EXPECT_EQ(b.view(), "abcdefXY");
}

TEST(ByteBufferTest, ReserveWithinTailRoomKeepsStorage) {
  ByteBuffer b;
  b.Append("x");
  const char* data = b.data();
  const size_t capacity = b.capacity();
  b.Reserve(b.tail_room());
  EXPECT_EQ(b.data(), data);
  EXPECT_EQ(b.capacity(), capacity);
}

TEST(ByteBufferTest, ReserveCompactsInsteadOfGrowing) {
  ByteBuffer b;
  b.Append(std::string(kMinCapacity, 'a'));
  ASSERT_EQ(b.capacity(), kMinCapacity);
  b.Consume(200);  // 56 live bytes at the back
  b.Reserve(150);  // fits once the live bytes move down
  EXPECT_EQ(b.capacity(), kMinCapacity);
  EXPECT_EQ(b.view(), std::string(56, 'a'));
  EXPECT_GE(b.tail_room(), 150u);
}

TEST(ByteBufferTest, CommitZeroIsANoOp) {
  ByteBuffer b("q");
  b.Reserve(10);
  b.Commit(0);
  EXPECT_EQ(b.view(), "q");
}

TEST(ByteBufferTest, ReleaseFreesStorage) {
  ByteBuffer b;
  b.Append(std::string(10000, 'z'));
  b.Consume(10);
  ASSERT_GT(b.capacity(), 0u);
  b.Release();
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_EQ(b.size(), 0u);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.tail_room(), 0u);
  EXPECT_EQ(b.view(), "");
  // Usable again afterwards.
  b.Append("again");
  EXPECT_EQ(b.view(), "again");
  EXPECT_GE(b.capacity(), kMinCapacity);
}

TEST(ByteBufferTest, ClearKeepsStorage) {
  ByteBuffer b;
  b.Append(std::string(1000, 'c'));
  const size_t capacity = b.capacity();
  b.Clear();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.capacity(), capacity);
  EXPECT_EQ(b.tail_room(), capacity);
}

TEST(ByteBufferTest, MoveTransfersContentsAndEmptiesSource) {
  ByteBuffer a;
  a.Append("0123456789");
  a.Consume(3);
  const char* data = a.data();
  ByteBuffer b(std::move(a));
  EXPECT_EQ(b.view(), "3456789");
  EXPECT_EQ(b.data(), data);  // no copy
  EXPECT_EQ(a.size(), 0u);    // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(a.capacity(), 0u);
  a.Append("reuse");
  EXPECT_EQ(a.view(), "reuse");

  ByteBuffer c("old contents");
  c = std::move(b);
  EXPECT_EQ(c.view(), "3456789");
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(b.capacity(), 0u);
}

// Random Append / Reserve+Commit / Consume / Clear / Release / move, compared
// with a std::string after every step. Also checks the memory claim: storage
// never exceeds twice the largest size the buffer was asked to hold (or the
// first 256-byte allocation).
TEST(ByteBufferTest, RandomOperationsMatchStringModel) {
  const uint32_t seed = test_support::TestSeed(2001);
  SCOPED_TRACE(test_support::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ByteBuffer b;
  std::string model;
  size_t peak = 0;  // largest size + requested room so far
  // Sizes from tiny to a few times the current contents, so both compaction
  // and growth happen often.
  auto random_size = [&] {
    switch (rng() % 4) {
      case 0:
        return static_cast<size_t>(rng() % 8);
      case 1:
        return static_cast<size_t>(rng() % 300);
      case 2:
        return static_cast<size_t>(rng() % 5000);
      default:
        return static_cast<size_t>(rng() % (model.size() + 64) * 2);
    }
  };
  for (int step = 0; step < 20000; ++step) {
    SCOPED_TRACE(absl::StrFormat("step %d", step));
    const int op = static_cast<int>(rng() % 100);
    if (op < 35) {
      std::string bytes = RandomBytes(rng, random_size());
      peak = std::max(peak, model.size() + bytes.size());
      b.Append(bytes);
      model += bytes;
    } else if (op < 50) {
      const size_t want = random_size();
      const size_t fill =
          want == 0 ? 0 : static_cast<size_t>(rng() % (want + 1));
      peak = std::max(peak, model.size() + want);
      const char* old_data = b.data();
      const size_t old_capacity = b.capacity();
      const size_t old_tail = b.tail_room();
      char* room = b.Reserve(want);
      ASSERT_GE(b.tail_room(), want);
      ASSERT_EQ(room, b.data() + b.size());
      if (old_capacity > 0 && old_tail >= want) {
        EXPECT_EQ(b.data(), old_data) << "Reserve moved bytes needlessly";
      }
      ASSERT_EQ(b.view(), model) << "Reserve changed the contents";
      std::string bytes = RandomBytes(rng, fill);
      if (fill > 0) std::memcpy(room, bytes.data(), fill);
      b.Commit(fill);
      model += bytes;
    } else if (op < 90) {
      const size_t n =
          model.empty() ? 0 : static_cast<size_t>(rng() % (model.size() + 1));
      const char* old_data = b.data();
      b.Consume(n);
      model.erase(0, n);
      if (!model.empty()) {
        EXPECT_EQ(b.data(), old_data + n) << "Consume moved bytes";
      }
    } else if (op < 93) {
      b.Clear();
      model.clear();
    } else if (op < 95) {
      b.Release();
      model.clear();
      EXPECT_EQ(b.capacity(), 0u);
    } else if (op < 98) {
      ByteBuffer moved(std::move(b));
      b = std::move(moved);
    } else {
      // Consume everything: storage rewinds to the start.
      b.Consume(b.size());
      model.clear();
      EXPECT_EQ(b.tail_room(), b.capacity());
    }
    ExpectMatches(b, model);
    if (HasFatalFailure()) return;
    EXPECT_LE(b.capacity(), std::max(kMinCapacity, 2 * peak))
        << "peak " << peak;
  }
}

// A FIFO in steady state (append n, consume n) reuses its storage instead of
// growing: memory stays about twice the peak of unconsumed bytes.
TEST(ByteBufferTest, SteadyStateFifoDoesNotGrow) {
  const uint32_t seed = test_support::TestSeed(2002);
  SCOPED_TRACE(test_support::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ByteBuffer b;
  std::string model;
  size_t peak = 0;
  for (int i = 0; i < 30000; ++i) {
    std::string bytes = RandomBytes(rng, 1 + rng() % 1500);
    b.Append(bytes);
    model += bytes;
    peak = std::max(peak, model.size());
    size_t n = std::min(model.size(), static_cast<size_t>(rng() % 1600));
    b.Consume(n);
    model.erase(0, n);
    ASSERT_EQ(b.view(), model) << "iteration " << i;
  }
  EXPECT_LE(b.capacity(), std::max(kMinCapacity, 2 * peak));
}

}  // namespace
}  // namespace baton
