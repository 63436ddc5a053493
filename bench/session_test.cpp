// A peer session copes with whatever reaches its listener first. Any local process can
// connect to a TCP port (and any host, with --bind): here a stranger connects before the
// peer is even started, and never speaks.
#include "bench/session.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <string>
#include <thread>

#include "harness/error.h"
#include "harness/fd.h"
#include "transports/registry.h"

namespace ipcbench {
namespace {

using namespace std::chrono_literals;

// The real TCP transport, with a stranger's connection queued on the listening port
// before the listener is handed back, so before the peer starts: the runner accepts
// the stranger first.
class StrangerFirst final : public Transport {
 public:
  explicit StrangerFirst(const Transport& tcp) : tcp_(tcp) {}
  const TransportInfo& info() const override { return tcp_.info(); }
  std::unique_ptr<Listener> listen(RunDir& dir, std::size_t max_message) const override {
    std::unique_ptr<Listener> l = tcp_.listen(dir, max_message);
    const std::vector<std::string>& a = l->endpoint().addresses;  // host, port
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(std::stoi(a.at(1))));
    if (::inet_pton(AF_INET, a.at(0).c_str(), &sa.sin_addr) != 1)
      throw ProtocolError("bad address " + a.at(0));
    stranger_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!stranger_.valid() ||
        ::connect(stranger_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
      throw SysError("stranger's connect", errno);
    return l;
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep) const override { return tcp_.connect(ep); }
  int stranger() const { return stranger_.get(); }
  void leave() const { stranger_.reset(); }  // the stranger closes its connection

 private:
  const Transport& tcp_;
  mutable UniqueFd stranger_;
};

TEST(PeerSession, AStrangerFirstOnTheTcpPortFailsTheSetUpInTime) {
  const Transport* tcp = find_transport("tcp");
  ASSERT_NE(tcp, nullptr);
  StrangerFirst t(*tcp);
  RunDir dir;
  Watchdog dog;
  SessionConfig cfg{&t, resolve_placement("none"), false, 64, 2000ms, 1500ms, IPCBENCH_BINARY};
  auto setup = std::async(std::launch::async, [&]() -> std::string {
    try {
      PeerSession s(dir, dog, cfg);
      return "the set-up succeeded";
    } catch (const ProtocolError& e) {
      return e.what();
    }
  });
  if (setup.wait_for(30s) != std::future_status::ready) {
    ::shutdown(t.stranger(), SHUT_RDWR);  // lets the set-up return, so the test can end
    ADD_FAILURE() << "the set-up was still waiting on the stranger 30 s into a 1.5-s timeout";
  }
  const std::string err = setup.get();
  EXPECT_NE(err.find("peer set-up: recv (stream): connection shut down by the watchdog"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("watchdog: no progress within 1500 ms"), std::string::npos) << err;
}

// ZeroMQ takes the stranger's connection and waits for its handshake, while the peer
// connects beside it: the set-up succeeds. The stranger leaving later must not end the
// link: a receive that waits for the peer (stopped for a moment here) still gets its
// reply.
TEST(PeerSession, AStrangerOnTheZmqTcpPortLeavesTheLinkAlone) {
  const Transport* zmq = find_transport("zmq-tcp");
  if (!zmq) GTEST_SKIP() << "built without ZeroMQ";
  StrangerFirst t(*zmq);
  RunDir dir;
  Watchdog dog;
  SessionConfig cfg{&t, resolve_placement("none"), false, 64, 5000ms, 5000ms, IPCBENCH_BINARY};
  PeerSession s(dir, dog, cfg);
  t.leave();
  std::this_thread::sleep_for(200ms);  // its disconnection reaches the socket's monitor
  const pid_t peer = s.child().pid();
  ASSERT_EQ(::kill(peer, SIGSTOP), 0);
  std::thread resume([peer] {
    std::this_thread::sleep_for(300ms);  // several of the receiver's 50-ms wait slices
    ::kill(peer, SIGCONT);
  });
  try {
    s.cpu_sample();  // one round trip
  } catch (const std::exception& e) {
    ADD_FAILURE() << e.what();
  }
  resume.join();
}

}  // namespace
}  // namespace ipcbench
