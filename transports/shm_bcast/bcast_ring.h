// A broadcast ring in shared memory: one writer, up to kMaxBcastReaders readers, each with
// its own read cursor in the mapping. Every reader sees every message, in order; the
// writer never overtakes the slowest reader (it waits until every reader has released
// the bytes it is about to write over). Used by the shm-bcast transport
// (shm_bcast_transport.cpp); the writer and the readers may be threads of one process
// (the unit test) or processes that map the same object.
//
// Layout: a BcastHeader (two 4 KiB pages), then ring_bytes of data. A message is a
// 64-byte record header (its length) and its payload padded to 64 bytes; a record may
// wrap around the end of the ring (the payload is copied in two pieces), so any message
// up to ring_bytes - 64 fits.
//
// Waiting (spin-then-futex): a side that cannot go on polls for kBcastSpins pauses, then
// sleeps on a futex word in the mapping in slices of 10 ms, woken by the other side
// (readers all at once, on data_seq; the writer on space_seq). Between slices a sleeping
// side checks that the other side lives (pidfd) and has not closed, and abort(); a
// writer waiting for room only checks the reader it waits for.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/liveness.h"

namespace ipcbench {

inline constexpr std::size_t kMaxBcastReaders = 64;
inline constexpr std::uint64_t kBcastMagic = 0x6970636262636173ull;  // "ipcbbcas"
inline constexpr int kBcastSpins = 4096;

struct alignas(64) BcastReaderSlot {
  std::atomic<std::uint64_t> cursor;  // bytes this reader has released
  std::atomic<std::int32_t> pid;      // the reader's process, once attached (0: not yet)
  std::atomic<std::uint32_t> closed;  // the reader has gone away
};

struct alignas(4096) BcastHeader {
  std::uint64_t magic;
  std::uint64_t ring_bytes;
  std::uint32_t readers;
  std::atomic<std::int32_t> writer_pid;
  alignas(64) std::atomic<std::uint64_t> head;  // bytes published by the writer
  alignas(64) std::atomic<std::uint32_t> data_seq;
  std::atomic<std::uint32_t> data_sleepers;
  alignas(64) std::atomic<std::uint32_t> space_seq;
  std::atomic<std::uint32_t> space_sleepers;
  alignas(64) std::atomic<std::uint32_t> writer_closed;
  BcastReaderSlot slots[kMaxBcastReaders];
};

// Bytes one ring takes (header and data).
inline constexpr std::size_t bcast_ring_bytes(std::size_t ring_bytes) {
  return sizeof(BcastHeader) + ring_bytes;
}
// Writes a fresh header for `readers` readers (the creator, before anyone maps it).
// ring_bytes: a power of two, 4 KiB or more.
void init_bcast_ring(void* base, std::size_t ring_bytes, std::size_t readers);
// Checks what a mapping claims to be; throws ProtocolError.
BcastHeader& bcast_header(void* base, std::size_t mapped_bytes);

class BcastWriter {
 public:
  // watch: the readers' processes to watch while waiting (empty: none, e.g. threads).
  BcastWriter(void* base, const std::vector<pid_t>& watch);
  ~BcastWriter();  // marks the ring closed and wakes the readers
  BcastWriter(const BcastWriter&) = delete;
  BcastWriter& operator=(const BcastWriter&) = delete;
  // Appends one message (1 byte to ring_bytes - 64) once every reader has room for it.
  // Throws SysError (EPIPE) when a reader it waits for closed or died, ProtocolError when
  // the message is empty or too large or abort() was called.
  void write(std::span<const std::byte> msg);
  void abort() noexcept { aborted_.store(true); }

 private:
  BcastHeader& h_;
  std::byte* data_;
  std::uint64_t mask_;
  std::uint64_t head_;
  std::vector<PeerWatch> watch_;
  std::atomic<bool> aborted_{false};
};

class BcastReader {
 public:
  // writer: the writer's process to watch while waiting (0: none).
  BcastReader(void* base, std::size_t slot, pid_t writer);
  ~BcastReader();  // marks the slot closed and wakes the writer
  BcastReader(const BcastReader&) = delete;
  BcastReader& operator=(const BcastReader&) = delete;
  // The next message into buf; 0 once the writer closed (or died) and everything was
  // read. Throws ProtocolError when it does not fit or abort() was called.
  std::size_t read(std::span<std::byte> buf);
  // Bytes published and not yet released by this reader (never more than the ring).
  std::uint64_t unread() const;
  void abort() noexcept { aborted_.store(true); }

 private:
  BcastHeader& h_;
  BcastReaderSlot& slot_;
  const std::byte* data_;
  std::uint64_t mask_;
  std::uint64_t cursor_;
  PeerWatch watch_;
  std::atomic<bool> aborted_{false};
};

}  // namespace ipcbench
