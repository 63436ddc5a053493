// The shared-queue fan-in forms (transports/many.h) of the ZeroMQ and gRPC transports:
// one ROUTER socket, one gRPC server. Each is checked in-process with its real clients
// (Transport::connect on the endpoints the listener made, as a client process would),
// then end to end by the clients workload with real client processes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <tuple>

#include "base/cleanup.h"
#include "base/fd.h"
#include "base/run_dir.h"
#include "tests/test_support.h"
#include "transports/many.h"
#include "transports/registry.h"
#include "transports/socket_util.h"

#ifdef IPCBENCH_HAVE_ZMQ
#include <zmq.hpp>
#endif
#ifdef IPCBENCH_HAVE_AMQP
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif

namespace ipcbench {
namespace {

namespace fs = std::filesystem;
using testing_support::error_of;
using testing_support::pattern;
using Clock = std::chrono::steady_clock;

const char* const kShared[] = {"zmq-ipc",         "zmq-tcp",         "grpc-uds", "grpc-tcp",
                               "grpc-stream-uds", "grpc-stream-tcp", "amqp",     "amqp-durable"};

bool is_amqp(const std::string& name) { return name.rfind("amqp", 0) == 0; }

// Whether the broker of `url` has a queue of that name (a passive declare).
bool queue_exists([[maybe_unused]] const std::string& url, [[maybe_unused]] const std::string& q) {
#ifdef IPCBENCH_HAVE_AMQP
  std::string u = url;
  amqp_connection_info ci{};
  if (amqp_parse_url(u.data(), &ci) != AMQP_STATUS_OK) throw std::runtime_error("bad url");
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t* sock = amqp_tcp_socket_new(c);
  if (amqp_socket_open(sock, ci.host, ci.port) != AMQP_STATUS_OK) {
    amqp_destroy_connection(c);
    throw std::runtime_error("broker unreachable");
  }
  amqp_login(c, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
  amqp_channel_open(c, 1);
  amqp_queue_declare(c, 1, amqp_cstring_bytes(q.c_str()), 1, 0, 0, 0, amqp_empty_table);
  const bool exists = amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL;
  if (exists) amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(c);
  return exists;
#else
  return false;
#endif
}

SetupWait soon() {
  return {Clock::now() + std::chrono::seconds(20), [] { return true; }};
}

// The token in the pipe endpoint `ep` names (the pipe is the listener's; it stays open).
std::string token_of(const Endpoint& ep, std::size_t field) {
  int fd = std::stoi(ep.addresses.at(field));
  return take_peer_token(std::to_string(check_sys(::dup(fd), "dup")), "test");
}

// What a client process is given: ep with its token in a fresh pipe of our own (the
// listener's pipe is read once), as client number `client` (forged when it is not the
// token's). `keep` holds the pipe until connect has read it.
Endpoint as_client(const Endpoint& ep, std::size_t token_field, const std::string& token,
                   const std::string& client, std::vector<UniqueFd>& keep) {
  Endpoint e = ep;
  keep.push_back(pipe_holding(token, "test token"));
  e.addresses.at(token_field) = std::to_string(keep.back().get());
  if (e.addresses.size() == 6 && e.addresses[1].rfind("queue=", 0) == 0) {  // amqp: the URL too
    keep.push_back(pipe_holding(testing_support::settings().broker_url, "test URL"));
    e.addresses.at(3) = std::to_string(keep.back().get());
  }
  e.addresses.back() = client;
  e.inherit_fds.clear();
  return e;
}

// The token pipe's field: third from the end for ZeroMQ ({…, token, hwm, client}),
// second from the end for gRPC ({fan-in, target, token, client}) and AMQP ({fan-in,
// request queue, reply queue, URL, token, client}).
std::size_t token_field(const std::string& name, const Endpoint& ep) {
  return ep.addresses.size() - (name.rfind("zmq-", 0) == 0 ? 3 : 2);
}

class SharedQueue : public ::testing::TestWithParam<const char*> {
 protected:
  static void SetUpTestSuite() { cleanup::install_signal_handlers(); }
  void SetUp() override {
    t_ = find_transport(GetParam());
    if (!t_) GTEST_SKIP() << GetParam() << " not built";
    std::string why = testing_support::untestable_reason(t_->info().needs);
    if (!why.empty()) GTEST_SKIP() << why;
  }
  const Transport* t_ = nullptr;
};

TEST_P(SharedQueue, DescribesItsForm) {
  EXPECT_FALSE(t_->info().fan_in.empty());
  EXPECT_EQ(t_->info().server_models, std::vector<std::string>{"shared-queue"});
}

// Three clients at once, rounds of distinct messages of 64 B and 64 KiB: each request
// reaches the server as its own client's, whole, and each reply reaches only the client
// it is for. Afterwards nothing is left in the run directory.
TEST_P(SharedQueue, ThreeClientsEachGetTheirOwnReplies) {
  constexpr std::size_t kClients = 3, kRounds = 20, kMax = 65536;
  auto dir = std::make_unique<RunDir>();
  const std::string dir_path = dir->path();
  auto listener =
      t_->listen_fan_in(*dir, kMax, testing_support::settings(), kClients, "shared-queue");
  ASSERT_TRUE(listener);
  ASSERT_EQ(listener->clients(), kClients);
  std::vector<UniqueFd> keep;
  std::vector<std::unique_ptr<Channel>> clients;
  for (std::size_t i = 0; i < kClients; ++i) {
    const Endpoint& ep = listener->endpoint(i);
    ASSERT_EQ(ep.addresses.at(0), "fan-in");
    const std::size_t f = token_field(GetParam(), ep);
    clients.push_back(
        t_->connect(as_client(ep, f, token_of(ep, f), std::to_string(i), keep), soon()));
  }
  std::unique_ptr<FanInServer> server = listener->accept(soon());
  ASSERT_EQ(server->model(), "shared-queue");
  ASSERT_TRUE(server->links().empty());

  std::atomic<std::size_t> served{0};
  std::string server_error;
  std::thread serving([&] {
    try {
      std::vector<std::byte> buf(kMax);
      while (served.load() < kClients * kRounds * 2) {
        auto [client, n] = server->recv_any(buf);
        if (n == 0) break;
        // Every request starts with its client's number: it must be the one recv_any says.
        if (static_cast<std::size_t>(buf[0]) != client)
          throw std::runtime_error("client " + std::to_string(static_cast<int>(buf[0])) +
                                   "'s request delivered as client " + std::to_string(client) +
                                   "'s");
        server->reply(client, std::span(buf.data(), n));
        served.fetch_add(1);
      }
    } catch (const std::exception& e) {
      server_error = e.what();
    }
  });
  std::vector<std::string> errors(kClients);
  std::vector<std::thread> running;
  for (std::size_t i = 0; i < kClients; ++i)
    running.emplace_back([&, i] {
      try {
        std::vector<std::byte> buf(kMax);
        for (std::size_t r = 0; r < kRounds * 2; ++r) {
          auto msg = pattern(r % 2 ? kMax : 64, static_cast<unsigned>(i * 1000 + r));
          msg[0] = static_cast<std::byte>(i);
          clients[i]->send(msg);
          std::size_t n = clients[i]->recv(buf);
          if (n != msg.size() || std::memcmp(buf.data(), msg.data(), n) != 0)
            throw std::runtime_error("round " + std::to_string(r) + ": reply of " +
                                     std::to_string(n) + " bytes is not this client's request");
        }
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  for (auto& th : running) th.join();
  // The server may still be finishing its last reply (amqp-durable: the broker's confirm
  // comes after the client has the reply); then it stops by itself.
  for (auto until = Clock::now() + std::chrono::seconds(10);
       served.load() < kClients * kRounds * 2 && server_error.empty() && Clock::now() < until;)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // Only a server that failed early may still wait.
  if (served.load() < kClients * kRounds * 2) server->abort();
  serving.join();
  EXPECT_EQ(server_error, "");
  for (std::size_t i = 0; i < kClients; ++i) EXPECT_EQ(errors[i], "") << "client " << i;
  EXPECT_EQ(served.load(), kClients * kRounds * 2);

  std::vector<std::string> queues;  // AMQP: the request queue and every reply queue
  if (is_amqp(GetParam()))
    for (std::size_t i = 0; i < kClients; ++i)
      for (std::size_t f : {1, 2})
        queues.push_back(listener->endpoint(i).addresses.at(f).substr(6));
  clients.clear();
  server.reset();
  listener.reset();
  for (const std::string& q : queues)
    EXPECT_FALSE(queue_exists(testing_support::settings().broker_url, q)) << q << " left behind";
  std::string left;
  for (const auto& e : fs::directory_iterator(dir_path))
    if (e.path().filename() != ".ipcbench-run") left += e.path().filename().string() + " ";
  EXPECT_EQ(left, "") << "the fan-in form left files in the run directory";
  dir.reset();
  EXPECT_FALSE(fs::exists(dir_path));
}

// After abort(), a recv_any waiting for a request that never comes returns at once with
// size 0 (well within the 20 s the test allows).
TEST_P(SharedQueue, AbortEndsAWaitingRecvAny) {
  RunDir dir;
  auto listener = t_->listen_fan_in(dir, 4096, testing_support::settings(), 1, "shared-queue");
  std::vector<UniqueFd> keep;
  const Endpoint& ep = listener->endpoint(0);
  const std::size_t f = token_field(GetParam(), ep);
  auto client = t_->connect(as_client(ep, f, token_of(ep, f), "0", keep), soon());
  auto server = listener->accept(soon());
  std::pair<std::size_t, std::size_t> got{9, 9};
  std::thread waiting([&] {
    std::vector<std::byte> buf(4096);
    got = server->recv_any(buf);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  server->abort();
  waiting.join();
  EXPECT_EQ(got.second, 0u);
  // An aborted server still removes what it made (AMQP: over a connection of its own,
  // the aborted one being cut).
  std::vector<std::string> queues;
  if (is_amqp(GetParam()))
    for (std::size_t field : {1, 2}) queues.push_back(ep.addresses.at(field).substr(6));
  client.reset();
  server.reset();
  listener.reset();
  for (const std::string& q : queues)
    EXPECT_FALSE(queue_exists(testing_support::settings().broker_url, q)) << q << " left behind";
}

// A client that presents another client's token, or a number that is none of the run's,
// is refused and reaches nothing; the real clients are served as before.
TEST_P(SharedQueue, ForgedClientNumbersAreRefused) {
  if (is_amqp(GetParam())) GTEST_SKIP() << "AMQP: see AmqpSharedQueue.ForgedRequestsAreRefused";
  const bool zmq = std::string(GetParam()).rfind("zmq-", 0) == 0;
  RunDir dir;
  auto listener = t_->listen_fan_in(dir, 4096, testing_support::settings(), 3, "shared-queue");
  std::vector<std::string> tokens;
  for (std::size_t i = 0; i < 3; ++i) {
    const Endpoint& ep = listener->endpoint(i);
    tokens.push_back(token_of(ep, token_field(GetParam(), ep)));
  }
  std::vector<UniqueFd> keep;
  auto endpoint = [&](std::size_t token_of_client, const std::string& as) {
    const Endpoint& ep = listener->endpoint(0);
    return as_client(ep, token_field(GetParam(), ep), tokens[token_of_client], as, keep);
  };
  const std::pair<std::size_t, std::string> forged[] = {{1, "2"}, {0, "7"}, {2, "00"}};
  std::vector<std::byte> buf(4096);
  auto msg = pattern(64, 1);
  if (zmq) {
    // ZeroMQ refuses the login itself (ZAP): connect fails (or, should ZeroMQ keep the
    // refused connection open, never completes).
    const SetupWait brief{Clock::now() + std::chrono::seconds(3), [] { return true; }};
    for (const auto& [tok, as] : forged)
      EXPECT_NE(error_of([&] { t_->connect(endpoint(tok, as), brief); }), "")
          << "token of client " << tok << " as client " << as;
  }
  // gRPC: the forged channels connect, and open their Attach or Chat, before the real
  // clients do, so that a server that took them would give them the real clients' places.
  std::vector<std::unique_ptr<Channel>> forgers;
  if (!zmq)
    for (const auto& [tok, as] : forged) forgers.push_back(t_->connect(endpoint(tok, as), soon()));
  std::vector<std::unique_ptr<Channel>> clients;
  for (std::size_t i = 0; i < 3; ++i)
    clients.push_back(t_->connect(endpoint(i, std::to_string(i)), soon()));
  auto server = listener->accept(soon());
  std::atomic<bool> stop{false};
  std::vector<std::size_t> seen;
  std::thread serving([&] {
    std::vector<std::byte> b(4096);
    while (!stop.load()) {
      auto [client, n] = server->recv_any(b);
      if (n == 0) break;
      seen.push_back(client);
      server->reply(client, std::span(b.data(), n));
    }
  });
  // gRPC: the calls are answered UNAUTHENTICATED (unary) or the stream was ended as it
  // opened (streaming: the write or the read finds it closed); no reply comes back.
  for (std::size_t f = 0; f < forgers.size(); ++f) {
    const auto& [tok, as] = forged[f];
    std::size_t n = 99;
    std::string err;
    try {
      forgers[f]->send(msg);
      n = forgers[f]->recv(buf);
    } catch (const std::exception& e) {
      err = e.what();
    }
    if (std::string(GetParam()).find("stream") != std::string::npos)
      EXPECT_TRUE(!err.empty() || n == 0)
          << "token of client " << tok << " as client " << as << ": " << n << " bytes back";
    else
      EXPECT_NE(err.find("status 16"), std::string::npos) << err;  // UNAUTHENTICATED
  }
  for (std::size_t i = 0; i < 3; ++i) {
    clients[i]->send(msg);
    EXPECT_EQ(clients[i]->recv(buf), msg.size());
  }
  stop.store(true);
  server->abort();
  serving.join();
  EXPECT_EQ(seen, (std::vector<std::size_t>{0, 1, 2})) << "a forged request was served";
}

#ifdef IPCBENCH_HAVE_ZMQ
// A DEALER that logged in as one client (its own token) but names itself otherwise, by
// another client's routing id or one that is no client's: the server refuses its
// request with ProtocolError rather than answer it as someone else's.
TEST(ZmqSharedQueue, ARoutingIdOtherThanTheLoginIsRefused) {
  const Transport* t = find_transport("zmq-ipc");
  ASSERT_TRUE(t);
  RunDir dir;
  auto listener = t->listen_fan_in(dir, 4096, testing_support::settings(), 2, "shared-queue");
  const Endpoint& ep0 = listener->endpoint(0);
  const Endpoint& ep1 = listener->endpoint(1);
  zmq::context_t ctx(1);
  auto dealer = [&](const Endpoint& ep, const std::string& user, const std::string& id) {
    auto s = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer);
    s->set(zmq::sockopt::linger, 0);
    s->set(zmq::sockopt::plain_username, user);
    s->set(zmq::sockopt::plain_password, token_of(ep, 2));
    s->set(zmq::sockopt::routing_id, id);
    s->connect("ipc://" + ep.addresses.at(1));
    return s;
  };
  auto a = dealer(ep0, "ipcbench-client-0", "ipcbench-client-1");  // borrows 1's name
  auto b = dealer(ep1, "ipcbench-client-1", "mallory");            // no client's name
  auto server = listener->accept(soon());
  std::vector<std::byte> buf(4096);
  a->send(zmq::str_buffer("x"));
  std::string err = error_of([&] { server->recv_any(buf); });
  EXPECT_NE(err.find("logged in as ipcbench-client-0"), std::string::npos) << err;
  b->send(zmq::str_buffer("y"));
  err = error_of([&] { server->recv_any(buf); });
  EXPECT_NE(err.find("mallory"), std::string::npos) << err;
  EXPECT_NE(err.find("refused"), std::string::npos) << err;
  a.reset();
  b.reset();
}
#endif

// AMQP: anyone with the broker's password may publish to the request queue. A request
// whose client number, token and reply queue are not one client's is refused by the
// server (ProtocolError from recv_any), never answered; the real clients are then served.
TEST_P(SharedQueue, AmqpForgedRequestsAreRefused) {
  if (!is_amqp(GetParam())) GTEST_SKIP() << "AMQP only";
  RunDir dir;
  auto listener = t_->listen_fan_in(dir, 4096, testing_support::settings(), 3, "shared-queue");
  std::vector<std::string> tokens;
  for (std::size_t i = 0; i < 3; ++i) tokens.push_back(token_of(listener->endpoint(i), 4));
  std::vector<UniqueFd> keep;
  std::vector<std::unique_ptr<Channel>> clients;
  for (std::size_t i = 0; i < 3; ++i)
    clients.push_back(t_->connect(
        as_client(listener->endpoint(i), 4, tokens[i], std::to_string(i), keep), soon()));
  auto server = listener->accept(soon());
  std::vector<std::byte> buf(4096);
  auto msg = pattern(64, 1);
  // {whose endpoint (reply queue), whose token, which number}
  const std::tuple<std::size_t, std::size_t, std::string> forged[] = {
      {1, 0, "1"},   // client 1's number and queue with client 0's token
      {1, 1, "2"},   // client 1's token and queue, claiming number 2
      {2, 0, "7"}};  // a number that is none of the run's
  for (const auto& [ep, tok, as] : forged) {
    auto ch = t_->connect(as_client(listener->endpoint(ep), 4, tokens[tok], as, keep), soon());
    ch->send(msg);
    std::string err = error_of([&] { server->recv_any(buf); });
    EXPECT_NE(err.find("refused"), std::string::npos)
        << "queue of " << ep << ", token of " << tok << ", as " << as << ": " << err;
  }
  for (std::size_t i = 0; i < 3; ++i) {
    clients[i]->send(msg);
    auto [k, n] = server->recv_any(buf);
    EXPECT_EQ(k, i);
    ASSERT_EQ(n, msg.size());
    server->reply(k, std::span(buf.data(), n));
    EXPECT_EQ(clients[i]->recv(buf), msg.size());
  }
}

INSTANTIATE_TEST_SUITE_P(Forms, SharedQueue, ::testing::ValuesIn(kShared),
                         [](const auto& info) { return testing_support::test_suffix(info.param); });

// End to end: the clients workload with 3 real client processes over each form, with
// --verify (every reply's bytes checked) and the workload's own check that no request
// or reply reaches another client; nothing is left in the run's temporary directory.
TEST(SharedQueueWorkload, ThreeClientProcessesOverEachForm) {
  std::string names;
  for (const char* n : kShared)
    if (const Transport* t = find_transport(n);
        t && testing_support::untestable_reason(t->info().needs).empty())
      names += (names.empty() ? "" : ",") + std::string(n);
  if (names.empty()) GTEST_SKIP() << "neither ZeroMQ nor gRPC built";
  testing_support::Scratch s;
  fs::path out = s.dir / "out.json";
  pid_t pid = testing_support::spawn_captured(
      {IPCBENCH_BINARY, "--workloads=clients", "--transports=" + names, "--clients=3",
       "--sizes=64,65536", "--verify", "--benchmark_min_time=0.2",
       "--benchmark_out=" + out.string(), "--benchmark_out_format=json"},
      s);
  ASSERT_GT(pid, 0);
  const int status = testing_support::wait_exit(pid);
  EXPECT_EQ(status, 0) << testing_support::slurp(s.dir / "stderr");
  ASSERT_TRUE(fs::exists(out)) << testing_support::slurp(s.dir / "stderr");
  auto j = nlohmann::json::parse(testing_support::slurp(out));
  std::size_t cells = 0;
  for (const auto& b : j.at("benchmarks")) {
    const std::string name = b.at("name");
    EXPECT_FALSE(b.value("error_occurred", false)) << name << ": " << b.value("error_message", "");
    EXPECT_NE(name.find("server:shared-queue"), std::string::npos) << name;
    if (!b.value("error_occurred", false)) {
      EXPECT_GT(b.at("rtt_per_s").get<double>(), 0) << name;
    }
    ++cells;
  }
  EXPECT_EQ(cells, 2 * static_cast<std::size_t>(std::count(names.begin(), names.end(), ',') + 1));
  EXPECT_TRUE(fs::is_empty(s.dir / "tmp")) << "the run left files behind";
}

}  // namespace
}  // namespace ipcbench
