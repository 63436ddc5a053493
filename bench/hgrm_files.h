// --hgrm-dir: each cell's latency histogram as an HdrHistogram percentile distribution file
// (harness/hgrm.h). Files are <dir>/<cell>.<metric>.hgrm, the cell's name with every
// character other than letters, digits, '.', '-' and '_' made '_'; a cell's second and
// later repetitions add .rep2, .rep3 ... before .hgrm. Values are in microseconds. A file
// of the same name is written over; no other file in the directory is touched. A failed
// repetition leaves no file (its error row in the results says why).
//
// Google Benchmark may call a cell several times in its first repetition, with more
// iterations each time, and reports only the last call; later repetitions are one call
// each, with the first repetition's final count. So a call with more iterations than the
// cell's previous one continues its repetition (its file is written over), and any other
// call starts the next. A warm-up (--benchmark_min_warmup_time) would add calls that
// count as one more repetition, so main refuses it together with --hgrm-dir.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "harness/histogram.h"

namespace ipcbench::hgrm_files {

// Checks that `dir` is a directory this process can write to, or does not exist in one
// (it is made by make_directory), and saves histograms there from then on. Throws
// std::invalid_argument naming what is wrong.
void use_directory(const std::string& dir);
// Makes the directory if it does not exist yet: just before the first cell, so a listing,
// a filter that matches nothing or bad input leaves none. Throws SysError.
void make_directory();

// The cell (and its call, `state`) the histograms saved while it lives belong to. When the
// call ends with an error, the files of its repetition are removed.
class Cell {
 public:
  Cell(std::string name, const benchmark::State& state);
  ~Cell();
  Cell(const Cell&) = delete;
  Cell& operator=(const Cell&) = delete;

 private:
  const benchmark::State& state_;
};

// Writes the current cell's histogram of `metric` ("rtt", "oneway"); nothing when no
// directory was set or no cell is current. Throws SysError when the file cannot be written
// (the cell fails: what was asked for is missing).
void save(std::string_view metric, const Histogram& h);

}  // namespace ipcbench::hgrm_files
