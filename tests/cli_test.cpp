// The ipcbench command line, run as a subprocess: bad input, listings, and a smoke run
// of the quick matrix over every transport whose JSON is then checked cell by cell.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "tests/test_support.h"
#include "transports/encodings.h"
#include "transports/registry.h"

namespace ipcbench {
namespace {

namespace fs = std::filesystem;

struct Result {
  int status = -1;
  std::string out, err;
};

using testing_support::slurp;

using Scratch = testing_support::Scratch;

// Runs argv (argv[0] a path) with stdout/stderr captured.
Result run_argv(std::vector<std::string> argv, const Scratch& s) {
  Result r;
  pid_t pid = testing_support::spawn_captured(std::move(argv), s);
  if (pid < 0) return r;
  r.status = testing_support::wait_exit(pid);
  r.out = slurp(s.dir / "stdout");
  r.err = slurp(s.dir / "stderr");
  return r;
}

Result run(const std::vector<std::string>& args, const Scratch& s) {
  std::vector<std::string> argv = {IPCBENCH_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_argv(argv, s);
}

int lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

void expect_usage_error(const std::vector<std::string>& args, const std::string& needle) {
  Scratch s;
  Result r = run(args, s);
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_EQ(r.err.rfind("ipcbench: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(fs::is_empty(s.dir / "tmp")) << "a refused run left files behind";
}

TEST(Cli, BindNeedsAnIpv4Address) {
  expect_usage_error({"--bind=localhost"}, "--bind: 'localhost' is not an IPv4 address");
  expect_usage_error({"--bind"}, "--bind needs a value");
}

TEST(Cli, UnknownTransport) {
  expect_usage_error({"--transports=pipe,carrier-pigeon"}, "carrier-pigeon");
}
TEST(Cli, SizeZero) { expect_usage_error({"--sizes=64,0"}, "size 0"); }
TEST(Cli, SizeBelowHeader) { expect_usage_error({"--sizes=8"}, "header"); }
TEST(Cli, SizeAboveLimit) { expect_usage_error({"--sizes=1G"}, "limit"); }
TEST(Cli, MalformedSize) { expect_usage_error({"--sizes=4X"}, "4X"); }
TEST(Cli, UnknownWorkload) { expect_usage_error({"--workloads=pingpong,fanin"}, "fanin"); }
TEST(Cli, BadSubscriberCount) {
  for (const char* n : {"0", "65", "x", "2,,4"})
    expect_usage_error({std::string("--subscribers=") + n}, "--subscribers");
}
TEST(Cli, UnknownFlag) { expect_usage_error({"--frobnicate"}, "--frobnicate"); }
TEST(Cli, BadPin) { expect_usage_error({"--pin=sideways"}, "--pin"); }
TEST(Cli, UnwritableOutput) {
  expect_usage_error({"--benchmark_out=/nonexistent-dir/x.json"}, "/nonexistent-dir/x.json");
}

// The library's flags are checked like the suite's own: one line, exit 2, and no results
// file at all (neither under its name nor a temporary one beside it).
TEST(Cli, BadBenchmarkFlagsLeaveNoResultsFile) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--benchmark_repetitions=-3", "--benchmark_repetitions: '-3'"},
      {"--benchmark_repetitions=0", "--benchmark_repetitions: '0'"},
      {"--benchmark_repetitions=2x", "--benchmark_repetitions: '2x'"},
      {"--benchmark_min_time=0.1s", "--benchmark_min_time: '0.1s'"},
      {"--benchmark_min_time=0", "--benchmark_min_time: '0'"},
      {"--benchmark_out_format=xml", "--benchmark_out_format: 'xml'"},
      {"--benchmark_format=yaml", "--benchmark_format: 'yaml'"},
      {"--benchmark_filter=[", "is not a regular expression"},
      {"--benchmark_filter=no-cell-is-named-so", "matches no cell"},
      {"--benchmark_out=" + std::string("/tmp"), "is a directory"},
  };
  for (const auto& [flag, needle] : cases) {
    Scratch s;
    const fs::path out = s.dir / "out.json";
    Result r = run({"--transports=pipe", "--sizes=64", "--benchmark_min_time=0.01", flag,
                    "--benchmark_out=" + out.string()},
                   s);
    if (flag.starts_with("--benchmark_out=")) r = run({flag}, s);
    EXPECT_EQ(r.status, 2) << flag << ": " << r.err;
    EXPECT_EQ(lines(r.err), 1) << flag << ": " << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << flag << ": " << r.err;
    for (const auto& e : fs::directory_iterator(s.dir))
      EXPECT_TRUE(e.path().filename() == "tmp" || e.path().filename() == "stdout" ||
                  e.path().filename() == "stderr" || e.path().filename() == ".ipcbench-run")
          << flag << " left " << e.path();
  }
}

// The library takes its flags' defaults from BENCHMARK_* variables: checked the same way,
// and BENCHMARK_OUT is written whole or not at all like --benchmark_out.
TEST(Cli, BenchmarkEnvironmentIsCheckedLikeTheFlags) {
  for (const char* env : {"BENCHMARK_REPETITIONS=0", "BENCHMARK_MIN_TIME=1s",
                          "BENCHMARK_FORMAT=xml", "BENCHMARK_OUT_FORMAT=yaml"}) {
    Scratch s;
    Result r = run_argv({"/usr/bin/env", env, IPCBENCH_BINARY, "--transports=pipe", "--sizes=64",
                         "--benchmark_out=" + (s.dir / "out.json").string()},
                        s);
    EXPECT_EQ(r.status, 2) << env << ": " << r.err;
    // The library may warn first: it reads the variables before main() runs.
    EXPECT_EQ(r.err.find("ipcbench: "), r.err.rfind("ipcbench: ")) << env << ": " << r.err;
    EXPECT_NE(r.err.find("ipcbench: environment variable"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(s.dir / "out.json")) << env;
  }
  Scratch s;
  Result r = run_argv(
      {"/usr/bin/env", "BENCHMARK_OUT=" + (s.dir / "env.json").string(), IPCBENCH_BINARY,
       "--transports=pipe", "--sizes=64", "--workloads=pingpong", "--benchmark_min_time=0.01"},
      s);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(slurp(s.dir / "env.json")).at("benchmarks").size(), 1u);
}

// A results file the library could not write whole (a full file system) is not renamed
// into place: exit 3, no file. Needs a private mount namespace (root, unshare) for a tiny
// file system; skipped where that is not allowed.
TEST(Cli, AResultsFileNotWrittenWholeIsNotKept) {
  Scratch s;
  const fs::path full = s.dir / "full";
  fs::create_directories(full);
  Result r =
      run_argv({"/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c",
                "mount -t tmpfs -o size=4k tmpfs \"$1\" || exit 77; shift; exec \"$@\"", "sh",
                full.string(), IPCBENCH_BINARY, "--transports=pipe,uds", "--sizes=64",
                "--benchmark_min_time=0.01", "--benchmark_out=" + (full / "r.json").string()},
               s);
  if (r.status == 77 || r.err.find("unshare") != std::string::npos)
    GTEST_SKIP() << "no private mount namespace here: " << r.err;
  EXPECT_EQ(r.status, 3) << r.err;
  EXPECT_NE(r.err.find("not written whole"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(full / "r.json"));
}

// --help answers with the suite's options in groups, with defaults and examples, -h
// too, and exits 0; --help=benchmark gives the library's own flags.
TEST(Cli, HelpGroupsTheOptionsAndPointsAtTheLibrarysFlags) {
  for (const char* flag : {"--help", "-h"}) {
    Scratch s;
    Result r = run({"--transports=pipe", flag}, s);
    EXPECT_EQ(r.status, 0) << r.err;
    for (const char* part :
         {"What to run:", "How to run it:", "Output:", "Listing:", "Examples:", "--transports=a,b",
          "default: cross", "default: 127.0.0.1", "--help=benchmark", "Exit status"})
      EXPECT_NE(r.out.find(part), std::string::npos) << flag << " lacks " << part;
    EXPECT_EQ(r.out.find("[--benchmark_filter=<regex>]"), std::string::npos) << flag;
  }
  Scratch s;
  Result r = run({"--help=benchmark"}, s);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("[--benchmark_filter=<regex>]"), std::string::npos) << r.out;
  expect_usage_error({"--help=everything"}, "--help=benchmark");
}

// The console of a run: a header and one line per cell with its figures, read from the
// results file; nothing machine-readable on stdout or stderr, and no progress line when
// stderr is not a terminal. The file keeps every cell and the transports' descriptions.
TEST(Cli, ConsoleShowsOneLinePerCellWithItsFigures) {
  Scratch s;
  const fs::path out = s.dir / "out.json";
  Result r = run({"--transports=pipe", "--sizes=64,4K", "--floors",
                  "--benchmark_filter=pipe|syscall|memcpy/64/|cacheline_rtt",
                  "--benchmark_min_time=0.01", "--benchmark_out=" + out.string()},
                 s);
  ASSERT_EQ(r.status, 0) << r.out << r.err;  // the console names each failed cell and why
  EXPECT_EQ(r.out.find_first_of("{}[]\""), std::string::npos) << r.out;
  EXPECT_EQ(r.err.find_first_of("{}[]\""), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("cells done"), std::string::npos) << r.err;
  std::map<std::string, std::vector<std::string>> rows;
  std::istringstream in(r.out);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line.rfind("cell ", 0), 0u) << line;
  for (const char* h : {"rtt p50 us", "rtt p99 us", "msg/s", "GB/s", "cpu us/msg"})
    EXPECT_NE(line.find(h), std::string::npos) << line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string x; words >> x;) w.push_back(x);
    ASSERT_FALSE(w.empty());
    EXPECT_FALSE(rows.count(w[0])) << "two lines for " << w[0];
    rows[w[0]] = w;
  }
  auto near = [](const std::string& shown, double value) {
    double v = std::stod(shown);
    if (shown.back() == 'k') v *= 1e3;
    if (shown.back() == 'M') v *= 1e6;
    return std::abs(v - value) <= 0.01 * value;
  };
  auto j = nlohmann::json::parse(slurp(out));
  ASSERT_EQ(j.at("benchmarks").size(), rows.size()) << r.out;
  for (const auto& b : j.at("benchmarks")) {
    std::string name = b.at("name");
    name = name.substr(0, name.find("/manual_time"));
    name = name.substr(0, name.find("/real_time"));
    ASSERT_TRUE(rows.count(name)) << name << " has no line\n" << r.out;
    const auto& w = rows[name];
    if (name.starts_with("pingpong/")) {
      ASSERT_EQ(w.size(), 4u) << name;
      EXPECT_TRUE(near(w[1], b.at("rtt_p50_ns").get<double>() / 1e3)) << name << " " << w[1];
      EXPECT_TRUE(near(w[2], b.at("rtt_p99_ns").get<double>() / 1e3)) << name << " " << w[2];
      EXPECT_TRUE(near(w[3], (b.at("cpu_client_ns_per_msg").get<double>() +
                              b.at("cpu_peer_ns_per_msg").get<double>()) /
                                 1e3))
          << name << " " << w[3];
    } else if (name.starts_with("throughput/")) {
      ASSERT_EQ(w.size(), 4u) << name;
      EXPECT_TRUE(near(w[1], b.at("items_per_second").get<double>())) << name << " " << w[1];
      EXPECT_TRUE(near(w[2], b.at("bytes_per_second").get<double>() / 1e9)) << name << " " << w[2];
    } else if (name.starts_with("clients/")) {  // rtt p50, p99, round trips per second
      ASSERT_EQ(w.size(), 4u) << name;
      // A many-party window is never under 0.1 s (it was asked for 0.01 s).
      EXPECT_EQ(b.at("real_time").get<double>(), 1e5) << name << " " << b.at("time_unit");
      EXPECT_TRUE(near(w[1], b.at("rtt_p50_ns").get<double>() / 1e3)) << name << " " << w[1];
      EXPECT_TRUE(near(w[2], b.at("rtt_p99_ns").get<double>() / 1e3)) << name << " " << w[2];
      EXPECT_TRUE(near(w[3], b.at("items_per_second").get<double>())) << name << " " << w[3];
    } else if (name.starts_with("fanout/")) {
      // msg/s (every subscriber's deliveries), then "one-way p50 X us, p99 Y us; lost N".
      ASSERT_EQ(w.size(), 11u) << name;
      EXPECT_EQ(b.at("real_time").get<double>(), 1e5) << name << " " << b.at("time_unit");
      EXPECT_TRUE(near(w[1], b.at("delivered_per_s").get<double>())) << name << " " << w[1];
      EXPECT_EQ(w[2] + " " + w[3], "one-way p50") << name;
      EXPECT_TRUE(near(w[4], b.at("oneway_p50_ns").get<double>() / 1e3)) << name << " " << w[4];
      EXPECT_TRUE(near(w[7], b.at("oneway_p99_ns").get<double>() / 1e3)) << name << " " << w[7];
      EXPECT_EQ(w[9] + " " + w[10], "lost 0") << name;
    } else if (name == "floor/syscall") {
      ASSERT_EQ(w.size(), 5u) << name;
      EXPECT_TRUE(near(w[1], b.at("ns_per_call").get<double>())) << name << " " << w[1];
    } else if (name == "floor/cacheline_rtt") {
      ASSERT_EQ(w.size(), 3u) << name;
      EXPECT_TRUE(near(w[1], b.at("rtt_p50_ns").get<double>() / 1e3)) << name << " " << w[1];
    } else {
      ASSERT_EQ(w.size(), 2u) << name;
      EXPECT_TRUE(near(w[1], b.at("bytes_per_second").get<double>() / 1e9)) << name << " " << w[1];
    }
  }
  auto transports =
      nlohmann::json::parse(j.at("context").at("ipcbench_transports").get<std::string>());
  ASSERT_EQ(transports.size(), 1u);
  EXPECT_EQ(transports.at(0).at("name"), "pipe");
}

