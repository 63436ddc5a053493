// The floor beside every cell (bench/floors.h): probes before and after each repetition,
// the ratio, the host-change mark, and the pause of a busy-polling peer meanwhile.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "base/process.h"
#include "bench/floors.h"
#include "tests/test_support.h"

namespace ipcbench {
namespace {

using testing_support::Scratch;
using testing_support::slurp;

TEST(CellFloor, HostChangedIsTheLargerOverTheSmallerBeyondTheMargin) {
  EXPECT_DOUBLE_EQ(floor_change(100, 150), 0.5);
  EXPECT_DOUBLE_EQ(floor_change(150, 100), 0.5);  // either direction
  EXPECT_DOUBLE_EQ(floor_change(200, 200), 0.0);
  EXPECT_DOUBLE_EQ(floor_change(0, 200), 0.0);  // no probe figure: nothing to compare
  EXPECT_FALSE(host_changed(100, 100 * (1 + kHostChangeMargin)));  // at the margin: not yet
  EXPECT_TRUE(host_changed(100, 100 * (1 + kHostChangeMargin) + 1));
  EXPECT_TRUE(host_changed(400, 100));  // the 4x move of a VM's vCPUs between placements
  EXPECT_FALSE(host_changed(100, 120));
}

TEST(CellFloor, KindFollowsTheWorkloadTheWaitAndWhetherSpinningIsAllowed) {
  Placement cross;
  cross.mode = "cross";
  cross.client_cpu = 0;
  cross.peer_cpu = 1;
  Placement same = cross;
  same.mode = "same";
  same.peer_cpu = 0;
  EXPECT_EQ(cell_floor_for("pingpong", "spin", cross), CellFloor::kPairRtt);
  EXPECT_EQ(cell_floor_for("pingpong", "spin-then-futex", cross), CellFloor::kPairRtt);
  EXPECT_EQ(cell_floor_for("pingpong", "blocking", cross), CellFloor::kFutexRtt);
  EXPECT_EQ(cell_floor_for("pingpong", "spin-then-futex", same), CellFloor::kFutexRtt);
  EXPECT_EQ(cell_floor_for("throughput", "spin", cross), CellFloor::kCopyStream);
  EXPECT_EQ(cell_floor_for("throughput", "blocking", same), CellFloor::kCopyStream);
}

TEST(CellFloor, AStoppedPeerIsContinuedAtTheEnd) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    for (std::atomic<unsigned long> i = 0;; i.fetch_add(1, std::memory_order_relaxed)) {
    }  // busy, as a spinning peer
  }
  {
    StoppedProcess stopped(child);
    EXPECT_EQ(testing_support::process_state(child), 'T');  // the constructor waited for it
  }
  char st = 0;
  for (int i = 0; i < 200 && (st = testing_support::process_state(child)) == 'T'; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(st, 'R');
  // A process someone else stopped is left stopped.
  ::kill(child, SIGSTOP);
  for (int i = 0; i < 200 && testing_support::process_state(child) != 'T'; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  { StoppedProcess again(child); }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(testing_support::process_state(child), 'T');
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  StoppedProcess gone(child);  // a reaped pid: nothing to stop, no wait
  StoppedProcess none(-1);
}

struct Row {
  std::string name, label;
  nlohmann::json j;
};

// Runs ipcbench with args and returns the iteration rows of its ping-pong and throughput
// cells; the run must succeed.
std::vector<Row> cell_rows(const std::vector<std::string>& args, double* margin) {
  Scratch s;
  std::vector<std::string> all = args;
  all.push_back("--benchmark_out=" + (s.dir / "out.json").string());
  pid_t run = testing_support::start(all, s);
  EXPECT_GT(run, 0);
  EXPECT_EQ(testing_support::wait_exit_within(run, std::chrono::seconds(240)), 0)
      << slurp(s.dir / "stderr");
  const nlohmann::json j = testing_support::results(s);
  *margin = std::stod(j.at("context").at("host_change_margin").get<std::string>());
  std::vector<Row> rows;
  for (const auto& b : j.at("benchmarks")) {
    const std::string name = b.at("name");
    if (b.value("run_type", "") != "iteration") continue;
    if (!name.starts_with("pingpong/") && !name.starts_with("throughput/")) continue;
    EXPECT_FALSE(b.value("error_occurred", false)) << name << ": " << b.value("error_message", "");
    rows.push_back({name, b.value("label", ""), b});
  }
  return rows;
}

// Every repetition of every ping-pong and throughput cell carries both probes, their mean,
// the ratio (cost ÷ floor cost) and the mark, and names its floor in the label.
void expect_floors(const std::vector<Row>& rows, double margin,
                   const std::map<std::string, std::string>& kind_by_prefix) {
  ASSERT_FALSE(rows.empty());
  for (const auto& r : rows) {
    SCOPED_TRACE(r.name + " [" + r.label + "]");
    std::string kind;
    for (const auto& [prefix, k] : kind_by_prefix)
      if (r.name.starts_with(prefix)) kind = k;
    ASSERT_FALSE(kind.empty());
    EXPECT_NE(r.label.find(" floor=" + kind), std::string::npos);
    const double before = r.j.at("floor_before"), after = r.j.at("floor_after");
    ASSERT_GT(before, 0);
    ASSERT_GT(after, 0);
    EXPECT_DOUBLE_EQ(r.j.at("floor").get<double>(), (before + after) / 2);
    const double change = std::max(before, after) / std::min(before, after) - 1;
    EXPECT_NEAR(r.j.at("floor_change").get<double>(), change, 1e-9);
    const bool marked = change > margin;
    EXPECT_EQ(r.j.at("host_changed").get<double>(), marked ? 1 : 0);
    EXPECT_EQ(r.label.find("host-changed") != std::string::npos, marked);
    const double floor = (before + after) / 2;
    if (r.name.starts_with("pingpong/")) {
      EXPECT_NEAR(r.j.at("floor_ratio").get<double>(), r.j.at("rtt_p50_ns").get<double>() / floor,
                  1e-9 * r.j.at("floor_ratio").get<double>());
    } else {
      // bytes_per_second is Google Benchmark's bytes over the manual time: the same time
      // the ratio was taken with.
      EXPECT_NEAR(r.j.at("floor_ratio").get<double>(),
                  floor / r.j.at("bytes_per_second").get<double>(),
                  1e-6 * r.j.at("floor_ratio").get<double>());
    }
  }
}

TEST(CellFloor, EveryRepetitionOfPingpongAndThroughputCarriesItsFloor) {
  double margin = 0;
  const auto rows =
      cell_rows({"--transports=pipe,shm-spin", "--sizes=64,64K", "--workloads=pingpong,throughput",
                 "--benchmark_min_time=0.05", "--benchmark_repetitions=2"},
                &margin);
  EXPECT_DOUBLE_EQ(margin, kHostChangeMargin);
  EXPECT_EQ(rows.size(), 2u * 2 * 2 * 2);  // transports x sizes x workloads x repetitions
  // A spinning peer was stopped for each probe and continued: its later cells ran.
  expect_floors(rows, margin,
                {{"pingpong/pipe/", "futex_rtt"},
                 {"pingpong/shm-spin/", "pair_rtt"},
                 {"throughput/", "copy_stream"}});
}

// Where two spinning sides would share a CPU, the round-trip probe sleeps on futexes and
// the copying channel's sides sleep on its slots: the cells still carry their floors.
TEST(CellFloor, OnOneCpuTheProbesSleep) {
  double margin = 0;
  const auto rows = cell_rows({"--pin=same", "--transports=pipe,shm-futex", "--sizes=64,64K",
                               "--workloads=pingpong,throughput", "--benchmark_min_time=0.02"},
                              &margin);
  EXPECT_EQ(rows.size(), 2u * 2 * 2);
  expect_floors(rows, margin, {{"pingpong/", "futex_rtt"}, {"throughput/", "copy_stream"}});
}

}  // namespace
}  // namespace ipcbench
