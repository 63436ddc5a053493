// Fault injection against the real runner: for every transport and both workloads the
// peer is killed (SIGKILL) at a random moment or stalled (SIGSTOP), and so is the partner
// of each kind of machine floor; the runner itself is interrupted (SIGINT, and SIGINT or
// SIGTERM during a clients or fanout cell); and a crashed
// run's leftovers are swept. After each: the faulted
// cell is an error row, the next cell passes, the results file parses, and nothing with
// our prefix and no peer process remains.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "base/ipc_name.h"
#include "tests/test_support.h"
#include "transports/registry.h"

namespace ipcbench {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using Scratch = testing_support::Scratch;

using testing_support::results;
using testing_support::slurp;
using testing_support::start;
using testing_support::wait_exit;

using testing_support::all_gone;
using testing_support::children_of;
using testing_support::leftovers;
using testing_support::peers_of;
using testing_support::wait_for_peer;

struct Case {
  const Transport* transport;
  const char* workload;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.transport->info().name << "/" << c.workload;
}

class Fault : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    std::string why = testing_support::untestable_reason(GetParam().transport->info().needs);
    if (!why.empty()) GTEST_SKIP() << why;
    const TransportInfo& info = GetParam().transport->info();
    if (!info.peer_kill.empty())
      GTEST_SKIP() << info.name
                   << " does not survive a peer killed mid-traffic: " << info.peer_kill;
  }
  // Runs two cells (64 B then 4 KiB) and applies `fault` to the first peer it sees.
  // expect_in_error: words of which the faulted cell's error must contain one.
  void run_with(const std::function<void(pid_t)>& fault,
                std::initializer_list<const char*> expect_in_error) {
    Scratch s;
    const Case c = GetParam();
    pid_t run =
        start({"--transports=" + c.transport->info().name, std::string("--workloads=") + c.workload,
               "--sizes=64,4K", "--benchmark_min_time=0.3", "--cell-timeout=2",
               "--benchmark_out=" + (s.dir / "out.json").string()},
              s);
    ASSERT_GT(run, 0);
    std::set<pid_t> seen;
    pid_t peer = wait_for_peer(run, seen);
    ASSERT_GT(peer, 0) << slurp(s.dir / "stderr");
    fault(peer);
    // Watch for the second cell's peer too, so that we can check it is gone at the end.
    std::thread watcher([&] {
      for (int i = 0; i < 3000 && ::kill(run, 0) == 0; ++i) {
        auto p = peers_of(run);
        seen.insert(p.begin(), p.end());
        std::this_thread::sleep_for(1ms);
      }
    });
    int status = wait_exit(run);
    watcher.join();
    ::kill(peer, SIGCONT);
    EXPECT_EQ(status, 1) << "one cell failed: " << slurp(s.dir / "stderr");
    auto j = results(s);
    const auto& b = j.at("benchmarks");
    ASSERT_EQ(b.size(), 2u);
    EXPECT_TRUE(b[0].value("error_occurred", false)) << b[0].dump();
    const std::string msg = b[0].value("error_message", "");
    bool named = false;
    for (const char* word : expect_in_error) named |= msg.find(word) != std::string::npos;
    EXPECT_TRUE(named) << msg;
    // The run's stderr ends with the failed cell (its name, as the results' name begins)
    // and its error, for a CI log's tail.
    const std::string err = slurp(s.dir / "stderr");
    const std::size_t at = err.find(": " + msg + "\nipcbench: 1 cell(s) failed");
    ASSERT_NE(at, std::string::npos) << err;
    const std::size_t from = err.rfind("ipcbench: ", at);
    ASSERT_NE(from, std::string::npos) << err;
    EXPECT_TRUE(b[0].value("name", "").starts_with(err.substr(from + 10, at - from - 10) + "/"))
        << err;
    EXPECT_FALSE(b[1].value("error_occurred", false)) << b[1].value("error_message", "");
    EXPECT_TRUE(all_gone(seen)) << "a peer process outlived the run";
    EXPECT_TRUE(leftovers(s, run).empty()) << leftovers(s, run).front();
  }
};

TEST_P(Fault, PeerKilledAtARandomMoment) {
  std::mt19937 rng(std::hash<std::string>{}(GetParam().transport->info().name) ^
                   GetParam().workload[0]);
  auto delay = std::chrono::microseconds(std::uniform_int_distribution<int>(0, 150000)(rng));
  run_with(
      [delay](pid_t peer) {
        std::this_thread::sleep_for(delay);
        ::kill(peer, SIGKILL);
      },
      {"peer"});
}

