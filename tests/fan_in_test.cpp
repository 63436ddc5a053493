// The natural fan-in forms of the socket transports (one listening socket, one
// connection per client) and the message-queue transports (one shared request queue, one
// reply queue per client), with real client processes (build/ipcbench --peer
// --role=echo, connected through the fan-in endpoints) on the other ends.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/interprocess/ipc/message_queue.hpp>
#include <chrono>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "base/cleanup.h"
#include "base/error.h"
#include "base/ipc_name.h"
#include "base/process.h"
#include "base/run_dir.h"
#include "bench/peer.h"
#include "tests/test_support.h"
#include "transports/many.h"
#include "transports/registry.h"

namespace ipcbench {
namespace {

using testing_support::pattern;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMax = 200000;  // several records on every queue

const Transport& transport(const std::string& name) {
  const Transport* t = find_transport(name);
  if (!t) throw std::runtime_error("no transport " + name);
  return *t;
}

// One fan-in: its run directory, listener, client processes and server.
struct FanIn {
  std::unique_ptr<RunDir> dir = std::make_unique<RunDir>();
  std::unique_ptr<FanInListener> listener;
  std::vector<ChildProcess> clients;
  std::unique_ptr<FanInServer> server;
  std::vector<Endpoint> eps;

  FanIn(const Transport& t, std::size_t n) {
    listener =
        t.listen_fan_in(*dir, kMax, testing_support::settings(), n, t.info().server_models.front());
    if (!listener) throw std::runtime_error(t.info().name + " has no fan-in");
    for (std::size_t i = 0; i < n; ++i) eps.push_back(listener->endpoint(i));
  }
  void spawn(const Transport& t, std::size_t i) {
    PeerArgs a{t.info().name, eps[i].addresses, kMax, false, "echo", IPCBENCH_BINARY};
    clients.push_back(ChildProcess::spawn({peer_command(a), eps[i].inherit_fds, -1}));
  }
  void accept(std::chrono::milliseconds within = std::chrono::seconds(20)) {
    server = listener->accept({Clock::now() + within, [this] {
                                 for (ChildProcess& c : clients)
                                   if (!c.alive()) return false;
                                 return true;
                               }});
  }
};

std::vector<std::string> our_objects(const char* dir) {
  std::vector<std::string> found;
  if (DIR* d = ::opendir(dir)) {
    while (dirent* e = ::readdir(d))
      if (auto st = RunStamp::parse(e->d_name); st && st->pid == ::getpid())
        found.push_back(e->d_name);
    ::closedir(d);
  }
  return found;
}

// Nothing of a fan-in is left: its run directory, shared-memory objects, queue names.
void expect_nothing_left(const std::string& dir, const std::vector<Endpoint>& eps) {
  struct stat st {};
  EXPECT_NE(::stat(dir.c_str(), &st), 0) << dir << " left behind";
  EXPECT_TRUE(our_objects("/dev/shm").empty()) << our_objects("/dev/shm").front();
  EXPECT_TRUE(our_objects("/dev/mqueue").empty()) << our_objects("/dev/mqueue").front();
  for (const Endpoint& ep : eps)
    for (const std::string& a : ep.addresses) {
      if (a.rfind("/ipcbench-", 0) == 0) {  // a POSIX queue
        mqd_t q = ::mq_open(a.c_str(), O_RDONLY);
        EXPECT_EQ(q, static_cast<mqd_t>(-1)) << a << " left behind";
        if (q != static_cast<mqd_t>(-1)) ::mq_close(q);
      } else if (a.rfind("ipcbench-", 0) == 0) {  // a boost-mq queue
        EXPECT_NE(::stat(("/dev/shm/" + a).c_str(), &st), 0) << a << " left behind";
      }
    }
}

// A message for client k in round r: bytes of its own, its index in the first byte.
std::vector<std::byte> message_for(std::size_t k, std::size_t round, std::size_t size) {
  std::vector<std::byte> m = pattern(size, static_cast<unsigned>(k * 1000 + round));
  m[0] = static_cast<std::byte>(k);
  return m;
}

const std::size_t kSizes[] = {1, 100, 9000, 70000, kMax};

// The process on the other end of a connected socket: SO_PEERCRED for a Unix socket;
// for TCP, the process holding the socket whose local port is our peer's port
// (/proc/net/tcp gives its inode, /proc/<pid>/fd the holder). -1: none of `pids`.
pid_t peer_process(int fd, const std::vector<pid_t>& pids) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return -1;
  if (ss.ss_family == AF_UNIX) {
    ucred cred{};
    socklen_t cl = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0) return -1;
    return cred.pid;
  }
  sockaddr_in peer{};
  len = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return -1;
  const unsigned port = ntohs(peer.sin_port);
  std::ifstream net("/proc/net/tcp");
  std::string line, inode;
  std::getline(net, line);  // the header
  while (std::getline(net, line)) {
    std::istringstream in(line);
    std::string sl, local, remote, st, queues, tr, retr, uid, timeout, ino;
    in >> sl >> local >> remote >> st >> queues >> tr >> retr >> uid >> timeout >> ino;
    if (std::stoul(local.substr(local.find(':') + 1), nullptr, 16) == port) inode = ino;
  }
  if (inode.empty()) return -1;
  for (pid_t p : pids) {
    const std::string dir = "/proc/" + std::to_string(p) + "/fd";
    if (DIR* d = ::opendir(dir.c_str())) {
      bool found = false;
      while (dirent* e = ::readdir(d)) {
        char target[64] = {};
        if (::readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1) > 0 &&
            std::string(target) == "socket:[" + inode + "]")
          found = true;
      }
      ::closedir(d);
      if (found) return p;
    }
  }
  return -1;
}

