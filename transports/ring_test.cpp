// The shared-memory ring under stress: two threads, one link, both wait modes, mixed
// sizes including messages several times the ring, many laps. A race between the
// record header and the streaming head shows up here as corrupt payloads.
#include "transports/ring.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <random>
#include <thread>
#include <vector>

#include "base/error.h"
#include "tests/test_support.h"

namespace ipcbench {
namespace {

class AnonMapping final : public Mapping {
 public:
  AnonMapping(void* base, std::size_t size, bool owner) : base_(base), size_(size), owner_(owner) {}
  ~AnonMapping() override {
    if (owner_) ::munmap(base_, size_);
  }
  void* base() override { return base_; }

 private:
  void* base_;
  std::size_t size_;
  bool owner_;
};

using testing_support::pattern;

// Both ends of a link in one anonymous shared mapping. The peer side is made first: it
// announces itself, as a peer process would. The client owns the mapping and, declared
// first, is destroyed last.
struct Link {
  std::unique_ptr<Channel> client, peer;
};
Link open_link(WaitMode mode, bool zero_copy = false, std::size_t ring = kRingBytes) {
  const std::size_t size = link_bytes(ring);
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) throw SysError("mmap (test link)", errno);
  init_link(base, ring);
  Link l;
  l.peer = make_ring_channel(std::make_unique<AnonMapping>(base, size, false), false, mode,
                             zero_copy, ::getpid());
  l.client = make_ring_channel(std::make_unique<AnonMapping>(base, size, true), true, mode,
                               zero_copy, ::getpid());
  return l;
}

// Mixed sizes, many laps; the largest messages are 3x the default 1 MiB ring, so they
// stream through it in pieces.
void stress(WaitMode mode, bool zero_copy = false, std::size_t ring = std::size_t{1} << 20) {
  auto [client, peer] = open_link(mode, zero_copy, ring);
  const std::vector<std::size_t> sizes = {64,     1,     4095, (1u << 20) - 64, 1u << 20, 3u << 20,
                                          100000, 65536, 17,   (1u << 20) + 1};
  constexpr int kRounds = 60;
  std::thread echo([&] {
    std::vector<std::byte> buf(4u << 20);
    for (int i = 0; i < kRounds * static_cast<int>(sizes.size()); ++i) {
      std::span<const std::byte> v;
      if (zero_copy && i % 2 == 0 && peer->view(&v)) {  // in place, both ways
        std::span<std::byte> out = peer->loan(v.size());
        ASSERT_EQ(out.size(), v.size());
        std::memcpy(out.data(), v.data(), v.size());
        peer->commit();
        peer->release();
        continue;
      }
      std::size_t n = peer->recv(buf);
      peer->send(std::span(buf.data(), n));
    }
  });
  std::vector<std::byte> in(4u << 20);
  unsigned seed = 0;
  for (int r = 0; r < kRounds; ++r) {
    for (std::size_t s : sizes) {
      auto msg = pattern(s, ++seed);
      client->send(msg);
      std::size_t n = client->recv(in);
      ASSERT_EQ(n, s);
      ASSERT_EQ(0, std::memcmp(in.data(), msg.data(), s)) << "round " << r << " size " << s;
    }
  }
  echo.join();
}

TEST(Ring, SpinStressMixedSizesManyLaps) { stress(WaitMode::kSpin); }
TEST(Ring, ZeroCopyStressWithSkipRecords) { stress(WaitMode::kSpin, true, 8u << 20); }
TEST(Ring, FutexStressMixedSizesManyLaps) { stress(WaitMode::kFutex); }
// Positions wrap with a mask: a small ring laps hundreds of times here.
TEST(Ring, SmallRingManyLaps) { stress(WaitMode::kSpin, false, 64u << 10); }

TEST(Ring, RingSizeMustBeAPowerOfTwo) {
  const std::size_t ring = (1u << 20) + 4096;
  const std::size_t size = link_bytes(ring);
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(base, MAP_FAILED);
  EXPECT_THROW(init_link(base, ring), ProtocolError);
  // A mapping whose control page claims such a size is not taken for a link either.
  init_link(base, kRingBytes);
  static_cast<LinkControl*>(base)->ring_bytes = ring;
  EXPECT_THROW(make_ring_channel(std::make_unique<AnonMapping>(base, size, true), true,
                                 WaitMode::kSpin, false, ::getpid()),
               ProtocolError);
}

// Pages are mapped before the first message, not faulted in one by one during it.
TEST(Ring, ChannelMapsEveryPageOfTheLinkUpFront) {
  const std::size_t size = link_bytes(kRingBytes);
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(base, MAP_FAILED);
  init_link(base, kRingBytes);
  const std::size_t pages = size / 4096;
  auto resident = [&] {
    std::vector<unsigned char> vec(pages);
    EXPECT_EQ(::mincore(base, size, vec.data()), 0);
    return std::count_if(vec.begin(), vec.end(), [](unsigned char v) { return v & 1; });
  };
  EXPECT_LT(resident(), 4);  // only the control page has been written so far
  auto peer = make_ring_channel(std::make_unique<AnonMapping>(base, size, true), false,
                                WaitMode::kSpin, false, ::getpid());
  EXPECT_EQ(resident(), static_cast<std::ptrdiff_t>(pages));
}

TEST(Ring, ClosedPartnerEndsTheLinkCleanly) {
  auto [client, peer] = open_link(WaitMode::kFutex);
  std::thread closer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    peer.reset();
  });
  std::vector<std::byte> buf(64);
  EXPECT_EQ(client->recv(buf), 0u);
  closer.join();
  EXPECT_THROW(client->send(pattern(4u << 20, 1)), SysError);
}

// A spin-then-futex side spins for a bounded time (twice its wake-up latency, at most
// kMaxSpinNs), then sleeps: kept waiting 300 ms, it uses a small part of that in CPU.
TEST(Ring, AFutexSideKeptWaitingSleepsInsteadOfSpinning) {
  auto [client, peer] = open_link(WaitMode::kFutex);
  auto thread_cpu = [] {  // exact, unlike getrusage's tick-sampled split
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
  };
  std::chrono::nanoseconds used{};
  std::size_t got = 0;
  std::thread reader([&] {
    std::vector<std::byte> buf(64);
    const auto before = thread_cpu();
    got = peer->recv(buf);
    used = thread_cpu() - before;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  client->send(pattern(64, 1));
  reader.join();
  EXPECT_EQ(got, 64u);
  EXPECT_LT(used, std::chrono::milliseconds(100)) << "the waiting side spun instead of sleeping";
}

}  // namespace
}  // namespace ipcbench