TEST_P(Fault, PeerStalledHitsTheWatchdog) {
  run_with(
      [](pid_t peer) {
        std::this_thread::sleep_for(50ms);
        // A hung peer stays hung: stopped again until it is gone. (The floor probed beside
        // a cell continues a peer it stopped itself; a stop sent during that probe would
        // be continued with it.)
        for (auto end = std::chrono::steady_clock::now() + 5s;
             std::chrono::steady_clock::now() < end; std::this_thread::sleep_for(5ms)) {
          ::kill(peer, SIGSTOP);
          const char st = testing_support::process_state(peer);
          if (st == 0 || st == 'Z' || st == 'X') break;
        }
      },
      {"watchdog", "timed out"});  // stalled after or before it connected
}

std::vector<Case> all_cases() {
  std::vector<Case> v;
  for (const Transport* t : all_transports())
    for (const char* w : {"pingpong", "throughput"}) v.push_back({t, w});
  return v;
}

INSTANTIATE_TEST_SUITE_P(EveryTransportAndWorkload, Fault, ::testing::ValuesIn(all_cases()),
                         [](const auto& info) {
                           return testing_support::test_suffix(info.param.transport->info().name +
                                                               "_" + info.param.workload);
                         });

// A floor's partner (forked, not a --peer) killed or stopped mid-measurement: the floor
// fails with a clear error, within the cell timeout, the run says so in its exit status,
// and the partner is gone.
struct FloorCase {
  const char* floor;
  int signal;
};

void PrintTo(const FloorCase& c, std::ostream* os) { *os << c.floor << "/" << strsignal(c.signal); }

class FloorFault : public ::testing::TestWithParam<FloorCase> {};

TEST_P(FloorFault, PartnerFaultFailsTheFloor) {
  Scratch s;
  const FloorCase c = GetParam();
  pid_t run =
      start({"--floors", "--transports=pipe", "--sizes=64K",
             std::string("--benchmark_filter=^floor/") + c.floor + "/", "--benchmark_min_time=30",
             "--cell-timeout=2", "--benchmark_out=" + (s.dir / "out.json").string()},
            s);
  ASSERT_GT(run, 0);
  // The partner is a fork of the runner (same command line), one per run of the floor
  // function: Google Benchmark calls it with growing iteration counts, so the first
  // partners live for milliseconds. Fault one that has lived for a while.
  pid_t partner = -1;
  for (auto end = std::chrono::steady_clock::now() + 20s;
       partner < 0 && std::chrono::steady_clock::now() < end;) {
    auto p = children_of(run, "--floors");
    std::this_thread::sleep_for(200ms);
    if (!p.empty() && children_of(run, "--floors").count(*p.begin())) partner = *p.begin();
  }
  ASSERT_GT(partner, 0) << slurp(s.dir / "stderr");
  ::kill(partner, c.signal);
  int status = wait_exit(run);
  EXPECT_EQ(status, 1) << "one floor failed: " << slurp(s.dir / "stderr");
  const auto j = results(s);
  const auto& rows = j.at("benchmarks");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_NE(rows[0]
                .value("error_message", "")
                .find(c.signal == SIGKILL ? "the partner process died"
                                          : "did not answer within the cell timeout"),
            std::string::npos)
      << rows[0].dump();
  EXPECT_TRUE(all_gone({partner})) << "the floor's partner outlived the run";
}

INSTANTIATE_TEST_SUITE_P(
    SpinSleepStream, FloorFault,
    ::testing::Values(FloorCase{"cacheline_pair_rtt", SIGKILL},
                      FloorCase{"cacheline_pair_rtt", SIGSTOP}, FloorCase{"futex_rtt", SIGKILL},
                      FloorCase{"futex_rtt", SIGSTOP}, FloorCase{"shm_stream/65536", SIGKILL},
                      FloorCase{"shm_stream/65536", SIGSTOP}),
    [](const auto& info) {
      return testing_support::test_suffix(std::string(info.param.floor) + "_" +
                                          (info.param.signal == SIGKILL ? "killed" : "stopped"));
    });

