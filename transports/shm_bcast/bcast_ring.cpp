#include "transports/shm_bcast/bcast_ring.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <new>
#include <string>

#include "base/error.h"
#include "base/wait.h"

namespace ipcbench {
namespace {

constexpr std::size_t kRecord = 64;
constexpr std::chrono::milliseconds kSleepSlice{10};

std::uint64_t round_up(std::uint64_t n, std::uint64_t a) { return (n + a - 1) / a * a; }

void wake_all(std::atomic<std::uint32_t>& word) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, INT_MAX, nullptr,
            nullptr, 0);
}

// Rings the bell `seq` when somebody sleeps on it.
void ring(std::atomic<std::uint32_t>& seq, std::atomic<std::uint32_t>& sleepers) {
  if (sleepers.load() != 0) {
    seq.fetch_add(1);
    wake_all(seq);
  }
}

// Waits until ready() (spinning first, then sleeping on seq in slices); between slices
// check() throws, or returns true, when there is no point waiting any longer.
template <class Ready, class Check>
void wait_until(std::atomic<std::uint32_t>& seq, std::atomic<std::uint32_t>& sleepers, Ready ready,
                Check check) {
  for (int i = 0; i < kBcastSpins; ++i) {
    if (ready()) return;
    cpu_relax();
  }
  for (;;) {
    sleepers.fetch_add(1);
    const std::uint32_t s = seq.load();
    if (ready()) {
      sleepers.fetch_sub(1);
      return;
    }
    futex_wait(seq, s, kSleepSlice);
    sleepers.fetch_sub(1);
    if (ready() || check()) return;
  }
}

}  // namespace

void init_bcast_ring(void* base, std::size_t ring_bytes, std::size_t readers) {
  if (!std::has_single_bit(ring_bytes) || ring_bytes < 4096)
    throw ProtocolError("shm-bcast: ring size must be a power of two of 4 KiB or more");
  if (readers < 1 || readers > kMaxBcastReaders)
    throw ProtocolError("shm-bcast: " + std::to_string(readers) + " readers (1.." +
                        std::to_string(kMaxBcastReaders) + ")");
  auto* h = new (base) BcastHeader{};
  h->ring_bytes = ring_bytes;
  h->readers = static_cast<std::uint32_t>(readers);
  std::atomic_thread_fence(std::memory_order_release);
  h->magic = kBcastMagic;
}

BcastHeader& bcast_header(void* base, std::size_t mapped_bytes) {
  auto* h = static_cast<BcastHeader*>(base);
  if (mapped_bytes < sizeof(BcastHeader) || h->magic != kBcastMagic ||
      !std::has_single_bit(h->ring_bytes) || h->ring_bytes < 4096 ||
      bcast_ring_bytes(h->ring_bytes) > mapped_bytes || h->readers < 1 ||
      h->readers > kMaxBcastReaders)
    throw ProtocolError("shm-bcast: the mapping is not an ipcbench broadcast ring");
  return *h;
}

BcastWriter::BcastWriter(void* base, const std::vector<pid_t>& watch)
    : h_(*static_cast<BcastHeader*>(base)),
      data_(static_cast<std::byte*>(base) + sizeof(BcastHeader)),
      mask_(h_.ring_bytes - 1),
      head_(h_.head.load()) {
  for (pid_t p : watch) watch_.emplace_back(p);
}

BcastWriter::~BcastWriter() {
  h_.writer_closed.store(1);
  h_.data_seq.fetch_add(1);
  wake_all(h_.data_seq);
}

