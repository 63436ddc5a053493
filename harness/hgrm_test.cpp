#include "harness/hgrm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

namespace ipcbench {
namespace {

struct Row {
  double value, fraction;
  unsigned long long total;
  std::string inverse;  // empty on the 100 % row
};

struct Parsed {
  std::string header;
  std::vector<Row> rows;
  std::vector<std::string> footer;
};

Parsed parse(const std::string& text) {
  Parsed p;
  std::istringstream in(text);
  std::getline(in, p.header);
  std::string blank;
  std::getline(in, blank);
  EXPECT_EQ(blank, "");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("#[", 0) == 0) {
      p.footer.push_back(line);
      continue;
    }
    EXPECT_TRUE(p.footer.empty()) << "a row after the footer: " << line;
    std::istringstream f(line);
    Row r{};
    EXPECT_TRUE(static_cast<bool>(f >> r.value >> r.fraction >> r.total)) << line;
    f >> r.inverse;
    p.rows.push_back(r);
  }
  return p;
}

std::string hgrm(const Histogram& h) {
  std::ostringstream out;
  write_hgrm(out, h);
  return out.str();
}

constexpr char kHeader[] = "       Value     Percentile TotalCount 1/(1-Percentile)";

// HdrHistogram's steps (5 per halving), as its outputPercentileDistribution and wrk2 print.
TEST(Hgrm, RowsFollowHdrHistogramsStepsAndMatchThePercentiles) {
  Histogram h;
  for (std::uint64_t v = 1; v <= 100000; ++v) h.record(v * 7);
  Parsed p = parse(hgrm(h));
  EXPECT_EQ(p.header, kHeader);
  const double steps[] = {0,      0.1, 0.2,    0.3,   0.4,    0.5,     0.55, 0.6,
                          0.65,   0.7, 0.75,   0.775, 0.8,    0.825,   0.85, 0.875,
                          0.8875, 0.9, 0.9125, 0.925, 0.9375, 0.94375, 0.95};
  ASSERT_GT(p.rows.size(), std::size(steps));
  for (std::size_t i = 0; i < std::size(steps); ++i)
    EXPECT_NEAR(p.rows[i].fraction, steps[i], 1e-12) << "row " << i;
  for (std::size_t i = 0; i + 1 < p.rows.size(); ++i) {
    const Row& r = p.rows[i];
    EXPECT_NEAR(r.value, h.percentile(r.fraction * 100) / 1000, 0.00051) << "row " << i;
    EXPECT_NEAR(std::stod(r.inverse), 1 / (1 - r.fraction), 0.005 + 1e-9 / (1 - r.fraction))
        << "row " << i;
    EXPECT_GE(r.total, static_cast<unsigned long long>(r.fraction * 100000)) << "row " << i;
    if (i > 0) {
      EXPECT_GT(r.fraction, p.rows[i - 1].fraction);
      EXPECT_GE(r.value, p.rows[i - 1].value);
      EXPECT_GE(r.total, p.rows[i - 1].total);
    }
  }
  const Row& last = p.rows.back();
  EXPECT_EQ(last.fraction, 1.0);
  EXPECT_EQ(last.total, 100000u);
  EXPECT_EQ(last.inverse, "");
  EXPECT_NEAR(last.value, 700.0, 0.0005);  // the largest sample, exactly: 700000 ns
  EXPECT_EQ(p.rows[p.rows.size() - 2].total, 100000u) << "the rows end at the largest sample";
  ASSERT_EQ(p.footer.size(), 3u);
  EXPECT_EQ(p.footer[1], "#[Max     =      700.000, Total count    =       100000]");
  double mean = 0, sd = 0;
  ASSERT_EQ(std::sscanf(p.footer[0].c_str(), "#[Mean    = %lf, StdDeviation   = %lf]", &mean, &sd),
            2);
  EXPECT_NEAR(mean, 350.0035, 0.0005);
  EXPECT_NEAR(sd, 700.0 / std::sqrt(12.0), 1.0);  // a uniform distribution's
}

TEST(Hgrm, OneValueGivesTheZeroRowAndTheHundredRow) {
  Histogram h;
  for (int i = 0; i < 10; ++i) h.record(200);
  Parsed p = parse(hgrm(h));
  ASSERT_EQ(p.rows.size(), 2u);
  EXPECT_EQ(p.rows[0].fraction, 0.0);
  EXPECT_EQ(p.rows[0].total, 10u);
  EXPECT_NEAR(p.rows[0].value, 0.2, 1e-9);
  EXPECT_EQ(p.rows[1].fraction, 1.0);
  EXPECT_NEAR(p.rows[1].value, 0.2, 1e-9);
}

TEST(Hgrm, AnEmptyHistogramHasOnlyTheHeaderAndFooter) {
  Parsed p = parse(hgrm(Histogram{}));
  EXPECT_EQ(p.header, kHeader);
  EXPECT_TRUE(p.rows.empty());
  ASSERT_EQ(p.footer.size(), 3u);
  EXPECT_EQ(p.footer[1], "#[Max     =        0.000, Total count    =            0]");
}

}  // namespace
}  // namespace ipcbench