// With interleaved repetitions a floor may run right after a matrix cell. The cell's peer
// must be gone by then: a spin transport's peer busy-polls the very CPU the floor's
// partner is pinned to, and the two would share it (the stream floor ran at half speed).
// The floor probed beside a cell (bench/floors.h) runs with the cell's peer alive but
// stopped: so no partner of either kind may see a peer that is not stopped.
TEST(Floors, NoPeerLivesWhileAFloorRuns) {
  Scratch s;
  pid_t run = start({"--floors", "--transports=shm-spin", "--workloads=pingpong", "--sizes=64",
                     "--benchmark_filter=^(floor/cacheline_rtt|floor/shm_stream|pingpong)/",
                     "--benchmark_repetitions=5", "--benchmark_min_time=0.05",
                     "--benchmark_out=" + (s.dir / "out.json").string()},
                    s);
  ASSERT_GT(run, 0);
  int status = -1, floors_after_a_peer = 0;
  bool peer_seen = false;
  std::string clash;
  while (::waitpid(run, &status, WNOHANG) == 0) {
    // A peer seen both before and after the partner was seen was alive with it.
    auto before = peers_of(run);
    auto partners = children_of(run, "--floors");
    std::map<pid_t, char> state;
    for (pid_t p : before) state[p] = testing_support::process_state(p);
    auto after = peers_of(run);
    auto still = children_of(run, "--floors");  // the partner outlived the state's read
    peer_seen |= !before.empty();
    if (partners.empty() || !peer_seen) continue;
    ++floors_after_a_peer;
    bool partner_throughout = false;
    for (pid_t q : partners) partner_throughout |= still.count(q) > 0;
    for (pid_t p : before)
      if (after.count(p) && partner_throughout && state[p] != 'T' && state[p] != 't')
        clash = "peer " + std::to_string(p) + " (state " + std::string(1, state[p]) +
                ") beside floor partner " + std::to_string(*partners.begin());
  }
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << slurp(s.dir / "stderr");
  EXPECT_GT(floors_after_a_peer, 0) << "no floor ran after a matrix cell: nothing was checked";
  EXPECT_EQ(clash, "");
}

TEST(Interrupt, SigintKeepsFinishedCellsAndCleansUp) {
  Scratch s;
  pid_t run =
      start({"--transports=uds,shm-spin", "--workloads=pingpong", "--sizes=64,4K",
             "--benchmark_min_time=0.5", "--benchmark_out=" + (s.dir / "out.json").string()},
            s);
  std::set<pid_t> seen;
  pid_t first = wait_for_peer(run, seen);
  ASSERT_GT(first, 0);
  // The uds cells share the first peer; a second peer means they are done and the
  // shm-spin cells are under way.
  for (auto end = std::chrono::steady_clock::now() + 60s; std::chrono::steady_clock::now() < end;) {
    auto p = peers_of(run);
    seen.insert(p.begin(), p.end());
    if (!p.empty() && !p.count(first)) break;
    std::this_thread::sleep_for(1ms);
  }
  ::kill(run, SIGINT);
  int status = wait_exit(run);
  EXPECT_EQ(status, 128 + SIGINT) << slurp(s.dir / "stderr");
  auto j = results(s);  // parses: the file was written in full
  const auto& b = j.at("benchmarks");
  ASSERT_EQ(b.size(), 4u);
  EXPECT_FALSE(b[0].value("error_occurred", false)) << b[0].dump();
  EXPECT_FALSE(b[1].value("error_occurred", false)) << b[1].dump();
  EXPECT_NE(b[3].value("error_message", "").find("interrupted"), std::string::npos) << b[3].dump();
  EXPECT_TRUE(all_gone(seen));
  EXPECT_TRUE(leftovers(s, run).empty()) << leftovers(s, run).front();
}

// SIGINT or SIGTERM in the middle of a many-party cell (four clients, or four
// subscribers, each its own process): the run ends with that signal, the file parses
// and holds the interrupted cell, every client or subscriber is gone, nothing is left.
struct ManyInterrupt {
  const char* workload;
  const char* transport;
  int signal;
};

void PrintTo(const ManyInterrupt& c, std::ostream* os) {
  *os << c.workload << "/" << c.transport << "/" << ::sigabbrev_np(c.signal);
}

class InterruptMany : public ::testing::TestWithParam<ManyInterrupt> {};

