// The clients workload (fan-in) against the real runner: for every transport with a
// fan-in form and every server model it offers, three clients at once carry their bytes
// intact (--verify) with no reply crossing to another client; a client killed or stopped
// mid-run makes its cell an error row while the next cell passes, and nothing is left
// behind. And the client's own check: a reply carrying another client's tag fails it.
// fifo's shared request FIFO refuses what PIPE_BUF cannot keep whole, and takes no
// forged hello; a spin-poll server is not run where it would share a CPU.
#include "transports/many.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "base/run_dir.h"
#include "bench/clients.h"
#include "bench/party.h"
#include "bench/protocol.h"
#include "tests/test_support.h"
#include "transports/framing.h"
#include "transports/registry.h"

namespace ipcbench {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing_support::results;
using testing_support::Scratch;
using testing_support::slurp;
using testing_support::start;

// Waits for `run` to exit, adding its peers to `seen` as they come (looking for up to
// `looks` milliseconds); returns its exit status.
int wait_watching(pid_t run, std::set<pid_t>& seen, int looks = 20000) {
  std::thread watcher([&] {
    for (int i = 0; i < looks && ::kill(run, 0) == 0; ++i) {
      auto p = testing_support::peers_of(run);
      seen.insert(p.begin(), p.end());
      std::this_thread::sleep_for(1ms);
    }
  });
  int status = testing_support::wait_exit(run);
  watcher.join();
  return status;
}

struct Case {
  const Transport* transport;
  std::string model;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.transport->info().name << "/" << c.model; }

std::vector<Case> fan_in_cases() {
  std::vector<Case> v;
  for (const Transport* t : all_transports())
    for (const std::string& m : t->info().server_models) v.push_back({t, m});
  return v;
}

std::string case_name(const Case& c) {
  return testing_support::test_suffix(c.transport->info().name + "_" + c.model);
}

bool spins(const Transport& t) { return t.info().wait == "spin"; }

class ManyClients : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    std::string why = testing_support::untestable_reason(GetParam().transport->info().needs);
    if (!why.empty()) GTEST_SKIP() << why;
  }
  std::vector<std::string> args(const Scratch& s, int clients, const std::string& min_time) {
    const Case& c = GetParam();
    return {"--transports=" + c.transport->info().name,
            "--workloads=clients",
            "--clients=" + std::to_string(clients),
            "--sizes=64,4000",  // 4000: within what fifo's shared request FIFO carries
            "--benchmark_filter=/server:" + c.model + "/",
            "--benchmark_min_time=" + min_time,
            "--cell-timeout=3",
            "--verify",
            "--benchmark_out=" + (s.dir / "out.json").string()};
  }
};

TEST_P(ManyClients, ThreeClientsGetTheirOwnRepliesIntact) {
  Scratch s;
  const Case& c = GetParam();
  pid_t run = start(args(s, 3, "0.1"), s);
  ASSERT_GT(run, 0);
  std::set<pid_t> seen;
  int status = wait_watching(run, seen);
  const auto j = results(s);
  const auto& rows = j.at("benchmarks");
  ASSERT_EQ(rows.size(), 2u) << j.dump();
  if (spins(*c.transport)) {
    // Three busy-polling clients cannot have a CPU each on a small machine: refused,
    // never measured as if they had.
    EXPECT_EQ(status, 1);
    for (const auto& r : rows)
      EXPECT_NE(r.value("error_message", "").find("busy-poll"), std::string::npos) << r.dump();
  } else {
    EXPECT_EQ(status, 0) << slurp(s.dir / "stderr");
    for (const auto& r : rows) {
      ASSERT_FALSE(r.value("error_occurred", false)) << r.dump();
      EXPECT_EQ(r.at("clients").get<double>(), 3);
      EXPECT_GT(r.at("rtt_per_s").get<double>(), 0);
      EXPECT_GT(r.at("rtt_p50_ns").get<double>(), 0);
      EXPECT_GT(r.at("share_min").get<double>(), 0) << "a client completed no round trip";
      EXPECT_LE(r.at("fairness_jain").get<double>(), 1.0 + 1e-9);
      EXPECT_GE(r.at("fairness_jain").get<double>(), 1.0 / 3 - 1e-9);
      EXPECT_NE(r.value("label", "").find("server=" + c.model), std::string::npos);
    }
  }
  EXPECT_TRUE(testing_support::all_gone(seen)) << "a client outlived the run";
  auto left = testing_support::leftovers(s, run);
  EXPECT_TRUE(left.empty()) << left.front();
}

