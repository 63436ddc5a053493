// A peer session copes with whatever reaches its listener first. Any local process can
// connect to a TCP port (and any host, with --bind): here a stranger connects before the
// peer is even started.
#include "bench/session.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <future>
#include <string>
#include <thread>

#include "base/error.h"
#include "base/fd.h"
#include "tests/test_support.h"
#include "transports/registry.h"

namespace ipcbench {
namespace {

using namespace std::chrono_literals;

// What connects to the port before the peer: a silent stranger, one that speaks
// another protocol, one that speaks ZMTP 3 without logging in (a greeting offering the
// NULL mechanism), one that logs in (ZMTP PLAIN) with a wrong password, or an impostor that
// presents the peer's token (a process of the peer's own user, or root, can reach the pipe it is
// handed over in; here the test reads the runner's end) and then says nothing more.
enum class Stranger { kSilent, kChatty, kZmtp, kWrongLogin, kImpostor };

// A ZMTP 3.0 greeting (RFC 23): signature, version 3.0, mechanism (padded to 20 bytes),
// as-server 0, filler; 64 bytes.
std::string zmtp_greeting(const std::string& mechanism) {
  std::string g = {'\xff', 0, 0, 0, 0, 0, 0, 0, 1, '\x7f', 3, 0};
  g += mechanism + std::string(20 - mechanism.size(), '\0');
  g += std::string(32, '\0');
  return g;
}

// A PLAIN greeting and HELLO command (RFC 24) with a password that is not the token.
std::string zmtp_wrong_login() {
  const std::string user = "ipcbench-peer", password(32, 'f');
  std::string hello = std::string("\x05HELLO") + static_cast<char>(user.size()) + user +
                      static_cast<char>(password.size()) + password;
  return zmtp_greeting("PLAIN") + '\x04' + static_cast<char>(hello.size()) + hello;
}

// The peer's token, read from the pipe the peer will inherit without taking it out: tee
// copies what a pipe holds into another.
std::string peek_token(int token_pipe) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw SysError("pipe2", errno);
  UniqueFd r(p[0]), w(p[1]);
  const ssize_t n = ::tee(token_pipe, w.get(), 4096, SPLICE_F_NONBLOCK);
  if (n < 0) throw SysError("tee (peer token)", errno);
  std::string token(static_cast<std::size_t>(n), '\0');
  read_full(r.get(), std::as_writable_bytes(std::span(token)), "read (peer token)");
  return token;
}

// A real network transport, with a stranger's connection made to the listening port
// before the listener is handed back, so before the peer starts. addresses[0..1] of
// its endpoint are the host and the port; the one descriptor it hands the peer, if any,
// is the token's pipe (tcp, zmq-tcp).
class StrangerFirst final : public Transport {
 public:
  StrangerFirst(const Transport& real, Stranger kind) : real_(real), kind_(kind) {}
  const TransportInfo& info() const override { return real_.info(); }
  std::unique_ptr<Listener> listen(RunDir& dir, std::size_t max_message,
                                   const TransportSettings& settings) const override {
    std::unique_ptr<Listener> l = real_.listen(dir, max_message, settings);
    const std::vector<std::string>& a = l->endpoint().addresses;
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(std::stoi(a.at(1))));
    if (::inet_pton(AF_INET, a.at(0).c_str(), &sa.sin_addr) != 1)
      throw ProtocolError("bad address " + a.at(0));
    stranger_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!stranger_.valid() ||
        ::connect(stranger_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
      throw SysError("stranger's connect", errno);
    if (const auto& fds = l->endpoint().inherit_fds; !fds.empty()) token_ = peek_token(fds[0]);
    std::string says = kind_ == Stranger::kChatty       ? "GET / HTTP/1.1\r\nHost: x\r\n\r\n" + a[0]
                       : kind_ == Stranger::kZmtp       ? zmtp_greeting("NULL")
                       : kind_ == Stranger::kWrongLogin ? zmtp_wrong_login()
                       : kind_ == Stranger::kImpostor   ? token_
                                                        : "";
    write_all(stranger_.get(), std::as_bytes(std::span(says.data(), says.size())), "stranger");
    fd_.store(stranger_.get());
    return l;
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep, const SetupWait& wait) const override {
    return real_.connect(ep, wait);
  }
  // The stranger shuts its connection down (from any thread) or closes it.
  void hang_up() const { ::shutdown(fd_.load(), SHUT_RDWR); }
  // What the stranger has been sent, read until `until` appears or 5 s pass.
  std::string heard(const std::string& until) const {
    std::string got;
    char buf[256];
    pollfd p{stranger_.get(), POLLIN, 0};
    while (got.find(until) == std::string::npos && ::poll(&p, 1, 5000) == 1) {
      const ssize_t n = ::read(stranger_.get(), buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<std::size_t>(n));
    }
    return got;
  }
  void leave() const {
    fd_.store(-1);
    stranger_.reset();
  }
  // The peer's token (tcp, zmq-tcp), as the peer got it; empty for other transports.
  const std::string& token() const { return token_; }