TEST_P(InterruptMany, EndsTheRunAndLeavesNothing) {
  const ManyInterrupt c = GetParam();
  Scratch s;
  const bool clients = std::string(c.workload) == "clients";
  pid_t run =
      start({std::string("--transports=") + c.transport, std::string("--workloads=") + c.workload,
             clients ? "--clients=4" : "--subscribers=4", "--sizes=64", "--benchmark_min_time=2",
             "--benchmark_out=" + (s.dir / "out.json").string()},
            s);
  ASSERT_GT(run, 0);
  std::set<pid_t> seen;
  for (auto end = std::chrono::steady_clock::now() + 60s;
       seen.size() < 4 && std::chrono::steady_clock::now() < end;) {
    auto p = peers_of(run);
    seen.insert(p.begin(), p.end());
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_GE(seen.size(), 4u) << slurp(s.dir / "stderr");
  std::this_thread::sleep_for(300ms);  // connected, likely inside the window (2 s)
  ::kill(run, c.signal);
  int status = wait_exit(run);
  EXPECT_EQ(status, 128 + c.signal) << slurp(s.dir / "stderr");
  auto j = results(s);  // parses: the file was written in full
  const auto& b = j.at("benchmarks");
  ASSERT_GE(b.size(), 1u);
  EXPECT_NE(b.back().value("error_message", "").find("interrupted"), std::string::npos)
      << b.back().dump();
  EXPECT_TRUE(all_gone(seen)) << "a client or subscriber outlived the run";
  EXPECT_TRUE(leftovers(s, run).empty()) << leftovers(s, run).front();
}

INSTANTIATE_TEST_SUITE_P(Many, InterruptMany,
                         ::testing::Values(ManyInterrupt{"clients", "shm-futex", SIGINT},
                                           ManyInterrupt{"clients", "posix-mq", SIGTERM},
                                           ManyInterrupt{"fanout", "shm-bcast", SIGINT},
                                           ManyInterrupt{"fanout", "uds", SIGTERM}),
                         [](const auto& info) {
                           return testing_support::test_suffix(std::string(info.param.workload) +
                                                               "_" + info.param.transport + "_" +
                                                               ::sigabbrev_np(info.param.signal));
                         });

// A run killed with SIGKILL leaves its directory; listing the cells or a bad option does
// not sweep it, the next real run does.
TEST(Sweep, AKilledRunsDirectoryGoesAtTheNextRealRunOnly) {
  Scratch s;
  const fs::path out = s.dir / "out.json";
  pid_t run = start({"--transports=uds", "--workloads=pingpong", "--sizes=64",
                     "--benchmark_min_time=30", "--benchmark_out=" + out.string()},
                    s);
  std::set<pid_t> seen;
  ASSERT_GT(wait_for_peer(run, seen), 0) << slurp(s.dir / "stderr");
  ::kill(run, SIGKILL);
  EXPECT_EQ(wait_exit(run), 128 + SIGKILL);
  EXPECT_TRUE(all_gone(seen)) << "the peer outlived its runner";
  const std::vector<std::string> left = leftovers(s, run);
  ASSERT_EQ(left.size(), 1u) << "the killed run's directory";
  EXPECT_FALSE(fs::exists(out)) << "a killed run left a results file under its final name";
  auto partials = [&s] {
    std::vector<std::string> p;
    for (const auto& e : fs::directory_iterator(s.dir))
      if (e.path().filename().string().starts_with(".out.json.")) p.push_back(e.path());
    return p;
  };
  EXPECT_EQ(partials().size(), 1u) << "its temporary results file";

  for (std::vector<std::string> args : {std::vector<std::string>{"--benchmark_list_tests"},
                                        {"--help"},
                                        {"--sizes=0"},
                                        {"--benchmark_filter=nothing-matches-this"}}) {
    wait_exit(start(args, s));
    EXPECT_EQ(leftovers(s, run), left) << args[0] << " swept";
  }
  pid_t real = start({"--transports=pipe", "--workloads=pingpong", "--sizes=64",
                      "--benchmark_min_time=0.01", "--benchmark_out=" + out.string()},
                     s);
  EXPECT_EQ(wait_exit(real), 0) << slurp(s.dir / "stderr");
  EXPECT_TRUE(leftovers(s, run).empty());
  EXPECT_TRUE(partials().empty()) << "the dead run's temporary file stayed: " << partials()[0];
  EXPECT_TRUE(fs::exists(out));
  EXPECT_NE(slurp(s.dir / "stderr").find("left by runs that no longer exist"), std::string::npos);
}

}  // namespace
}  // namespace ipcbench
