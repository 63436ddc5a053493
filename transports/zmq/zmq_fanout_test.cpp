// ZeroMQ's fan-out form admits only the run's subscribers: a SUB socket that logs in with
// a wrong token, or with a token another subscriber already used, never counts as a
// subscriber (the publisher would otherwise start before the real one had subscribed, or
// publish to a stranger).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <zmq.hpp>

#include "base/error.h"
#include "base/run_dir.h"
#include "tests/test_support.h"
#include "transports/many.h"
#include "transports/registry.h"
#include "transports/socket_util.h"

namespace ipcbench {
namespace {

// A subscriber that logs in with `token` (ZMTP PLAIN, the peer's user name).
struct Stranger {
  zmq::context_t ctx{1};
  zmq::socket_t sock{ctx, zmq::socket_type::sub};
  Stranger(const Endpoint& ep, const std::string& token) {
    sock.set(zmq::sockopt::linger, 0);
    sock.set(zmq::sockopt::plain_username, "ipcbench-peer");
    sock.set(zmq::sockopt::plain_password, token);
    sock.set(zmq::sockopt::subscribe, "");
    sock.connect("tcp://" + ep.addresses.at(0) + ":" + ep.addresses.at(1));
  }
};

// Subscriber i's token, read from the pipe its endpoint names (what the peer inherits).
std::string token_of(const Endpoint& ep) {
  const int fd = std::stoi(ep.addresses.at(2));
  std::string t(PeerToken::kBytes, '\0');
  EXPECT_EQ(::read(fd, t.data(), t.size()), static_cast<ssize_t>(t.size()));
  return t;
}

std::string accept_error(FanOutListener& l) {
  return testing_support::error_of([&l] {
    l.accept(SetupWait{std::chrono::steady_clock::now() + std::chrono::milliseconds(1500),
                       [] { return true; }});
  });
}

TEST(ZmqFanOut, AWrongTokenIsNoSubscriber) {
  RunDir dir;
  auto l = find_transport("zmq-tcp")->listen_fan_out(dir, 64, testing_support::settings(), 1);
  ASSERT_TRUE(l);
  ASSERT_EQ(l->endpoint(0).addresses.back(), "subscriber");
  Stranger s(l->endpoint(0), std::string(PeerToken::kBytes, 'a'));
  EXPECT_NE(accept_error(*l).find("timed out waiting for 1 subscription"), std::string::npos);
}

TEST(ZmqFanOut, ATokenLogsInOnce) {
  RunDir dir;
  auto l = find_transport("zmq-tcp")->listen_fan_out(dir, 64, testing_support::settings(), 2);
  ASSERT_TRUE(l);
  const std::string t0 = token_of(l->endpoint(0));
  Stranger first(l->endpoint(0), t0), second(l->endpoint(0), t0);
  EXPECT_NE(accept_error(*l).find("timed out waiting for 1 subscription"), std::string::npos);
}

TEST(ZmqFanOut, TheRunsSubscribersGetIn) {
  RunDir dir;
  auto l = find_transport("zmq-tcp")->listen_fan_out(dir, 64, testing_support::settings(), 2);
  ASSERT_TRUE(l);
  Stranger a(l->endpoint(0), token_of(l->endpoint(0)));
  Stranger b(l->endpoint(1), token_of(l->endpoint(1)));
  EXPECT_EQ(accept_error(*l), "");
}

}  // namespace
}  // namespace ipcbench
