// Unit tests of the handoff wire format (framework/baton/handoff/wire.h):
// snapshot and message encode/decode round trips, and the decoder's refusal
// of every malformed input (truncations, foreign versions, absurd counts and
// lengths) with the documented status codes, never a crash.
#include "baton/handoff/wire.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "handoff/handoff_test_util.h"

namespace baton::handoff {
namespace {

using ::baton::test_support::SeedTrace;
using ::baton::test_support::TestSeed;
using ::testing::HasSubstr;

std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// Lengths 0..max, biased toward 0 and small values (empty buffers are the
// common case in a real snapshot).
size_t RandomLength(std::mt19937_64& rng, size_t max) {
  switch (rng() % 4) {
    case 0:
      return 0;
    case 1:
      return rng() % 8;
    default:
      return rng() % (max + 1);
  }
}

Snapshot RandomSnapshot(std::mt19937_64& rng, size_t connections,
                        size_t max_len) {
  Snapshot s;
  s.app_state = RandomBytes(rng, RandomLength(rng, max_len));
  for (size_t i = 0; i < connections; ++i) {
    DetachedConnection c;
    c.fd = static_cast<int>(rng() % 1000);  // not encoded
    c.service = static_cast<uint32_t>(rng());
    c.closing = static_cast<Closing>(rng() % 3);
    c.inbound = RandomBytes(rng, RandomLength(rng, max_len));
    c.outbound = RandomBytes(rng, RandomLength(rng, max_len));
    c.state = RandomBytes(rng, RandomLength(rng, max_len));
    s.connections.push_back(std::move(c));
  }
  return s;
}

void ExpectSameSnapshot(const Snapshot& got, const Snapshot& want) {
  EXPECT_EQ(got.app_state, want.app_state);
  ASSERT_EQ(got.connections.size(), want.connections.size());
  for (size_t i = 0; i < want.connections.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("connection ", i));
    const DetachedConnection& g = got.connections[i];
    const DetachedConnection& w = want.connections[i];
    EXPECT_EQ(g.fd, -1) << "fds travel beside the snapshot, not in it";
    EXPECT_EQ(g.service, w.service);
    EXPECT_EQ(g.closing, w.closing);
    EXPECT_EQ(g.inbound, w.inbound);
    EXPECT_EQ(g.outbound, w.outbound);
    EXPECT_EQ(g.state, w.state);
  }
}

template <typename T>
void Put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(value));
}

// A snapshot header: magic, version, empty app state.
std::string SnapshotHeader(uint32_t version = kWireVersion) {
  std::string s;
  Put(s, kSnapshotMagic);
  Put(s, version);
  Put(s, uint64_t{0});
  return s;
}

// --- Snapshots
// -------------------------------------------------------------------

TEST(WireSnapshotTest, EmptySnapshotRoundTrips) {
  Snapshot empty;
  absl::StatusOr<Snapshot> back = DecodeSnapshot(EncodeSnapshot(empty));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->app_state.empty());
  EXPECT_TRUE(back->connections.empty());
}

TEST(WireSnapshotTest, RandomSnapshotsRoundTrip) {
  const uint32_t seed = TestSeed(7001);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 200; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    Snapshot s = RandomSnapshot(rng, rng() % 40, 3000);
    std::string bytes = EncodeSnapshot(s);
    absl::StatusOr<Snapshot> back = DecodeSnapshot(bytes);
    ASSERT_TRUE(back.ok()) << back.status();
    ExpectSameSnapshot(*back, s);
    // Deterministic: encoding the decoded snapshot gives the same bytes.
    EXPECT_EQ(EncodeSnapshot(*back), bytes);
  }
}

TEST(WireSnapshotTest, LargeBuffersRoundTrip) {
  const uint32_t seed = TestSeed(7002);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  Snapshot s;
  s.app_state = RandomBytes(rng, 1 << 20);
  for (int i = 0; i < 3; ++i) {
    DetachedConnection c;
    c.service = static_cast<uint32_t>(i);
    c.inbound = RandomBytes(rng, (1 << 20) + 17 * i);
    c.outbound = RandomBytes(rng, (2 << 20) - 5 * i);
    s.connections.push_back(std::move(c));
  }
  absl::StatusOr<Snapshot> back = DecodeSnapshot(EncodeSnapshot(s));
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameSnapshot(*back, s);
}

