#include "bench/protocol.h"

#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <vector>

#include "bench/mailbox.h"

namespace ipcbench {
namespace {

TEST(Protocol, StampedMessagePassesItsChecks) {
  std::vector<std::byte> m(4096);
  auto digest = fill_payload(m, 4096);
  const std::vector<std::byte> pattern = m;
  mark_payload(std::span(m).subspan(kHeaderBytes), std::span(pattern).subspan(kHeaderBytes), 42);
  stamp(m, 42, Kind::kPing, digest);
  EXPECT_EQ(check_message(m, Kind::kPing, 42, true), "");
}

TEST(Protocol, EveryKindOfDamageIsNamed) {
  std::vector<std::byte> m(256);
  auto digest = fill_payload(m, 256);
  stamp(m, 7, Kind::kData, digest);
  EXPECT_NE(check_message(m, Kind::kData, 8, false).find("sequence"), std::string::npos);
  EXPECT_NE(check_message(m, Kind::kPing, 7, false).find("expected a ping"), std::string::npos);
  EXPECT_NE(check_message(std::span(m).first(255), Kind::kData, 7, false).find("length"),
            std::string::npos);
  EXPECT_NE(check_message(std::span(m).first(8), Kind::kData, 7, false).find("shorter"),
            std::string::npos);
  m[200] ^= std::byte{1};
  EXPECT_EQ(check_message(m, Kind::kData, 7, false), "") << "payload is only checked with verify";
  EXPECT_NE(check_message(m, Kind::kData, 7, true).find("checksum"), std::string::npos);
}

// The zero-copy reader's touch reads every byte: its sum is the plain sum of the
// 8-byte words and the trailing bytes, whatever the length (inside and past the
// prefetching loop, whole lines, words, bytes) and alignment.
TEST(Protocol, TouchReadsEveryByte) {
  std::vector<std::byte> buf((1u << 20) + 64);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<std::byte>(i * 131 + i / 7);
  for (std::size_t off : {0u, 8u, 3u}) {
    for (std::size_t n : {0u, 1u, 7u, 8u, 63u, 64u, 65u, 255u, 256u, 2111u, 2112u, 2185u, 2303u,
                          2305u, 4099u, 1u << 20}) {
      std::span<const std::byte> p(buf.data() + off, n);
      std::uint64_t want = 0;
      std::size_t i = 0;
      for (; i + 8 <= n; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, p.data() + i, 8);
        want += w;
      }
      for (; i < n; ++i) want += static_cast<std::uint8_t>(p[i]);
      EXPECT_EQ(payload_touch(p), want) << "offset " << off << " length " << n;
      if (n == 0) continue;
      std::byte saved = buf[off + n - 1];  // the last byte counts too
      buf[off + n - 1] ^= std::byte{1};
      EXPECT_NE(payload_touch(p), want) << "offset " << off << " length " << n;
      buf[off + n - 1] = saved;
    }
  }
}

TEST(Protocol, DigestSeesEveryByteAndItsPosition) {
  std::vector<std::byte> a(1000);
  fill_payload(a, 3);
  auto base = payload_digest(a);
  for (std::size_t i : {0u, 31u, 32u, 500u, 998u, 999u}) {
    auto b = a;
    b[i] ^= std::byte{0x80};
    EXPECT_NE(payload_digest(b), base) << i;
  }
  auto c = a;
  std::swap(c[40], c[48]);
  ASSERT_NE(c, a);
  EXPECT_NE(payload_digest(c), base);
}

// A link that keeps every message it was sent and hands them back with one fault, so
// that what a broken transport could deliver goes through the checks the workloads use.
class FaultyChannel final : public Channel {
 public:
  enum class Fault { kNone, kReplayBody, kOneByteShort, kSwap };
  explicit FaultyChannel(Fault f) : fault_(f) {}
  void send(std::span<const std::byte> m) override { sent_.emplace_back(m.begin(), m.end()); }
  std::size_t recv(std::span<std::byte> buf) override {
    std::vector<std::byte> m = sent_.at(next_);
    if (next_ == 1) {                    // the second message is the damaged one
      if (fault_ == Fault::kReplayBody)  // the first message's body under the second's header
        std::copy(sent_[0].begin() + kHeaderBytes, sent_[0].end(), m.begin() + kHeaderBytes);
      if (fault_ == Fault::kOneByteShort) m.pop_back();
      if (fault_ == Fault::kSwap) m = sent_.at(2);
    }
    if (next_ == 2 && fault_ == Fault::kSwap) m = sent_.at(1);
    ++next_;
    std::copy(m.begin(), m.end(), buf.begin());
    return m.size();
  }

