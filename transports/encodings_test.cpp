// The encodings the floors time (floor/encoding-<name>/<bytes>): each round trip returns
// the payload's size (the framing floor moves only the length prefix by hand, as the
// kernel carries the body; protobuf's bytes are compared below, JSON-RPC's and HTTP's in
// their codec tests), the framing codec the channels share refuses bad lengths, and every
// encoding a transport names exists.
#include "transports/encodings.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <set>
#include <string>

#include "base/error.h"
#include "tests/test_support.h"
#include "transports/framing.h"
#include "transports/registry.h"

namespace ipcbench {
namespace {

using testing_support::pattern;

// Sizes across the framing's staged-copy (1 KiB) and in-place-read (4 KiB) limits.
constexpr std::array<std::size_t, 9> kSizes = {1, 16, 64, 1024, 1025, 4095, 4096, 65536, 1 << 20};

TEST(Encodings, EachRoundTripReturnsThePayloadsSize) {
  ASSERT_NE(find_encoding("framing"), nullptr);
#ifdef IPCBENCH_HAVE_GRPC
  ASSERT_NE(find_encoding("protobuf"), nullptr);
#endif
  for (const Encoding& e : encodings()) {
    std::vector<std::byte> scratch;
    for (std::size_t n : kSizes)  // one scratch for all: it is kept across calls
      EXPECT_EQ(e.round_trip(pattern(n, 7), scratch), n) << e.name << " " << n;
  }
}

#ifdef IPCBENCH_HAVE_GRPC
// The echoing peer's copy of the request is what protobuf parsed: the bytes sent.
TEST(Encodings, ProtobufParsesTheBytesItSerialized) {
  std::vector<std::byte> scratch;
  for (std::size_t n : kSizes) {
    const auto msg = pattern(n, 11);
    ASSERT_EQ(protobuf_round_trip(msg, scratch), n);
    EXPECT_TRUE(std::equal(msg.begin(), msg.end(), scratch.begin())) << n;
  }
}
#endif

TEST(Encodings, NamesAreUniqueAndFindable) {
  std::set<std::string> names;
  for (const Encoding& e : encodings()) {
    EXPECT_TRUE(names.insert(e.name).second) << e.name;
    EXPECT_EQ(find_encoding(e.name), &e);
  }
  EXPECT_EQ(find_encoding("no-such-encoding"), nullptr);
}

// The report matches a transport to its floor by this name: one that names no encoding
// of the build would show "no floor" for ever.
TEST(Encodings, EveryEncodingATransportNamesExists) {
  for (const Transport* t : all_transports()) {
    const std::string& e = t->info().encoding;
    if (!e.empty()) {
      EXPECT_NE(find_encoding(e), nullptr) << t->info().name << ": " << e;
    }
  }
  EXPECT_EQ(find_transport("uds")->info().encoding, "framing");
}

TEST(Encodings, FramingRefusesWhatNoMessageIs) {
  std::vector<std::byte> scratch;
  EXPECT_THROW(framing_round_trip({}, scratch), ProtocolError);  // no zero-length message
}

TEST(Framing, StagedMessagesComeBackIntact) {
  std::array<std::byte, kLengthPrefixBytes + kStagedFrameBytes> stage;
  for (std::size_t n : {std::size_t{1}, std::size_t{100}, kStagedFrameBytes}) {
    const auto msg = pattern(n, 3);
    const std::size_t staged = stage_frame(stage, msg);
    EXPECT_EQ(staged, kLengthPrefixBytes + n);
    std::vector<std::byte> out(n);
    EXPECT_EQ(unstage_frame(std::span(stage).first(staged), out), n);
    EXPECT_EQ(out, msg);
  }
  // Beyond the staged size, only the length is staged: the body goes out from msg.
  EXPECT_EQ(stage_frame(stage, pattern(kStagedFrameBytes + 1, 3)), kLengthPrefixBytes);
}

TEST(Framing, DecodingRefusesACorruptLength) {
  std::array<std::byte, kLengthPrefixBytes + kStagedFrameBytes> stage;
  const auto msg = pattern(64, 5);
  const std::size_t staged = stage_frame(stage, msg);
  std::vector<std::byte> out(64);
  stage[1] ^= std::byte{1};  // 64 + 256: more than the buffer holds
  EXPECT_THROW(unstage_frame(std::span(stage).first(staged), out), ProtocolError);
  std::memset(stage.data(), 0, kLengthPrefixBytes);  // a zero length
  EXPECT_THROW(get_frame_length(stage.data(), out.size()), ProtocolError);
  EXPECT_THROW(put_frame_length(stage.data(), kMaxFrameBytes + 1), ProtocolError);
  put_frame_length(stage.data(), 64);
  EXPECT_EQ(get_frame_length(stage.data(), 64), 64u);
  EXPECT_THROW(get_frame_length(stage.data(), 63), ProtocolError);
}

}  // namespace
}  // namespace ipcbench
