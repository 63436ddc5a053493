// ipcbench: the benchmark runner (and, with --peer, the peer process).
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/cleanup.h"
#include "base/process.h"
#include "base/run_dir.h"
#include "bench/clients.h"
#include "bench/console.h"
#include "bench/fanout.h"
#include "bench/floors.h"
#include "bench/gbench_run.h"
#include "bench/hgrm_files.h"
#include "bench/options.h"
#include "bench/peer.h"
#include "bench/session.h"
#include "bench/split.h"
#include "bench/workloads.h"
#include "harness/context.h"
#include "harness/placement.h"
#include "harness/sweep.h"
#include "harness/watchdog.h"
#include "transports/registry.h"
#include "version.h"

namespace ipcbench {
namespace {

// Starting a peer and connecting to it may take longer than a short --cell-timeout
// allows on a loaded machine (a gRPC server under a sanitizer, a broker connection): set-up
// gets at least this long; progress within a cell is still bounded by --cell-timeout.
constexpr std::chrono::milliseconds kMinSetupTimeout{10000};

// State shared by all cells of one run: the private directory, the watchdog, and the
// live peer session (reused while consecutive cells use the same transport).
class Runner {
 public:
  Runner(SuiteOptions opts, Placement placement, TransportSettings settings)
      : opts_(std::move(opts)), placement_(std::move(placement)), settings_(std::move(settings)) {}
  ~Runner() { session_.reset(); }

  void run_cell(benchmark::State& state, const Transport* t, Workload w, std::size_t size,
                const std::string& name) {
    hgrm_files::Cell cell(name, state);
    if (int sig = cleanup::interrupted()) {
      session_.reset();
      failed_.emplace(name, "interrupted");
      fail_repetition(state, "not run: interrupted by signal " + std::to_string(sig));
      return;
    }
    if (std::string why = placement_.spinning_refused(); t->info().wait == "spin" && !why.empty()) {
      failed_.emplace(name, why);
      fail_repetition(state, why);
      return;
    }
    // A cell that failed once is failed: its remaining repetitions are not run (a stalled
    // peer would cost the cell timeout each time), and say why.
    if (auto it = failed_.find(name); it != failed_.end()) {
      fail_repetition(state, "not run: an earlier repetition failed: " + it->second);
      return;
    }
    try {
      PeerSession& s = session_for(t);
      // The floor beside the cell (bench/floors.h), probed just before and just after it
      // on its placement; not across hosts (the far side is not this machine).
      const CellFloor floor = cell_floor_for(w == Workload::kPingpong ? "pingpong" : "throughput",
                                             t->info().wait, placement_);
      // Google Benchmark runs a repetition's cell several times while it looks for an
      // iteration count (each run longer, only the last reported, at least
      // --benchmark_min_time long): the first run takes the "before" probe, a run too
      // short to be reported hands it to the next, and a run that may be reported takes
      // the "after" probe. The short runs, together about as long as the reported one
      // at most, sit between the before probe and the reported run.
      double before = 0;
      if (!split_) {
        before = pending_before_ && pending_before_->first == name ? pending_before_->second
                                                                   : probe_beside(s, floor, size);
        pending_before_.reset();
      }
      dog_.arm(s.child().pid(), opts_.cell_timeout, [&s] { s.channel().abort(); });
      const CellFigure run =
          w == Workload::kPingpong ? run_pingpong(state, s, size) : run_throughput(state, s, size);
      dog_.disarm();
      // Later repetitions run once, with the first one's iteration count, and are
      // reported however long they took.
      const auto seen = reported_iters_.find(name);
      const bool repeat = seen != reported_iters_.end() && seen->second == state.max_iterations;
      if (!split_ && run.seconds < reported_seconds_ / 2 && !repeat) {
        pending_before_.emplace(name, before);
      } else if (!split_) {
        reported_iters_[name] = state.max_iterations;
        const double after = probe_beside(s, floor, size);
        record_cell_floor(state, floor, before, after, run.figure);
        state.SetLabel(cell_label(s) + " floor=" + cell_floor_name(floor) +
                       (host_changed(before, after) ? " host-changed" : ""));
      }
    } catch (const std::exception& e) {
      fail_session_cell(state, name, e);
    }
  }

