#include "harness/histogram.h"

#include <algorithm>
#include <cmath>

namespace ipcbench {

void Histogram::reset() { *this = Histogram(); }

void Histogram::merge(const Histogram& o) {
  for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
  count_ += o.count_;
  sum_ += o.sum_;
  max_ = std::max(max_, o.max_);
  min_ = std::min(min_, o.min_);
}

std::uint64_t Histogram::bucket_low(std::size_t i) {
  if (i < 2 * kSub) return i;
  std::size_t j = i - 2 * kSub;
  int shift = static_cast<int>(j / kSub) + 1;
  std::uint64_t top = kSub + j % kSub;
  return top << shift;
}

std::uint64_t Histogram::bucket_width(std::size_t i) {
  if (i < 2 * kSub) return 1;
  return std::uint64_t{1} << ((i - 2 * kSub) / kSub + 1);
}

double Histogram::percentile(double p) const {
  if (count_ == 0) return 0.0;
  p = std::clamp(p, 0.0, 100.0);
  auto rank = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) return bucket_value(i);
  }
  return static_cast<double>(max());
}

double Histogram::bucket_value(std::size_t i) const {
  if (bucket_width(i) == 1) return static_cast<double>(bucket_low(i));
  double mid = static_cast<double>(bucket_low(i)) + static_cast<double>(bucket_width(i) - 1) / 2.0;
  return std::clamp(mid, static_cast<double>(min()), static_cast<double>(max()));
}

}  // namespace ipcbench
