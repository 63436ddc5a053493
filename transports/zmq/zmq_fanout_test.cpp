// ZeroMQ's fan-out form admits only the run's subscribers: a SUB socket that logs in with
// a wrong token, with a token another subscriber already used, or as another subscriber,
// never counts as a subscriber (the publisher would otherwise start before the real one
// had subscribed, or publish to a stranger).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <memory>
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

// A zmq-tcp subscriber's endpoint: {"fan-out", host, port, token pipe, hwm, i}.
constexpr std::size_t kHost = 1, kPort = 2, kTokenPipe = 3;

// A SUB socket that logs in (ZMTP PLAIN) as subscriber `as` with `token`.
struct Stranger {
  zmq::context_t ctx{1};
  zmq::socket_t sock{ctx, zmq::socket_type::sub};
  Stranger(const Endpoint& ep, std::size_t as, const std::string& token) {
    sock.set(zmq::sockopt::linger, 0);
    sock.set(zmq::sockopt::plain_username, "ipcbench-subscriber-" + std::to_string(as));
    sock.set(zmq::sockopt::plain_password, token);
    sock.set(zmq::sockopt::subscribe, "");
    sock.connect("tcp://" + ep.addresses.at(kHost) + ":" + ep.addresses.at(kPort));
  }
};

// A subscriber's token, read from the pipe its endpoint names (what the peer inherits).
std::string token_of(const Endpoint& ep) {
  const int fd = std::stoi(ep.addresses.at(kTokenPipe));
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

std::unique_ptr<FanOutListener> listen(RunDir& dir, std::size_t subscribers) {
  auto l =
      find_transport("zmq-tcp")->listen_fan_out(dir, 64, testing_support::settings(), subscribers);
  EXPECT_TRUE(l);
  if (l) {
    EXPECT_EQ(l->endpoint(0).addresses.at(0), "fan-out");
  }
  return l;
}

// The publisher's wait ends by its deadline with `in` of `n` subscriptions counted, while
// a SUB logs in as subscriber `as` with subscriber 0's token (token_of_sub 0) or a wrong
// one (-1), beside subscriber 0 itself with its own token when `real` is set.
void expect_counted(std::size_t n, std::size_t as, int token_of_sub, bool real, std::size_t in) {
  RunDir dir;
  auto l = listen(dir, n);
  ASSERT_TRUE(l);
  const std::string t0 = token_of(l->endpoint(0));
  const std::string token = token_of_sub < 0 ? std::string(PeerToken::kBytes, 'a') : t0;
  std::unique_ptr<Stranger> own;
  if (real) own = std::make_unique<Stranger>(l->endpoint(0), 0, t0);
  Stranger stranger(l->endpoint(as), as, token);
  const std::string want = "timed out waiting for the subscriptions (" + std::to_string(in) +
                           " of " + std::to_string(n) + " in)";
  const std::string err = accept_error(*l);
  EXPECT_NE(err.find(want), std::string::npos) << err;
}

TEST(ZmqFanOut, AWrongTokenIsNoSubscriber) { expect_counted(1, 0, -1, false, 0); }

// Subscriber 0's token twice: one login only.
TEST(ZmqFanOut, ATokenLogsInOnce) { expect_counted(2, 0, 0, true, 1); }

// Subscriber 0's token, as subscriber 1: refused.
TEST(ZmqFanOut, ATokenIsItsOwnSubscribersOnly) { expect_counted(2, 1, 0, false, 0); }

TEST(ZmqFanOut, TheRunsSubscribersGetIn) {
  RunDir dir;
  auto l = listen(dir, 2);
  ASSERT_TRUE(l);
  Stranger a(l->endpoint(0), 0, token_of(l->endpoint(0)));
  Stranger b(l->endpoint(1), 1, token_of(l->endpoint(1)));
  EXPECT_EQ(accept_error(*l), "");
}

}  // namespace
}  // namespace ipcbench
