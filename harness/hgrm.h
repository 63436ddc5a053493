// A histogram as HdrHistogram's percentile distribution text, laid out as its Java
// outputPercentileDistribution prints it (.hgrm): a header, one row per percentile step,
// the 100 % row, and the "#[Mean", "#[Max", "#[Buckets" footer.
//
// The steps are HdrHistogram's: from 0 %, `ticks_per_half` rows per halving of the distance
// to 100 % (5: 0, 10, 20, 30, 40, 50, 55, 60, ... 75, 77.5, 80, ... 87.5, 88.75 ...), until
// the row that reaches the largest sample. Each row's value is what Histogram::percentile
// gives at that step (so the 50 % and 90 % rows are the results' rtt_p50_ns and
// rtt_p90_ns; 99 % is not a step), in
// units of `ns_per_unit` nanoseconds (1000: microseconds); the 100 % row is the exact
// largest sample.
#pragma once

#include <ostream>

#include "harness/histogram.h"

namespace ipcbench {

void write_hgrm(std::ostream& out, const Histogram& h, double ns_per_unit = 1000.0,
                int ticks_per_half = 5);

}  // namespace ipcbench
