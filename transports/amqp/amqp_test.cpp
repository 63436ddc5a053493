// The AMQP transports against real RabbitMQ brokers: the broker that scripts/test.sh
// runs (IPCBENCH_AMQP_URL), and a private one this test starts and stops mid-run.
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "harness/test_support.h"

namespace ipcbench {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing_support::slurp;
using testing_support::spawn_captured;
using testing_support::wait_exit;

struct Scratch : testing_support::Scratch {
  Scratch() : testing_support::Scratch("amqp-test") {}
};

const char* kBrokerSh = IPCBENCH_SOURCE_DIR "/scripts/broker.sh";

bool broker_installed() { return fs::exists("/usr/lib/rabbitmq/bin/rabbitmq-server"); }

// Runs scripts/broker.sh COMMAND for a private node in `dir` on `port`.
int broker(const std::string& command, const fs::path& dir, int port) {
  std::string line = "IPCBENCH_BROKER_DIR='" + dir.string() +
                     "' IPCBENCH_BROKER_PORT=" + std::to_string(port) + " " + kBrokerSh + " " +
                     command + " >/dev/null 2>&1";
  return std::system(line.c_str());  // test-made arguments only
}

// Whether a queue of that name exists on the broker at url (passive declare).
bool queue_exists(const std::string& url, const std::string& name) {
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
  amqp_queue_declare(c, 1, amqp_cstring_bytes(name.c_str()), 1, 0, 0, 0, amqp_empty_table);
  bool exists = amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL;
  if (exists) amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(c);
  return exists;
}

nlohmann::json results(const Scratch& s) {
  std::ifstream f(s.dir / "out.json");
  return nlohmann::json::parse(f);
}

TEST(Amqp, NoQueueIsLeftOnTheBroker) {
  const char* url = std::getenv("IPCBENCH_AMQP_URL");
  if (!url || !*url) GTEST_SKIP() << testing_support::untestable_reason("an AMQP broker");
  Scratch s;
  pid_t run = spawn_captured({IPCBENCH_BINARY, "--transports=amqp,amqp-durable", "--sizes=64,4K",
                              "--quick", "--benchmark_out=" + (s.dir / "out.json").string()},
                             s);
  ASSERT_GT(run, 0);
  ASSERT_EQ(wait_exit(run), 0) << slurp(s.dir / "stderr");
  const nlohmann::json j = results(s);  // the loop below reads into it
  for (const auto& b : j.at("benchmarks"))
    EXPECT_FALSE(b.value("error_occurred", false)) << b.value("error_message", "");
  // Queues are ipcbench-<pid>-amqp-<n>-req/-rep, one pair per link.
  for (int n = 1; n <= 4; ++n)
    for (const char* end : {"-req", "-rep"}) {
      std::string q = "ipcbench-" + std::to_string(run) + "-amqp-" + std::to_string(n) + end;
      EXPECT_FALSE(queue_exists(url, q)) << q << " left on the broker";
    }
}

TEST(Amqp, BrokerStoppedMidRunIsACleanError) {
  if (!broker_installed()) GTEST_SKIP() << "rabbitmq-server is not installed";
  Scratch s;
  // AMQP 3000-4499 (epmd +10000, distribution +20000): apart from test.sh's broker.
  const int port = 3000 + static_cast<int>(::getpid() % 1500);
  const fs::path dir = s.dir / "broker";
  ASSERT_EQ(broker("start", dir, port), 0) << "private broker did not start";
  struct Stop {
    fs::path dir;
    int port;
    ~Stop() { broker("stop", dir, port); }
  } stop{dir, port};

  const std::string url = "amqp://guest:guest@127.0.0.1:" + std::to_string(port);
  const char* before = std::getenv("IPCBENCH_AMQP_URL");
  std::string saved = before ? before : "";
  ::setenv("IPCBENCH_AMQP_URL", url.c_str(), 1);
  pid_t run = spawn_captured({IPCBENCH_BINARY, "--transports=amqp,uds", "--workloads=pingpong",
                              "--sizes=64", "--benchmark_min_time=6", "--cell-timeout=30",
                              "--benchmark_out=" + (s.dir / "out.json").string()},
                             s);
  if (before)
    ::setenv("IPCBENCH_AMQP_URL", saved.c_str(), 1);
  else
    ::unsetenv("IPCBENCH_AMQP_URL");
  ASSERT_GT(run, 0);
  std::this_thread::sleep_for(1500ms);  // the amqp cell is running
  // The broker dies: its Erlang VM is killed outright.
  std::ifstream pidfile(dir / "rabbitmq.pid");
  pid_t beam = 0;
  ASSERT_TRUE(pidfile >> beam) << "no broker pid file";
  ASSERT_EQ(::kill(beam, SIGKILL), 0);
  EXPECT_EQ(wait_exit(run), 1) << "one cell failed: " << slurp(s.dir / "stderr");
  auto b = results(s).at("benchmarks");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_TRUE(b[0].value("error_occurred", false)) << b[0].dump();
  const std::string msg = b[0].value("error_message", "");
  EXPECT_NE(msg.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << msg;
  EXPECT_EQ(msg.find("guest"), std::string::npos) << "credentials in: " << msg;
  EXPECT_FALSE(b[1].value("error_occurred", false)) << b[1].value("error_message", "");
}

}  // namespace
}  // namespace ipcbench