 private:
  const Transport& real_;
  Stranger kind_;
  mutable UniqueFd stranger_;
  mutable std::atomic<int> fd_{-1};  // stranger_'s descriptor, for hang_up()
  mutable std::string token_;
};

SessionConfig config(const Transport& t, std::chrono::milliseconds setup_timeout) {
  return {&t,
          resolve_placement("none"),
          false,
          64,
          5000ms,
          setup_timeout,
          IPCBENCH_BINARY,
          TransportSettings{}};
}

// A round trip with the peer held up (stopped) for 300 ms: several of the receiving
// side's wait slices pass before the reply comes.
void slow_round_trip(PeerSession& s) {
  const pid_t peer = s.child().pid();
  ASSERT_EQ(::kill(peer, SIGSTOP), 0);
  std::thread resume([peer] {
    std::this_thread::sleep_for(300ms);
    ::kill(peer, SIGCONT);
  });
  try {
    s.cpu_sample();
  } catch (const std::exception& e) {
    ADD_FAILURE() << e.what();
  }
  resume.join();
}

class TcpStranger : public ::testing::TestWithParam<Stranger> {};

// The peer's connection is the one that presents the token; the stranger's is passed
// over, and its leaving later changes nothing.
TEST_P(TcpStranger, IsPassedOverAndTheLinkWorks) {
  StrangerFirst t(*find_transport("tcp"), GetParam());
  RunDir dir;
  Watchdog dog;
  PeerSession s(dir, dog, config(t, 5000ms));
  s.cpu_sample();
  t.leave();
  slow_round_trip(s);
}

// The token that sets the peer's connection apart is not on the peer's command line,
// which other local users can usually read (/proc/PID/cmdline, ps).
class TokenOffTheCommandLine : public ::testing::TestWithParam<const char*> {};

TEST_P(TokenOffTheCommandLine, OfThePeer) {
  const Transport* real = find_transport(GetParam());
  if (!real) GTEST_SKIP() << "built without " << GetParam();
  StrangerFirst t(*real, Stranger::kSilent);
  RunDir dir;
  Watchdog dog;
  PeerSession s(dir, dog, config(t, 5000ms));
  s.cpu_sample();  // the link works: the peer presented the token
  const std::string cmdline =
      testing_support::slurp("/proc/" + std::to_string(s.child().pid()) + "/cmdline");
  ASSERT_EQ(t.token().size(), 32u);
  ASSERT_NE(cmdline.find(std::string("--transport=") + GetParam()), std::string::npos) << cmdline;
  EXPECT_EQ(cmdline.find(t.token()), std::string::npos) << cmdline;
}

INSTANTIATE_TEST_SUITE_P(NetworkTransports, TokenOffTheCommandLine,
                         ::testing::Values("tcp", "zmq-tcp"), [](const auto& info) {
                           return info.param == std::string("tcp") ? "tcp" : "zmq_tcp";
                         });

INSTANTIATE_TEST_SUITE_P(SilentOrChatty, TcpStranger,
                         ::testing::Values(Stranger::kSilent, Stranger::kChatty),
                         [](const auto& info) {
                           return info.param == Stranger::kSilent ? "Silent" : "Chatty";
                         });

// Runs `step` (which says how it ended) on another thread. A step still going after
// `limit` fails the test; the stranger then hangs up, so that the step can end.
std::string within(std::chrono::seconds limit, const StrangerFirst& t,
                   const std::function<std::string()>& step) {
  auto done = std::async(std::launch::async, step);
  if (done.wait_for(limit) != std::future_status::ready) {
    t.hang_up();
    ADD_FAILURE() << "still going " << limit.count() << " s on";
  }
  return done.get();
}

// Kills the session's peer, with the watchdog armed for `timeout` as a cell arms it, and
// says how the receive that follows ended (allowed 10 s).
std::string recv_with_the_peer_killed(PeerSession& s, Watchdog& dog,
                                      std::chrono::milliseconds timeout, const StrangerFirst& t) {
  dog.arm(s.child().pid(), timeout, [&s] { s.channel().abort(); });
  if (::kill(s.child().pid(), SIGKILL) != 0) {
    const int err = errno;
    dog.disarm();
    return "kill: " + std::string(strerror(err));
  }
  const std::string end = within(10s, t, [&]() -> std::string {
    std::byte buf[64];
    try {
      return s.channel().recv(buf) == 0 ? "the link ended" : "a message arrived";
    } catch (const std::exception& e) {
      return e.what();
    }
  });
  dog.disarm();
  return end;
}

// Sets a session up with a 1.5-s set-up timeout (allowed 30 s); returns its error.
std::string setup_error(const StrangerFirst& t) {
  RunDir dir;
  Watchdog dog;
  return within(30s, t, [&]() -> std::string {
    try {
      PeerSession s(dir, dog, config(t, 1500ms));
      return "the set-up succeeded";
    } catch (const ProtocolError& e) {
      return e.what();
    }
  });
}

// Whatever holds the link during set-up, the set-up ends within its timeout: here an
// impostor took the peer's place and never answers.
TEST(PeerSession, AnImpostorOnTheTcpPortFailsTheSetUpInTime) {
  const std::string err = setup_error(StrangerFirst(*find_transport("tcp"), Stranger::kImpostor));
  EXPECT_NE(err.find("peer set-up: recv (stream): connection shut down by the watchdog"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("watchdog: no progress within 1500 ms"), std::string::npos) << err;
}

// A zmq-tcp session set up while a silent stranger's connection, made first, is open.
class ZmqBesideAStranger : public ::testing::Test {
 protected:
  void SetUp() override {
    const Transport* zmq = find_transport("zmq-tcp");
    if (!zmq) GTEST_SKIP() << "built without ZeroMQ";
    t_ = std::make_unique<StrangerFirst>(*zmq, Stranger::kSilent);
    s_ = std::make_unique<PeerSession>(dir_, dog_, config(*t_, 5000ms));
  }
  RunDir dir_;
  Watchdog dog_;
  std::unique_ptr<StrangerFirst> t_;
  std::unique_ptr<PeerSession> s_;  // goes first, while the watchdog lives
};

// ZeroMQ takes the stranger's connection and waits for its handshake, while the peer
// connects beside it: the set-up succeeds. The stranger leaving later must not end the
// link, not even while a receive waits for the peer.
TEST_F(ZmqBesideAStranger, TheStrangerLeavingLeavesTheLinkAlone) {
  t_->leave();
  std::this_thread::sleep_for(200ms);  // its disconnection reaches the socket's monitor
  slow_round_trip(*s_);
}

// A stranger that speaks first, and not ZMTP 3 (here HTTP: ZeroMQ alone would take it for
// an old-protocol peer and give it the PAIR socket's one slot), or speaks ZMTP 3 without
// the peer's login, is refused; the peer's connection beside it makes the link. When the
// peer then dies, the link ends: the refused connection is no longer counted.
class ZmqTurnsAway : public ::testing::TestWithParam<Stranger> {};

TEST_P(ZmqTurnsAway, TheStrangerButTheLinkWorks) {
  const Transport* zmq = find_transport("zmq-tcp");
  if (!zmq) GTEST_SKIP() << "built without ZeroMQ";
  StrangerFirst t(*zmq, GetParam());
  RunDir dir;
  Watchdog dog;
  PeerSession s(dir, dog, config(t, 5000ms));
  slow_round_trip(s);
  EXPECT_EQ(recv_with_the_peer_killed(s, dog, 5000ms, t), "the link ended");
}

INSTANTIATE_TEST_SUITE_P(ChattyOrZmtp, ZmqTurnsAway,
                         ::testing::Values(Stranger::kChatty, Stranger::kZmtp),
                         [](const auto& info) {
                           return info.param == Stranger::kChatty ? "Chatty" : "Zmtp";
                         });

// A stranger that logs in with a wrong password is refused by the login check (ZeroMQ
// sends it an ERROR carrying the check's 400); the peer gets in beside it. ZeroMQ keeps
// a refused login's connection open until the stranger closes it; once it has, the
// link works and the peer's death ends it.
TEST(ZmqLogin, AWrongPasswordIsRefusedAndThePeerGetsIn) {
  const Transport* zmq = find_transport("zmq-tcp");
  if (!zmq) GTEST_SKIP() << "built without ZeroMQ";
  StrangerFirst t(*zmq, Stranger::kWrongLogin);
  RunDir dir;
  Watchdog dog;
  PeerSession s(dir, dog, config(t, 5000ms));
  // An ERROR command whose reason is the check's status. (libzmq 4.3.4 writes the
  // command's name as "\x5ERROR" in its source, a hex escape that eats the E: on the
  // wire it reads "^RROR". Either spelling ends in "RROR".)
  const std::string refused = std::string("RROR") + '\x03' + "400";
  const std::string heard = t.heard(refused);
  EXPECT_NE(heard.find(refused), std::string::npos) << heard.size() << " bytes";
  t.leave();
  slow_round_trip(s);
  EXPECT_EQ(recv_with_the_peer_killed(s, dog, 5000ms, t), "the link ended");
}

// While a stranger's connection stays open, ZeroMQ's link cannot tell that the peer
// died; the watchdog's abort ends the wait, within the cell timeout as for every link.
TEST_F(ZmqBesideAStranger, APeerDeadBesideItFailsTheCellInTime) {
  EXPECT_EQ(recv_with_the_peer_killed(*s_, dog_, 1000ms, *t_),
            "zmq recv: link shut down by the watchdog");
}

}  // namespace
}  // namespace ipcbench
