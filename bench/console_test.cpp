#include "bench/console.h"

#include <gtest/gtest.h>

#include <sstream>

namespace ipcbench {
namespace {

using GRun = benchmark::BenchmarkReporter::Run;

GRun cell(const std::string& name, double p50_ns, double p99_ns) {
  GRun r;
  r.run_name.function_name = name;
  r.run_name.time_type = "manual_time";
  r.counters["rtt_p50_ns"] = p50_ns;
  r.counters["rtt_p99_ns"] = p99_ns;
  r.counters["cpu_client_ns_per_msg"] = p50_ns / 2;
  r.counters["cpu_peer_ns_per_msg"] = p50_ns / 2;
  return r;
}

GRun failed(const std::string& name, const std::string& why) {
  GRun r;
  r.run_name.function_name = name;
  r.error_occurred = true;
  r.error_message = why;
  return r;
}

std::string feed(long repetitions, const std::vector<std::vector<GRun>>& batches) {
  std::ostringstream out, err;
  ConsoleTable t(repetitions, batches.size(), nullptr);
  t.SetOutputStream(&out);
  t.SetErrorStream(&err);
  out << t.header() << '\n';
  for (const auto& b : batches) t.ReportRuns(b);
  t.Finalize();
  return out.str();
}

TEST(ConsoleTable, FiguresAsTheReportWritesThem) {
  EXPECT_EQ(fmt_figure(2957.4), "2957");
  EXPECT_EQ(fmt_figure(39.64), "39.6");
  EXPECT_EQ(fmt_figure(2.914), "2.91");
  EXPECT_EQ(fmt_figure(0.02771), "0.0277");
  EXPECT_EQ(fmt_rate(433200), "433k");
  EXPECT_EQ(fmt_rate(1.234e6), "1.23M");
}

TEST(ConsoleTable, OneLinePerCellWithoutTheTimingSuffix) {
  std::string out = feed(1, {{cell("pingpong/pipe/64", 39640, 2957400)}});
  EXPECT_EQ(out.find("manual_time"), std::string::npos) << out;
  EXPECT_NE(out.find("pingpong/pipe/64 "), std::string::npos) << out;
  EXPECT_NE(out.find(" 39.6 "), std::string::npos) << out;
  EXPECT_NE(out.find(" 2957 "), std::string::npos) << out;
}

// With repetitions a cell's line is its median; its repetitions alone print nothing,
// unless fewer than two were measured (then no median follows).
TEST(ConsoleTable, RepetitionsShowTheMedianOnly) {
  GRun median = cell("pingpong/pipe/64", 5000, 9000);
  median.run_type = GRun::RT_Aggregate;
  median.aggregate_name = "median";
  GRun mean = cell("pingpong/pipe/64", 7000, 9000);
  mean.run_type = GRun::RT_Aggregate;
  mean.aggregate_name = "mean";
  std::string out =
      feed(3, {{cell("pingpong/pipe/64", 4000, 9000), cell("pingpong/pipe/64", 5000, 9000),
                failed("pingpong/pipe/64", "peer died")},
               {mean, median}});
  EXPECT_EQ(out.find(" 4.00 "), std::string::npos) << out;
  EXPECT_EQ(out.find(" 7.00 "), std::string::npos) << out;
  EXPECT_NE(out.find(" 5.00 "), std::string::npos) << out;
  EXPECT_NE(out.find("1 of 3 repetitions failed"), std::string::npos) << out;
  EXPECT_NE(out.find("medians of 3 repetitions"), std::string::npos) << out;

  out =
      feed(3, {{failed("throughput/tcp/64", "peer died"), failed("throughput/tcp/64", "not run")}});
  EXPECT_NE(out.find("failed: peer died"), std::string::npos) << out;
}

}  // namespace
}  // namespace ipcbench