// On a terminal, stderr carries a progress line updated in place: cells done / total.
TEST(Cli, ProgressGoesToATerminalsStderr) {
  Scratch s;
  int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  ASSERT_GE(master, 0);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  winsize ws{};
  ws.ws_col = 200;
  ::ioctl(master, TIOCSWINSZ, &ws);
  int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
  ASSERT_GE(slave, 0);
  const std::string stdout_path = (s.dir / "stdout").string();
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, slave, 2);
  posix_spawn_file_actions_addclose(&fa, master);
  std::vector<std::string> args = {
      IPCBENCH_BINARY,        "--transports=pipe",         "--sizes=64,4K",
      "--workloads=pingpong", "--benchmark_min_time=0.01", "--benchmark_repetitions=2"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  ASSERT_EQ(::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  ::close(slave);
  std::string tty;
  char buf[4096];
  for (ssize_t n; (n = ::read(master, buf, sizeof buf)) > 0;) tty.append(buf, n);
  ::close(master);
  EXPECT_EQ(testing_support::wait_exit(pid), 0) << tty;
  for (const char* part : {"0/2 cells done", "1/2 cells done", "2/2 cells done", "left", "\r"})
    EXPECT_NE(tty.find(part), std::string::npos) << part << " not in " << tty;
  EXPECT_EQ(tty.find('\n'), std::string::npos) << "the progress line is not updated in place";
  std::string table = slurp(s.dir / "stdout");
  EXPECT_NE(table.find("medians of 2 repetitions"), std::string::npos) << table;
  EXPECT_EQ(lines(table), 3) << table;  // the header and one line per cell
}

// Google Benchmark's own console output stays one flag away.
TEST(Cli, LibrarysConsoleFormatOnRequest) {
  Scratch s;
  Result r = run({"--transports=pipe", "--sizes=64", "--workloads=pingpong",
                  "--benchmark_min_time=0.01", "--benchmark_format=console"},
                 s);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("Iterations"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("pingpong/pipe/64/manual_time"), std::string::npos) << r.out;
}

// Two busy-polling sides on one CPU measure the scheduler: such cells and spinning floors
// are error rows that say why; a blocking transport on one CPU is measured.
TEST(Cli, SpinningSidesOnOneCpuAreNotMeasured) {
  Scratch s;
  const fs::path out = s.dir / "out.json";
  Result r = run({"--pin=same", "--transports=pipe,shm-spin", "--workloads=pingpong", "--sizes=64",
                  "--floors", "--benchmark_filter=pingpong|floor/cacheline",
                  "--benchmark_min_time=0.01", "--benchmark_out=" + out.string()},
                 s);
  EXPECT_EQ(r.status, 1) << r.err;
  auto j = nlohmann::json::parse(slurp(out));
  std::set<std::string> refused, measured;
  for (const auto& b : j.at("benchmarks")) {
    std::string name = b.at("name");
    name = name.substr(0, name.find("/manual_time"));
    if (b.value("error_occurred", false)) {
      EXPECT_NE(b.value("error_message", "").find("busy-poll"), std::string::npos) << b.dump();
      refused.insert(name);
    } else {
      measured.insert(name);
    }
  }
  EXPECT_EQ(refused, (std::set<std::string>{"pingpong/shm-spin/64", "floor/cacheline_rtt",
                                            "floor/cacheline_pair_rtt"}));
  EXPECT_EQ(measured, std::set<std::string>{"pingpong/pipe/64"});
  for (const std::string& cell : refused) {  // the console line says why
    std::size_t at = r.out.find(cell + " ");
    ASSERT_NE(at, std::string::npos) << cell << "\n" << r.out;
    std::string line = r.out.substr(at, r.out.find('\n', at) - at);
    EXPECT_NE(line.find("failed: "), std::string::npos) << line;
    EXPECT_NE(line.find("busy-poll"), std::string::npos) << line;
  }
}

// /dev/shm too small for a shm link: refused up front. Needs a private mount namespace
// (root, unshare) to shrink /dev/shm; skipped where that is not allowed.
TEST(Cli, DevShmTooSmall) {
  Scratch s;
  Result r = run_argv({"/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c",
                       "mount -t tmpfs -o size=1m tmpfs /dev/shm || exit 77; exec \"$0\" \"$@\"",
                       IPCBENCH_BINARY, "--transports=pipe,shm-spin", "--sizes=64"},
                      s);
  if (r.status == 77 || r.err.find("unshare") != std::string::npos)
    GTEST_SKIP() << "no private mount namespace here: " << r.err;
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("/dev/shm has"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(Cli, ListTransportsNamesEveryTransportFirst) {
  Scratch s;
  Result r = run({"--list-transports"}, s);
  ASSERT_EQ(r.status, 0) << r.err;
  std::set<std::string> names;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) names.insert(line.substr(0, line.find(' ')));
  for (const Transport* t : all_transports())
    EXPECT_TRUE(names.count(t->info().name)) << t->info().name;
  EXPECT_EQ(names.size(), all_transports().size());
}

TEST(Cli, ListTransportsJsonParses) {
  Scratch s;
  Result r = run({"--list-transports=json"}, s);
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), all_transports().size());
  for (const auto& t : j) {
    EXPECT_TRUE(t.at("name").is_string());
    const Transport* known = find_transport(t.at("name").get<std::string>());
    ASSERT_NE(known, nullptr) << t.at("name");
    EXPECT_EQ(t.at("family").get<std::string>(), family_name(known->info().family));
    EXPECT_TRUE(t.at("kernel_boundaries").is_boolean());
    EXPECT_GT(t.at("max_message").get<std::uint64_t>(), 0u);
    EXPECT_EQ(t.at("encoding").get<std::string>(), known->info().encoding);
    EXPECT_EQ(t.at("pipelining").get<std::string>(), known->info().pipelining);
  }
}