  // One repetition of a clients cell: fresh processes and links each time (no session).
  void run_clients_cell(benchmark::State& state, const Transport* t, std::size_t size,
                        std::size_t clients, const std::string& model, const std::string& name) {
    hgrm_files::Cell cell(name, state);
    session_.reset();  // a ping-pong peer may be busy-polling a CPU
    std::string why;
    if (int sig = cleanup::interrupted())
      why = "not run: interrupted by signal " + std::to_string(sig);
    else if (auto it = failed_.find(name); it != failed_.end())
      why = "not run: an earlier repetition failed: " + it->second;
    else
      why = clients_refused(placement_, *t, clients, model);
    if (!why.empty()) {
      failed_.emplace(name, why);
      return fail_repetition(state, why);
    }
    try {
      if (!dir_) dir_.emplace();
      ManyConfig cfg{placement_,
                     settings_,
                     opts_.verify,
                     opts_.cell_timeout,
                     std::max(opts_.cell_timeout, kMinSetupTimeout),
                     many_window_,
                     "",
                     split_};
      run_clients(state, *dir_, cfg, *t, size, clients, model);
    } catch (const std::exception& e) {
      std::string msg = e.what();
      if (int sig = cleanup::interrupted())
        msg = "interrupted by signal " + std::to_string(sig) + ": " + msg;
      failed_.emplace(name, msg);
      fail_repetition(state, msg);
    }
  }
  // One repetition of a fanout cell: fresh processes and links each time (no session).
  void run_fanout_cell(benchmark::State& state, const Transport* t, std::size_t size,
                       std::size_t subscribers, const std::string& name) {
    hgrm_files::Cell cell(name, state);
    session_.reset();  // a ping-pong peer may be busy-polling a CPU
    std::string why;
    if (int sig = cleanup::interrupted())
      why = "not run: interrupted by signal " + std::to_string(sig);
    else if (auto it = failed_.find(name); it != failed_.end())
      why = "not run: an earlier repetition failed: " + it->second;
    else
      why = fanout_refused(placement_, *t, subscribers);
    if (!why.empty()) {
      failed_.emplace(name, why);
      return fail_repetition(state, why);
    }
    try {
      if (!dir_) dir_.emplace();
      ManyConfig cfg{placement_,
                     settings_,
                     opts_.verify,
                     opts_.cell_timeout,
                     std::max(opts_.cell_timeout, kMinSetupTimeout),
                     many_window_,
                     "",
                     split_};
      run_fanout(state, *dir_, cfg, *t, size, subscribers);
    } catch (const std::exception& e) {
      std::string msg = e.what();
      if (int sig = cleanup::interrupted())
        msg = "interrupted by signal " + std::to_string(sig) + ": " + msg;
      failed_.emplace(name, msg);
      fail_repetition(state, msg);
    }
  }
  // One repetition of a rate cell, on the transport's session (as ping-pong). A load
  // cell's rate is a share of the unpaced maximum, measured once per transport and size,
  // just before the first load cell that needs it.
  void run_rate_cell(benchmark::State& state, const Transport* t, std::size_t size, RateCell cell,
                     const std::string& name) {
    hgrm_files::Cell hgrm(name, state);
    std::string why;
    if (int sig = cleanup::interrupted())
      why = "not run: interrupted by signal " + std::to_string(sig);
    else if (auto it = failed_.find(name); it != failed_.end())
      why = "not run: an earlier repetition failed: " + it->second;
    else if (std::string refused = placement_.spinning_refused();
             t->info().wait == "spin" && !refused.empty())
      why = refused;
    if (!why.empty()) {
      if (why.starts_with("not run: interrupted")) session_.reset();
      failed_.emplace(name, why);
      return fail_repetition(state, why);
    }
    try {
      PeerSession& s = session_for(t);
      dog_.arm(s.child().pid(), opts_.cell_timeout, [&s] { s.channel().abort(); });
      cell.window = many_window_;
      if (cell.load_pct > 0) {
        auto key = std::make_pair(t, size);
        auto it = max_rates_.find(key);
        if (it == max_rates_.end())
          it = max_rates_.emplace(key, probe_max_rate(s, size, many_window_)).first;
        cell.max_rate = it->second;
      }
      run_rate(state, s, size, cell);
      dog_.disarm();
    } catch (const std::exception& e) {
      fail_session_cell(state, name, e);
    }
  }

  void set_many_window(std::chrono::nanoseconds w) { many_window_ = w; }
  // The shortest run Google Benchmark reports (--benchmark_min_time); 0 when it reports
  // every run (a fixed iteration count).
  void set_reported_seconds(double s) { reported_seconds_ = s; }
  void set_split(SplitClient* split) { split_ = split; }

  // cell name -> its first error, for every cell that failed.
  const std::map<std::string, std::string>& failures() const { return failed_; }
  // Ends the live peer session, if any (its peer may be busy-polling a CPU).
  void end_session() { session_.reset(); }