 private:
  Fault fault_;
  std::deque<std::vector<std::byte>> sent_;
  std::size_t next_ = 0;
};

// Sends three messages through the Outbox a workload uses and checks each as received:
// the first error, or "" when all three passed.
std::string first_error(FaultyChannel::Fault fault, std::size_t size, Kind kind, bool verify) {
  FaultyChannel ch(fault);
  std::vector<std::byte> proto(size);
  const std::uint32_t digest = fill_payload(proto, size);
  Outbox out(ch, proto);
  for (std::uint32_t seq = 1; seq <= 3; ++seq) {
    stamp(out.begin(seq), seq, kind, digest);
    out.finish();
  }
  Inbox in(ch, size);
  for (std::uint32_t seq = 1; seq <= 3; ++seq) {
    std::span<const std::byte> m = in.next();
    std::string err = check_message(m, kind, seq, verify);
    if (kind == Kind::kPing) {  // the client's fast path must agree
      EXPECT_EQ(reply_ok(m, size, seq, verify), err.empty()) << err;
    }
    in.done();
    if (!err.empty()) return err;
  }
  return {};
}

TEST(Integrity, AFaultyLinkIsCaughtAtEverySize) {
  using F = FaultyChannel::Fault;
  for (Kind kind : {Kind::kPing, Kind::kData}) {
    for (std::size_t size : {17u, 23u, 24u, 40u, 64u, 100u, 4096u, 4100u, 65536u, 1u << 20}) {
      SCOPED_TRACE("size " + std::to_string(size));
      EXPECT_EQ(first_error(F::kNone, size, kind, true), "");
      // A stale body under a fresh header: every message's body differs, so --verify sees it.
      EXPECT_NE(first_error(F::kReplayBody, size, kind, true).find("checksum"), std::string::npos);
      EXPECT_NE(first_error(F::kOneByteShort, size, kind, false).find("length"), std::string::npos);
      EXPECT_NE(first_error(F::kSwap, size, kind, false).find("sequence"), std::string::npos);
    }
  }
}

// Damage anywhere in the body is seen with --verify, marks or not.
TEST(Integrity, MarksAreUndoneByTheCheckAndNothingElse) {
  for (std::size_t n : {1u, 7u, 8u, 20u, 31u, 32u, 48u, 4095u, 4096u, 4097u, 12345u}) {
    std::vector<std::byte> whole(kHeaderBytes + n);
    fill_payload(whole, 9);
    const std::vector<std::byte> pattern(whole.begin() + kHeaderBytes, whole.end());
    const std::uint32_t want = payload_digest(pattern);
    std::vector<std::byte> msg = pattern;
    mark_payload(msg, pattern, 77);
    EXPECT_NE(msg, pattern) << n;
    EXPECT_EQ(marked_digest(msg, 77), want) << n;
    EXPECT_NE(marked_digest(msg, 78), want) << n;
    for (std::size_t i : {std::size_t{0}, n / 2, n - 1}) {
      msg[i] ^= std::byte{4};
      EXPECT_NE(marked_digest(msg, 77), want) << n << " at " << i;
      msg[i] ^= std::byte{4};
    }
  }
}

TEST(Protocol, AWrongKindIsNamedInHex) {
  std::vector<std::byte> m(64);
  stamp(m, 1, Kind::kData, fill_payload(m, 1));
  EXPECT_NE(check_message(m, Kind::kPing, 1, false).find("(0x44415441)"), std::string::npos)
      << check_message(m, Kind::kPing, 1, false);
}

}  // namespace
}  // namespace ipcbench
