#include "harness/hgrm.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>

namespace ipcbench {
namespace {

void put(std::ostream& out, const char* fmt, auto... args) {
  char line[160];
  int n = std::snprintf(line, sizeof line, fmt, args...);
  out.write(line, n < 0 ? 0 : std::min<int>(n, sizeof line - 1));
}

// The next step after `pct` (in percent): 100 / (ticks * 2^(floor(log2(100 / (100 - pct))) + 1)).
double next_step(double pct, int ticks_per_half) {
  const auto halvings = static_cast<std::int64_t>(std::log2(100.0 / (100.0 - pct)));
  const double ticks = ticks_per_half * std::exp2(static_cast<double>(halvings + 1));
  return pct + 100.0 / ticks;
}

}  // namespace

void write_hgrm(std::ostream& out, const Histogram& h, double ns_per_unit, int ticks_per_half) {
  put(out, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
  const std::uint64_t total = h.count();
  double sum_sq = 0;
  if (total > 0) {
    std::size_t i = 0;
    std::uint64_t seen = h.bucket_count(0);
    // Row after row: the first bucket whose running count reaches the step; the rows
    // end with the one whose bucket holds the largest sample.
    for (double pct = 0.0;;) {
      while (seen * 100.0 < pct * static_cast<double>(total) || h.bucket_count(i) == 0)
        seen += h.bucket_count(++i);
      const double frac = pct / 100.0;
      put(out, "%12.3f %2.12f %10" PRIu64 " %14.2f\n", h.bucket_value(i) / ns_per_unit, frac, seen,
          1.0 / (1.0 - frac));
      if (seen == total) break;
      const double next = next_step(pct, ticks_per_half);
      if (!(next > pct)) break;  // 100 - pct under rounding: past 10^15 samples
      pct = next;
    }
    put(out, "%12.3f %2.12f %10" PRIu64 "\n", static_cast<double>(h.max()) / ns_per_unit, 1.0,
        total);
    const double mean = h.mean();
    for (std::size_t b = 0; b < Histogram::kBuckets; ++b)
      if (std::uint64_t c = h.bucket_count(b); c > 0) {
        const double d = h.bucket_value(b) - mean;
        sum_sq += d * d * static_cast<double>(c);
      }
  }
  const double stddev = total > 0 ? std::sqrt(sum_sq / static_cast<double>(total)) : 0.0;
  put(out, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", h.mean() / ns_per_unit,
      stddev / ns_per_unit);
  put(out, "#[Max     = %12.3f, Total count    = %12" PRIu64 "]\n",
      static_cast<double>(h.max()) / ns_per_unit, total);
  put(out, "#[Buckets = %12d, SubBuckets     = %12d]\n",
      static_cast<int>(Histogram::kBuckets / Histogram::kSub) - 1,
      static_cast<int>(2 * Histogram::kSub));
}

}  // namespace ipcbench
