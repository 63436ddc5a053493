// The framing codecs on socketpairs, including the cases a live peer cannot easily
// produce on demand: a frame cut short, garbage lengths, size changes mid-stream.
#include "transports/framing.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "base/error.h"
#include "tests/test_support.h"

namespace ipcbench {
namespace {

std::pair<UniqueFd, UniqueFd> sockpair(int type) {
  int sv[2];
  if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) != 0) throw SysError("socketpair", errno);
  return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

using testing_support::pattern;

template <class Ch>
void stream_sizes(int type) {
  auto [a, b] = sockpair(type);
  Ch tx(std::move(a)), rx(std::move(b));
  // Sizes that move both ways across the staged-send limit (1 KiB), the direct-read
  // threshold and the 64 KiB buffer.
  std::vector<std::size_t> sizes = {1, 63,      1024, 1025,  4095,  4096, 70000,
                                    5, 1 << 20, 17,   65536, 65537, 1024, 3};
  std::thread sender([&] {
    for (std::size_t i = 0; i < sizes.size(); ++i)
      tx.send(pattern(sizes[i], static_cast<unsigned>(i)));
  });
  std::vector<std::byte> buf(1 << 20);
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    std::size_t n = rx.recv(buf);
    ASSERT_EQ(n, sizes[i]);
    auto want = pattern(sizes[i], static_cast<unsigned>(i));
    ASSERT_EQ(0, std::memcmp(buf.data(), want.data(), n)) << "message " << i;
  }
  sender.join();
}

TEST(StreamChannel, MixedSizesArriveIntactAndInOrder) { stream_sizes<StreamChannel>(SOCK_STREAM); }
struct SeqpacketChannel : RecordChannel {
  explicit SeqpacketChannel(UniqueFd fd)
      : RecordChannel(std::make_unique<SeqpacketIo>(std::move(fd))) {}
};

TEST(RecordChannel, MixedSizesArriveIntactAndInOrder) {
  stream_sizes<SeqpacketChannel>(SOCK_SEQPACKET);
}

TEST(StreamChannel, ManySmallMessagesQueuedBehindLargeOnes) {
  auto [a, b] = sockpair(SOCK_STREAM);
  StreamChannel tx(std::move(a)), rx(std::move(b));
  std::thread sender([&] {
    for (int i = 0; i < 2000; ++i)
      tx.send(pattern(i % 3 == 0 ? 9000 : 40, static_cast<unsigned>(i)));
  });
  std::vector<std::byte> buf(9000);
  for (int i = 0; i < 2000; ++i) {
    std::size_t n = rx.recv(buf);
    ASSERT_EQ(n, i % 3 == 0 ? 9000u : 40u);
    auto want = pattern(n, static_cast<unsigned>(i));
    ASSERT_EQ(0, std::memcmp(buf.data(), want.data(), n)) << i;
  }
  sender.join();
}

TEST(StreamChannel, CleanCloseBetweenMessagesReturnsZero) {
  auto [a, b] = sockpair(SOCK_STREAM);
  StreamChannel rx(std::move(b));
  a.reset();
  std::vector<std::byte> buf(16);
  EXPECT_EQ(rx.recv(buf), 0u);
}

TEST(StreamChannel, CloseMidMessageIsAnError) {
  auto [a, b] = sockpair(SOCK_STREAM);
  StreamChannel rx(std::move(b));
  std::uint32_t len = 100;
  ASSERT_EQ(::write(a.get(), &len, 4), 4);
  ASSERT_EQ(::write(a.get(), "half of it", 10), 10);
  a.reset();
  std::vector<std::byte> buf(100);
  try {
    rx.recv(buf);
    FAIL() << "no error";
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("mid-message"), std::string::npos) << e.what();
  }
}

TEST(StreamChannel, CloseInsideTheLengthPrefixIsAnError) {
  auto [a, b] = sockpair(SOCK_STREAM);
  StreamChannel rx(std::move(b));
  ASSERT_EQ(::write(a.get(), "\x05\x00", 2), 2);
  a.reset();
  std::vector<std::byte> buf(16);
  EXPECT_THROW(rx.recv(buf), ProtocolError);
}