// A client killed (or stopped) at a random moment: its cell fails naming the client, the
// next cell passes, every process is gone and nothing is left.
// `delay`: none (a random moment in the first 150 ms) or a fixed wait after the client
// started.
void fault_one_client(const Case& c, const std::vector<std::string>& args, const Scratch& s,
                      int signal, std::initializer_list<const char*> expect_in_error,
                      std::chrono::milliseconds delay = 0ms) {
  pid_t run = start(args, s);
  ASSERT_GT(run, 0);
  std::set<pid_t> seen;
  pid_t client = testing_support::wait_for_peer(run, seen);
  ASSERT_GT(client, 0) << slurp(s.dir / "stderr");
  std::mt19937 rng(std::hash<std::string>{}(case_name(c)) ^ signal);
  std::this_thread::sleep_for(
      delay > 0ms ? std::chrono::microseconds(delay)
                  : std::chrono::microseconds(std::uniform_int_distribution<int>(0, 150000)(rng)));
  ::kill(client, signal);
  int status = wait_watching(run, seen, 30000);
  ::kill(client, SIGCONT);
  EXPECT_EQ(status, 1) << "one cell failed: " << slurp(s.dir / "stderr");
  const auto j = results(s);
  const auto& rows = j.at("benchmarks");
  ASSERT_EQ(rows.size(), 2u);
  ASSERT_TRUE(rows[0].value("error_occurred", false)) << rows[0].dump();
  const std::string msg = rows[0].value("error_message", "");
  bool named = false;
  for (const char* word : expect_in_error) named |= msg.find(word) != std::string::npos;
  EXPECT_TRUE(named) << msg;
  EXPECT_FALSE(rows[1].value("error_occurred", false)) << rows[1].value("error_message", "");
  EXPECT_TRUE(testing_support::all_gone(seen)) << "a client outlived the run";
  auto left = testing_support::leftovers(s, run);
  EXPECT_TRUE(left.empty()) << left.front();
}

TEST_P(ManyClients, AClientKilledMidRunFailsOnlyItsCell) {
  Scratch s;
  const Case& c = GetParam();
  // The row names how the client ended, whichever side noticed first.
  fault_one_client(c, args(s, spins(*c.transport) ? 1 : 2, "0.3"), s, SIGKILL,
                   {"killed by signal 9"});
}

TEST_P(ManyClients, AClientStoppedMidRunFailsOnlyItsCell) {
  Scratch s;
  const Case& c = GetParam();
  // Stopped 200 ms after it started, it has usually connected and is inside its window:
  // the server waits for its result until the cell timeout. Stopped before it connected
  // (a slow machine), the set-up times out instead.
  fault_one_client(c, args(s, spins(*c.transport) ? 1 : 2, "0.5"), s, SIGSTOP,
                   {"no answer in time", "timed out", "set-up"}, 200ms);
}

INSTANTIATE_TEST_SUITE_P(EveryFanInForm, ManyClients, ::testing::ValuesIn(fan_in_cases()),
                         [](const auto& info) { return case_name(info.param); });

// The shared request FIFO at a size whose request would exceed PIPE_BUF: an error row
// that names the limit (never a run whose requests could interleave), while the size
// within it passes; no client is left and nothing is left behind.
TEST(FifoSharedQueue, ARequestOverPipeBufIsAnErrorRowNamingTheLimit) {
  Scratch s;
  pid_t run =
      start({"--transports=fifo", "--workloads=clients", "--clients=3", "--sizes=64,4085",
             "--benchmark_filter=/server:shared-queue/", "--benchmark_min_time=0.1",
             "--cell-timeout=3", "--verify", "--benchmark_out=" + (s.dir / "out.json").string()},
            s);
  ASSERT_GT(run, 0);
  std::set<pid_t> seen;
  EXPECT_EQ(wait_watching(run, seen), 1) << slurp(s.dir / "stderr");
  const auto rows = results(s).at("benchmarks");
  ASSERT_EQ(rows.size(), 2u) << rows.dump();
  EXPECT_FALSE(rows[0].value("error_occurred", false)) << rows[0].dump();
  EXPECT_EQ(rows[0].at("clients").get<double>(), 3);
  ASSERT_TRUE(rows[1].value("error_occurred", false)) << rows[1].dump();
  const std::string msg = rows[1].value("error_message", "");
  EXPECT_NE(rows[1].at("name").get<std::string>().find("clients/fifo/4085/"), std::string::npos);
  for (const char* word : {"PIPE_BUF", "4096", "4084", "interleave"})
    EXPECT_NE(msg.find(word), std::string::npos) << word << " not in: " << msg;
  EXPECT_TRUE(testing_support::all_gone(seen)) << "a client outlived the run";
  auto left = testing_support::leftovers(s, run);
  EXPECT_TRUE(left.empty()) << left.front();
}

// With the default sizes (64 B, 64 KiB) the cell the form cannot carry is left out and
// named on stderr, not run as a failure.
TEST(FifoSharedQueue, DefaultSizesLeaveOutWhatPipeBufCannotCarry) {
  Scratch s;
  pid_t run = start({"--transports=fifo", "--workloads=clients", "--clients=1",
                     "--benchmark_filter=/server:shared-queue/", "--benchmark_min_time=0.05",
                     "--benchmark_out=" + (s.dir / "out.json").string()},
                    s);
  ASSERT_GT(run, 0);
  EXPECT_EQ(testing_support::wait_exit(run), 0) << slurp(s.dir / "stderr");
  const auto rows = results(s).at("benchmarks");
  ASSERT_EQ(rows.size(), 1u) << rows.dump();
  EXPECT_NE(rows[0].at("name").get<std::string>().find("clients/fifo/64/"), std::string::npos);
  const std::string err = slurp(s.dir / "stderr");
  EXPECT_NE(err.find("clients/fifo/65536/clients:1/server:shared-queue (at most 4084 bytes)"),
            std::string::npos)
      << err;
}

