// Round-trip timing for the ping-pong loop, shared with the bookkeeping micro-benchmark
// (tools/bookkeeping_bench.cpp) so that what is measured there is what runs here.
//
// One clock read per round trip, and each lap ends where the next begins, so every
// nanosecond of the loop belongs to exactly one round trip. Callers take the lap just
// after handing the next request to the transport, while it is in flight: there the
// read (and the histogram record) overlaps the wait for the reply. Taken after the
// reply arrived instead, the read sat between the reply and the next request and
// lengthened every short round trip (figures: docs/measurement.md).
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