// Whether a message has begun to arrive on the link within 5 s (so that a test fails
// rather than hangs when it was sent to someone else).
bool arrives(Channel* link) {
  pollfd p{link->wait_fd(), POLLIN, 0};
  return ::poll(&p, 1, 5000) == 1;
}

class FanInForm : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() { cleanup::install_signal_handlers(); }
};

// Every client's bytes come back intact, to the server from that client only; each
// client gets only its own messages (an echo of another client's would come back under
// the wrong index, or with the wrong bytes).
TEST_P(FanInForm, ThreeClientsEachGetTheirOwnBytesIntact) {
  const Transport& t = transport(GetParam());
  std::string dir;
  std::vector<Endpoint> eps;
  {
    FanIn f(t, 3);
    dir = f.dir->path();
    eps = f.eps;
    for (std::size_t i = 0; i < 3; ++i) f.spawn(t, i);
    ASSERT_NO_THROW(f.accept());
    std::vector<Channel*> links = f.server->links();
    const bool shared = f.server->model() == "shared-queue";
    EXPECT_EQ(shared, t.info().server_models == std::vector<std::string>{"shared-queue"});
    EXPECT_EQ(links.empty(), shared);
    // links()[i] is client i's connection.
    std::vector<pid_t> pids;
    for (ChildProcess& c : f.clients) pids.push_back(c.pid());
    for (std::size_t k = 0; k < links.size(); ++k)
      EXPECT_EQ(peer_process(links[k]->wait_fd(), pids), pids[k]) << "link " << k;
    std::vector<std::byte> buf(kMax);
    for (std::size_t round = 0; round < std::size(kSizes); ++round) {
      const std::size_t size = kSizes[round];
      for (std::size_t k = 0; k < 3; ++k) {
        if (shared)
          f.server->reply(k, message_for(k, round, size));
        else
          links[k]->send(message_for(k, round, size));
      }
      std::set<std::size_t> heard;
      for (std::size_t j = 0; j < 3; ++j) {
        std::size_t k = j, n = 0;
        if (shared)
          std::tie(k, n) = f.server->recv_any(buf);
        else if (arrives(links[k]))
          n = links[k]->recv(buf);
        ASSERT_LT(k, 3u);
        EXPECT_TRUE(heard.insert(k).second) << "client " << k << " answered twice";
        ASSERT_EQ(n, size) << "client " << k << ", round " << round;
        std::vector<std::byte> want = message_for(k, round, size);
        EXPECT_EQ(std::memcmp(buf.data(), want.data(), size), 0)
            << "client " << k << " sent back other bytes, round " << round;
      }
    }
    f.server.reset();  // the clients see the end of their links and exit
    for (ChildProcess& c : f.clients) EXPECT_EQ(c.finish(std::chrono::seconds(5)), "exit 0");
  }
  expect_nothing_left(dir, eps);
}

INSTANTIATE_TEST_SUITE_P(Forms, FanInForm,
                         ::testing::Values("uds", "uds-seqpacket", "tcp", "posix-mq", "boost-mq"),
                         [](const auto& info) { return testing_support::test_suffix(info.param); });

// --- the socket forms: strangers on the shared listening socket ----------------------