 private:
  // A cell on the transport's session failed: the session ends (it is never reused
  // after an error), and the error names how the peer ended and any interrupt.
  void fail_session_cell(benchmark::State& state, const std::string& name,
                         const std::exception& e) {
    dog_.disarm();
    std::string msg = session_ ? session_->explain(e.what()) : e.what();
    if (int sig = cleanup::interrupted())
      msg = "interrupted by signal " + std::to_string(sig) + ": " + msg;
    session_.reset();
    failed_.emplace(name, msg);
    fail_repetition(state, msg);
  }

  // One probe of the cell's floor. A peer that may busy-poll (any wait but blocking) is
  // stopped meanwhile, so that it leaves the probe its CPU.
  double probe_beside(PeerSession& s, CellFloor floor, std::size_t size) {
    StoppedProcess quiet(s.config().transport->info().wait != "blocking" ? s.child().pid() : -1);
    return probe_cell_floor(floor, placement_, size, opts_.cell_timeout);
  }

  PeerSession& session_for(const Transport* t) {
    if (session_ && session_->config().transport == t) return *session_;
    session_.reset();
    if (!dir_) dir_.emplace();
    std::size_t max_size = 0;
    for (std::size_t s : opts_.sizes) max_size = std::max(max_size, s);
    session_ = std::make_unique<PeerSession>(
        *dir_, dog_,
        SessionConfig{t, placement_, opts_.verify, max_size, opts_.cell_timeout,
                      std::max(opts_.cell_timeout, kMinSetupTimeout), "", settings_, split_});
    return *session_;
  }

  SuiteOptions opts_;
  Placement placement_;
  TransportSettings settings_;
  Watchdog dog_;
  std::optional<RunDir> dir_;
  std::unique_ptr<PeerSession> session_;
  SplitClient* split_ = nullptr;
  std::map<std::string, std::string> failed_;  // cell name -> its first error
  // The rate workload's unpaced maximum per transport and size, once measured.
  std::map<std::pair<const Transport*, std::size_t>, double> max_rates_;
  std::chrono::nanoseconds many_window_{std::chrono::milliseconds(500)};
  double reported_seconds_ = 0.5;
  // The before probe of a repetition whose last run was too short to be reported: the
  // cell's name and the probe's figure, for the next run of that cell.
  std::optional<std::pair<std::string, double>> pending_before_;
  // Per cell, the iteration count of the last run that took an after probe.
  std::map<std::string, benchmark::IterationCount> reported_iters_;
};

// The timed window of a many-party cell: --benchmark_min_time when given in seconds,
// else 0.5 s (--quick: 0.1 s); never under 0.1 s. With more processes than CPUs, a
// window of a few scheduler time slices may hold no round trip at all (seen with 8
// clients in 10 ms on 2 busy CPUs), a cell that measured the scheduler, not the link.
std::chrono::nanoseconds many_window(const std::string& min_time, bool quick) {
  constexpr std::chrono::nanoseconds kShortest = std::chrono::milliseconds(100);
  if (!min_time.empty() && min_time.back() != 'x') {
    double s = std::strtod(min_time.c_str(), nullptr);
    if (s > 0)
      return std::max(kShortest, std::chrono::nanoseconds(static_cast<std::int64_t>(s * 1e9)));
  }
  return quick ? kShortest : std::chrono::milliseconds(500);
}

// The manual time of the shortest run Google Benchmark reports: --benchmark_min_time in
// seconds (0.05 s with --quick, else the library's 0.5 s); 0 for a fixed iteration count
// ("<N>x"), where every run is reported.
double reported_seconds(const std::string& min_time, bool quick) {
  if (min_time.empty()) return quick ? 0.05 : 0.5;
  if (min_time.back() == 'x') return 0;
  return std::max(0.0, std::strtod(min_time.c_str(), nullptr));
}

// Google Benchmark's JSON, except that the coefficient-of-variation aggregate of a
// counter whose repetitions are all 0 (a spinning transport's context switches) is
// written as 0 rather than NaN (0/0), which strict JSON parsers reject. Our counters are
// never negative, so a zero mean means no variation.
class FiniteJsonReporter : public benchmark::JSONReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    std::vector<Run> copy = runs;
    for (Run& r : copy)
      for (auto& [name, counter] : r.counters)
        if (!std::isfinite(counter.value)) counter.value = 0;
    JSONReporter::ReportRuns(copy);
  }
};

// --help: the suite's options (Google Benchmark alone would answer --help with its own
// list and exit); --help=benchmark: the library's flags.
void print_help() { std::fputs(usage_text(), stdout); }
void print_library_help() {
  std::fputs("Google Benchmark's own flags (ipcbench --help: the suite's options):\n", stdout);
  std::fflush(stdout);
  benchmark::PrintDefaultHelp();
}

