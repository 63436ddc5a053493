#include "bench/console.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cmath>
#include <iostream>

namespace ipcbench {
namespace {

constexpr std::size_t kColumn = 12;  // width of a figure column, the gap included

std::string column(const std::string& text) {
  return std::string(text.size() < kColumn ? kColumn - text.size() : 1, ' ') + text;
}

const double* counter(const benchmark::BenchmarkReporter::Run& run, const char* name) {
  auto it = run.counters.find(name);
  return it == run.counters.end() || !std::isfinite(it->second.value) ? nullptr : &it->second.value;
}

std::string cell_name(const benchmark::BenchmarkReporter::Run& run) {
  benchmark::BenchmarkName n = run.run_name;
  n.time_type.clear();  // "/manual_time", "/real_time": how it was timed, not which cell
  return n.str();
}

std::string clock_text(std::chrono::seconds s) {
  char buf[32];
  long t = static_cast<long>(s.count());
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  return buf;
}

}  // namespace

std::string fmt_figure(double x) {
  char buf[32];
  double a = std::fabs(x);
  if (a >= 100)
    std::snprintf(buf, sizeof buf, "%.0f", x);
  else if (a >= 10)
    std::snprintf(buf, sizeof buf, "%.1f", x);
  else if (a >= 1)
    std::snprintf(buf, sizeof buf, "%.2f", x);
  else if (a == 0)
    return "0";
  else
    std::snprintf(buf, sizeof buf, "%.*f", 2 - static_cast<int>(std::floor(std::log10(a))), x);
  return buf;
}

std::string fmt_rate(double per_second) {
  for (auto [div, suffix] : {std::pair{1e9, "G"}, {1e6, "M"}, {1e3, "k"}})
    if (per_second >= div) return fmt_figure(per_second / div) + suffix;
  return fmt_figure(per_second);
}

ConsoleTable::ConsoleTable(long repetitions, std::size_t cells, std::FILE* progress)
    : repetitions_(repetitions), cells_(cells), progress_(progress) {}

std::string ConsoleTable::header() const {
  std::string name = "cell";
  name.resize(std::max(name.size() + 1, name_width_), ' ');
  return name + column("rtt p50 us") + column("rtt p99 us") + column("msg/s") + column("GB/s") +
         column("cpu us/msg") +
         (repetitions_ > 1 ? "  (medians of " + std::to_string(repetitions_) + " repetitions)"
                           : "");
}

std::string ConsoleTable::row(const Run& run) const {
  std::string line = cell_name(run);
  line.resize(std::max(line.size() + 1, name_width_), ' ');
  if (run.error_occurred) {
    std::string why = run.error_message;
    for (char& c : why)
      if (c == '\n') c = ' ';
    return line + "  failed: " + why;
  }
  const double* p50 = counter(run, "rtt_p50_ns");
  const double* p99 = counter(run, "rtt_p99_ns");
  const double* msgs = counter(run, "items_per_second");
  const double* bytes = counter(run, "bytes_per_second");
  const double* cpu_client = counter(run, "cpu_client_ns_per_msg");
  const double* cpu_peer = counter(run, "cpu_peer_ns_per_msg");
  if (const double* per_call = counter(run, "ns_per_call"); per_call && !p50 && !bytes)
    return line + "  " + fmt_figure(*per_call) + " ns per call";
  line += column(p50 ? fmt_figure(*p50 / 1e3) : "");
  line += column(p99 ? fmt_figure(*p99 / 1e3) : "");
  line += column(msgs ? fmt_rate(*msgs) : "");
  line += column(bytes ? fmt_figure(*bytes / 1e9) : "");
  // rate cells: the sender's spinning to send times is the load generator's, not the
  // transport's.
  const double* pacing = counter(run, "cpu_pacing_ns_per_msg");
  line += column(cpu_client && cpu_peer
                     ? fmt_figure((*cpu_client + *cpu_peer - (pacing ? *pacing : 0)) / 1e3)
                     : "");
  // a link through a daemon the suite started (dbus): the daemon's CPU, apart from the two
  // processes' in the column.
  if (const double* daemon = counter(run, "cpu_daemon_ns_per_msg"))
    line += "  daemon cpu " + fmt_figure(*daemon / 1e3) + " us/msg";
  // fanout cells: msg/s is every subscriber's deliveries together; the latency is one way.
  if (const double* ow50 = counter(run, "oneway_p50_ns"), *ow99 = counter(run, "oneway_p99_ns"),
      *lost = counter(run, "lost_msgs");
      ow50 && ow99 && lost)
    line += "  one-way p50 " + fmt_figure(*ow50 / 1e3) + " us, p99 " + fmt_figure(*ow99 / 1e3) +
            " us; lost " + fmt_figure(*lost);
  else if (lost && !ow50)  // split mode: the subscribers are on another host's clock
    line += "  one-way not measured (two hosts); lost " + fmt_figure(*lost);
  // rate cells: the corrected latency at the offered rate, and whether it was met.
  if (const double* offered = counter(run, "offered_rate"),
      *achieved = counter(run, "achieved_rate"), *lat50 = counter(run, "lat_p50_ns"),
      *lat99 = counter(run, "lat_p99_ns"), *unc99 = counter(run, "unc_p99_ns"),
      *sat = counter(run, "saturated");
      offered && achieved && lat50 && lat99 && unc99 && sat)
    line += "  offered " + fmt_rate(*offered) + "/s, achieved " + fmt_rate(*achieved) +
            "/s; corrected p50 " + fmt_figure(*lat50 / 1e3) + " us, p99 " +
            fmt_figure(*lat99 / 1e3) + " us (uncorrected p99 " + fmt_figure(*unc99 / 1e3) + " us)" +
            (*sat > 0.5 ? "; SATURATED" : "");
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

bool ConsoleTable::ReportContext(const Context& context) {
  // The library's width fits the longest full name: "/manual_time" or "/real_time" (at
  // least 10 characters) that row() leaves out, and "_median" with repetitions.
  std::size_t drop = 10 + (repetitions_ > 1 ? 7 : 0);
  name_width_ = context.name_field_width > drop + 4 ? context.name_field_width - drop : 4;
  if (context.cpu_info.scaling == benchmark::CPUInfo::ENABLED)
    GetErrorStream() << "ipcbench: note: CPU frequency scaling is on; figures may vary\n";
  print(header());
  draw_progress("");
  return true;
}

void ConsoleTable::ReportRuns(const std::vector<Run>& runs) {
  if (runs.empty()) return;
  const std::string name = cell_name(runs.front());
  if (runs.front().run_type == Run::RT_Aggregate) {
    for (const Run& r : runs)
      if (r.aggregate_name == "median") {
        auto note = failed_note_.find(name);
        print(row(r) + (note == failed_note_.end() ? "" : "  (" + note->second + ")"));
      }
    ++done_;
    draw_progress(name);
    return;
  }
  std::size_t failed = 0;
  for (const Run& r : runs) failed += r.error_occurred;
  if (repetitions_ > 1 && runs.size() - failed >= 2) {
    // The median aggregate follows at once (Google Benchmark aggregates two or more
    // measured repetitions): its line is the cell's.
    if (failed > 0)
      failed_note_[name] =
          std::to_string(failed) + " of " + std::to_string(runs.size()) + " repetitions failed";
    return;
  }
  if (runs.size() == 1 || failed == runs.size()) {
    print(row(runs.front()));
  } else {  // one measured repetition among failed ones
    for (const Run& r : runs)
      if (!r.error_occurred)
        print(row(r) + "  (" + std::to_string(failed) + " of " + std::to_string(runs.size()) +
              " repetitions failed)");
  }
  ++done_;
  draw_progress(name);
}

void ConsoleTable::Finalize() { clear_progress(); }

void ConsoleTable::print(const std::string& line) {
  clear_progress();
  GetOutputStream() << line << '\n' << std::flush;
}

void ConsoleTable::draw_progress(const std::string& last) {
  if (!progress_) return;
  using std::chrono::seconds;
  auto elapsed = std::chrono::duration_cast<seconds>(std::chrono::steady_clock::now() - start_);
  std::string text = std::to_string(done_) + "/" + std::to_string(cells_) + " cells done, " +
                     clock_text(elapsed) + " elapsed";
  if (done_ > 0 && done_ < cells_)
    text += ", about " +
            clock_text(seconds(elapsed.count() * static_cast<long>(cells_ - done_) /
                               static_cast<long>(done_))) +
            " left";
  if (!last.empty()) text += "; last: " + last;
  winsize ws{};
  std::size_t width =
      ::ioctl(::fileno(progress_), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
  if (text.size() >= width) text.resize(width - 1);
  clear_progress();
  std::fputs(text.c_str(), progress_);
  std::fflush(progress_);
  shown_ = text.size();
}

void ConsoleTable::clear_progress() {
  if (!progress_ || shown_ == 0) return;
  std::fprintf(progress_, "\r%*s\r", static_cast<int>(shown_), "");
  std::fflush(progress_);
  shown_ = 0;
}

}  // namespace ipcbench
