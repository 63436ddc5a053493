// The fanout workload end to end, with real subscriber processes (this build's ipcbench
// --peer) for every transport with a fan-out form: every subscriber gets every message,
// intact (--verify) and in order, and a subscriber killed mid-run gives a clear error
// with nothing left behind (no process, no run directory, no shared-memory object).
#include "bench/fanout.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/cleanup.h"
#include "base/ipc_name.h"
#include "base/run_dir.h"
#include "harness/placement.h"
#include "tests/test_support.h"
#include "transports/registry.h"

namespace ipcbench {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> fan_out_transports() {
  std::vector<std::string> names;
  for (const Transport* t : all_transports())
    if (!t->info().fan_out.empty()) names.push_back(t->info().name);
  return names;
}

ManyConfig config(std::chrono::milliseconds window) {
  ManyConfig c;
  c.placement = resolve_placement("none");
  c.settings = testing_support::settings();
  c.verify = true;
  c.cell_timeout = std::chrono::seconds(20);
  c.setup_timeout = std::chrono::seconds(20);
  c.window = window;
  c.peer_program = IPCBENCH_BINARY;
  return c;
}

// This process's shared-memory objects.
std::vector<std::string> our_shm() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator("/dev/shm"))
    if (auto st = RunStamp::parse(e.path().filename().string()); st && st->pid == ::getpid())
      out.push_back(e.path());
  return out;
}

bool all_gone(const std::vector<pid_t>& pids) {
  for (pid_t p : pids)
    if (::kill(p, 0) == 0) return false;
  return true;
}

class Fanout : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }
  void SetUp() override {  // a broker's transports only where the test has one
    std::string why = testing_support::untestable_reason(transport().info().needs);
    if (!why.empty()) GTEST_SKIP() << why;
  }
  const Transport& transport() const { return *find_transport(GetParam()); }
};

TEST_P(Fanout, EverySubscriberGetsEveryMessageIntactAndInOrder) {
  for (std::size_t size : {std::size_t{24}, std::size_t{1000}}) {
    SCOPED_TRACE("size " + std::to_string(size));
    std::vector<pid_t> pids;
    std::string dir_path;
    {
      RunDir dir;
      dir_path = dir.path();
      // 300 ms: a window that one stalled subscriber (a busy CI machine) cannot swallow.
      FanoutOutcome o = measure_fanout(dir, config(std::chrono::milliseconds(300)), transport(),
                                       size, 3, [&pids](const std::vector<pid_t>& p) { pids = p; });
      ASSERT_EQ(o.results.size(), 3u);
      EXPECT_GT(o.published, 0u);
      EXPECT_GT(o.published_in_window, 0u);
      EXPECT_LE(o.published_in_window, o.published);
      const bool drops = transport().info().name.rfind("zmq", 0) == 0;
      EXPECT_EQ(o.drops_by_design, drops);
      for (std::size_t i = 0; i < 3; ++i) {
        const PartyResult& r = o.results[i];
        SCOPED_TRACE("subscriber " + std::to_string(i));
        // lost is published minus received by construction (gaps in the sequence and
        // what never came after the last one); what a test can check is that something
        // arrived and nothing arrived that was not published.
        EXPECT_GT(r.received, 0u);
        EXPECT_LE(r.received, o.published);
        if (!drops) {
          EXPECT_EQ(r.lost, 0u);
          EXPECT_EQ(r.received, o.published);
          EXPECT_EQ(r.done, o.published_in_window);
        }
        EXPECT_LE(r.done, r.received);
        EXPECT_EQ(r.hist.count(), r.done);
      }
    }
    EXPECT_EQ(pids.size(), 3u);
    EXPECT_TRUE(all_gone(pids));
    EXPECT_FALSE(fs::exists(dir_path));
    EXPECT_TRUE(our_shm().empty()) << our_shm().front();
  }
}

TEST_P(Fanout, MessagesBelowTheHeaderAndPublishTimeAreRefused) {
  RunDir dir;
  std::string err = testing_support::error_of(
      [&] { measure_fanout(dir, config(std::chrono::milliseconds(50)), transport(), 16, 2); });
  EXPECT_NE(err.find("below its minimum of 24 B"), std::string::npos) << err;
}

TEST_P(Fanout, ASubscriberKilledMidRunGivesAnErrorAndLeavesNothing) {
  std::vector<pid_t> pids;
  std::string dir_path;
  std::string err;
  {
    RunDir dir;
    dir_path = dir.path();
    err = testing_support::error_of([&] {
      measure_fanout(dir, config(std::chrono::milliseconds(1500)), transport(), 256, 3,
                     [&pids](const std::vector<pid_t>& p) {
                       pids = p;
                       std::this_thread::sleep_for(std::chrono::milliseconds(100));
                       ::kill(p[1], SIGKILL);
                     });
    });
  }
  EXPECT_NE(err.find("subscriber 1"), std::string::npos) << err;
  EXPECT_NE(err.find("signal 9"), std::string::npos) << err;
  ASSERT_EQ(pids.size(), 3u);
  EXPECT_TRUE(all_gone(pids));
  EXPECT_FALSE(fs::exists(dir_path));
  EXPECT_TRUE(our_shm().empty()) << our_shm().front();
}

INSTANTIATE_TEST_SUITE_P(AllFanOut, Fanout, ::testing::ValuesIn(fan_out_transports()),
                         [](const auto& info) { return testing_support::test_suffix(info.param); });

TEST(FanoutTransports, TheAskedForFormsExist) {
  for (const char* name : {"pipe", "fifo", "uds", "uds-seqpacket", "tcp", "shm-bcast"}) {
    const Transport* t = find_transport(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_FALSE(t->info().fan_out.empty()) << name;
  }
  // Where built, ZeroMQ's form says it drops, AMQP's that it goes through an exchange.
  std::vector<std::pair<const char*, const char*>> described;
#ifdef IPCBENCH_HAVE_ZMQ
  described.insert(described.end(),
                   {{"zmq-ipc", "drops by design"}, {"zmq-tcp", "drops by design"}});
#endif
#ifdef IPCBENCH_HAVE_AMQP
  described.insert(described.end(),
                   {{"amqp", "fanout exchange"}, {"amqp-durable", "fanout exchange"}});
#endif
  for (const auto& [name, words] : described) {
    const Transport* t = find_transport(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_NE(t->info().fan_out.find(words), std::string::npos) << name;
  }
}

}  // namespace
}  // namespace ipcbench