// ipcbench --serve[=IPV4:PORT] [--token-file=F] (bench/split.h).
int run_serve_main(int argc, char** argv) {
  const std::string_view first = argv[1];
  std::string where = first.starts_with("--serve=") ? std::string(first.substr(8)) : "";
  std::string token_file;
  for (int i = 2; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a.starts_with("--token-file=") && a.size() > 13) {
      token_file = a.substr(13);
    } else {
      std::fprintf(stderr, "ipcbench: --serve: unknown option '%s' (--token-file=F only)\n",
                   argv[i]);
      return 2;
    }
  }
  return serve_main(where, token_file);
}

int run_peer_main(int argc, char** argv) {
  PeerArgs a;
  for (int i = 2; i < argc; ++i) {
    std::string_view s = argv[i];
    auto val = [&s](std::string_view key) -> std::optional<std::string> {
      if (s.rfind(key, 0) == 0) return std::string(s.substr(key.size()));
      return std::nullopt;
    };
    if (auto v = val("--transport="))
      a.transport = *v;
    else if (auto v2 = val("--address="))
      a.addresses.push_back(*v2);
    else if (auto v3 = val("--max-size="))
      a.max_size = parse_size(*v3);
    else if (auto v4 = val("--role="))
      a.role = *v4;
    else if (auto v5 = val("--setup-timeout-ms="))
      a.setup_timeout = std::chrono::milliseconds(parse_size(*v5));
    else if (auto v6 = val("--client-id="))
      a.client_id = static_cast<int>(parse_size(*v6));
    else if (auto v7 = val("--control-fd="))
      a.control_fd = static_cast<int>(parse_size(*v7));
    else if (s == "--verify")
      a.verify = true;
    else {
      std::fprintf(stderr, "ipcbench peer: unknown option '%s'\n", argv[i]);
      return 2;
    }
  }
  return run_peer(a);
}

// A rate or a percentage in a cell name: "50000", "12.5".
std::string format_rate(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o;
}

// The transports' own descriptions as a JSON array (for --list-transports=json and the
// results' context, so a report can show the qualitative criteria beside the figures).
std::string transports_json(const std::vector<const Transport*>& list, bool pretty) {
  std::string out = "[";
  for (std::size_t k = 0; k < list.size(); ++k) {
    const TransportInfo& i = list[k]->info();
    std::string models;
    for (const std::string& m : i.server_models)
      models += (models.empty() ? "\"" : ", \"") + json_escape(m) + "\"";
    out += std::string(pretty ? "\n  " : "") + "{\"name\": \"" + json_escape(i.name) +
           "\", \"family\": \"" + family_name(i.family) + "\", \"paradigm\": \"" +
           json_escape(i.paradigm) +
           "\", \"kernel_boundaries\": " + (i.kernel_boundaries ? "true" : "false") +
           ", \"reach\": \"" + json_escape(i.reach) + "\", \"coupling\": \"" +
           json_escape(i.coupling) + "\", \"max_message\": " + std::to_string(i.max_message) +
           ", \"summary\": \"" + json_escape(i.summary) + "\", \"wait\": \"" + json_escape(i.wait) +
           "\", \"built_on\": \"" + json_escape(i.built_on) + "\", \"needs\": \"" +
           json_escape(i.needs) + "\", \"daemon\": \"" + json_escape(i.daemon) +
           "\", \"one_per_machine\": " + (i.one_per_machine ? "true" : "false") +
           ", \"peer_kill\": \"" + json_escape(i.peer_kill) + "\", \"encoding\": \"" +
           json_escape(i.encoding) + "\", \"fan_in\": \"" + json_escape(i.fan_in) +
           "\", \"server_models\": [" + models + "], \"fan_out\": \"" + json_escape(i.fan_out) +
           "\", \"pipelining\": \"" + json_escape(i.pipelining) + "\"}" +
           (k + 1 < list.size() ? "," : "");
  }
  return out + (pretty ? "\n]\n" : "]");
}