// A hello that claims a client number already taken, or one that is no client's, fails
// the set-up: the envelope's number is checked (see docs/many-clients.md for what it
// cannot check: every client runs under the same uid). Forms made by listen_fan_in
// refuse a size over the limit before making anything.
TEST(FifoSharedQueue, ForgedHellosAndOversizedFormsAreRefused) {
  const Transport& t = *find_transport("fifo");
  const SetupWait soon{std::chrono::steady_clock::now() + 10s, [] { return true; }};
  for (const std::string forged : {"0", "7"}) {
    RunDir dir;
    auto listener = t.listen_fan_in(dir, 64, testing_support::settings(), 2, "shared-queue");
    ASSERT_TRUE(listener);
    Endpoint fake = listener->endpoint(0);
    fake.addresses.back() = forged;
    auto forger = t.connect(fake, soon);  // says hello first
    auto c0 = t.connect(listener->endpoint(0), soon);
    auto c1 = t.connect(listener->endpoint(1), soon);
    const std::string err = testing_support::error_of([&] { listener->accept(soon); });
    EXPECT_NE(err.find(forged == "0" ? "client 0 said hello twice" : "names client 7 of 2"),
              std::string::npos)
        << err;
  }
  RunDir dir;
  const std::string err = testing_support::error_of(
      [&] { t.listen_fan_in(dir, 4085, testing_support::settings(), 2, "shared-queue"); });
  EXPECT_NE(err.find("PIPE_BUF"), std::string::npos) << err;
  std::size_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir.path()))
    entries += e.path().filename() != ".ipcbench-run";
  EXPECT_EQ(entries, 0u) << "the refused form made something";
  EXPECT_EQ(testing_support::error_of([&] {
              t.listen_fan_in(dir, 4084, testing_support::settings(), 2, "shared-queue");
            }),
            "")
      << "the largest size within the limit";
}

// The spin-poll server busy-polls: with the clients on its CPU (--pin=same) its cell is
// refused, saying why, even for rings whose own sides sleep (shm-futex).
TEST(SpinPoll, AServerSharingItsCpuIsRefused) {
  Scratch s;
  pid_t run =
      start({"--transports=shm-futex", "--workloads=clients", "--clients=1", "--sizes=64",
             "--pin=same", "--benchmark_filter=/server:spin-poll/", "--benchmark_min_time=0.05",
             "--benchmark_out=" + (s.dir / "out.json").string()},
            s);
  ASSERT_GT(run, 0);
  EXPECT_EQ(testing_support::wait_exit(run), 1) << slurp(s.dir / "stderr");
  const auto rows = results(s).at("benchmarks");
  ASSERT_EQ(rows.size(), 1u) << rows.dump();
  EXPECT_NE(rows[0].value("error_message", "").find("spin-poll server busy-polls"),
            std::string::npos)
      << rows[0].dump();
  EXPECT_TRUE(testing_support::leftovers(s, run).empty());
}

// The client's check of every reply: one that carries another client's tag, otherwise
// well formed, fails the client with a line that says so.
TEST(ManyClientsCheck, AReplyForAnotherClientFailsTheClient) {
  int link[2], ctl[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, link), 0);
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl), 0);
  UniqueFd server_ctl(ctl[0]);
  StreamChannel client_link{UniqueFd(link[1])}, server_link{UniqueFd(link[0])};
  PeerArgs a;
  a.transport = "uds";
  a.max_size = 64;
  a.client_id = 1;
  a.control_fd = ctl[1];
  std::string client_error;
  std::thread client([&] {
    try {
      run_fan_in_client(*find_transport("uds"), client_link, a);
    } catch (const std::exception& e) {
      client_error = e.what();
    }
  });
  std::vector<std::byte> buf(sizeof(PartyResult) + 1);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  // The first request (the one before the client reports ready), answered as if it were
  // client 2's: the same bytes, re-stamped.
  std::vector<std::byte> msg(64);
  ASSERT_EQ(server_link.recv(msg), 64u);
  MsgHeader h = read_header(msg);
  EXPECT_EQ(h.seq >> 24, 1u) << "the request carries its client's number";
  const std::uint32_t digest = h.check ^ header_mix(h.seq, h.len, h.kind);
  const std::uint32_t other = (2u << 24) | (h.seq & 0xffffff);
  stamp(msg, other, Kind::kPing, digest);
  server_link.send(msg);
  client.join();
  EXPECT_NE(client_error.find("received client 2's reply"), std::string::npos) << client_error;
  std::size_t n = party_recv(server_ctl.get(), buf.data(), buf.size(), deadline, "failure");
  ASSERT_GT(n, sizeof(PartyKind));
  PartyKind k;
  std::memcpy(&k, buf.data(), sizeof k);
  EXPECT_EQ(k, PartyKind::kFailed) << "the runner is told why";
  ::close(ctl[1]);
}

}  // namespace
}  // namespace ipcbench