TEST(WireSnapshotTest, EveryTruncationIsDataLoss) {
  const uint32_t seed = TestSeed(7003);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 5; ++round) {
    Snapshot s = RandomSnapshot(rng, 1 + rng() % 6, 40);
    const std::string bytes = EncodeSnapshot(s);
    for (size_t len = 0; len < bytes.size(); ++len) {
      // A copy of exactly `len` bytes, so a read past the end is an ASan
      // error rather than a read of the rest of `bytes`.
      std::string prefix = bytes.substr(0, len);
      absl::StatusOr<Snapshot> back = DecodeSnapshot(prefix);
      ASSERT_FALSE(back.ok())
          << "a " << len << "-byte prefix of " << bytes.size() << " decoded";
      EXPECT_TRUE(absl::IsDataLoss(back.status()))
          << "prefix " << len << ": " << back.status();
    }
  }
}

TEST(WireSnapshotTest, TrailingBytesAreDataLoss) {
  Snapshot s;
  s.connections.resize(2);
  s.connections[0].inbound = "abc";
  std::string bytes = EncodeSnapshot(s) + "x";
  absl::StatusOr<Snapshot> back = DecodeSnapshot(bytes);
  ASSERT_FALSE(back.ok());
  EXPECT_TRUE(absl::IsDataLoss(back.status())) << back.status();
  EXPECT_THAT(back.status().message(), HasSubstr("trailing"));
}

TEST(WireSnapshotTest, BadMagicIsDataLoss) {
  std::string bytes = EncodeSnapshot(Snapshot{});
  bytes[0] ^= 0x55;
  absl::StatusOr<Snapshot> back = DecodeSnapshot(bytes);
  ASSERT_FALSE(back.ok());
  EXPECT_TRUE(absl::IsDataLoss(back.status())) << back.status();
}

TEST(WireSnapshotTest, WrongVersionIsFailedPreconditionNamingBoth) {
  Snapshot s;
  s.app_state = "state";
  const uint32_t foreign = kWireVersion + 6;
  absl::StatusOr<Snapshot> back =
      DecodeSnapshot(EncodeSnapshot(s, foreign), kWireVersion);
  ASSERT_FALSE(back.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(back.status())) << back.status();
  EXPECT_THAT(back.status().message(),
              HasSubstr(absl::StrCat("version ", foreign)));
  EXPECT_THAT(back.status().message(),
              HasSubstr(absl::StrCat("version ", kWireVersion)));
  // And the foreign version reads its own snapshots.
  absl::StatusOr<Snapshot> own =
      DecodeSnapshot(EncodeSnapshot(s, foreign), foreign);
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_EQ(own->app_state, "state");
}

TEST(WireSnapshotTest, AbsurdConnectionCountIsRejectedUpFront) {
  for (uint32_t count : {0xFFFFFFFFu, 0x10000000u, 1000u}) {
    SCOPED_TRACE(absl::StrCat("count ", count));
    std::string bytes = SnapshotHeader();
    Put(bytes, count);
    bytes.append(64, '\0');  // room for 2 records, not for `count`
    absl::StatusOr<Snapshot> back = DecodeSnapshot(bytes);
    ASSERT_FALSE(back.ok());
    EXPECT_TRUE(absl::IsDataLoss(back.status())) << back.status();
  }
}

TEST(WireSnapshotTest, AbsurdLengthsAreDataLoss) {
  const uint64_t huge[] = {std::numeric_limits<uint64_t>::max(),
                           uint64_t{1} << 63, uint64_t{1} << 40, 29};
  for (uint64_t len : huge) {
    SCOPED_TRACE(absl::StrCat("length ", len));
    // In the app state length.
    {
      std::string bytes;
      Put(bytes, kSnapshotMagic);
      Put(bytes, kWireVersion);
      Put(bytes, len);
      bytes.append(28, 'a');
      absl::StatusOr<Snapshot> back = DecodeSnapshot(bytes);
      ASSERT_FALSE(back.ok());
      EXPECT_TRUE(absl::IsDataLoss(back.status())) << back.status();
    }
    // In each of a record's three lengths.
    for (int field = 0; field < 3; ++field) {
      std::string bytes = SnapshotHeader();
      Put(bytes, uint32_t{1});  // one connection
      Put(bytes, uint32_t{7});  // service
      Put(bytes, uint32_t{0});  // closing
      for (int f = 0; f < 3; ++f) Put(bytes, f == field ? len : uint64_t{0});
      bytes.append(28, 'b');
      absl::StatusOr<Snapshot> back = DecodeSnapshot(bytes);
      ASSERT_FALSE(back.ok()) << "field " << field;
      EXPECT_TRUE(absl::IsDataLoss(back.status()))
          << "field " << field << ": " << back.status();
    }
  }
}

