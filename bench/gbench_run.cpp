#include "bench/gbench_run.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "base/cleanup.h"
#include "base/error.h"
#include "base/fd.h"
#include "base/ipc_name.h"
#include "bench/options.h"
#include "version.h"

namespace ipcbench {
namespace {

constexpr long kMaxRepetitions = 100000;

// The checks of one flag's value; `where` names it as the user gave it.
void check_flag(const std::string& key, std::string_view v, const std::string& where) {
  if (key == "repetitions") {
    long n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || p != v.data() + v.size() || n < 1 || n > kMaxRepetitions)
      throw UsageError(where + ": '" + std::string(v) + "' is not a whole number from 1 to " +
                       std::to_string(kMaxRepetitions));
  } else if (key == "min_time") {
    double s = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), s);
    if (ec != std::errc() || p != v.data() + v.size() || !std::isfinite(s) || s <= 0 || s > 86400)
      throw UsageError(where + ": '" + std::string(v) +
                       "' is not a number of seconds in (0, 86400]; Google Benchmark " +
                       IPCBENCH_BENCHMARK_VERSION + " takes a bare number, e.g. 0.5");
  } else if (key == "format" || key == "out_format") {
    if (v != "json" && v != "console" && v != "csv")
      throw UsageError(where + ": '" + std::string(v) + "' is not one of json, console, csv");
  } else if (key == "color" || key == "out") {
    if (v.empty()) throw UsageError(where + " needs a value");
  }
}

std::string env_name(const std::string& key) {
  std::string e = "BENCHMARK_" + key;
  for (char& c : e) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return e;
}

// The results file not yet renamed into place, for exit() (see ResultsFile).
std::string g_pending;
void remove_pending() {
  if (!g_pending.empty()) ::unlink(g_pending.c_str());
}

}  // namespace

void check_benchmark_flags(const std::vector<std::string>& args) {
  for (const char* key : {"repetitions", "min_time", "format", "out_format", "color", "out"})
    if (const char* v = std::getenv(env_name(key).c_str()))
      check_flag(key, v, "environment variable " + env_name(key));
  int outs = 0;
  for (const std::string& arg : args) {
    std::string_view a = arg;
    if (!a.starts_with("--benchmark_") || a.find('=') == std::string_view::npos) continue;
    std::string key(
        a.substr(std::strlen("--benchmark_"), a.find('=') - std::strlen("--benchmark_")));
    check_flag(key, a.substr(a.find('=') + 1), "--benchmark_" + key);
    if (key == "out" && ++outs > 1) throw UsageError("--benchmark_out is given more than once");
  }
}

std::string benchmark_flag(const std::vector<std::string>& args, const std::string& name) {
  const std::string prefix = "--benchmark_" + name + "=";
  for (auto it = args.rbegin(); it != args.rend(); ++it)
    if (it->starts_with(prefix)) return it->substr(prefix.size());
  const char* v = std::getenv(env_name(name).c_str());
  return v ? v : "";
}

ResultsFile::ResultsFile(std::string path) : path_(std::move(path)) {
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw UsageError("--benchmark_out: '" + path_ + "' is a directory");
  std::size_t slash = path_.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash);
  std::string leaf = slash == std::string::npos ? path_ : path_.substr(slash + 1);
  const std::string stem = "." + leaf + ".", tail = ".partial";
  // A dead run's temporary file for this name: stamped, this user's, a plain file.
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (!n.starts_with(stem) || !n.ends_with(tail)) continue;
      auto s = RunStamp::parse(n.substr(stem.size(), n.size() - stem.size() - tail.size()));
      std::string p = dir + "/" + std::string(n);
      if (s && std::string_view(s->text()).size() + stem.size() + tail.size() == n.size() &&
          fate_of(*s) == Fate::kGone && ::lstat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
          st.st_uid == ::geteuid())
        ::unlink(p.c_str());
    }
    ::closedir(d);
  }
  temp_ = dir + "/" + stem + RunStamp::self().text() + tail;
  int fd = ::open(temp_.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd < 0)
    throw UsageError("--benchmark_out: cannot write '" + path_ + "' (" + std::strerror(errno) +
                     ")");
  ::close(fd);
  slot_ = cleanup::add_path(temp_.c_str());
  g_pending = temp_;
  static const bool registered = (std::atexit(remove_pending), true);
  (void)registered;
}

ResultsFile::~ResultsFile() {
  if (!committed_) ::unlink(temp_.c_str());
  g_pending.clear();
  cleanup::forget_path(slot_);
}

void ResultsFile::commit(bool json) {
  UniqueFd fd(::open(temp_.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) throw SysError("open " + temp_, errno);
  struct stat st {};
  check_sys(::fstat(fd.get(), &st), "fstat " + temp_);
  char last = 0;
  if (json) {  // the last byte that is not white space
    for (off_t at = st.st_size - 1; at >= 0 && at >= st.st_size - 64; --at)
      if (::pread(fd.get(), &last, 1, at) != 1 || !std::isspace(static_cast<unsigned char>(last)))
        break;
  }
  if (st.st_size == 0 || (json && last != '}'))
    throw std::runtime_error("the results file was not written whole (" + temp_ +
                             "; a full disk?); nothing was written to " + path_);
  check_sys(::fsync(fd.get()), "fsync " + temp_);
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

namespace {
class Decline : public benchmark::BenchmarkReporter {
 public:
  Decline() {
    SetOutputStream(&sink_);
    SetErrorStream(&sink_);
  }
  bool ReportContext(const Context&) override { return false; }
  void ReportRuns(const std::vector<Run>&) override {}

 private:
  std::ostringstream sink_;
};
}  // namespace

std::size_t matching_cells(bool out_file) {
  Decline display, file;
  return benchmark::RunSpecifiedBenchmarks(&display, out_file ? &file : nullptr);
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
