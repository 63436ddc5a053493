// The workloads, each written once against Channel; none knows which transport it drives.
//
// pingpong    the client sends an N-byte message, the peer returns it; every round trip
//             is timed into a histogram (one clock read, taken while the next request
//             is in flight); one iteration = one round trip.
// throughput  the client streams N-byte messages one way; after the last one of a run
//             it sends kSync and the run's clock stops only when the peer's kAck arrives,
//             so no message still in flight is counted.
//
// rate        requests sent on a fixed schedule at an offered rate, open loop, every echo
//             taken by a receiver thread as it arrives (bench/rate.h); one iteration =
//             one schedule of the cell's window.
//
// All use manual time (only the measured interval counts, not loop bookkeeping or
// the untimed warm-up) and throw on any error; the caller turns it into SkipWithError.
#pragma once

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <string>

#include "bench/session.h"
#include "harness/histogram.h"

namespace ipcbench {

// What a run of a closed-loop cell measured, for the floor beside it: its headline
// figure (the RTT p50 in ns, or bytes per second) and the manual time it reported.
struct CellFigure {
  double figure = 0;
  double seconds = 0;
};
// The two closed-loop cells.
CellFigure run_pingpong(benchmark::State& state, PeerSession& s, std::size_t size);
// The rtt_* counters of a round-trip histogram (ping-pong cells and round-trip floors).
void record_rtt(benchmark::State& state, const Histogram& hist);
CellFigure run_throughput(benchmark::State& state, PeerSession& s, std::size_t size);
// A cell's label: "pin=<placement> wait=<strategy>" (and " link=cross-host" in split mode).
std::string cell_label(const PeerSession& s);

// One rate cell: either `rate` requests per second, or load_pct % of max_rate (the
// unpaced maximum probe_max_rate measured for this transport and size).
struct RateCell {
  double rate = 0;
  double load_pct = 0;  // 0: an absolute rate
  double max_rate = 0;
  bool poisson = false;
  std::chrono::nanoseconds window{std::chrono::milliseconds(500)};
};
void run_rate(benchmark::State& state, PeerSession& s, std::size_t size, const RateCell& cell);
// The unpaced maximum of the rate workload's exchange (replies per second), after a
// warm-up; throws when it cannot be measured.
double probe_max_rate(PeerSession& s, std::size_t size, std::chrono::nanoseconds window);

// Times a one-way stream as a whole (throughput cells, the stream floor): a message still
// in flight when the loop ends must count, so every iteration reports 0 s except the
// last, which first drains (waits until the receiver has everything) and then reports
// the time since the clock was made.
class StreamClock {
 public:
  explicit StreamClock(benchmark::State& state)
      : state_(state), last_(state.max_iterations), t0_(std::chrono::steady_clock::now()) {}
  // The manual time reported (seconds), once the last iteration has drained; else 0.
  double seconds() const {
    return end_ == std::chrono::steady_clock::time_point{}
               ? 0
               : std::chrono::duration<double>(end_ - t0_).count();
  }
  // Call at the end of every iteration.
  template <class Drain>
  void lap(Drain drain) {
    if (++i_ != last_) return state_.SetIterationTime(0);
    drain();
    end_ = std::chrono::steady_clock::now();
    state_.SetIterationTime(std::chrono::duration<double>(end_ - t0_).count());
  }

 private:
  benchmark::State& state_;
  const benchmark::IterationCount last_;
  benchmark::IterationCount i_ = 0;
  const std::chrono::steady_clock::time_point t0_;
  std::chrono::steady_clock::time_point end_{};
};

// Marks this repetition of a cell failed with `why`, wherever it failed: before its
// timed loop started (set-up, warm-up) or inside it. Google Benchmark checks that every
// repetition of a benchmark reports the same iteration count, failed ones included, and
// aborts the whole run otherwise (1.7.1, ComputeStats). A state whose loop never started
// reports 0 iterations, one whose loop started reports max_iterations, so a failure
// before the loop still enters it (the loop ends at once after SkipWithError).
void fail_repetition(benchmark::State& state, const std::string& why);

}  // namespace ipcbench