class SocketFanInForm : public ::testing::TestWithParam<std::string> {};

UniqueFd connect_to(const Endpoint& ep, int type) {
  if (ep.addresses.size() == 3) {  // tcp: host, port, token pipe
    UniqueFd fd(static_cast<int>(check_sys(::socket(AF_INET, SOCK_STREAM, 0), "socket")));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, ep.addresses[0].c_str(), &a.sin_addr);
    a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(ep.addresses[1])));
    check_sys(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), "connect");
    return fd;
  }
  UniqueFd fd(static_cast<int>(check_sys(::socket(AF_UNIX, type, 0), "socket")));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, ep.addresses[0].c_str(), sizeof a.sun_path - 1);
  check_sys(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), "connect");
  return fd;
}

// Whether the listener closed this connection (end of file or reset) within 5 s.
bool closed_by_listener(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 5000) != 1) return false;
  char c;
  ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

// Strangers connect to the one socket before the clients: one presents a wrong token,
// one stays silent. Neither becomes a link, the wrong one is closed, and links()[i] is
// still client i's connection.
TEST_P(SocketFanInForm, StrangersWithoutATokenNeverBecomeLinks) {
  const Transport& t = transport(GetParam());
  const int type = GetParam() == "uds-seqpacket" ? SOCK_SEQPACKET : SOCK_STREAM;
  std::string dir;
  std::vector<Endpoint> eps;
  {
    FanIn f(t, 2);
    dir = f.dir->path();
    eps = f.eps;
    UniqueFd liar = connect_to(f.eps[0], type);
    UniqueFd silent = connect_to(f.eps[1], type);
    const std::string wrong(32, 'f');
    ASSERT_EQ(::send(liar.get(), wrong.data(), wrong.size(), MSG_NOSIGNAL), 32);
    for (std::size_t i = 0; i < 2; ++i) f.spawn(t, i);
    ASSERT_NO_THROW(f.accept());
    std::vector<Channel*> links = f.server->links();
    ASSERT_EQ(links.size(), 2u);
    std::vector<pid_t> pids;
    for (ChildProcess& c : f.clients) pids.push_back(c.pid());
    for (std::size_t k = 0; k < 2; ++k)
      EXPECT_EQ(peer_process(links[k]->wait_fd(), pids), pids[k]) << "link " << k;
    std::vector<std::byte> buf(kMax);
    for (std::size_t k = 0; k < 2; ++k) {
      links[k]->send(message_for(k, 7, 5000));
      ASSERT_TRUE(arrives(links[k])) << "link " << k << " is not a client's";
      ASSERT_EQ(links[k]->recv(buf), 5000u);
      std::vector<std::byte> want = message_for(k, 7, 5000);
      EXPECT_EQ(std::memcmp(buf.data(), want.data(), 5000), 0) << "link " << k;
    }
    EXPECT_TRUE(closed_by_listener(liar.get())) << "the stranger with a wrong token stayed";
    EXPECT_TRUE(closed_by_listener(silent.get())) << "the silent stranger stayed";
    // Once every client is in, nobody else gets through: the socket is closed.
    EXPECT_THROW(connect_to(f.eps[0], type), SysError);
  }
  expect_nothing_left(dir, eps);
}

// A client that never connects: accept gives up at the deadline.
TEST_P(SocketFanInForm, AcceptIsBoundedBySetupWait) {
  const Transport& t = transport(GetParam());
  FanIn f(t, 2);
  f.spawn(t, 0);
  const auto t0 = Clock::now();
  std::string err = testing_support::error_of([&] { f.accept(std::chrono::milliseconds(300)); });
  EXPECT_NE(err.find("timed out"), std::string::npos) << err;
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
}

INSTANTIATE_TEST_SUITE_P(Sockets, SocketFanInForm, ::testing::Values("uds", "uds-seqpacket", "tcp"),
                         [](const auto& info) { return testing_support::test_suffix(info.param); });

// --- the queue forms: forged client indexes ------------------------------------------

class QueueFanInForm : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() { cleanup::install_signal_handlers(); }
};

