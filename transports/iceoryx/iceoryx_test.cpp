// The iceoryx transports beyond what the conformance, fault and listener suites check for
// every transport: a same-uid stranger on the link's topics is never taken for the peer,
// RouDi is the run's own and goes with it, and a second RouDi is never started beside one
// that runs (the links say why they cannot run instead).
//
// These tests run one at a time (ctest's RESOURCE_LOCK roudi, CMakeLists.txt): a process
// that made an iceoryx link keeps its RouDi until it exits.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "base/fd.h"
#include "base/ipc_name.h"
#include "base/process.h"
#include "base/roudi_files.h"
#include "base/run_dir.h"
#include "bench/peer.h"
#include "harness/sweep.h"
#include "iceoryx_hoofs/platform/platform_settings.hpp"
#include "iceoryx_posh/iceoryx_posh_types.hpp"
#include "tests/test_support.h"
#include "transports/registry.h"

namespace ipcbench {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing_support::results;
using testing_support::Scratch;
using testing_support::start;

// The names base/roudi_files.h gives RouDi's files are the ones this iceoryx gives them.
TEST(Iceoryx, RoudisNamesAreIceoryxsOwn) {
  const std::string tmp = iox::platform::IOX_UDS_SOCKET_PATH_PREFIX;
  EXPECT_EQ(std::string(iox::platform::IOX_LOCK_FILE_PATH_PREFIX), tmp);
  const std::vector<std::string> n = roudi_files::names();
  ASSERT_GE(n.size(), 4u);
  EXPECT_EQ(n[0], tmp + iox::roudi::IPC_CHANNEL_ROUDI_NAME);
  EXPECT_EQ(n[0], roudi_files::socket_path());
  EXPECT_EQ(n[1], tmp + iox::roudi::IPC_CHANNEL_ROUDI_NAME + ".lock");
  EXPECT_EQ(n[2], tmp + iox::roudi::ROUDI_LOCK_NAME + ".lock");
  EXPECT_EQ(n[2], roudi_files::unique_lock_path());
  EXPECT_EQ(n[3], std::string("/dev/shm/") + iox::roudi::SHM_NAME);
}

// A peer process that subscribes and publishes on the link's topics as the real peer does,
// but presents a wrong token: an echo peer handed a token pipe of the test's.
TEST(Iceoryx, AStrangerOnTheTopicsIsNeverTakenForThePeer) {
  const Transport* t = find_transport("iceoryx-waitset");
  ASSERT_NE(t, nullptr);
  RunDir dir;
  auto listener = t->listen(dir, 4096, testing_support::settings());
  const Endpoint ep = listener->endpoint();
  ASSERT_EQ(ep.addresses.size(), 4u);

  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  const std::string wrong(32, '0');
  ASSERT_EQ(::write(p[1], wrong.data(), wrong.size()), static_cast<ssize_t>(wrong.size()));
  ::close(p[1]);
  std::vector<std::string> stranger_addresses = ep.addresses;
  stranger_addresses[3] = std::to_string(p[0]);
  PeerArgs sargs{t->info().name, stranger_addresses, 4096, false, "echo", IPCBENCH_BINARY};
  ChildProcess stranger = ChildProcess::spawn({peer_command(sargs), {p[0]}, -1});
  ::close(p[0]);
  std::this_thread::sleep_for(300ms);  // its hello is in before the peer's

  PeerArgs args{t->info().name, ep.addresses, 4096, false, "echo", IPCBENCH_BINARY};
  ChildProcess peer = ChildProcess::spawn({peer_command(args), ep.inherit_fds, -1});
  auto ch =
      listener->accept({std::chrono::steady_clock::now() + 20s, [&] { return peer.alive(); }});
  // The stranger echoes what it gets too; only the peer's echoes come back, one each.
  for (unsigned seed = 1; seed <= 20; ++seed) {
    auto msg = testing_support::pattern(100 + seed, seed);
    ch->send(msg);
    std::vector<std::byte> back(4096);
    back.resize(ch->recv(back));
    ASSERT_EQ(back, msg) << "round trip " << seed;
  }
  ch.reset();
  EXPECT_EQ(peer.finish(5s), "exit 0");
  stranger.finish(5s);  // it sees the link's end too: a kill would leave RouDi listing it
}

// While this process's RouDi runs, a run's iceoryx cells fail saying so, and the RouDi
// that runs is not disturbed.
TEST(Iceoryx, ARunBesideAnotherRoudiFailsItsCellsSayingWhy) {
  RunDir dir;
  auto listener = find_transport("iceoryx-spin")->listen(dir, 64, testing_support::settings());
  Scratch s;
  pid_t run =
      start({"--transports=iceoryx-spin", "--workloads=pingpong", "--sizes=64",
             "--benchmark_min_time=0.05", "--benchmark_out=" + (s.dir / "out.json").string()},
            s);
  EXPECT_EQ(testing_support::wait_exit(run), 1) << testing_support::slurp(s.dir / "stderr");
  auto j = results(s);
  ASSERT_EQ(j.at("benchmarks").size(), 1u);
  EXPECT_NE(j["benchmarks"][0].value("error_message", "").find("another RouDi runs"),
            std::string::npos)
      << j["benchmarks"][0].dump();
  EXPECT_TRUE(fs::exists("/dev/shm/iceoryx_mgmt")) << "ours must still be there";
}

// However the runner ends, its RouDi goes with it: at SIGTERM the run ends and RouDi
// removes its shared memory; at SIGKILL it dies with its parent (PR_SET_PDEATHSIG).
class IceoryxRunnerEnd : public ::testing::TestWithParam<int> {};

TEST_P(IceoryxRunnerEnd, TakesRoudiWithIt) {
  Scratch s;
  pid_t run = start({"--transports=iceoryx-waitset", "--workloads=pingpong", "--sizes=64",
                     "--benchmark_min_time=5", "--benchmark_out=" + (s.dir / "out.json").string()},
                    s);
  ASSERT_GT(run, 0);
  std::set<pid_t> roudis, peers;
  for (auto end = std::chrono::steady_clock::now() + 20s;
       (roudis.empty() || peers.empty()) && std::chrono::steady_clock::now() < end;) {
    auto r = testing_support::children_of(run, "iox-roudi");
    roudis.insert(r.begin(), r.end());
    auto p = testing_support::peers_of(run);
    peers.insert(p.begin(), p.end());
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_FALSE(roudis.empty()) << testing_support::slurp(s.dir / "stderr");
  ASSERT_FALSE(peers.empty()) << testing_support::slurp(s.dir / "stderr");
  std::this_thread::sleep_for(300ms);
  const std::optional<RunStamp> stamp = RunStamp::of(run);
  ASSERT_TRUE(stamp);
  ASSERT_TRUE(fs::exists(roudi_files::proof_path(*stamp))) << "no proof of RouDi's files";
  ::kill(run, GetParam());
  EXPECT_EQ(testing_support::wait_exit(run), 128 + GetParam());
  EXPECT_TRUE(testing_support::all_gone(roudis)) << "RouDi outlived the runner";
  EXPECT_TRUE(testing_support::all_gone(peers));
  if (GetParam() == SIGKILL) {
    // Nothing in a SIGKILLed runner cleans up: its and its peer's iceoryx runtime files
    // (named by their stamps), its run directory, and the files of the RouDi that died
    // with it (by the runner's proof) are left to the next run's sweep, which runs here,
    // over the places this run used.
    sweep_stale_objects({(s.dir / "tmp").string(), "/tmp"}, "/dev/shm", "/tmp");
    for (pid_t peer : peers) {
      const auto left = testing_support::leftovers(s, peer);
      EXPECT_TRUE(left.empty()) << left.front();
    }
  }
  for (const std::string& name : roudi_files::names())
    EXPECT_FALSE(fs::exists(fs::symlink_status(name))) << "RouDi's " << name << " was left";
  EXPECT_FALSE(fs::exists(roudi_files::proof_path(*stamp)));
  const auto left = testing_support::leftovers(s, run);
  EXPECT_TRUE(left.empty()) << left.front();
}

// iceoryx 2.0 deadlocks RouDi when a process is killed while it holds a lock in RouDi's
// shared memory (iceoryx_transport.cpp), and then everything that asks RouDi something
// waits forever. Provoked for real: a link made, its peer SIGKILLed at once (it may still
// be in the publish of its hello, holding its publisher's lock), and 3 s for RouDi's
// monitoring to drop the dead peer, which takes that lock. Whether a kill catches the lock
// held is chance (seen here, Release build, 5 runs: RouDi deadlocked while links were
// made in all 5, at exit in 3), so the scenario repeats it. It runs in a process of its own (this
// binary again, the scenario's test alone), because a process registers with one RouDi for life.
// What must hold whatever the chance: the process ends by itself, with exit 0 (its links
// failing with the reason) or, when it was waiting for a port, as at SIGHUP after one
// line saying why; and RouDi leaves nothing behind.
constexpr int kAttempts = 6;

TEST(IceoryxDeadlockScenario, KillPeersAsTheirLinksEnd) {
  const char* mode = std::getenv("IPCBENCH_ICEORYX_DEADLOCK_SCENARIO");
  if (!mode) GTEST_SKIP() << "runs inside IceoryxDeadlock.AKilledPeerNeverHangsTheProcess";
  const bool at_exit = std::string(mode) == "exit";
  const Transport* t = find_transport("iceoryx-waitset");
  ASSERT_NE(t, nullptr);
  // The killed peers' runtime files (/tmp/<stamp>, iceoryx's) go with their links, and
  // the links are never ended here: the scenario removes them itself as it ends.
  std::vector<std::string> peer_files;
  struct RemoveAtEnd {
    std::vector<std::string>& files;
    ~RemoveAtEnd() {
      for (const auto& f : files) ::unlink(f.c_str());
    }
  } remove_at_end{peer_files};
  for (int attempt = 1; attempt <= kAttempts; ++attempt) {
    RunDir dir;
    try {
      auto listener = t->listen(dir, 64, testing_support::settings());
      PeerArgs args{t->info().name, listener->endpoint().addresses, 64, false, "echo",
                    IPCBENCH_BINARY};
      ChildProcess peer =
          ChildProcess::spawn({peer_command(args), listener->endpoint().inherit_fds, -1});
      if (auto st = RunStamp::of(peer.pid())) {
        peer_files.push_back("/tmp/" + st->text());
        peer_files.push_back("/tmp/" + st->text() + ".lock");
      }
      std::printf("scenario: peer %d\n", static_cast<int>(peer.pid()));
      auto ch =
          listener->accept({std::chrono::steady_clock::now() + 20s, [&] { return peer.alive(); }});
      peer.kill_now();  // at once: it may still be in the publish of its hello
      // Our side of the link is kept as it is, never touched again: the killed peer may
      // hold the lock of our subscriber's queue too, and nothing would ever free it.
      static auto* kept = new std::vector<std::unique_ptr<Channel>>;
      kept->push_back(std::move(ch));
    } catch (const std::exception& e) {
      std::printf("scenario: link %d: %s\n", attempt, e.what());
      return;
    }
    std::printf("scenario: link %d made, its peer killed at once\n", attempt);
    std::fflush(stdout);
    std::this_thread::sleep_for(3s);  // RouDi's monitoring drops the peer (1.5 s)
    if (at_exit && attempt == kAttempts / 2) return;
  }
}

TEST(IceoryxDeadlock, AKilledPeerNeverHangsTheProcess) {
  for (const char* mode : {"link", "exit"}) {
    SCOPED_TRACE(mode);
    Scratch s;
    ::setenv("IPCBENCH_ICEORYX_DEADLOCK_SCENARIO", mode, 1);
    const pid_t run = testing_support::spawn_captured(
        {"/proc/self/exe", "--gtest_filter=IceoryxDeadlockScenario.*"}, s);
    ::unsetenv("IPCBENCH_ICEORYX_DEADLOCK_SCENARIO");
    ASSERT_GT(run, 0);
    // Waited for 60 s at most: a hang fails the test instead of never ending.
    const int status = testing_support::wait_exit_within(run, 60s);
    const std::string text =
        testing_support::slurp(s.dir / "stdout") + testing_support::slurp(s.dir / "stderr");
    const bool deadlocked = text.find("RouDi deadlocked") != std::string::npos;
    ASSERT_NE(status, -1) << "the process hung (killed after 60 s)\n" << text;
    if (status == 128 + SIGHUP) {
      EXPECT_TRUE(deadlocked) << "ended by SIGHUP without saying why\n" << text;
    } else {
      EXPECT_EQ(status, 0) << text;
    }
    std::printf("[%s] %s; the process ended by itself (%s)\n", mode,
                deadlocked ? "RouDi deadlocked" : "no deadlock provoked this time",
                status == 0 ? "exit 0" : "SIGHUP");
    EXPECT_TRUE(testing_support::leftovers(s, run).empty());
    // Nor the killed peers' (iceoryx's runtime files, named by their stamps).
    int peers = 0;
    for (std::size_t at = 0; (at = text.find("scenario: peer ", at)) != std::string::npos;
         ++peers) {
      at += std::strlen("scenario: peer ");
      const pid_t peer = std::atoi(text.c_str() + at);
      const auto left = testing_support::leftovers(s, peer);
      EXPECT_TRUE(left.empty()) << left.front();
    }
    EXPECT_GT(peers, 0) << text;
    for (const std::string& name : roudi_files::names())
      EXPECT_FALSE(fs::exists(fs::symlink_status(name))) << "RouDi left " << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Signals, IceoryxRunnerEnd, ::testing::Values(SIGTERM, SIGKILL),
                         [](const auto& info) { return std::string(::sigabbrev_np(info.param)); });

}  // namespace
}  // namespace ipcbench