void BcastWriter::write(std::span<const std::byte> msg) {
  const std::uint64_t len = msg.size();
  const std::uint64_t cap = h_.ring_bytes;
  if (len == 0) throw ProtocolError("shm-bcast: zero-length message");
  if (len > cap - kRecord)
    throw ProtocolError("shm-bcast: message of " + std::to_string(len) +
                        " bytes exceeds the ring's limit of " + std::to_string(cap - kRecord));
  const std::uint64_t total = kRecord + round_up(len, kRecord);
  const std::uint32_t readers = h_.readers;
  // Room: the slowest reader has released everything up to head_ + total - cap.
  std::uint32_t slowest = 0;
  auto room = [&] {
    const std::uint64_t need = head_ + total - cap;
    if (head_ + total <= cap) return true;
    for (std::uint32_t i = 0; i < readers; ++i)
      if (h_.slots[i].cursor.load(std::memory_order_acquire) < need) {
        slowest = i;
        return false;
      }
    return true;
  };
  if (!room())
    wait_until(h_.space_seq, h_.space_sleepers, room, [&] {
      if (aborted_.load()) throw ProtocolError("shm-bcast write: link shut down by the watchdog");
      if (h_.slots[slowest].closed.load())
        throw SysError("shm-bcast write: reader " + std::to_string(slowest) + " closed its end",
                       EPIPE);
      if (slowest < watch_.size() && watch_[slowest].gone())
        throw SysError("shm-bcast write: reader " + std::to_string(slowest) + " (pid " +
                           std::to_string(watch_[slowest].pid()) + ") is gone",
                       EPIPE);
      return false;
    });
  const std::uint64_t pos = head_ & mask_;
  std::memcpy(data_ + pos, &len, sizeof len);
  // The payload, in two pieces when it wraps (a record header never does: 64 | cap).
  const std::uint64_t at = (head_ + kRecord) & mask_;
  const std::uint64_t first = std::min(len, cap - at);
  std::memcpy(data_ + at, msg.data(), first);
  if (first < len) std::memcpy(data_, msg.data() + first, len - first);
  head_ += total;
  h_.head.store(head_);  // seq_cst: ordered before the read of data_sleepers
  ring(h_.data_seq, h_.data_sleepers);
}

BcastReader::BcastReader(void* base, std::size_t slot, pid_t writer)
    : h_(*static_cast<BcastHeader*>(base)),
      slot_(h_.slots[slot]),
      data_(static_cast<const std::byte*>(base) + sizeof(BcastHeader)),
      mask_(h_.ring_bytes - 1),
      cursor_(slot_.cursor.load()) {
  if (slot >= h_.readers)
    throw ProtocolError("shm-bcast: reader " + std::to_string(slot) + " of " +
                        std::to_string(h_.readers));
  if (writer > 0) watch_ = PeerWatch(writer);
}

BcastReader::~BcastReader() {
  slot_.closed.store(1);
  h_.space_seq.fetch_add(1);
  wake_all(h_.space_seq);
}

std::uint64_t BcastReader::unread() const { return h_.head.load() - cursor_; }

std::size_t BcastReader::read(std::span<std::byte> buf) {
  auto ready = [&] { return h_.head.load(std::memory_order_acquire) > cursor_; };
  if (!ready())
    wait_until(
        h_.data_seq, h_.data_sleepers, [&] { return ready() || h_.writer_closed.load(); },
        [&] {
          if (aborted_.load())
            throw ProtocolError("shm-bcast read: link shut down by the watchdog");
          return watch_.gone();  // a dead writer: the link has ended
        });
  // Closed (or the writer died) with everything read: the link has ended.
  if (!ready()) return 0;
  const std::uint64_t cap = h_.ring_bytes;
  std::uint64_t len;
  std::memcpy(&len, data_ + (cursor_ & mask_), sizeof len);
  if (len == 0 || len > cap - kRecord)
    throw ProtocolError("shm-bcast: corrupt record length " + std::to_string(len));
  if (len > buf.size())
    throw ProtocolError("shm-bcast: message of " + std::to_string(len) + " bytes does not fit in " +
                        std::to_string(buf.size()));
  const std::uint64_t at = (cursor_ + kRecord) & mask_;
  const std::uint64_t first = std::min(len, cap - at);
  std::memcpy(buf.data(), data_ + at, first);
  if (first < len) std::memcpy(buf.data() + first, data_, len - first);
  cursor_ += kRecord + round_up(len, kRecord);
  slot_.cursor.store(cursor_);  // seq_cst: ordered before the read of space_sleepers
  ring(h_.space_seq, h_.space_sleepers);
  return len;
}

}  // namespace ipcbench
