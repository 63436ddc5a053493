// Transport::connect is bounded by the set-up deadline it is given: a listener that never
// answers makes connect fail with a ProtocolError naming the transport, soon after the
// deadline and not after some timeout of the transport's own.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "base/run_dir.h"
#include "transports/registry.h"
#include "transports/socket_util.h"
#include "transports/transport.h"

namespace ipcbench {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Runs connect with a deadline `budget` away; returns the error's text and checks that it
// came by the deadline (with room for one polling slice and a loaded machine).
std::string connect_error(const Transport& t, const Endpoint& ep,
                          std::chrono::milliseconds budget) {
  auto start = Clock::now();
  std::string what;
  try {
    auto ch = t.connect(ep, SetupWait{start + budget, [] { return true; }});
    ADD_FAILURE() << t.info().name << ": connect succeeded with nobody answering";
  } catch (const ProtocolError& e) {
    what = e.what();
  }
  auto took = Clock::now() - start;
  EXPECT_GE(took, budget);
  EXPECT_LT(took, budget + 2s) << "connect ignored its deadline";
  return what;
}

// A TCP port that completes the kernel's handshake (the backlog) but never speaks
// ZeroMQ's: the ZMTP greeting never comes, so the link never comes up.
TEST(ConnectDeadline, ZmqTcpToASilentListenerFailsByTheDeadline) {
  const Transport* t = find_transport("zmq-tcp");
  if (!t) GTEST_SKIP() << "zmq-tcp not built";
  UniqueFd srv(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(srv.valid());
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(srv.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(srv.get(), 4), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(::getsockname(srv.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);

  // The token pipe the peer would inherit, holding a token.
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd rd(p[0]), wr(p[1]);
  std::string token(PeerToken::kBytes, 'a');
  ASSERT_EQ(::write(wr.get(), token.data(), token.size()), static_cast<ssize_t>(token.size()));
  Endpoint ep{
      {"127.0.0.1", std::to_string(ntohs(a.sin_port)), std::to_string(rd.release()), "1000"}, {}};
  std::string what = connect_error(*t, ep, 700ms);
  EXPECT_NE(what.find("zmq-tcp"), std::string::npos) << what;
  EXPECT_NE(what.find("timed out"), std::string::npos) << what;
}

// A boost-mq listener that never receives: once its up queue is full, the hello cannot go
// and connect gives up at the deadline.
TEST(ConnectDeadline, BoostMqToAListenerThatNeverReadsFailsByTheDeadline) {
  const Transport* t = find_transport("boost-mq");
  ASSERT_NE(t, nullptr);
  RunDir dir;
  auto listener = t->listen(dir, 64, TransportSettings{});
  const Endpoint& ep = listener->endpoint();
  std::vector<std::unique_ptr<Channel>> held;  // each connect leaves one hello queued
  std::string what;
  for (int i = 0; i < 64 && what.empty(); ++i) {
    try {
      held.push_back(t->connect(ep, SetupWait{Clock::now() + 200ms, [] { return true; }}));
    } catch (const ProtocolError& e) {
      what = e.what();
    }
  }
  ASSERT_FALSE(what.empty()) << "the queue never filled";
  EXPECT_NE(what.find("boost-mq"), std::string::npos) << what;
  EXPECT_NE(what.find("timed out"), std::string::npos) << what;
  // And the failing connect kept to its deadline.
  connect_error(*t, ep, 300ms);
}

}  // namespace
}  // namespace ipcbench
