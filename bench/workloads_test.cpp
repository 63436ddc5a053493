// A failed repetition must not abort Google Benchmark or cost the run its other results.
#include "bench/workloads.h"

#include <benchmark/benchmark.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace ipcbench {
namespace {

// Collects every run (repetitions and aggregates) of the benchmarks it is given.
class Collector : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>& runs) override {
    all.insert(all.end(), runs.begin(), runs.end());
  }
  std::vector<Run> all;
};

// Runs one benchmark of 50 iterations x 4 repetitions (random interleaving on, as
// bench.sh uses it) whose second repetition fails at `where`; exits 0 only when the run
// completed with that repetition errored and the other three measured.
[[noreturn]] void run_failing_second_repetition(bool before_loop) {
  static int calls = 0;
  benchmark::RegisterBenchmark("fail_repetition_test",
                               [before_loop](benchmark::State& st) {
                                 const bool fail = ++calls == 2;
                                 try {
                                   if (fail && before_loop)
                                     throw std::runtime_error("set-up failed");
                                   int done = 0;
                                   for (auto _ : st)
                                     if (fail && ++done == 10)
                                       throw std::runtime_error("peer went away");
                                 } catch (const std::exception& e) {
                                   fail_repetition(st, e.what());
                                 }
                               })
      ->Iterations(50)
      ->Repetitions(4);
  char arg0[] = "test", interleave[] = "--benchmark_enable_random_interleaving=true";
  char* argv[] = {arg0, interleave, nullptr};
  int argc = 2;
  benchmark::Initialize(&argc, argv);
  Collector c;
  benchmark::RunSpecifiedBenchmarks(&c);
  int errored = 0, measured = 0;
  for (const auto& r : c.all) {
    if (r.run_type != benchmark::BenchmarkReporter::Run::RT_Iteration) continue;
    if (r.error_occurred)
      errored += r.error_message == (before_loop ? "set-up failed" : "peer went away");
    else
      measured += r.iterations == 50;
  }
  std::exit(errored == 1 && measured == 3 ? 0 : 3);
}

TEST(FailRepetitionDeathTest, FailureBeforeTheLoopKeepsTheRun) {
  EXPECT_EXIT(run_failing_second_repetition(true), ::testing::ExitedWithCode(0), "");
}

TEST(FailRepetitionDeathTest, FailureInsideTheLoopKeepsTheRun) {
  EXPECT_EXIT(run_failing_second_repetition(false), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace ipcbench
