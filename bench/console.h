// What a person sees during a run (the results file is written apart, unchanged).
//
// - stdout: a header, then one aligned line per finished cell with the figures a person
//   reads: ping-pong RTT p50 and p99, throughput messages/s and GB/s, CPU per message of
//   both processes, a floor's own figure, or a failed cell's error. With repetitions,
//   one line per cell holding the medians (Google Benchmark's median aggregate); a cell
//   with fewer than two measured repetitions shows the one it has, or its error.
// - stderr, only when it is a terminal: one line updated in place with cells done, the
//   total and an estimate of the time left; cleared at the end. A cell counts once all
//   its repetitions are done (Google Benchmark 1.7.1 reports them together), so with
//   interleaved repetitions most cells finish late and the estimate runs high early. Not on a
//   terminal (a log), there is none: the stdout lines already say what finished.
#pragma once

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace ipcbench {

// Numbers as the report writes them: 3 or 4 significant digits, no exponent.
std::string fmt_figure(double x);
// A rate with a k/M/G suffix (decimal), e.g. "310k", "1.23M".
std::string fmt_rate(double per_second);

class ConsoleTable : public benchmark::BenchmarkReporter {
 public:
  // repetitions: of every cell (--benchmark_repetitions); cells: how many will run (the
  // progress line's total); progress: a terminal to draw the progress line on, or nullptr.
  ConsoleTable(long repetitions, std::size_t cells, std::FILE* progress);
  bool ReportContext(const Context& context) override;
  void ReportRuns(const std::vector<Run>& runs) override;
  void Finalize() override;

  // The table's line for one run (an iteration or the median aggregate), without newline.
  std::string row(const Run& run) const;
  std::string header() const;

 private:
  void print(const std::string& line);
  void draw_progress(const std::string& last);
  void clear_progress();

  long repetitions_;
  std::size_t cells_, done_ = 0;
  std::FILE* progress_;
  std::size_t shown_ = 0;  // length of the progress line on the terminal
  std::size_t name_width_ = 24;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::map<std::string, std::string> failed_note_;  // cell -> "k of N repetitions failed"
};

}  // namespace ipcbench
