// What ipcbench adds around Google Benchmark's own run.
//
// - The library's flags that the suite passes on are checked like the suite's own (one
//   line, exit 2, nothing written): a bad value must not end in a truncated or empty
//   results file.
// - The results file is written under a temporary name beside it and renamed into place
//   only when the run produced results, so a crash, a kill or a filter that matches
//   nothing never leaves a partial or empty file under the name the user gave.
// - RunGate calls a hook just before the first cell runs: never for --benchmark_list_tests,
//   --help, bad input, or a filter that matches nothing (the library returns before it).
#pragma once

#include <benchmark/benchmark.h>

#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace ipcbench {

// Throws UsageError naming the flag when a value of --benchmark_repetitions,
// --benchmark_min_time, --benchmark_format, --benchmark_out_format, --benchmark_color or
// --benchmark_out is one the library would misread or answer with its help and exit 0,
// or when --benchmark_out is given more than once. The library also takes each flag's
// default from the environment (BENCHMARK_REPETITIONS, …): those are checked the same way.
void check_benchmark_flags(const std::vector<std::string>& args);

// The value a flag of the library will have: the last "--benchmark_<name>=" in args, else
// the environment's BENCHMARK_<NAME>, else "".
std::string benchmark_flag(const std::vector<std::string>& args, const std::string& name);

class ResultsFile {
 public:
  // Creates "<dir>/.<name>.<stamp>.partial" beside `path` (the stamp of base/ipc_name.h),
  // first removing such files of this name whose run is provably gone (a SIGKILL leaves
  // one). It is removed by a signal (cleanup), by exit() (the library exits on some
  // input) and by the destructor, unless committed. Throws UsageError when it cannot be
  // written or `path` is a directory.
  explicit ResultsFile(std::string path);
  ~ResultsFile();
  ResultsFile(const ResultsFile&) = delete;
  ResultsFile& operator=(const ResultsFile&) = delete;

  const std::string& temp_path() const { return temp_; }
  // Checks that the library wrote the file whole (not empty; JSON ends with its closing
  // brace: the library ignores write errors such as a full disk), flushes it to disk and
  // renames it to the final name. Throws std::runtime_error when it is not whole, SysError
  // when the rename fails.
  void commit(bool json);

 private:
  std::string path_, temp_;
  int slot_ = -1;
  bool committed_ = false;
};

// A display reporter that passes everything to `inner`, calls before_first() once the
// library is about to run the first cell, and keeps the library's own error lines
// (filter errors) for the caller to word.
class RunGate : public benchmark::BenchmarkReporter {
 public:
  RunGate(benchmark::BenchmarkReporter* inner, std::function<void()> before_first);
  bool ReportContext(const Context& c) override;
  void ReportRuns(const std::vector<Run>& runs) override { inner_->ReportRuns(runs); }
  void Finalize() override { inner_->Finalize(); }
  std::string library_errors() const { return errors_.str(); }
  bool started() const { return started_; }  // the first cell was about to run

 private:
  benchmark::BenchmarkReporter* inner_;
  std::function<void()> before_first_;
  std::ostringstream errors_;
  bool started_ = false;
};

// How many cells the library will run for the current flags (its own filter), found by
// asking it to run them with reporters that decline (nothing runs, nothing is written).
// out_file: --benchmark_out is set (the library then wants a file reporter).
std::size_t matching_cells(bool out_file);

// The one line for a run the library ended before its first cell (a filter that is not
// a regular expression or matches nothing), from what it said.
std::string no_cell_reason(const std::string& library_errors, const std::string& filter);

}  // namespace ipcbench