TEST(WireSnapshotTest, UnknownClosingModeIsDataLoss) {
  std::string bytes = SnapshotHeader();
  Put(bytes, uint32_t{1});  // one connection
  Put(bytes, uint32_t{7});  // service
  Put(bytes, uint32_t{3});  // closing: no such mode
  for (int f = 0; f < 3; ++f) Put(bytes, uint64_t{0});
  absl::StatusOr<Snapshot> back = DecodeSnapshot(bytes);
  ASSERT_FALSE(back.ok());
  EXPECT_TRUE(absl::IsDataLoss(back.status())) << back.status();
  EXPECT_THAT(std::string(back.status().message()),
              testing::HasSubstr("closing mode 3"));
}

TEST(WireSnapshotTest, RandomCorruptionNeverCrashes) {
  // Flipped bytes may still decode (payload bytes are opaque) but must
  // never crash or read out of bounds (ASan), and errors are DataLoss or
  // FailedPrecondition (a flipped version).
  const uint32_t seed = TestSeed(7004);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 2000; ++round) {
    Snapshot s = RandomSnapshot(rng, rng() % 5, 30);
    std::string bytes = EncodeSnapshot(s);
    for (int flips = 1 + rng() % 3; flips > 0; --flips) {
      bytes[rng() % bytes.size()] = static_cast<char>(rng());
    }
    absl::StatusOr<Snapshot> back = DecodeSnapshot(bytes);
    if (!back.ok()) {
      EXPECT_TRUE(absl::IsDataLoss(back.status()) ||
                  absl::IsFailedPrecondition(back.status()))
          << back.status();
    }
  }
}

// --- Messages
// --------------------------------------------------------------------

const MessageType kAllTypes[] = {
    MessageType::kHello, MessageType::kListeners,   MessageType::kReady,
    MessageType::kState, MessageType::kConnections, MessageType::kAck,
    MessageType::kAbort};

TEST(WireMessageTest, EveryTypeRoundTrips) {
  const uint32_t seed = TestSeed(7005);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (MessageType type : kAllTypes) {
    for (size_t len : {size_t{0}, size_t{4}, size_t{100}, kMaxMessageBody}) {
      SCOPED_TRACE(
          absl::StrCat(std::string(MessageTypeName(type)), " body ", len));
      Message m;
      m.type = type;
      m.body = RandomBytes(rng, len);
      absl::StatusOr<Message> back =
          DecodeMessage(EncodeMessage(m), kWireVersion);
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_EQ(back->type, type);
      EXPECT_EQ(back->version, kWireVersion);
      EXPECT_EQ(back->body, m.body);
      EXPECT_TRUE(back->fds.empty());
    }
  }
}

TEST(WireMessageTest, TypeNamesAreDistinct) {
  std::set<std::string> names;
  for (MessageType type : kAllTypes) {
    names.insert(std::string(MessageTypeName(type)));
  }
  EXPECT_EQ(names.size(), std::size(kAllTypes));
  EXPECT_EQ(names.count("UNKNOWN"), 0u);
}

TEST(WireMessageTest, BadMagicIsDataLoss) {
  Message m;
  m.type = MessageType::kReady;
  std::string bytes = EncodeMessage(m);
  for (size_t i = 0; i < 4; ++i) {
    std::string bad = bytes;
    bad[i] ^= 0x01;
    absl::StatusOr<Message> back = DecodeMessage(bad, kWireVersion);
    ASSERT_FALSE(back.ok()) << "byte " << i;
    EXPECT_TRUE(absl::IsDataLoss(back.status())) << back.status();
  }
}

TEST(WireMessageTest, WrongVersionIsFailedPreconditionNamingBoth) {
  Message m;
  m.type = MessageType::kHello;
  m.version = kWireVersion + 1;
  m.body = EncodeU32s(uint32_t{1234});
  absl::StatusOr<Message> back = DecodeMessage(EncodeMessage(m), kWireVersion);
  ASSERT_FALSE(back.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(back.status())) << back.status();
  EXPECT_THAT(back.status().message(), HasSubstr("version mismatch"));
  EXPECT_THAT(back.status().message(),
              HasSubstr(absl::StrCat("version ", kWireVersion + 1)));
  EXPECT_THAT(back.status().message(),
              HasSubstr(absl::StrCat("version ", kWireVersion)));
  // The other side of the same mismatch.
  Message ours;
  ours.type = MessageType::kListeners;
  absl::StatusOr<Message> theirs =
      DecodeMessage(EncodeMessage(ours), kWireVersion + 1);
  ASSERT_FALSE(theirs.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(theirs.status()));
}