void print_transports(SuiteOptions::List mode) {
  if (mode == SuiteOptions::List::kJson) {
    std::fputs(transports_json(all_transports(), true).c_str(), stdout);
    return;
  }
  for (const Transport* t : all_transports()) {
    const TransportInfo& i = t->info();
    // Who frames a byte stream: the suite's length prefix, or the protocol (HTTP, HTTP/2,
    // JSON-RPC's Content-Length).
    const char* framing = i.kernel_boundaries ? "message boundaries kept"
                          : i.encoding.empty() || i.encoding == "framing"
                              ? "byte stream, framed by ipcbench"
                              : "byte stream, framed by its protocol";
    std::printf("%-14s %s; %s; %s; %s; wait: %s; max message %zu bytes; %s%s%s\n", i.name.c_str(),
                i.paradigm.c_str(), framing, i.reach.c_str(), i.coupling.c_str(), i.wait.c_str(),
                i.max_message, i.summary.c_str(),
                i.built_on.empty() ? "" : ("; built on " + i.built_on).c_str(),
                i.encoding.empty() ? "" : ("; encoding " + i.encoding).c_str());
  }
}

// Freed heap memory stays mapped. Libraries that allocate per message (ZeroMQ, gRPC,
// protobuf) would otherwise take page faults whenever glibc hands the top of the heap
// back to the kernel and the next message grows it again: a cost set by allocation
// history, not by the transport (zmq-ipc 64 KiB throughput: 1.3x from this alone).
// Runner and peers are the same binary, so both sides run with it.
constexpr const char* kMallocTuning =
    "M_MMAP_THRESHOLD=32 MiB, M_TRIM_THRESHOLD=512 MiB (freed heap stays mapped)";
void keep_heap_mapped() {
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 512 << 20);
}

// The value of a boolean Google Benchmark flag ("--name", "--name=VALUE"), read as the
// library reads it: false for 0, f, n, false, no, off (any case), true otherwise.
bool flag_value(std::string_view arg) {
  std::size_t eq = arg.find('=');
  if (eq == std::string_view::npos) return true;
  std::string v(arg.substr(eq + 1));
  for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return !(v == "0" || v == "f" || v == "n" || v == "false" || v == "no" || v == "off");
}

