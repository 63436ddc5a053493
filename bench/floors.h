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

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
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

// The floor beside every ping-pong and throughput cell: a probe of a few milliseconds,
// pinned like the cell, run just before and just after each repetition, while the cell's
// peer is stopped (so a busy-polling peer leaves the probe its CPU):
//   pair_rtt     spinning round trip, out through one cache line and back through
//                another (floor/cacheline_pair_rtt's hand-off): p50 ns. Ping-pong cells
//                of transports that spin (wait=spin or spin-then-futex).
//   futex_rtt    the same round trip, each side sleeping on a futex (floor/futex_rtt's):
//                p50 ns. Ping-pong cells that block, and every ping-pong cell where two
//                spinning sides would share a CPU.
//   copy_stream  a copying channel of two shared slots (one message each, or 64 KiB of
//                smaller messages): the writer copies messages of the cell's size into
//                the free slot (one memcpy each) and hands it over when full, the reader
//                (the other CPU) copies each message out and frees the slot: a slot's
//                bytes over the median time between two hand-overs, bytes/s.
//                Throughput cells.
enum class CellFloor { kPairRtt, kFutexRtt, kCopyStream };
CellFloor cell_floor_for(const std::string& workload, const std::string& wait, const Placement& pl);
const char* cell_floor_name(CellFloor k);
// One probe: p50 ns per round trip, or bytes per second. Throws as a floor fails.
double probe_cell_floor(CellFloor k, const Placement& pl, std::size_t size,
                        std::chrono::milliseconds stall_timeout);

// When the probes before and after one repetition differ by more than this (the larger
// ÷ the smaller - 1), the machine changed during the cell: it is marked host_changed.
inline constexpr double kHostChangeMargin = 0.5;
double floor_change(double before, double after);
bool host_changed(double before, double after);
// The cell's counters: floor_before, floor_after, floor (their mean), floor_ratio (cost ÷
// floor cost: the cell's RTT p50 ÷ floor, or floor bytes/s ÷ the cell's; `figure` is the
// cell's RTT p50 ns or bytes/s), floor_change and host_changed (1 or 0).
void record_cell_floor(benchmark::State& state, CellFloor k, double before, double after,
                       double figure);

}  // namespace ipcbench
