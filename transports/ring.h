// Shared-memory links: two single-producer/single-consumer byte rings in one mapping.
//
// Used by every shared-memory transport (a memory-mapped file, POSIX shared memory);
// they differ only in how the mapping is made. Layout of a link, all offsets 4 KiB
// aligned: a LinkControl page, then the client→peer ring, then the peer→client ring.
//
// A message in a ring is a 64-byte record header (its length) followed by the payload,
// padded to 64 bytes, so every payload starts cache-line aligned. A message larger than
// the free space streams through in pieces while the reader drains it, so messages
// many times the ring's size work. Head and tail live on separate cache lines. A waiting
// reader polls the next record's header and prefetches its first payload line with
// each poll, so a small message's two lines cross together rather than one after the
// other. While a side waits for a message, it fetches into its cache the lines its
// next record will take if it is as large as its last, so that the next send writes
// into its own cache. Both sides map every page of the link before the first message.
//
// Waiting: kSpin busy-polls (pause instruction) and never enters the kernel on the fast
// path; kFutex spins for up to twice its own measured wake-up latency (the time from
// the other side's FUTEX_WAKE to this side running again, learned as it goes and held
// between kMinSpinNs and kMaxSpinNs), then sleeps on a futex in the shared mapping and
// is woken by the other side. Either way a waiting side notices, within milliseconds,
// that its partner closed or died (pidfd), and fails cleanly. A ring channel also
// offers Channel::poll_ready (a look at the next record's header, never a wait), for a
// server that polls many links in turn from one spinning thread; a kFutex side that
// polls so never sleeps, and its partner's sends never need to wake it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "base/liveness.h"
#include "transports/transport.h"

namespace ipcbench {

enum class WaitMode { kSpin, kFutex };

inline constexpr std::size_t kRingBytes = std::size_t{4} << 20;  // per direction
// Spin-then-futex: bounds of the spin before sleeping, and its first guess of the
// wake-up latency (before this side has slept once).
inline constexpr std::int64_t kMinSpinNs = 2'000, kMaxSpinNs = 200'000;
inline constexpr std::int64_t kFirstWakeupGuessNs = 5'000;
// Largest message a ring link carries (it streams through the ring in pieces).
inline constexpr std::size_t kMaxRingMessage = std::size_t{256} << 20;

// Where one side of a ring sleeps (kFutex) and the other wakes it.
struct alignas(64) Doorbell {
  std::atomic<std::uint32_t> seq;       // the futex word: bumped by every wake
  std::atomic<std::uint32_t> sleeping;  // set by the side about to sleep
  std::atomic<std::int64_t> woken_ns;   // CLOCK_MONOTONIC of the first wake sent to a sleep
};

struct alignas(64) RingHeader {
  alignas(64) std::atomic<std::uint64_t> head;    // bytes published by the producer
  alignas(64) std::atomic<std::uint64_t> tail;    // bytes released by the consumer
  Doorbell data;                                  // the consumer sleeps here for data
  Doorbell space;                                 // the producer sleeps here for space
  alignas(64) std::atomic<std::uint32_t> closed;  // kProducerClosed | kConsumerClosed
};

struct alignas(4096) LinkControl {
  std::uint64_t magic;
  std::uint64_t ring_bytes;
  std::atomic<std::int32_t> client_pid;
  std::atomic<std::int32_t> peer_pid;  // set by the peer when it has mapped the link
  RingHeader down;                     // client → peer
  RingHeader up;                       // peer → client
};

inline constexpr std::uint64_t kLinkMagic = 0x6970636272696e67ull;  // "ipcbring"
std::size_t link_bytes(std::size_t ring_bytes);

// Writes a fresh LinkControl (the creator calls this once, before the peer maps it).
// ring_bytes must be a power of two, 4 KiB or more (positions wrap with a mask).
void init_link(void* base, std::size_t ring_bytes);

// A mapping the channel keeps alive (unmaps, and for the creator removes, on close).
class Mapping {
 public:
  virtual ~Mapping() = default;
  virtual void* base() = 0;
};

// Blocks until the peer has mapped the link and announced its pid; bounded by wait.
pid_t wait_for_peer(LinkControl& ctl, const SetupWait& wait);

// The channel over a mapped link. is_client selects which ring it writes. zero_copy:
// records never wrap (a skip record fills the end of a lap), so the channel offers
// loan/commit and view/release for every message up to ring_bytes - 64.
std::unique_ptr<Channel> make_ring_channel(std::unique_ptr<Mapping> mapping, bool is_client,
                                           WaitMode mode, bool zero_copy, pid_t partner);

}  // namespace ipcbench
