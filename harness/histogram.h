// Log-linear latency histogram (HDR-style).
//
// Values (nanoseconds) below 256 are counted exactly; above, every power-of-two range is
// split into 128 equal buckets, so a bucket is at most 1/128 (0.78 %) of its value wide
// and a reported percentile, the bucket's midpoint, is within 0.4 % of the true sample.
// record() is a count-leading-zeros, a shift and an increment: no allocation, no branch
// on the value's history. Memory is fixed (~59 KiB) whatever the sample count.
#pragma once

#include <array>
#include <bit>
#include <cstdint>

namespace ipcbench {

class Histogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr std::uint64_t kSub = 1u << kSubBits;  // buckets per power of two
  static constexpr std::size_t kBuckets = 2 * kSub + (64 - kSubBits - 1) * kSub;

  void record(std::uint64_t v) {
    ++counts_[index_of(v)];
    ++count_;
    sum_ += v;
    if (v > max_) max_ = v;
    if (v < min_) min_ = v;
  }
  void reset();
  void merge(const Histogram& other);

  std::uint64_t count() const { return count_; }
  std::uint64_t max() const { return count_ ? max_ : 0; }
  std::uint64_t min() const { return count_ ? min_ : 0; }
  double mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0.0; }
  // The value at percentile p (0 < p <= 100): the sample of rank ceil(p/100 * count),
  // within 0.4 %. Returns 0 for an empty histogram.
  double percentile(double p) const;

  static std::size_t index_of(std::uint64_t v) {
    if (v < 2 * kSub) return static_cast<std::size_t>(v);
    int msb = 63 - std::countl_zero(v);
    int shift = msb - kSubBits;      // >= 1
    std::uint64_t top = v >> shift;  // in [kSub, 2*kSub)
    return static_cast<std::size_t>(2 * kSub + (shift - 1) * kSub + (top - kSub));
  }
  // Lowest value and width of bucket i.
  static std::uint64_t bucket_low(std::size_t i);
  static std::uint64_t bucket_width(std::size_t i);
  // How many samples bucket i holds, and the value percentile() reports for it: the
  // value itself below 256, else the bucket's midpoint within [min(), max()].
  std::uint64_t bucket_count(std::size_t i) const { return counts_[i]; }
  double bucket_value(std::size_t i) const;

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t max_ = 0;
  std::uint64_t min_ = UINT64_MAX;
};

}  // namespace ipcbench