TEST(WireMessageTest, SizeMismatchIsDataLoss) {
  Message m;
  m.type = MessageType::kAbort;
  m.body = "reason";
  const std::string bytes = EncodeMessage(m);
  // Every truncation (header or body) and an extra byte.
  for (size_t len = 0; len < bytes.size(); ++len) {
    std::string prefix = bytes.substr(0, len);
    absl::StatusOr<Message> back = DecodeMessage(prefix, kWireVersion);
    ASSERT_FALSE(back.ok()) << len;
    EXPECT_TRUE(absl::IsDataLoss(back.status()))
        << len << ": " << back.status();
  }
  absl::StatusOr<Message> longer = DecodeMessage(bytes + "!", kWireVersion);
  ASSERT_FALSE(longer.ok());
  EXPECT_TRUE(absl::IsDataLoss(longer.status())) << longer.status();
}

TEST(WireMessageTest, OversizedBodyIsDataLoss) {
  Message m;
  m.type = MessageType::kAbort;
  m.body.assign(kMaxMessageBody + 1, 'x');
  absl::StatusOr<Message> back = DecodeMessage(EncodeMessage(m), kWireVersion);
  ASSERT_FALSE(back.ok());
  EXPECT_TRUE(absl::IsDataLoss(back.status())) << back.status();
}

TEST(WireMessageTest, UnknownTypeIsDataLoss) {
  for (uint16_t type : {uint16_t{0}, uint16_t{8}, uint16_t{0xFFFF}}) {
    Message m;
    m.type = static_cast<MessageType>(type);
    absl::StatusOr<Message> back =
        DecodeMessage(EncodeMessage(m), kWireVersion);
    ASSERT_FALSE(back.ok()) << type;
    EXPECT_TRUE(absl::IsDataLoss(back.status())) << back.status();
  }
}

TEST(WireMessageTest, HeaderIsTwelveBytesLittleEndian) {
  Message m;
  m.type = MessageType::kAck;
  m.body = EncodeU32s(uint32_t{0x01020304});
  std::string bytes = EncodeMessage(m);
  ASSERT_EQ(bytes.size(), 12u + 4u);
  uint32_t magic;
  std::memcpy(&magic, bytes.data(), 4);
  EXPECT_EQ(magic, kMessageMagic);
  EXPECT_EQ(bytes.substr(0, 4), "BTON");
  EXPECT_EQ(static_cast<uint8_t>(bytes[4]), kWireVersion);
  EXPECT_EQ(static_cast<uint8_t>(bytes[6]), 6);  // kAck
  EXPECT_EQ(static_cast<uint8_t>(bytes[8]), 4);  // body size
}

// --- Fixed bodies
// ----------------------------------------------------------------

TEST(WireU32sTest, RoundTripAndExactSize) {
  std::string body = EncodeU32s(uint32_t{1}, uint32_t{0xFFFFFFFF}, uint32_t{0});
  absl::StatusOr<std::vector<uint32_t>> v = DecodeU32s(body, 3);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_THAT(*v, ::testing::ElementsAre(1u, 0xFFFFFFFFu, 0u));
  EXPECT_TRUE(absl::IsDataLoss(DecodeU32s(body, 2).status()));
  EXPECT_TRUE(absl::IsDataLoss(DecodeU32s(body, 4).status()));
  EXPECT_TRUE(absl::IsDataLoss(DecodeU32s(body.substr(1), 3).status()));
  EXPECT_TRUE(absl::IsDataLoss(DecodeU32s("abcd", 0).status()));
}

// Regression: a zero count must not memcpy into an empty vector (UB).
TEST(WireU32sTest, EmptyBodyWithZeroCountIsOk) {
  absl::StatusOr<std::vector<uint32_t>> v = DecodeU32s("", 0);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->empty());
}

// --- LISTENERS body (version 4)
// -------------------------------------------------------