TEST(StreamChannel, MessageLargerThanBufferIsAnError) {
  auto [a, b] = sockpair(SOCK_STREAM);
  StreamChannel tx(std::move(a)), rx(std::move(b));
  tx.send(pattern(100, 1));
  std::vector<std::byte> buf(99);
  EXPECT_THROW(rx.recv(buf), ProtocolError);
}

TEST(StreamChannel, SendToClosedPeerThrowsInsteadOfKillingTheProcess) {
  ::signal(SIGPIPE, SIG_IGN);
  auto [a, b] = sockpair(SOCK_STREAM);
  StreamChannel tx(std::move(a));
  b.reset();
  EXPECT_THROW(tx.send(pattern(4 << 20, 2)), SysError);
}

TEST(RecordChannel, CloseBetweenRecordsOfOneMessageIsAnError) {
  auto [a, b] = sockpair(SOCK_SEQPACKET);
  SeqpacketChannel rx(std::move(b));
  std::uint32_t len = 200000;  // announced in a length-only record
  ASSERT_EQ(::send(a.get(), &len, 4, 0), 4);
  std::vector<std::byte> body(SeqpacketIo::kRecordBytes);
  ASSERT_EQ(::send(a.get(), body.data(), body.size(), 0), static_cast<ssize_t>(body.size()));
  a.reset();
  std::vector<std::byte> buf(200000);
  try {
    rx.recv(buf);
    FAIL() << "no error";
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("mid-message"), std::string::npos) << e.what();
  }
}

// The one-buffer helpers of the message queues: a record's pieces joined and split back,
// received in place when it can be, refused when it does not fit.
TEST(StagedRecords, JoinsAndSplitsARecordsTwoPieces) {
  StagedRecords st(64);
  auto a = pattern(4, 1), b = pattern(20, 2);
  std::span<const std::byte> rec = st.join(a, b);
  ASSERT_EQ(rec.size(), 24u);
  EXPECT_EQ(0, std::memcmp(rec.data(), a.data(), 4));
  EXPECT_EQ(0, std::memcmp(rec.data() + 4, b.data(), 20));
  EXPECT_EQ(st.join({}, b).data(), b.data());  // nothing to join: sent as it is

  std::vector<std::byte> ra(4), rb(30), big(64);
  std::byte* at = st.landing(ra, rb);
  EXPECT_EQ(st.landing({}, big), big.data());  // room for any record: received in place
  EXPECT_NE(at, rb.data());
  std::memcpy(at, rec.data(), rec.size());
  ASSERT_EQ(st.split(at, rec.size(), ra, rb, "q"), 24u);
  EXPECT_EQ(0, std::memcmp(ra.data(), a.data(), 4));
  EXPECT_EQ(0, std::memcmp(rb.data(), b.data(), 20));
  std::vector<std::byte> tiny(10);
  EXPECT_THROW(st.split(st.landing(ra, tiny), 24, ra, tiny, "q"), ProtocolError);
}

TEST(QueueHello, CarriesThePidAndRefusesAnythingElse) {
  std::vector<std::byte> h = queue_hello("some-mq");
  EXPECT_EQ(read_queue_hello(h, "some-mq"), ::getpid());
  EXPECT_THROW(read_queue_hello(h, "other-mq"), ProtocolError);  // another tag
  EXPECT_THROW(read_queue_hello(std::span(h).first(h.size() - 1), "some-mq"), ProtocolError);
}

TEST(RecordChannel, ARecordDisagreeingWithItsLengthIsAnError) {
  auto [a, b] = sockpair(SOCK_SEQPACKET);
  SeqpacketChannel rx(std::move(b));
  std::byte rec[4 + 10] = {};
  std::uint32_t len = 11;
  std::memcpy(rec, &len, 4);
  ASSERT_EQ(::send(a.get(), rec, sizeof rec, 0), static_cast<ssize_t>(sizeof rec));
  std::vector<std::byte> buf(64);
  EXPECT_THROW(rx.recv(buf), ProtocolError);
}

}  // namespace
}  // namespace ipcbench
