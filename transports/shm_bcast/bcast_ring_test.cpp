// The broadcast ring's promise: every reader gets every message, intact and in order, and
// the writer never overtakes the slowest reader (it would overwrite bytes that reader has
// not read: the slow reader below would then see corrupt or missing messages, and more
// unread bytes than the ring holds).
#include "transports/shm_bcast/bcast_ring.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"

namespace ipcbench {
namespace {

constexpr std::size_t kRing = 4096;  // the smallest ring: the writer laps it many times

// Message i: 1 to 1000 bytes (so records wrap around the ring's end at many offsets),
// every byte a function of i and its offset.
std::vector<std::byte> message(std::uint32_t i) {
  std::vector<std::byte> m(1 + (i * 37) % 1000);
  for (std::size_t k = 0; k < m.size(); ++k)
    m[k] = static_cast<std::byte>((i * 131 + k * 7 + (k >> 8)) & 0xff);
  return m;
}

// The ring's memory, page-aligned as a mapping is.
struct Memory {
  void* p = std::aligned_alloc(4096, bcast_ring_bytes(kRing));
  ~Memory() { std::free(p); }
  void* data() { return p; }
};

struct Ring {
  Memory mem;
  explicit Ring(std::size_t readers) { init_bcast_ring(mem.data(), kRing, readers); }
};

// Reads n messages as reader `slot`, pausing `pause` after each; returns what went wrong.
std::string read_all(Ring& ring, std::size_t slot, std::uint32_t n,
                     std::chrono::microseconds pause) {
  BcastReader r(ring.mem.data(), slot, 0);
  std::vector<std::byte> buf(kRing);
  for (std::uint32_t i = 0; i < n; ++i) {
    if (r.unread() > kRing)
      return "more unread bytes than the ring holds: " + std::to_string(r.unread());
    const std::size_t len = r.read(buf);
    const std::vector<std::byte> want = message(i);
    if (len != want.size() || std::memcmp(buf.data(), want.data(), len) != 0)
      return "reader " + std::to_string(slot) + ": message " + std::to_string(i) + " differs (" +
             std::to_string(len) + " bytes, expected " + std::to_string(want.size()) + ")";
    if (pause.count() > 0) std::this_thread::sleep_for(pause);
  }
  return {};
}

TEST(BcastRing, TheWriterNeverOvertakesTheSlowestReader) {
  constexpr std::uint32_t kMessages = 2000;
  Ring ring(3);
  std::string fast, slow, slower;
  std::thread a([&] { fast = read_all(ring, 0, kMessages, std::chrono::microseconds(0)); });
  std::thread b([&] { slow = read_all(ring, 1, kMessages, std::chrono::microseconds(20)); });
  // The slowest reader also starts late: the writer has filled the ring before it reads.
  std::thread c([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    slower = read_all(ring, 2, kMessages, std::chrono::microseconds(100));
  });
  {
    BcastWriter w(ring.mem.data(), {});
    for (std::uint32_t i = 0; i < kMessages; ++i) w.write(message(i));
  }
  a.join();
  b.join();
  c.join();
  EXPECT_EQ(fast, "");
  EXPECT_EQ(slow, "");
  EXPECT_EQ(slower, "");
}

TEST(BcastRing, ReadersSeeTheEndOnceEverythingIsRead) {
  Ring ring(2);
  {
    BcastWriter w(ring.mem.data(), {});
    w.write(message(0));
  }
  for (std::size_t slot = 0; slot < 2; ++slot) {
    BcastReader r(ring.mem.data(), slot, 0);
    std::vector<std::byte> buf(kRing);
    EXPECT_EQ(r.read(buf), message(0).size());
    EXPECT_EQ(r.read(buf), 0u);  // closed and drained
  }
}

TEST(BcastRing, AWriterWaitingForAClosedReaderFails) {
  Ring ring(2);
  { BcastReader gone(ring.mem.data(), 1, 0); }  // reader 1 closes without reading
  std::thread reader([&] { read_all(ring, 0, 100, std::chrono::microseconds(0)); });
  std::string err;
  try {
    BcastWriter w(ring.mem.data(), {});
    for (std::uint32_t i = 0; i < 100; ++i) w.write(message(i));
  } catch (const SysError& e) {
    err = e.what();
  }
  reader.join();
  EXPECT_NE(err.find("reader 1 closed"), std::string::npos) << err;
}

TEST(BcastRing, RefusesWhatDoesNotFit) {
  Ring ring(1);
  BcastWriter w(ring.mem.data(), {});
  std::vector<std::byte> big(kRing);
  EXPECT_THROW(w.write(big), ProtocolError);
  EXPECT_THROW(w.write({}), ProtocolError);
  w.write(message(5));
  BcastReader r(ring.mem.data(), 0, 0);
  std::vector<std::byte> small(1);
  EXPECT_THROW(r.read(small), ProtocolError);
  EXPECT_THROW(init_bcast_ring(ring.mem.data(), 3000, 1), ProtocolError);
  EXPECT_THROW(init_bcast_ring(ring.mem.data(), kRing, kMaxBcastReaders + 1), ProtocolError);
}

}  // namespace
}  // namespace ipcbench