HandoffRecord SampleRecord(int i) {
  HandoffRecord r;
  r.role =
      i % 2 == 0 ? HandoffRecord::Role::kParent : HandoffRecord::Role::kChild;
  r.ok = i % 3 != 0;
  r.reason = r.ok ? "" : absl::StrCat("child pid ", i, " exited");
  r.pid = 1000 + i;
  r.peer_pid = 2000 + i;
  r.restart = static_cast<uint32_t>(i);
  r.connections = static_cast<uint32_t>(10 * i);
  r.listeners = 3;
  r.inbound_bytes = uint64_t{1} << (i % 40);
  r.outbound_bytes = 7;
  r.app_state_bytes = 9;
  r.when = absl::FromUnixMicros(1700000000000000 + i);
  r.ready = absl::Microseconds(100 + i);
  r.freeze = i % 2 == 0 ? absl::Microseconds(5) : absl::InfiniteDuration();
  r.transfer = absl::Microseconds(7);
  r.paused = i % 2 == 0 ? absl::InfiniteDuration() : absl::Microseconds(11);
  return r;
}

TEST(WireListenersTest, RoundTripsNamesHistoryAndTotals) {
  ListenersBody body;
  body.server_count = 2;
  body.names = {"admin", "metrics"};
  body.rolled_back = 5;
  for (int i = 0; i < 16; ++i) body.history.push_back(SampleRecord(i));
  absl::StatusOr<ListenersBody> back =
      DecodeListeners(EncodeListeners(body), 4);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->server_count, 2u);
  EXPECT_EQ(back->names, body.names);
  EXPECT_EQ(back->rolled_back, 5u);
  ASSERT_EQ(back->history.size(), body.history.size());
  for (size_t i = 0; i < body.history.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("record ", i));
    const HandoffRecord& g = back->history[i];
    const HandoffRecord& w = body.history[i];
    EXPECT_EQ(g.role, w.role);
    EXPECT_EQ(g.ok, w.ok);
    EXPECT_EQ(g.reason, w.reason);
    EXPECT_EQ(g.pid, w.pid);
    EXPECT_EQ(g.peer_pid, w.peer_pid);
    EXPECT_EQ(g.restart, w.restart);
    EXPECT_EQ(g.connections, w.connections);
    EXPECT_EQ(g.listeners, w.listeners);
    EXPECT_EQ(g.inbound_bytes, w.inbound_bytes);
    EXPECT_EQ(g.outbound_bytes, w.outbound_bytes);
    EXPECT_EQ(g.app_state_bytes, w.app_state_bytes);
    EXPECT_EQ(g.when, w.when);
    EXPECT_EQ(g.ready, w.ready);
    EXPECT_EQ(g.freeze, w.freeze);
    EXPECT_EQ(g.transfer, w.transfer);
    EXPECT_EQ(g.paused, w.paused);
  }
}

TEST(WireListenersTest, HistoryIsTrimmedToFitAMessageNewestKept) {
  ListenersBody body;
  body.server_count = 1;
  for (int i = 0; i < 100; ++i) {
    HandoffRecord r = SampleRecord(i);
    r.ok = false;
    r.reason = std::string(1000, 'r');  // shortened to 200 bytes
    body.history.push_back(r);
  }
  const std::string bytes = EncodeListeners(body);
  EXPECT_LE(bytes.size(), kMaxMessageBody);
  absl::StatusOr<ListenersBody> back = DecodeListeners(bytes, 1);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_FALSE(back->history.empty());
  EXPECT_LT(back->history.size(), body.history.size());
  EXPECT_EQ(back->history.back().pid, body.history.back().pid);
  EXPECT_EQ(back->history.back().reason.size(), 200u);
}

TEST(WireListenersTest, MalformedBodiesAreDataLoss) {
  ListenersBody body;
  body.server_count = 2;
  body.names = {"admin"};
  body.history = {SampleRecord(1)};
  const std::string bytes = EncodeListeners(body);
  // The descriptor count must match the names.
  EXPECT_TRUE(absl::IsDataLoss(DecodeListeners(bytes, 2).status()));
  EXPECT_TRUE(absl::IsDataLoss(DecodeListeners(bytes, 4).status()));
  // Every truncation, and a trailing byte.
  for (size_t len = 0; len < bytes.size(); ++len) {
    EXPECT_TRUE(
        absl::IsDataLoss(DecodeListeners(bytes.substr(0, len), 3).status()))
        << len;
  }
  EXPECT_TRUE(absl::IsDataLoss(DecodeListeners(bytes + "x", 3).status()));
  // A name twice, or empty.
  body.names = {"admin", "admin"};
  EXPECT_TRUE(
      absl::IsDataLoss(DecodeListeners(EncodeListeners(body), 4).status()));
  body.names = {""};
  EXPECT_TRUE(
      absl::IsDataLoss(DecodeListeners(EncodeListeners(body), 3).status()));
}

}  // namespace
}  // namespace baton::handoff