TEST(Cli, BenchmarkListTestsShowsTheMatrix) {
  Scratch s;
  Result r = run({"--benchmark_list_tests", "--transports=pipe,tcp", "--sizes=64,4K"}, s);
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* n : {"pingpong/pipe/64", "pingpong/tcp/4096", "throughput/pipe/4096",
                        "clients/pipe/64/clients:8/server:event-loop",
                        "fanout/pipe/64/subscribers:1", "fanout/tcp/4096/subscribers:8"})
    EXPECT_NE(r.out.find(n), std::string::npos) << n << "\n" << r.out;
  // pingpong and throughput: 2 transports x 2 sizes each; clients: 2 transports x 2 sizes
  // x 3 client counts (1,4,8) x 2 server models; fanout: 2 transports x 2 sizes x 3
  // subscriber counts.
  EXPECT_EQ(lines(r.out), 8 + 24 + 12);
  EXPECT_EQ(r.out.find("clients:2/"), std::string::npos) << r.out;
}

// A name's stem names every variant of it, each transport runs once however often it is
// named, and a stem that is only part of a variant's name is unknown.
TEST(Cli, AStemNamesEveryVariantOnce) {
  Scratch s;
  Result r = run({"--benchmark_list_tests", "--transports=mmap,pipe,mmap-futex,pipe",
                  "--workloads=pingpong", "--sizes=64"},
                 s);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "pingpong/mmap-spin/64/manual_time\npingpong/mmap-futex/64/manual_time\n"
            "pingpong/pipe/64/manual_time\n");
  expect_usage_error({"--transports=mma"}, "unknown transport 'mma'");
  expect_usage_error({"--transports=pipe-"}, "unknown transport 'pipe-'");
}

