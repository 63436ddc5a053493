// The AMQP transports against real RabbitMQ brokers: the broker that scripts/test.sh
// runs (IPCBENCH_AMQP_URL), and a private one this test starts and stops mid-run.
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "base/ipc_name.h"
#include "tests/test_support.h"

namespace ipcbench {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing_support::results;
using testing_support::slurp;
using testing_support::spawn_captured;
using testing_support::wait_exit;

using Scratch = testing_support::Scratch;

const char* kBrokerSh = IPCBENCH_SOURCE_DIR "/scripts/broker.sh";

bool broker_installed() { return fs::exists("/usr/lib/rabbitmq/bin/rabbitmq-server"); }

// Runs scripts/broker.sh COMMAND for a private node in `dir` on `port`.
int broker(const std::string& command, const fs::path& dir, int port) {
  std::string line = "IPCBENCH_BROKER_DIR='" + dir.string() +
                     "' IPCBENCH_BROKER_PORT=" + std::to_string(port) + " " + kBrokerSh + " " +
                     command + " >/dev/null 2>&1";
  return std::system(line.c_str());  // test-made arguments only
}

// The consumers of the queue of that name on the broker at url (passive declare);
// nothing when there is no such queue.
std::optional<std::uint32_t> queue_consumers(const std::string& url, const std::string& name) {
  std::string u = url;
  amqp_connection_info ci{};
  if (amqp_parse_url(u.data(), &ci) != AMQP_STATUS_OK) throw std::runtime_error("bad url");
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t* s = amqp_tcp_socket_new(c);
  if (amqp_socket_open(s, ci.host, ci.port) != AMQP_STATUS_OK) {
    amqp_destroy_connection(c);
    throw std::runtime_error("broker unreachable");
  }
  amqp_login(c, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
  amqp_channel_open(c, 1);
  auto* ok =
      amqp_queue_declare(c, 1, amqp_cstring_bytes(name.c_str()), 1, 0, 0, 0, amqp_empty_table);
  std::optional<std::uint32_t> consumers;
  if (amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL && ok) {
    consumers = ok->consumer_count;
    amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
  }
  amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(c);
  return consumers;
}

TEST(Amqp, NoQueueIsLeftOnTheBroker) {
  const char* url = std::getenv("IPCBENCH_AMQP_URL");
  if (!url || !*url) GTEST_SKIP() << testing_support::untestable_reason("an AMQP broker");
  Scratch s;
  // Windows of 0.3 s, not --quick's 0.1 s: this test is about cleanup, and on a loaded
  // machine (a sanitizer build beside a broker starting up) one durable round trip once
  // took longer than 0.1 s, which failed a clients cell with no round trip in its window.
  pid_t run = spawn_captured(
      {IPCBENCH_BINARY, "--transports=amqp,amqp-durable", "--sizes=64,4K", "--quick",
       "--benchmark_min_time=0.3", "--benchmark_out=" + (s.dir / "out.json").string()},
      s);
  ASSERT_GT(run, 0);
  const std::optional<RunStamp> stamp = RunStamp::of(run);  // read while it runs
  ASSERT_EQ(wait_exit(run), 0) << slurp(s.dir / "stderr");
  ASSERT_TRUE(stamp);
  const nlohmann::json j = results(s);  // the loop below reads into it
  for (const auto& b : j.at("benchmarks"))
    EXPECT_FALSE(b.value("error_occurred", false)) << b.value("error_message", "");
  // Queues are <stamp>-amqp-<n>-req/-rep, one pair per link, n from 0.
  for (unsigned n = 0; n < 4; ++n)
    for (const char* end : {"-req", "-rep"}) {
      std::string q = ipc_name::nth(*stamp, ipc_name::Kind::kAmqp, n) + end;
      EXPECT_FALSE(queue_consumers(url, q)) << q << " left on the broker";
    }
}

// A private broker (its own node, data and ports) and an ipcbench run against it, for
// faults the shared broker of test.sh must not suffer.
class PrivateBroker : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!broker_installed()) GTEST_SKIP() << "rabbitmq-server is not installed";
    // AMQP 3000-4499 (epmd +10000, distribution +20000): apart from test.sh's broker.
    port_ = 3000 + static_cast<int>(::getpid() % 1500);
    if (port_ == 4369) ++port_;  // epmd's own port
    dir_ = s_.dir / "broker";
    started_ = true;  // a node that started too slowly must be stopped too
    ASSERT_EQ(broker("start", dir_, port_), 0) << "private broker did not start";
    std::ifstream pidfile(dir_ / "rabbitmq.pid");
    ASSERT_TRUE(pidfile >> beam_) << "no broker pid file";
  }
  void TearDown() override {
    if (beam_ > 0) ::kill(beam_, SIGCONT);  // a stopped node would not hear "stop"
    if (started_ && broker("stop", dir_, port_) != 0 && beam_ > 0) ::kill(beam_, SIGKILL);
  }
  std::string url() const { return "amqp://guest:guest@" + address(); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // Starts ipcbench with IPCBENCH_AMQP_URL naming this broker.
  pid_t run(const std::vector<std::string>& args) {
    const char* before = std::getenv("IPCBENCH_AMQP_URL");
    std::string saved = before ? before : "";
    ::setenv("IPCBENCH_AMQP_URL", url().c_str(), 1);
    std::vector<std::string> argv{IPCBENCH_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--benchmark_out=" + (s_.dir / "out.json").string());
    pid_t pid = spawn_captured(argv, s_);
    if (before)
      ::setenv("IPCBENCH_AMQP_URL", saved.c_str(), 1);
    else
      ::unsetenv("IPCBENCH_AMQP_URL");
    return pid;
  }
  // The run's rows after it ended with `status`: the AMQP cell failed with an error that
  // names the broker (never its credentials), the uds cell after it did not. Returns
  // the AMQP cell's error.
  std::string expect_amqp_cell_failed(int status) {
    EXPECT_EQ(status, 1) << "one cell failed: " << slurp(s_.dir / "stderr");
    auto b = results(s_).at("benchmarks");
    EXPECT_EQ(b.size(), 2u);
    if (b.size() != 2u) return "";
    EXPECT_TRUE(b[0].value("error_occurred", false)) << b[0].dump();
    const std::string msg = b[0].value("error_message", "");
    EXPECT_NE(msg.find(address()), std::string::npos) << msg;
    EXPECT_EQ(msg.find("guest"), std::string::npos) << "credentials in: " << msg;
    EXPECT_FALSE(b[1].value("error_occurred", false)) << b[1].value("error_message", "");
    return msg;
  }

  Scratch s_;
  fs::path dir_;
  int port_ = 0;
  pid_t beam_ = 0;  // the broker's Erlang VM
  bool started_ = false;
};

TEST_F(PrivateBroker, BrokerKilledMidRunIsACleanError) {
  pid_t r = run({"--transports=amqp,uds", "--workloads=pingpong", "--sizes=64",
                 "--benchmark_min_time=6", "--cell-timeout=30"});
  ASSERT_GT(r, 0);
  std::this_thread::sleep_for(1500ms);  // the amqp cell is running
  ASSERT_EQ(::kill(beam_, SIGKILL), 0);
  beam_ = 0;
  expect_amqp_cell_failed(wait_exit(r));
}

// A broker that stops answering (stopped here; a memory or disk alarm blocks publishers
// the same way) leaves a publish or a confirm wait with nothing to return: the watchdog
// must end the cell, not only kill the peer. A durable stream keeps the runner in
// exactly those two calls (it reads only the final ack).
TEST_F(PrivateBroker, BrokerThatStopsAnsweringIsACleanError) {
  pid_t r = run({"--transports=amqp-durable,uds", "--workloads=throughput", "--sizes=64",
                 "--benchmark_min_time=6", "--cell-timeout=3"});
  ASSERT_GT(r, 0);
  // Stop the broker once the link is up (the peer consumes its queue) and streaming, not
  // in set-up.
  const std::optional<RunStamp> stamp = RunStamp::of(r);
  ASSERT_TRUE(stamp);
  const std::string queue = ipc_name::nth(*stamp, ipc_name::Kind::kAmqp, 0) + "-req";
  bool linked = false;
  for (auto end = std::chrono::steady_clock::now() + 60s;
       !(linked = queue_consumers(url(), queue).value_or(0) > 0) &&
       std::chrono::steady_clock::now() < end;)
    std::this_thread::sleep_for(100ms);
  if (!linked) {
    ::kill(r, SIGKILL);
    wait_exit(r);
    FAIL() << "the link never came up: " << slurp(s_.dir / "stderr");
  }
  std::this_thread::sleep_for(1000ms);
  ASSERT_EQ(::kill(beam_, SIGSTOP), 0);
  int status = -1;
  for (auto end = std::chrono::steady_clock::now() + 60s;
       status < 0 && std::chrono::steady_clock::now() < end;) {
    if (::waitpid(r, &status, WNOHANG) == 0) status = -1;
    std::this_thread::sleep_for(100ms);
  }
  if (status < 0) {
    ::kill(r, SIGKILL);
    wait_exit(r);
    FAIL() << "the run still hung 60 s after the broker stopped";
  }
  const std::string msg =
      expect_amqp_cell_failed(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  EXPECT_NE(msg.find("shut down by the watchdog"), std::string::npos) << msg;
}

}  // namespace
}  // namespace ipcbench
