#include "bench/protocol.h"

#include <gtest/gtest.h>

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