// Sends one record straight onto the request queue named `name`, as a forger would.
class RawRequests {
 public:
  RawRequests(const std::string& transport, const std::string& name)
      : posix_(transport == "posix-mq") {
    if (posix_) {
      q_ = ::mq_open(name.c_str(), O_WRONLY);
      if (q_ == static_cast<mqd_t>(-1)) throw SysError("mq_open " + name, errno);
    } else {
      b_ = std::make_unique<boost::interprocess::message_queue>(boost::interprocess::open_only,
                                                                name.c_str());
    }
  }
  ~RawRequests() {
    if (posix_) ::mq_close(q_);
  }
  void send(std::uint32_t client, std::uint32_t len, std::span<const std::byte> body) {
    std::vector<std::byte> rec(8 + body.size());
    for (int i = 0; i < 4; ++i) {
      rec[i] = static_cast<std::byte>(client >> (8 * i));
      rec[4 + i] = static_cast<std::byte>(len >> (8 * i));
    }
    if (!body.empty()) std::memcpy(rec.data() + 8, body.data(), body.size());
    if (posix_)
      ASSERT_EQ(::mq_send(q_, reinterpret_cast<const char*>(rec.data()), rec.size(), 0), 0);
    else
      b_->send(rec.data(), rec.size(), 0);
  }

 private:
  bool posix_;
  mqd_t q_ = static_cast<mqd_t>(-1);
  std::unique_ptr<boost::interprocess::message_queue> b_;
};

// A request naming a client that does not exist is refused, not served or crashed on.
TEST_P(QueueFanInForm, ARequestForAClientThatDoesNotExistIsRefused) {
  const Transport& t = transport(GetParam());
  std::string dir;
  std::vector<Endpoint> eps;
  {
    FanIn f(t, 2);
    dir = f.dir->path();
    eps = f.eps;
    // Opened while the names exist (they go once every client said hello).
    RawRequests forger(t.info().name, f.eps[0].addresses[1]);
    for (std::size_t i = 0; i < 2; ++i) f.spawn(t, i);
    ASSERT_NO_THROW(f.accept());
    EXPECT_EQ(f.server->model(), "shared-queue");
    std::vector<std::byte> body = pattern(16, 3);
    forger.send(7, 16, body);
    std::vector<std::byte> buf(kMax);
    std::string err = testing_support::error_of([&] { f.server->recv_any(buf); });
    EXPECT_NE(err.find("names client 7 of 2"), std::string::npos) << err;
    // A record claiming more bytes than the server's buffer holds is refused too.
    forger.send(1, static_cast<std::uint32_t>(kMax + 1), body);
    err = testing_support::error_of([&] { f.server->recv_any(buf); });
    EXPECT_NE(err.find("exceeds the receive buffer"), std::string::npos) << err;
    // The server still serves the real clients.
    f.server->reply(1, message_for(1, 0, 300));
    auto [k, n] = f.server->recv_any(buf);
    EXPECT_EQ(k, 1u);
    EXPECT_EQ(n, 300u);
    EXPECT_THROW(f.server->reply(2, body), ProtocolError);
  }
  expect_nothing_left(dir, eps);
}

// A hello naming a client that does not exist fails the set-up.
TEST_P(QueueFanInForm, AForgedHelloFailsTheSetUp) {
  const Transport& t = transport(GetParam());
  std::string dir;
  std::vector<Endpoint> eps;
  {
    FanIn f(t, 2);
    dir = f.dir->path();
    eps = f.eps;
    Endpoint forged = f.eps[0];
    forged.addresses[2] = "5";
    std::unique_ptr<Channel> ch =
        t.connect(forged, {Clock::now() + std::chrono::seconds(5), [] { return true; }});
    f.spawn(t, 0);
    f.spawn(t, 1);
    std::string err = testing_support::error_of([&] { f.accept(); });
    EXPECT_NE(err.find("names client 5 of 2"), std::string::npos) << err;
  }
  expect_nothing_left(dir, eps);
}

// abort() from another thread makes a recv_any blocked on a silent queue return soon.
TEST_P(QueueFanInForm, AbortEndsABlockedRecvAny) {
  const Transport& t = transport(GetParam());
  FanIn f(t, 1);
  f.spawn(t, 0);
  ASSERT_NO_THROW(f.accept());
  std::vector<std::byte> buf(kMax);
  std::thread aborter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    f.server->abort();
  });
  auto [k, n] = f.server->recv_any(buf);  // the echo client never sends first
  aborter.join();
  EXPECT_EQ(n, 0u);
  (void)k;
}

INSTANTIATE_TEST_SUITE_P(Queues, QueueFanInForm, ::testing::Values("posix-mq", "boost-mq"),
                         [](const auto& info) { return testing_support::test_suffix(info.param); });

}  // namespace
}  // namespace ipcbench