// The quick matrix over every transport: every cell present, none errored, counters there,
// nothing left in the run's temp directory.
TEST(Cli, QuickSmokeRunOverEveryTransport) {
  Scratch s;
  fs::path out = s.dir / "out.json";
  Result r = run(
      {"--quick", "--verify", "--benchmark_out=" + out.string(), "--benchmark_out_format=json"}, s);
  ASSERT_TRUE(fs::exists(out)) << r.err;
  auto j = nlohmann::json::parse(slurp(out));
  // The failed cells first, so a failing status names them.
  for (const auto& b : j.at("benchmarks"))
    EXPECT_FALSE(b.value("error_occurred", false))
        << b.at("name").get<std::string>() << ": " << b.value("error_message", "");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto& ctx = j.at("context");
  for (const char* k : {"ipcbench_version", "ipcbench_git_commit", "kernel", "cpu_model",
                        "pin_mode", "dev_shm_bytes", "run_dir_fs", "benchmark_library_version"})
    EXPECT_TRUE(ctx.contains(k)) << k;
  std::set<std::string> seen;
  for (const auto& b : j.at("benchmarks")) {
    std::string name = b.at("name");
    EXPECT_NE(b.value("label", "").find("pin="), std::string::npos) << name;
    if (name.rfind("pingpong/", 0) == 0) {
      for (const char* c :
           {"rtt_p50_ns", "rtt_p90_ns", "rtt_p99_ns", "rtt_p999_ns", "rtt_max_ns", "rtt_mean_ns"}) {
        ASSERT_TRUE(b.contains(c)) << name << " lacks " << c;
        EXPECT_GT(b.at(c).get<double>(), 0.0) << name << " " << c;
      }
      EXPECT_LE(b.at("rtt_p50_ns").get<double>(), b.at("rtt_p99_ns").get<double>());
      EXPECT_LE(b.at("rtt_p99_ns").get<double>(), b.at("rtt_max_ns").get<double>());
    } else if (name.rfind("fanout/", 0) == 0) {
      for (const char* c :
           {"msg_bytes", "subscribers", "busy_processes", "cpus", "oversubscribed",
            "published_per_s", "delivered_per_s", "delivered_per_s_min", "oneway_p50_ns",
            "oneway_p90_ns", "oneway_p99_ns", "oneway_p999_ns", "oneway_max_ns", "oneway_mean_ns",
            "slowest_subscriber_p99_ns", "lost_msgs", "drops_by_design", "cpu_publisher_ns_per_msg",
            "cpu_subscriber_ns_per_msg"})
        EXPECT_TRUE(b.contains(c)) << name << " lacks " << c;
      EXPECT_GT(b.value("delivered_per_s", 0.0), 0.0) << name;
      if (b.value("drops_by_design", 0.0) == 0) {
        EXPECT_EQ(b.value("lost_msgs", -1.0), 0.0) << name;
      }
    } else if (name.rfind("clients/", 0) == 0) {
      EXPECT_GT(b.at("items_per_second").get<double>(), 0.0) << name;
    } else {
      EXPECT_GT(b.at("bytes_per_second").get<double>(), 0.0) << name;
      EXPECT_GT(b.at("items_per_second").get<double>(), 0.0) << name;
    }
    std::string cell = name.substr(0, name.find("/manual_time"));
    seen.insert(cell);
  }
  // fanout: every transport with a fan-out form, at --quick's 64 B and 1 and 4 subscribers.
  for (const Transport* t : all_transports())
    if (t->info().needs.empty() && !t->info().fan_out.empty())
      for (const char* n : {"1", "4"}) {
        std::string cell = "fanout/" + t->info().name + "/64/subscribers:" + n + "/iterations:1";
        EXPECT_TRUE(seen.count(cell)) << cell << " missing";
      }
  // The default set: every transport that needs no outside service (a broker) and whose
  // daemon may run more than once per machine (not iceoryx's RouDi).
  for (const char* w : {"pingpong", "throughput"})
    for (const Transport* t : all_transports())
      for (const char* size : {"64", "4096", "65536", "1048576"}) {
        std::string cell = std::string(w) + "/" + t->info().name + "/" + size;
        if (t->info().needs.empty() && !t->info().one_per_machine)
          EXPECT_TRUE(seen.count(cell)) << cell << " missing";
        else
          EXPECT_FALSE(seen.count(cell)) << cell << " needs " << t->info().needs << ", or one "
                                         << "daemon per machine";
      }
  EXPECT_TRUE(fs::is_empty(s.dir / "tmp")) << "the run left files behind";
}

