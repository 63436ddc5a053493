#include "harness/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace ipcbench {
namespace {

double reference(std::vector<std::uint64_t> v, double p) {
  std::sort(v.begin(), v.end());
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  rank = std::clamp<std::size_t>(rank, 1, v.size());
  return static_cast<double>(v[rank - 1]);
}

void expect_close_to_reference(const std::vector<std::uint64_t>& samples) {
  Histogram h;
  for (auto s : samples) h.record(s);
  for (double p : {1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
    double want = reference(samples, p);
    double got = h.percentile(p);
    EXPECT_LE(std::abs(got - want), want * 0.01 + 0.5) << "p" << p << " want " << want;
  }
  EXPECT_EQ(h.max(), *std::max_element(samples.begin(), samples.end()));
  EXPECT_EQ(h.min(), *std::min_element(samples.begin(), samples.end()));
  double mean = 0;
  for (auto s : samples) mean += static_cast<double>(s);
  mean /= static_cast<double>(samples.size());
  EXPECT_NEAR(h.mean(), mean, mean * 1e-9);
}

TEST(Histogram, LogNormalLatenciesMatchSortedReference) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> d(std::log(20000.0), 0.6);
  std::vector<std::uint64_t> v;
  for (int i = 0; i < 200000; ++i) v.push_back(static_cast<std::uint64_t>(d(rng)));
  expect_close_to_reference(v);
}

TEST(Histogram, WideRangeFromNanosecondsToSeconds) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> e(0.0, 33.0);  // 1 ns .. ~8.6 s, log-uniform
  std::vector<std::uint64_t> v;
  for (int i = 0; i < 100000; ++i) v.push_back(static_cast<std::uint64_t>(std::exp2(e(rng))));
  expect_close_to_reference(v);
}

TEST(Histogram, SmallValuesAreExact) {
  std::vector<std::uint64_t> v;
  for (std::uint64_t i = 0; i < 256; ++i) v.push_back(i);
  Histogram h;
  for (auto s : v) h.record(s);
  for (double p : {1.0, 25.0, 50.0, 75.0, 100.0}) EXPECT_EQ(h.percentile(p), reference(v, p));
}

TEST(Histogram, BucketsTileTheRangeWithBoundedWidth) {
  for (std::size_t i = 1; i < Histogram::kBuckets; ++i) {
    ASSERT_EQ(Histogram::bucket_low(i - 1) + Histogram::bucket_width(i - 1),
              Histogram::bucket_low(i))
        << i;
    if (Histogram::bucket_low(i) >= 256) {
      ASSERT_LE(static_cast<double>(Histogram::bucket_width(i)) / Histogram::bucket_low(i),
                1.0 / 128);
    }
  }
  for (std::uint64_t v : {0ull, 255ull, 256ull, 257ull, 1000000ull, 1ull << 40, ~0ull}) {
    std::size_t i = Histogram::index_of(v);
    ASSERT_LT(i, Histogram::kBuckets);
    EXPECT_GE(v, Histogram::bucket_low(i));
    EXPECT_LE(v - Histogram::bucket_low(i), Histogram::bucket_width(i) - 1);
  }
}

TEST(Histogram, EmptyAndMerge) {
  Histogram a, b;
  EXPECT_EQ(a.percentile(50), 0.0);
  EXPECT_EQ(a.max(), 0u);
  a.record(100);
  b.record(300);
  a.merge(b);
  EXPECT_EQ(a.count(), 2u);
  EXPECT_EQ(a.percentile(100), 300.0);
  EXPECT_EQ(a.percentile(50), 100.0);
}

}  // namespace
}  // namespace ipcbench
