// The D-Bus transports beyond what the conformance, fault and listener suites check for
// every transport: a same-uid stranger that speaks D-Bus on the link's private bus is never
// taken for the peer; the bus daemon is the link's own (one per link, gone with it, with
// the runner however it ends); a daemon killed mid-run turns the cell into an error row;
// and the daemon's CPU is counted apart.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <systemd/sd-bus.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "base/fd.h"
#include "base/process.h"
#include "base/run_dir.h"
#include "bench/peer.h"
#include "tests/test_support.h"
#include "transports/registry.h"

namespace ipcbench {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing_support::results;
using testing_support::Scratch;
using testing_support::start;

// A stranger of our uid on the link's bus: it connects, registers, and calls the
// benchmark side by its unique name as the peer would, without the token.
struct Stranger {
  sd_bus* bus = nullptr;
  explicit Stranger(const std::string& socket) {
    EXPECT_GE(sd_bus_new(&bus), 0);
    EXPECT_GE(sd_bus_set_address(bus, ("unix:path=" + socket).c_str()), 0);
    EXPECT_GE(sd_bus_set_bus_client(bus, 1), 0);
    EXPECT_GE(sd_bus_start(bus), 0);
  }
  ~Stranger() { sd_bus_flush_close_unref(bus); }
  void call(const std::string& to, const char* member, const char* sig, const void* arg,
            std::size_t size) {
    sd_bus_message* m = nullptr;
    ASSERT_GE(sd_bus_message_new_method_call(bus, &m, to.c_str(), "/org/ipcbench/Link",
                                             "org.ipcbench.Link", member),
              0);
    sd_bus_message_set_expect_reply(m, 0);
    if (std::strcmp(sig, "s") == 0)
      ASSERT_GE(sd_bus_message_append(m, "s", static_cast<const char*>(arg)), 0);
    else
      ASSERT_GE(sd_bus_message_append_array(m, 'y', arg, size), 0);
    ASSERT_GE(sd_bus_send(bus, m, nullptr), 0);
    ASSERT_GE(sd_bus_flush(bus), 0);
    sd_bus_message_unref(m);
  }
};

TEST(Dbus, AStrangerOnTheBusIsNeverTakenForThePeer) {
  const Transport* t = find_transport("dbus");
  ASSERT_NE(t, nullptr);
  RunDir dir;
  auto listener = t->listen(dir, 4096, testing_support::settings());
  const Endpoint ep = listener->endpoint();
  ASSERT_EQ(ep.addresses.size(), 3u);
  const std::string& caller = ep.addresses[1];
  Stranger stranger(ep.addresses[0]);
  // Before the peer: a Hello with a wrong token, and a message.
  stranger.call(caller, "Hello", "s", "00000000000000000000000000000000", 0);
  const char junk[] = "stranger's bytes";
  stranger.call(caller, "Deliver", "ay", junk, sizeof junk);

  PeerArgs args{t->info().name, ep.addresses, 4096, false, "echo", IPCBENCH_BINARY};
  ChildProcess peer = ChildProcess::spawn({peer_command(args), ep.inherit_fds, -1});
  auto ch =
      listener->accept({std::chrono::steady_clock::now() + 20s, [&] { return peer.alive(); }});
  auto echo = [&](unsigned seed) {
    auto msg = testing_support::pattern(1000, seed);
    ch->send(msg);
    std::vector<std::byte> back(4096);
    const std::size_t n = ch->recv(back);
    back.resize(n);
    return back == msg;
  };
  EXPECT_TRUE(echo(1));
  // While the link runs: the stranger's messages are dropped, the link goes on.
  stranger.call(caller, "Deliver", "ay", junk, sizeof junk);
  EXPECT_TRUE(echo(2));
  EXPECT_TRUE(echo(3));
  ch.reset();
  EXPECT_EQ(peer.finish(5s), "exit 0");
}

// The listening socket goes to the daemon as descriptor 3 whatever number it has here
// (a shell's redirection of a number above 9 once failed: "Bad fd number").
TEST(Dbus, TheBusStartsWhateverDescriptorNumbersAreInUse) {
  std::vector<UniqueFd> filler;
  for (int i = 0; i < 24; ++i) filler.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  const Transport* t = find_transport("dbus");
  ASSERT_NE(t, nullptr);
  RunDir dir;
  auto listener = t->listen(dir, 64, testing_support::settings());
  const Endpoint ep = listener->endpoint();
  PeerArgs args{t->info().name, ep.addresses, 64, false, "echo", IPCBENCH_BINARY};
  ChildProcess peer = ChildProcess::spawn({peer_command(args), ep.inherit_fds, -1});
  auto ch =
      listener->accept({std::chrono::steady_clock::now() + 20s, [&] { return peer.alive(); }});
  auto msg = testing_support::pattern(64, 7);
  ch->send(msg);
  std::vector<std::byte> back(64);
  back.resize(ch->recv(back));
  EXPECT_EQ(back, msg);
  ch.reset();
  EXPECT_EQ(peer.finish(5s), "exit 0");
}

// Waits up to 20 s for a bus daemon started by `run`; adds what it sees to `seen`.
pid_t wait_for_daemon(pid_t run, std::set<pid_t>& seen) {
  for (auto end = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < end;) {
    auto d = testing_support::children_of(run, "dbus-daemon");
    if (!d.empty()) {
      seen.insert(d.begin(), d.end());
      return *d.begin();
    }
    std::this_thread::sleep_for(1ms);
  }
  return -1;
}

TEST(Dbus, ABusDaemonKilledMidRunFailsItsCellOnly) {
  Scratch s;
  pid_t run = start(
      {"--transports=dbus", "--workloads=pingpong", "--sizes=64,4K", "--benchmark_min_time=0.5",
       "--cell-timeout=5", "--benchmark_out=" + (s.dir / "out.json").string()},
      s);
  ASSERT_GT(run, 0);
  std::set<pid_t> daemons, peers;
  pid_t daemon = wait_for_daemon(run, daemons);
  ASSERT_GT(daemon, 0) << testing_support::slurp(s.dir / "stderr");
  std::this_thread::sleep_for(200ms);  // inside the first cell's window
  ::kill(daemon, SIGKILL);
  std::thread watcher([&] {
    for (int i = 0; i < 20000 && ::kill(run, 0) == 0; ++i) {
      auto d = testing_support::children_of(run, "dbus-daemon");
      daemons.insert(d.begin(), d.end());
      auto p = testing_support::peers_of(run);
      peers.insert(p.begin(), p.end());
      std::this_thread::sleep_for(1ms);
    }
  });
  int status = testing_support::wait_exit(run);
  watcher.join();
  EXPECT_EQ(status, 1) << testing_support::slurp(s.dir / "stderr");
  auto j = results(s);
  const auto& b = j.at("benchmarks");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_TRUE(b[0].value("error_occurred", false)) << b[0].dump();
  EXPECT_NE(b[0].value("error_message", "").find("bus"), std::string::npos) << b[0].dump();
  // The second cell had a bus of its own, and its daemon's CPU is counted.
  EXPECT_FALSE(b[1].value("error_occurred", false)) << b[1].value("error_message", "");
  EXPECT_GT(daemons.size(), 1u) << "the second cell ran on a new bus";
  EXPECT_GT(b[1].value("cpu_daemon_ns_per_msg", 0.0), 0.0) << b[1].dump();
  EXPECT_TRUE(testing_support::all_gone(daemons)) << "a bus daemon outlived the run";
  EXPECT_TRUE(testing_support::all_gone(peers));
  EXPECT_TRUE(testing_support::leftovers(s, run).empty());
}

// However the runner ends, its bus daemon goes with it: SIGTERM (the cleanup handler
// kills it) and SIGKILL (it dies with its parent: PR_SET_PDEATHSIG).
class DbusRunnerEnd : public ::testing::TestWithParam<int> {};

TEST_P(DbusRunnerEnd, TakesTheBusDaemonWithIt) {
  Scratch s;
  pid_t run = start({"--transports=dbus", "--workloads=pingpong", "--sizes=64",
                     "--benchmark_min_time=5", "--benchmark_out=" + (s.dir / "out.json").string()},
                    s);
  ASSERT_GT(run, 0);
  std::set<pid_t> daemons;
  ASSERT_GT(wait_for_daemon(run, daemons), 0) << testing_support::slurp(s.dir / "stderr");
  std::this_thread::sleep_for(300ms);
  ::kill(run, GetParam());
  EXPECT_EQ(testing_support::wait_exit(run), 128 + GetParam());
  EXPECT_TRUE(testing_support::all_gone(daemons)) << "the bus daemon outlived the runner";
  if (GetParam() != SIGKILL) {
    EXPECT_TRUE(testing_support::leftovers(s, run).empty());
  }
}

INSTANTIATE_TEST_SUITE_P(Signals, DbusRunnerEnd, ::testing::Values(SIGTERM, SIGKILL),
                         [](const auto& info) { return std::string(::sigabbrev_np(info.param)); });

// A link that does not run through a daemon counts none.
TEST(Dbus, OnlyTheBusTransportCountsADaemon) {
  Scratch s;
  pid_t run =
      start({"--transports=dbus-p2p", "--workloads=pingpong", "--sizes=64",
             "--benchmark_min_time=0.05", "--benchmark_out=" + (s.dir / "out.json").string()},
            s);
  ASSERT_EQ(testing_support::wait_exit(run), 0) << testing_support::slurp(s.dir / "stderr");
  auto j = results(s);
  ASSERT_EQ(j.at("benchmarks").size(), 1u);
  EXPECT_FALSE(j["benchmarks"][0].contains("cpu_daemon_ns_per_msg"));
}

}  // namespace
}  // namespace ipcbench
