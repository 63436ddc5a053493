// Round-trip timing for the ping-pong loop, shared with the bookkeeping micro-benchmark
// (bench/bookkeeping_bench.cpp) so that what is measured there is what runs here.
//
// One clock read per round trip: each lap ends where the next begins, so a round trip's
// figure also holds the previous lap's few nanoseconds of header check and histogram
// record. On kvm-clock a CLOCK_MONOTONIC read costs ~29 ns; two per round trip would
// double the suite's own cost for no gain in accuracy at microsecond round trips.
#pragma once

#include <chrono>
#include <cstdint>

#include "harness/histogram.h"

namespace ipcbench {

class RttClock {
 public:
  using Clock = std::chrono::steady_clock;
  void start() { prev_ = Clock::now(); }
  // Ends the current round trip, records it, and returns it in nanoseconds.
  std::uint64_t lap() {
    auto now = Clock::now();
    auto ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(now - prev_).count());
    prev_ = now;
    hist_.record(ns);
    return ns;
  }
  const Histogram& histogram() const { return hist_; }

 private:
  Clock::time_point prev_;
  Histogram hist_;
};

}  // namespace ipcbench