int main_impl(int argc, char** argv) {
  keep_heap_mapped();
  cleanup::install_signal_handlers();
  if (argc > 1 && std::strcmp(argv[1], "--peer") == 0) return run_peer_main(argc, argv);
  if (argc > 1 &&
      (std::strcmp(argv[1], "--serve") == 0 || std::string_view(argv[1]).starts_with("--serve=")))
    return run_serve_main(argc, argv);
  for (int i = 1; i < argc; ++i)
    if (std::string_view a = argv[i]; a == "--help" || a.starts_with("--help=") || a == "-h") {
      if (a == "--help=benchmark") {
        print_library_help();
      } else if (a.starts_with("--help=")) {
        std::fprintf(stderr, "ipcbench: %s: say --help or --help=benchmark\n", argv[i]);
        return 2;
      } else {
        print_help();
      }
      return 0;
    }
  const std::vector<std::string> given(argv + 1, argv + argc);

  // --quick shortens every cell through the library's own flag (a per-benchmark
  // MinTime() would add "/min_time:…" to every name). Repetitions are interleaved at
  // random across cells by default: back to back, a cell's repetitions share one moment
  // of a noisy machine, and a comparison of two runs then mistakes the machine's drift
  // between them for a change. An explicit flag wins in both cases.
  const bool min_time_given = !benchmark_flag(given, "min_time").empty();
  const std::string reps = benchmark_flag(given, "repetitions");
  const long repetitions = reps.empty() ? 1 : std::strtol(reps.c_str(), nullptr, 10);
  bool quick = false;
  std::optional<bool> interleave;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--quick") quick = true;
    if (a.starts_with("--benchmark_enable_random_interleaving")) interleave = flag_value(a);
  }
  std::vector<char*> args(argv, argv + argc);
  static char quick_min_time[] = "--benchmark_min_time=0.05";
  static char interleaving[] = "--benchmark_enable_random_interleaving=true";
  if (quick && !min_time_given) args.insert(args.begin() + 1, quick_min_time);
  if (!interleave && repetitions > 1) args.insert(args.begin() + 1, interleaving);
  const bool interleaved = interleave.value_or(repetitions > 1);
  // The results go to a temporary file beside the one asked for (see ResultsFile), also
  // when the environment names it (BENCHMARK_OUT).
  const std::string out_path = benchmark_flag(given, "out");
  const std::string out_format = benchmark_flag(given, "out_format");
  const bool json_file = !out_path.empty() && (out_format.empty() || out_format == "json");
  std::optional<ResultsFile> results;
  std::string temp_out_arg;
  try {
    check_benchmark_flags(given);  // before anything reads them, a file included
    if (!out_path.empty()) {
      results.emplace(out_path);
      temp_out_arg = "--benchmark_out=" + results->temp_path();
      ::unsetenv("BENCHMARK_OUT");
      std::erase_if(args,
                    [](char* a) { return std::string_view(a).starts_with("--benchmark_out="); });
      args.push_back(temp_out_arg.data());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipcbench: %s\n", e.what());
    return 2;
  }
  args.push_back(nullptr);
  argc = static_cast<int>(args.size()) - 1;
  argv = args.data();

  SuiteOptions opts;
  Placement placement;
  try {
    benchmark::Initialize(&argc, argv, print_help);
    std::vector<std::string> rest(argv + 1, argv + argc);
    opts = parse_suite_options(rest);
    placement = resolve_placement(opts.pin_spec);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipcbench: %s\n", e.what());
    return 2;
  }
  if (opts.list != SuiteOptions::List::kNone) {
    print_transports(opts.list);
    return 0;
  }
  try {
    if (!opts.hgrm_dir.empty()) {
      // A warm-up's calls would be numbered as a repetition (bench/hgrm_files.h).
      const std::string warmup = benchmark_flag(given, "min_warmup_time");
      if (!warmup.empty() && std::strtod(warmup.c_str(), nullptr) > 0)
        throw UsageError("--hgrm-dir cannot be used with --benchmark_min_warmup_time");
      hgrm_files::use_directory(opts.hgrm_dir);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipcbench: %s\n", e.what());
    return 2;
  }
  // Split mode: the server is reached before anything runs; the links listen on this
  // host's address on the control connection, and the peers there are not pinned.
  std::optional<SplitClient> split;
  if (!opts.connect.empty()) {
    try {
      split.emplace(opts.connect, read_token_file(opts.token_file));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ipcbench: %s\n", e.what());
      return 2;
    }
    if (!opts.bind_given) opts.bind = split->local_address();
    placement.peer_cpu = -1;
    placement.note += std::string(placement.note.empty() ? "" : "; ") +
                      "split mode: the peer runs on " + split->server() + ", not pinned";
  }
  if (!placement.note.empty()) std::fprintf(stderr, "ipcbench: note: %s\n", placement.note.c_str());
  pin_this_thread(placement.client_cpu);

  cleanup::enable_graceful_interrupt();
  TransportSettings settings = transport_settings(opts);
  if (split) settings.peer_server_address = split->server_address();
  Runner runner(opts, placement, settings);
  if (split) runner.set_split(&*split);
  // With interleaved repetitions a floor may follow a matrix cell: its peer goes first.
  if (opts.floors)
    register_floors(placement, opts.sizes, opts.cell_timeout, [&runner] { runner.end_session(); });
  runner.set_many_window(many_window(benchmark_flag(given, "min_time"), opts.quick));
  runner.set_reported_seconds(reported_seconds(benchmark_flag(given, "min_time"), opts.quick));
  for (Workload w : opts.workloads) {
    if (w == Workload::kClients) {
      std::string without, refused, too_large;
      for (const Transport* t : opts.transports) {
        if (t->info().fan_in.empty()) {
          without += (without.empty() ? "" : ", ") + t->info().name;
          continue;
        }
        for (std::size_t size : opts.many_sizes)
          for (std::size_t n : opts.clients)
            for (const std::string& model : t->info().server_models) {
              std::string name = "clients/" + t->info().name + "/" + std::to_string(size) +
                                 "/clients:" + std::to_string(n) + "/server:" + model +
                                 (split ? "/link:cross-host" : "");
              // The default client counts leave out what this placement must refuse
              // (busy-polling sides sharing a CPU); counts the user named are run and
              // refused as error rows.
              if (!opts.clients_given && !clients_refused(placement, *t, n, model).empty()) {
                refused += (refused.empty() ? "" : ", ") + name;
                continue;
              }
              // Likewise the default sizes a form cannot carry (sizes the user named are
              // run, and the form refuses them with an error row saying why).
              const std::size_t limit = t->info().shared_queue_max_message;
              if (!opts.many_sizes_given && model == "shared-queue" && limit > 0 && size > limit) {
                too_large += (too_large.empty() ? "" : ", ") + name + " (at most " +
                             std::to_string(limit) + " bytes)";
                continue;
              }
              auto* b = benchmark::RegisterBenchmark(
                  name.c_str(), [&runner, t, size, n, model, name](benchmark::State& st) {
                    runner.run_clients_cell(st, t, size, n, model, name);
                  });
              b->UseManualTime()->Iterations(1)->Unit(benchmark::kMicrosecond);
            }
      }
      if (!without.empty())
        std::fprintf(stderr, "ipcbench: note: no clients cells for %s (no fan-in form)\n",
                     without.c_str());
      if (!refused.empty())
        std::fprintf(stderr,
                     "ipcbench: note: left out, as their busy-polling sides would share a CPU "
                     "here: %s\n",
                     refused.c_str());
      if (!too_large.empty())
        std::fprintf(stderr,
                     "ipcbench: note: left out, as their form carries no message that large: "
                     "%s\n",
                     too_large.c_str());
      continue;
    }
    if (w == Workload::kRate) {
      std::string without;
      for (const Transport* t : opts.transports) {
        if (t->info().pipelining.empty()) {
          without += (without.empty() ? "" : ", ") + t->info().name;
          continue;
        }
        for (std::size_t size : opts.many_sizes) {
          std::vector<std::pair<std::string, RateCell>> cells;
          for (double r : opts.rates)
            cells.emplace_back("rate:" + format_rate(r),
                               RateCell{.rate = r, .poisson = opts.poisson});
          for (double l : opts.loads)
            cells.emplace_back("load:" + format_rate(l),
                               RateCell{.load_pct = l, .poisson = opts.poisson});
          for (const auto& [suffix, cell] : cells) {
            std::string name = "rate/" + t->info().name + "/" + std::to_string(size) + "/" +
                               suffix + (split ? "/link:cross-host" : "");
            auto* b = benchmark::RegisterBenchmark(
                name.c_str(), [&runner, t, size, cell, name](benchmark::State& st) {
                  runner.run_rate_cell(st, t, size, cell, name);
                });
            b->UseManualTime()->Iterations(1)->Unit(benchmark::kMicrosecond);
          }
        }
      }
      if (!without.empty())
        std::fprintf(stderr,
                     "ipcbench: note: no rate cells for %s (no pipelined form: pipelining in "
                     "--list-transports=json)\n",
                     without.c_str());
      continue;
    }
    if (w == Workload::kFanout) {
      std::string without;
      for (const Transport* t : opts.transports) {
        if (t->info().fan_out.empty()) {
          without += (without.empty() ? "" : ", ") + t->info().name;
          continue;
        }
        for (std::size_t size : opts.many_sizes)
          for (std::size_t n : opts.subscribers) {
            std::string name = "fanout/" + t->info().name + "/" + std::to_string(size) +
                               "/subscribers:" + std::to_string(n) +
                               (split ? "/link:cross-host" : "");
            auto* b = benchmark::RegisterBenchmark(
                name.c_str(), [&runner, t, size, n, name](benchmark::State& st) {
                  runner.run_fanout_cell(st, t, size, n, name);
                });
            b->UseManualTime()->Iterations(1)->Unit(benchmark::kMicrosecond);
          }
      }
      if (!without.empty())
        std::fprintf(stderr, "ipcbench: note: no fanout cells for %s (no fan-out form)\n",
                     without.c_str());
      continue;
    }
    for (const Transport* t : opts.transports) {
      for (std::size_t size : opts.sizes) {
        std::string name = std::string(workload_name(w)) + "/" + t->info().name + "/" +
                           std::to_string(size) + (split ? "/link:cross-host" : "");
        auto* b = benchmark::RegisterBenchmark(name.c_str(),
                                               [&runner, t, w, size, name](benchmark::State& st) {
                                                 runner.run_cell(st, t, w, size, name);
                                               });
        b->UseManualTime()->Unit(benchmark::kMicrosecond);
      }
    }
  }

  benchmark::AddCustomContext("ipcbench_version", IPCBENCH_VERSION);
  benchmark::AddCustomContext("ipcbench_git_commit", IPCBENCH_GIT_COMMIT);
  benchmark::AddCustomContext("ipcbench_build_type", IPCBENCH_BUILD_TYPE);
  benchmark::AddCustomContext("malloc_tuning", kMallocTuning);
  benchmark::AddCustomContext("compiler", IPCBENCH_COMPILER);
  benchmark::AddCustomContext("benchmark_library_version", IPCBENCH_BENCHMARK_VERSION);
  for (const auto& [k, v] : machine_context()) benchmark::AddCustomContext(k, v);
  benchmark::AddCustomContext("pin_mode", placement.mode);
  benchmark::AddCustomContext("bind_address", settings.bind_address);
  benchmark::AddCustomContext("pin_client_cpu", std::to_string(placement.client_cpu));
  benchmark::AddCustomContext("pin_peer_cpu", std::to_string(placement.peer_cpu));
  if (split) {  // the far host's own context, as its server reported it
    benchmark::AddCustomContext("link", "cross-host");
    benchmark::AddCustomContext("split_server", split->server());
    benchmark::AddCustomContext("split_client_nic", split->nic());
    benchmark::AddCustomContext("split_server_context", split->server_context().dump());
  }
  if (!placement.note.empty()) benchmark::AddCustomContext("pin_note", placement.note);
  benchmark::AddCustomContext("verify_payload", opts.verify ? "true" : "false");
  benchmark::AddCustomContext("random_interleaving", interleaved ? "true" : "false");
  benchmark::AddCustomContext("message_header_bytes", std::to_string(kHeaderBytes));
  benchmark::AddCustomContext("latency_metric",
                              "rtt_* = full round trip (request + reply), one CLOCK_MONOTONIC "
                              "read per round trip, taken while the next request is in flight");
  benchmark::AddCustomContext("oneway_metric",
                              "oneway_* (fanout) = receipt time in a subscriber - publish time "
                              "carried in the message, both CLOCK_MONOTONIC on this one host");
  benchmark::AddCustomContext("wait_strategy",
                              "per cell: wait= in the label (blocking, spin, spin-then-futex)");
  benchmark::AddCustomContext(
      "cell_floor",
      "pingpong and throughput cells: floor_before/floor_after = a probe of the floor named "
      "by floor= in the label, just before/after each repetition on the cell's CPUs (p50 ns "
      "per round trip, or bytes/s); floor_ratio = cost / floor cost; host_changed = 1 when "
      "the probes differ by more than host_change_margin");
  char margin[32];
  std::snprintf(margin, sizeof margin, "%g", kHostChangeMargin);
  benchmark::AddCustomContext("host_change_margin", margin);
  if (std::find(opts.workloads.begin(), opts.workloads.end(), Workload::kRate) !=
      opts.workloads.end()) {
    benchmark::AddCustomContext("rate_metric",
                                "lat_* = corrected (receipt - intended send time), unc_* = "
                                "uncorrected (receipt - actual send time), lag_* = actual - "
                                "intended send time; a cell is saturated when its achieved "
                                "(reply) rate is below 95 % of its schedule's rate");
    benchmark::AddCustomContext("ipcbench_slo_p99_ns", std::to_string(opts.slo_p99_ns));
  }
  benchmark::AddCustomContext("cell_timeout_ms", std::to_string(opts.cell_timeout.count()));
  benchmark::AddCustomContext("ipcbench_transports", transports_json(opts.transports, false));

  // The table (bench/console.h) unless a --benchmark_format (or BENCHMARK_FORMAT) asks
  // for Google Benchmark's own output.
  std::unique_ptr<benchmark::BenchmarkReporter> shown;
  if (benchmark_flag(given, "format").empty())
    shown = std::make_unique<ConsoleTable>(repetitions, matching_cells(results.has_value()),
                                           ::isatty(STDERR_FILENO) ? stderr : nullptr);
  else
    shown.reset(benchmark::CreateDefaultDisplayReporter());
  // Leftovers of dead runs are swept just before the first cell: never for a listing or
  // a filter that matches nothing.
  RunGate display(shown.get(), [] {
    hgrm_files::make_directory();
    if (auto swept = sweep_stale_objects(); !swept.empty())
      std::fprintf(stderr, "ipcbench: removed %zu object(s) left by runs that no longer exist\n",
                   swept.size());
  });
  FiniteJsonReporter json_reporter;
  const std::size_t cells =
      benchmark::RunSpecifiedBenchmarks(&display, json_file ? &json_reporter : nullptr);
  std::size_t failed = runner.failures().size() + failed_floors();
  benchmark::Shutdown();
  if (cells == 0) {
    std::fprintf(stderr, "ipcbench: %s\n",
                 no_cell_reason(display.library_errors(), benchmark::GetBenchmarkFilter()).c_str());
    return 2;
  }
  if (!display.library_errors().empty()) std::fputs(display.library_errors().c_str(), stderr);
  // Also after an interrupt: the finished cells are whole. A listing writes no file.
  if (results && display.started()) results->commit(json_file);
  if (int sig = cleanup::interrupted()) {
    std::fprintf(stderr, "ipcbench: interrupted by signal %d; finished cells are in the results\n",
                 sig);
    return 128 + sig;
  }
  if (failed > 0) {
    // Each failed cell's error once more at the end, where a CI log's tail shows it.
    for (const auto& [name, why] : runner.failures())
      std::fprintf(stderr, "ipcbench: %s: %s\n", name.c_str(), why.c_str());
    std::fprintf(stderr, "ipcbench: %zu cell(s) failed; see error_message in the results\n",
                 failed);
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace ipcbench

int main(int argc, char** argv) {
  try {
    return ipcbench::main_impl(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipcbench: internal error: %s\n", e.what());
    return 3;
  }
}
