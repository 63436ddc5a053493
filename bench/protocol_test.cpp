#include "bench/protocol.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace ipcbench {
namespace {

TEST(Protocol, StampedMessagePassesItsChecks) {
  std::vector<std::byte> m(4096);
  auto digest = fill_payload(m, 4096);
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

}  // namespace
}  // namespace ipcbench