// --floors measures every floor, one memcpy, one stream and one row per encoding per
// matrix size, and each row carries what the report reads from it.
TEST(Cli, FloorsRunAndCarryTheirFigures) {
  Scratch s;
  fs::path out = s.dir / "out.json";
  Result r = run({"--floors", "--transports=pipe", "--sizes=64,64K", "--benchmark_filter=^floor/",
                  "--benchmark_min_time=0.01", "--benchmark_out=" + out.string()},
                 s);
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(slurp(out));
  std::set<std::string> seen;
  for (const auto& b : j.at("benchmarks")) {
    std::string name = b.at("name");
    EXPECT_FALSE(b.value("error_occurred", false)) << name << ": " << b.value("error_message", "");
    std::string cell = name.substr(0, name.find("/manual_time"));
    cell = cell.substr(0, cell.find("/real_time"));
    seen.insert(cell);
    if (cell.find("_rtt") != std::string::npos) {
      EXPECT_GT(b.at("rtt_p50_ns").get<double>(), 0.0) << name;
      EXPECT_NE(b.value("label", "").find("pin="), std::string::npos) << name;
    } else if (cell.rfind("floor/memcpy/", 0) == 0 || cell.rfind("floor/shm_stream/", 0) == 0 ||
               cell.rfind("floor/encoding-", 0) == 0) {
      EXPECT_GT(b.at("bytes_per_second").get<double>(), 0.0) << name;
      EXPECT_EQ(std::to_string(b.at("msg_bytes").get<long>()), cell.substr(cell.rfind('/') + 1))
          << name;
      if (cell.rfind("floor/encoding-", 0) == 0) {
        EXPECT_EQ(b.at("time_unit"), "ns") << name;
        EXPECT_GT(b.at("real_time").get<double>(), 0.0) << name;
      }
    }
  }
  std::set<std::string> want = {"floor/cacheline_rtt", "floor/cacheline_pair_rtt",
                                "floor/futex_rtt",     "floor/syscall",
                                "floor/memcpy/64",     "floor/memcpy/65536",
                                "floor/shm_stream/64", "floor/shm_stream/65536"};
  for (const Encoding& e : encodings())  // ns per round trip: the report reads real_time
    for (const char* size : {"/64", "/65536"}) want.insert("floor/encoding-" + e.name + size);
  EXPECT_EQ(seen, want);
}

