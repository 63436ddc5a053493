// The machine's own limits, measured in the same run as the matrix (--floors), so every
// figure can be read as a multiple of what the hardware and kernel allow:
//
//   floor/cacheline_rtt   two processes, pinned like the matrix, bounce one shared cache
//                         line (an atomic): the least any shared-memory round trip costs
//   floor/cacheline_pair_rtt  out through one line, back through another, each written
//                         by one side: what any pair of one-way channels pays per round
//                         trip (a single line handed back and forth moves once per
//                         direction; a line per direction must also be taken back from
//                         the side that polls it)
//   floor/futex_rtt       the same hand-off, but each side sleeps on a futex and is woken
//                         by the other: the least any blocking round trip costs
//   floor/syscall         a null system call (getppid), ns per call
//   floor/memcpy/<bytes>  single-thread memcpy between 64-byte-aligned buffers, one row
//                         per matrix size: the most a copying transport can move
//   floor/shm_stream/<bytes>  one process copies messages into a shared ring, the other
//                         (on the placement's other CPU) reads every byte in place:
//                         what the two CPUs move between them, one row per matrix size
//   floor/encoding-<name>/<bytes>  one thread, no IPC: one round trip's worth of a
//                         transport's codec (transports/encodings.h: request and response
//                         each encoded and decoded), ns per round trip, one row per
//                         encoding and matrix size
//
// Round-trip floors are timed exactly as ping-pong cells are (RttClock, read while the
// next hand-off is in flight), so a cell and its floor are measured the same way.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <vector>

#include "harness/placement.h"

namespace ipcbench {

// stall_timeout (--cell-timeout): a floor whose partner stops answering for this long
// fails, as does one whose partner died. quiet runs before every run of a floor and must
// stop whatever else the run keeps going on the placement's CPUs (the matrix's live peer,
// which may be busy-polling the partner's CPU), so that a floor measures the machine alone.
void register_floors(const Placement& placement, const std::vector<std::size_t>& sizes,
                     std::chrono::milliseconds stall_timeout, std::function<void()> quiet);

// How many floors failed in this run (each is an error row in the results).
std::size_t failed_floors();

}  // namespace ipcbench
