#include "bench/gbench_run.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <iostream>

#include "bench/options.h"
#include "harness/cleanup.h"
#include "harness/error.h"
#include "version.h"

namespace ipcbench {
namespace {

constexpr long kMaxRepetitions = 100000;

std::string_view value_of(std::string_view arg) { return arg.substr(arg.find('=') + 1); }

}  // namespace

void check_benchmark_flags(const std::vector<std::string>& args) {
  int outs = 0;
  for (const std::string& arg : args) {
    std::string_view a = arg;
    if (!a.starts_with("--benchmark_") || a.find('=') == std::string_view::npos) continue;
    std::string_view key = a.substr(0, a.find('=')), v = value_of(a);
    if (key == "--benchmark_repetitions") {
      long n = 0;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || p != v.data() + v.size() || n < 1 || n > kMaxRepetitions)
        throw UsageError("--benchmark_repetitions: '" + std::string(v) +
                         "' is not a whole number from 1 to " + std::to_string(kMaxRepetitions));
    } else if (key == "--benchmark_min_time") {
      double s = 0;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), s);
      if (ec != std::errc() || p != v.data() + v.size() || !std::isfinite(s) || s <= 0 || s > 86400)
        throw UsageError("--benchmark_min_time: '" + std::string(v) +
                         "' is not a number of seconds in (0, 86400]; Google Benchmark " +
                         IPCBENCH_BENCHMARK_VERSION + " takes a bare number, e.g. 0.5");
    } else if (key == "--benchmark_format" || key == "--benchmark_out_format") {
      if (v != "json" && v != "console" && v != "csv")
        throw UsageError(std::string(key) + ": '" + std::string(v) +
                         "' is not one of json, console, csv");
    } else if (key == "--benchmark_out") {
      if (v.empty()) throw UsageError("--benchmark_out needs a file name");
      if (++outs > 1) throw UsageError("--benchmark_out is given more than once");
    }
  }
}

ResultsFile::ResultsFile(std::string path) : path_(std::move(path)) {
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw UsageError("--benchmark_out: '" + path_ + "' is a directory");
  std::size_t slash = path_.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash + 1);
  std::string leaf = slash == std::string::npos ? path_ : path_.substr(slash + 1);
  if (slash == std::string::npos) dir += "/";
  temp_ = dir + "." + leaf + ".partial-" + std::to_string(::getpid());
  int fd = ::open(temp_.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd < 0)
    throw UsageError("--benchmark_out: cannot write '" + path_ + "' (" + std::strerror(errno) +
                     ")");
  ::close(fd);
  slot_ = cleanup::add_path(temp_.c_str());
}

ResultsFile::~ResultsFile() {
  if (!committed_) ::unlink(temp_.c_str());
  cleanup::forget_path(slot_);
}

void ResultsFile::commit() {
  if (::rename(temp_.c_str(), path_.c_str()) != 0)
    throw SysError("rename " + temp_ + " to " + path_, errno);
  committed_ = true;
}

RunGate::RunGate(benchmark::BenchmarkReporter* inner, std::function<void()> before_first)
    : inner_(inner), before_first_(std::move(before_first)) {
  SetOutputStream(&std::cout);  // --benchmark_list_tests prints here
  SetErrorStream(&errors_);
}

bool RunGate::ReportContext(const Context& c) {
  started_ = true;
  if (before_first_) std::exchange(before_first_, nullptr)();
  return inner_->ReportContext(c);
}

std::string no_cell_reason(const std::string& library_errors, const std::string& filter) {
  if (library_errors.find("Could not compile") != std::string::npos) {
    std::string why = library_errors.substr(library_errors.find(':') + 1);
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    while (!why.empty() && why.front() == ' ') why.erase(0, 1);
    return "--benchmark_filter: '" + filter + "' is not a regular expression (" + why + ")";
  }
  return "--benchmark_filter: '" + filter + "' matches no cell (--benchmark_list_tests lists them)";
}

}  // namespace ipcbench