// Repetitions run interleaved at random unless the command line says otherwise, and the
// JSON says which.
TEST(Cli, RepetitionsAreInterleavedByDefault) {
  auto interleaving = [](const std::vector<std::string>& extra) {
    Scratch s;
    fs::path out = s.dir / "out.json";
    std::vector<std::string> args = {
        "--transports=pipe", "--sizes=64", "--workloads=pingpong,throughput",
        "--benchmark_min_time=0.001", "--benchmark_out=" + out.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    Result r = run(args, s);
    EXPECT_EQ(r.status, 0) << r.err;
    if (r.status != 0) return std::string("(failed)");
    auto j = nlohmann::json::parse(slurp(out));
    int rows = 0;
    for (const auto& b : j.at("benchmarks")) rows += b.at("run_type") == "iteration";
    std::string reps = extra.empty() ? "1" : extra.front().substr(extra.front().find('=') + 1);
    EXPECT_EQ(rows, 2 * std::stoi(reps));  // pingpong and throughput, each repetition
    return j.at("context").value("random_interleaving", std::string("(absent)"));
  };
  EXPECT_EQ(interleaving({}), "false");  // one repetition: nothing to interleave
  EXPECT_EQ(interleaving({"--benchmark_repetitions=3"}), "true");
  EXPECT_EQ(
      interleaving({"--benchmark_repetitions=3", "--benchmark_enable_random_interleaving=false"}),
      "false");
}

// --hgrm-dir: one HdrHistogram percentile distribution per cell and repetition, whose
// rows are the cell's own percentiles (in microseconds) and whose 100 % row is its max.
TEST(Cli, HgrmDirHoldsEveryCellsHistogram) {
  Scratch s;
  fs::path out = s.dir / "out.json", dir = s.dir / "hgrm";
  Result r = run({"--transports=pipe", "--workloads=pingpong,fanout", "--sizes=64",
                  "--subscribers=1", "--benchmark_repetitions=2", "--benchmark_min_time=0.01",
                  "--hgrm-dir=" + dir.string(), "--benchmark_out=" + out.string()},
                 s);
  ASSERT_EQ(r.status, 0) << r.err;
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.insert(e.path().filename().string());
  EXPECT_EQ(files,
            (std::set<std::string>{"pingpong_pipe_64.rtt.hgrm", "pingpong_pipe_64.rtt.rep2.hgrm",
                                   "fanout_pipe_64_subscribers_1.oneway.hgrm",
                                   "fanout_pipe_64_subscribers_1.oneway.rep2.hgrm"}));
  auto j = nlohmann::json::parse(slurp(out));
  int checked = 0;
  for (const auto& b : j.at("benchmarks")) {
    if (b.value("run_type", "") != "iteration") continue;
    const std::string name = b.at("name");
    const bool ping = name.rfind("pingpong/", 0) == 0;
    const std::string file =
        (ping ? "pingpong_pipe_64.rtt" : "fanout_pipe_64_subscribers_1.oneway") +
        std::string(b.at("repetition_index") == 1 ? ".rep2" : "") + ".hgrm";
    const std::string key = ping ? "rtt_" : "oneway_";
    std::istringstream in(slurp(dir / file));
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line, "       Value     Percentile TotalCount 1/(1-Percentile)") << file;
    bool p50 = false, p100 = false;
    while (std::getline(in, line)) {
      double value = 0, pct = 0;
      if (std::sscanf(line.c_str(), "%lf %lf", &value, &pct) != 2) continue;
      if (pct == 0.5) {
        EXPECT_NEAR(value, b.at(key + "p50_ns").get<double>() / 1000, 0.00051) << file;
        p50 = true;
      }
      if (pct == 1.0) {
        EXPECT_NEAR(value, b.at(key + "max_ns").get<double>() / 1000, 0.00051) << file;
        p100 = true;
      }
    }
    EXPECT_TRUE(p50 && p100) << file;
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

// The README's list of who writes a file: clients cells and the floors' round-trip rows
// write .rtt.hgrm; throughput cells write none.
TEST(Cli, HgrmDirCoversClientsAndFloorsNotThroughput) {
  Scratch s;
  fs::path dir = s.dir / "hgrm";
  Result r = run(
      {"--floors", "--transports=pipe", "--workloads=clients,throughput", "--sizes=64",
       "--clients=1", "--benchmark_min_time=0.01",
       "--benchmark_filter=^(clients/|throughput/|floor/futex_rtt)", "--hgrm-dir=" + dir.string()},
      s);
  ASSERT_EQ(r.status, 0) << r.err;
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.insert(e.path().filename().string());
  EXPECT_EQ(files,
            (std::set<std::string>{"clients_pipe_64_clients_1_server_event-loop.rtt.hgrm",
                                   "clients_pipe_64_clients_1_server_thread-per-client.rtt.hgrm",
                                   "floor_futex_rtt.rtt.hgrm"}));
}

TEST(Cli, HgrmDirMustBeAWritableDirectory) {
  Scratch s;
  std::ofstream(s.dir / "file") << "x";
  expect_usage_error({"--hgrm-dir=" + (s.dir / "file").string()}, "is not a directory");
  expect_usage_error({"--hgrm-dir=" + (s.dir / "no" / "such").string()}, "cannot be made");
  expect_usage_error({"--hgrm-dir"}, "--hgrm-dir needs a value");
  // A warm-up's calls would be numbered as a repetition.
  expect_usage_error({"--hgrm-dir=" + (s.dir / "new").string(), "--benchmark_min_warmup_time=0.1"},
                     "--hgrm-dir cannot be used with --benchmark_min_warmup_time");
  // A listing makes no directory.
  Result r = run(
      {"--benchmark_list_tests", "--transports=pipe", "--hgrm-dir=" + (s.dir / "new").string()}, s);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(fs::exists(s.dir / "new"));
}

TEST(Cli, RateOptionsAreChecked) {
  expect_usage_error({"--workloads=rate", "--rates=0"}, "--rates: '0'");
  expect_usage_error({"--workloads=rate", "--rates=20M"}, "from 1 to 10M");
  expect_usage_error({"--workloads=rate", "--rates=5x"}, "--rates: '5x'");
  expect_usage_error({"--workloads=rate", "--load=300"}, "--load: '300'");
  expect_usage_error({"--workloads=rate", "--load=half"}, "--load: 'half'");
  expect_usage_error({"--rates=1000"}, "add --workloads=rate");
  expect_usage_error({"--slo-p99=1ms"}, "add --workloads=rate");
  expect_usage_error({"--arrivals=poisson"}, "add --workloads=rate");
  expect_usage_error({"--workloads=rate", "--arrivals=bursty"}, "--arrivals: 'bursty'");
  expect_usage_error({"--workloads=rate", "--slo-p99=fast"}, "--slo-p99: 'fast'");
  expect_usage_error({"--workloads=rate", "--slo-p99=100"}, "--slo-p99: '100'");
}

// The cells, names and counters of the rate workload, its hgrm files, and the transports
// it leaves out. zmq-ipc (one thread) and grpc-uds (left out) when they are built.
TEST(Cli, RateCellsStateOfferedAndAchievedRateAndThreeLatencies) {
  Scratch s;
  fs::path out = s.dir / "out.json", dir = s.dir / "hgrm";
  std::vector<std::string> transports = {"uds", "posix-mq"};
  if (find_transport("zmq-ipc")) transports.push_back("zmq-ipc");
  std::string list;
  for (const std::string& t : transports) list += (list.empty() ? "" : ",") + t;
  const bool grpc = find_transport("grpc-uds") != nullptr;
  Result r =
      run({"--transports=" + list + (grpc ? ",grpc-uds" : ""), "--workloads=rate", "--sizes=64",
           "--rates=2000", "--load=20", "--benchmark_min_time=0.2", "--slo-p99=250us",
           "--hgrm-dir=" + dir.string(), "--benchmark_out=" + out.string()},
          s);
  ASSERT_EQ(r.status, 0) << r.err;
  if (grpc) {
    EXPECT_NE(r.err.find("no rate cells for grpc-uds (no pipelined form"), std::string::npos)
        << r.err;
  }
  auto j = nlohmann::json::parse(slurp(out));
  EXPECT_EQ(j.at("context").at("ipcbench_slo_p99_ns"), "250000");
  std::set<std::string> names, expected;
  for (const std::string& t : transports)
    for (const char* cell : {"rate:2000", "load:20"})
      expected.insert("rate/" + t + "/64/" + cell + "/iterations:1/manual_time");
  for (const auto& b : j.at("benchmarks")) {
    const std::string name = b.at("name");
    names.insert(name);
    ASSERT_FALSE(b.value("error_occurred", false)) << name << ": " << b.value("error_message", "");
    const double offered = b.at("offered_rate"), achieved = b.at("achieved_rate");
    const bool load = name.find("/load:20") != std::string::npos;
    if (load) {
      EXPECT_GT(b.at("max_rate").get<double>(), 0) << name;
      EXPECT_NEAR(offered, 0.2 * b.at("max_rate").get<double>(), 1e-6 * offered) << name;
      EXPECT_EQ(b.at("load_pct").get<double>(), 20) << name;
    } else {
      EXPECT_EQ(offered, 2000) << name;
      EXPECT_EQ(b.at("max_rate").get<double>(), 0) << name;
      // 2000/s for the 0.2 s window: 400 requests, every one answered.
      EXPECT_EQ(b.at("messages").get<double>(), 400) << name;
    }
    EXPECT_GT(achieved, 0) << name;
    // Uniform arrivals: the schedule's own rate is the offered one.
    EXPECT_NEAR(b.at("scheduled_rate").get<double>(), offered, 1e-3 * offered) << name;
    EXPECT_EQ(b.at("saturated").get<double>(), achieved < 0.95 * offered ? 1 : 0) << name;
    // Per request, corrected >= uncorrected: so is every percentile.
    for (const char* p : {"p50", "p90", "p99", "p999", "max"}) {
      const double lat = b.at(std::string("lat_") + p + "_ns"),
                   unc = b.at(std::string("unc_") + p + "_ns");
      EXPECT_GE(lat * 1.004, unc) << name << " " << p;
      EXPECT_GT(unc, 0) << name << " " << p;
      EXPECT_GE(b.at(std::string("lag_") + p + "_ns").get<double>(), 0) << name << " " << p;
    }
    EXPECT_FALSE(b.contains("rtt_p50_ns")) << name;
    EXPECT_EQ(b.at("shared_cpu").get<double>(), 0) << name;  // blocking: nothing busy
    const bool zmq = name.find("/zmq-ipc/") != std::string::npos;
    EXPECT_NE(b.at("label").get<std::string>().find(zmq ? "pacing=poll arrivals=uniform"
                                                        : "pacing=sleep+spin arrivals=uniform"),
              std::string::npos)
        << b.at("label");
    EXPECT_GT(b.at("cpu_client_ns_per_msg").get<double>(), 0) << name;
    // 2000/s and 20 % of the maximum leave gaps the sender sleeps through and then spins
    // the last stretch of; a one-thread sender waits in the link instead.
    if (zmq) {
      EXPECT_EQ(b.at("cpu_pacing_ns_per_msg").get<double>(), 0) << name;
    } else {
      EXPECT_GT(b.at("cpu_pacing_ns_per_msg").get<double>(), 0) << name;
    }
  }
  EXPECT_EQ(names, expected);
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.insert(e.path().filename().string());
  EXPECT_EQ(files.count("rate_uds_64_rate_2000.corrected.hgrm"), 1u);
  EXPECT_EQ(files.count("rate_uds_64_rate_2000.uncorrected.hgrm"), 1u);
  EXPECT_EQ(files.count("rate_uds_64_rate_2000.lag.hgrm"), 1u);
  EXPECT_EQ(files.size(), 3 * expected.size());
}

// A receiver that spins (here: before each sleep) pinned beside the sender is marked.
TEST(Cli, RateCellsSayWhenTheReceiverSpinsOnTheSendersCpu) {
  Scratch s;
  fs::path out = s.dir / "out.json";
  Result r = run({"--transports=shm-futex", "--workloads=rate", "--sizes=64", "--rates=2000",
                  "--benchmark_min_time=0.1", "--benchmark_out=" + out.string()},
                 s);
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(slurp(out));
  ASSERT_EQ(j.at("benchmarks").size(), 1u);
  const auto& b = j.at("benchmarks").at(0);
  const std::string label = b.at("label");
  if (j.at("context").at("pin_mode") != "cross" ||
      label.find("receiver_cpu=-1") != std::string::npos)
    GTEST_SKIP() << "the client is not pinned here: " << label;
  EXPECT_EQ(b.at("shared_cpu").get<double>(), 1) << label;
  EXPECT_NE(label.find("shared CPU: the receiver, which spins before it sleeps, shares cpu"),
            std::string::npos)
      << label;
}

}  // namespace
}  // namespace ipcbench
