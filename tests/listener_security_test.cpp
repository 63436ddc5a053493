// Who can get at a link while it is being set up. For every transport with a real peer
// (build/ipcbench --peer --role=echo) on the other end:
//  - a process of another uid (the tests run as root and fork a child that becomes
//    `nobody`) cannot open the link's IPC objects or connect to its socket file; where
//    a check behind the file's mode exists (a uid filter, SO_PEERCRED), the test widens
//    the modes so that the other uid reaches the socket, and that check refuses it even
//    when it presents the run's token;
//  - a stranger of our own uid without the token (none, or a wrong one) is refused;
//  - either way the refused process does not take the peer's place: the real peer
//    connects afterwards and the link works;
//  - a socket file the suite binds is 0600 from the moment it exists (never chmod-ed
//    after bind, which would leave it open to others for a moment).
// gRPC's peer is the server: there the stranger is a gRPC client (this binary, exec-ed as
// DISABLED_GrpcStrangerProcess.Calls) that calls the peer's server before and after the
// benchmark's client connects. HTTP's peer is the server too: there the stranger sends
// raw HTTP/1.1 requests (without the token, with a wrong one, with the right one on a
// second connection, malformed) and reads the status line and whether it was closed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/cleanup.h"
#include "base/error.h"
#include "base/fd.h"
#include "base/process.h"
#include "base/run_dir.h"
#include "bench/peer.h"
#include "tests/test_support.h"
#include "transports/registry.h"
#include "transports/socket_util.h"

#ifdef IPCBENCH_HAVE_GRPC
#include <grpcpp/grpcpp.h>

#include "transports/grpc/ipcbench.grpc.pb.h"
#endif

namespace ipcbench {
namespace {

using namespace std::chrono_literals;
using testing_support::pattern;

constexpr std::size_t kMaxBytes = 4096;

// What kind of listener a transport has, which says how a stranger tries to get in.
enum class Kind {
  kUnixSocket,  // uds, uds-seqpacket (and what is built on uds): the listener's socket
                // file; token first
  kTcp,         // tcp (and what is built on tcp): a port; token first
  kZmqIpc,      // zmq-ipc: ZeroMQ's socket file; ZMTP PLAIN login with the token
  kZmqTcp,      // zmq-tcp: a port; ZMTP PLAIN login with the token
  kGrpcUnix,    // grpc-uds, grpc-stream-uds: the peer's server's socket file
  kGrpcTcp,     // grpc-tcp, grpc-stream-tcp: the peer's server's port
  kHttpUnix,    // http-uds: the peer's HTTP server's socket file; bearer token per request
  kHttpTcp,     // http-tcp: the peer's HTTP server's port; bearer token per request
  kRoudi,       // iceoryx-*: RouDi's shared memory and socket, which iceoryx makes
                // 0660 (owner and group); a peer's first sample carries the token
  kObjects,     // everything else: files, FIFOs, shm objects, queues, pipes
};

// The transport whose listener this one uses: its own name, or, for a protocol run over
// another transport's link (jsonrpc-*), the transport it is built on. ZeroMQ, gRPC and
// HTTP are built on uds and tcp too but listen their own way: they are told apart by
// name.
const std::string& listener_of(const TransportInfo& i) {
  const bool own = i.name.rfind("zmq-", 0) == 0 || i.name.rfind("grpc-", 0) == 0 ||
                   i.name.rfind("http-", 0) == 0;
  return own || i.built_on.empty() ? i.name : i.built_on;
}

Kind kind_of(const TransportInfo& info) {
  const std::string& name = listener_of(info);
  if (name == "uds" || name == "uds-seqpacket") return Kind::kUnixSocket;
  if (name == "tcp") return Kind::kTcp;
  if (name == "zmq-ipc") return Kind::kZmqIpc;
  if (name == "zmq-tcp") return Kind::kZmqTcp;
  if (name == "grpc-uds" || name == "grpc-stream-uds") return Kind::kGrpcUnix;
  if (name == "grpc-tcp" || name == "grpc-stream-tcp") return Kind::kGrpcTcp;
  if (name == "http-uds") return Kind::kHttpUnix;
  if (name == "http-tcp") return Kind::kHttpTcp;
  if (name.rfind("iceoryx-", 0) == 0) return Kind::kRoudi;
  return Kind::kObjects;
}
[[maybe_unused]] bool is_grpc(Kind k) { return k == Kind::kGrpcUnix || k == Kind::kGrpcTcp; }
bool is_http(Kind k) { return k == Kind::kHttpUnix || k == Kind::kHttpTcp; }

// ---------------------------------------------------------------------------------
// A link set up step by step, so that a stranger can come in between.

struct LinkSteps {
  const Transport& t;
  RunDir dir;
  std::unique_ptr<Listener> listener;
  Endpoint ep;  // what the peer is given
  ChildProcess peer;
  std::unique_ptr<Channel> ch;

  explicit LinkSteps(const Transport& tr) : t(tr) {}
  // The link ends first, then the peer is given time to end by itself, as a run's peer
  // is: killed at once, an iceoryx peer would leave its runtime's files behind.
  ~LinkSteps() {
    ch.reset();
    if (peer.alive()) peer.finish(std::chrono::seconds(5));
  }
  void listen() {
    listener = t.listen(dir, kMaxBytes, testing_support::settings());
    ep = listener->endpoint();
  }
  void spawn() {
    PeerArgs args{t.info().name, ep.addresses, kMaxBytes, false, "echo", IPCBENCH_BINARY};
    peer = ChildProcess::spawn({peer_command(args), ep.inherit_fds, -1});
  }
  void accept() {
    auto deadline = std::chrono::steady_clock::now() + 20s;
    ch = listener->accept({deadline, [this] { return peer.alive(); }});
  }
};

// One message there and back; "" when it came back intact. Allowed 10 s: then the peer
// is killed and the channel aborted, which ends a wait on anyone's connection.
std::string echo_fails(LinkSteps& s) {
  std::atomic<bool> done{false};
  const pid_t pid = s.peer.pid();
  Channel* ch = s.ch.get();
  std::thread guard([&done, pid, ch] {
    for (int i = 0; i < 200 && !done.load(); ++i) std::this_thread::sleep_for(50ms);
    if (!done.load()) {
      ::kill(pid, SIGKILL);
      ch->abort();
    }
  });
  std::string err;
  try {
    auto msg = pattern(1000, 7);
    std::vector<std::byte> buf(kMaxBytes);
    ch->send(msg);
    std::size_t n = ch->recv(buf);
    if (n != msg.size() || std::memcmp(buf.data(), msg.data(), n) != 0)
      err = "the echo came back as " + std::to_string(n) + " other bytes";
  } catch (const std::exception& e) {
    err = e.what();
  }
  done.store(true);
  guard.join();
  return err;
}

// The peer's token, read from the pipe the peer will inherit without taking it out (tee
// copies what a pipe holds into another); "" when no inherited descriptor holds one.
std::string peek_token(const Endpoint& ep) {
  for (int fd : ep.inherit_fds) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw SysError("pipe2", errno);
    UniqueFd r(p[0]), w(p[1]);
    const ssize_t n = ::tee(fd, w.get(), 4096, SPLICE_F_NONBLOCK);
    if (n != static_cast<ssize_t>(PeerToken::kBytes)) continue;  // not a pipe, or empty
    std::string token(PeerToken::kBytes, '\0');
    read_full(r.get(), std::as_writable_bytes(std::span(token)), "read (peer token)");
    return token;
  }
  return "";
}

// The token is not on the peer's command line, which other users can read (ps).
void expect_off_the_command_line(const LinkSteps& s, const std::string& token) {
  ASSERT_EQ(token.size(), PeerToken::kBytes);
  const std::string cmdline =
      testing_support::slurp("/proc/" + std::to_string(s.peer.pid()) + "/cmdline");
  ASSERT_NE(cmdline.find(s.t.info().name), std::string::npos) << cmdline;
  EXPECT_EQ(cmdline.find(token), std::string::npos) << cmdline;
}

// A ZMTP 3.0 greeting (RFC 23) offering `mechanism`, then, for PLAIN, a HELLO (RFC 24)
// as the peer's user with `password`.
std::string zmtp_greeting(const std::string& mechanism) {
  std::string g = {'\xff', 0, 0, 0, 0, 0, 0, 0, 1, '\x7f', 3, 0};
  g += mechanism + std::string(20 - mechanism.size(), '\0');
  return g + std::string(32, '\0');
}
std::string zmtp_login(const std::string& password) {
  const std::string user = "ipcbench-peer";
  std::string hello = std::string("\x05HELLO") + static_cast<char>(user.size()) + user +
                      static_cast<char>(password.size()) + password;
  return zmtp_greeting("PLAIN") + '\x04' + static_cast<char>(hello.size()) + hello;
}
const std::string kWrongToken(PeerToken::kBytes, 'f');

// ---------------------------------------------------------------------------------
// How a listener treated an attempt. Also the exit status of a child that made it.
enum Verdict : int {
  kRefused = 10,       // closed the connection before sending a byte
  kLoginRefused = 11,  // answered with its refusal (ZeroMQ's ERROR)
  kNoAccess = 12,      // EACCES / EPERM: the object's or the directory's mode
  kServed = 13,        // answered as to its peer
  kHeld = 14,          // kept the connection open and said nothing
  kOpened = 15,        // an IPC object opened
  kSetIdFailed = 16,   // the child could not become the other user
  kErrno = 64,         // kErrno + errno: another failure
};

std::string describe(int v) {
  switch (v) {
    case kRefused:
      return "refused (closed at once)";
    case kLoginRefused:
      return "refused (login refused)";
    case kNoAccess:
      return "no access (EACCES)";
    case kServed:
      return "served as the peer";
    case kHeld:
      return "held open, unanswered";
    case kOpened:
      return "opened";
    case kSetIdFailed:
      return "could not become the other user";
  }
  if (v >= kErrno && v < kErrno + 128) return std::string("error: ") + strerror(v - kErrno);
  return "exit status " + std::to_string(v);
}

int errno_verdict(int err) { return err == EACCES || err == EPERM ? kNoAccess : kErrno + err; }

// A connection attempt, made ready (all allocations done) before any fork.
struct Attempt {
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  int type = SOCK_STREAM;
  std::string hello;  // sent once connected (nothing when empty)
  // What the listener says when it refuses a login, and when it takes one. Without
  // these, any byte from the listener means it took the connection for its peer's.
  const char* refused_marker = nullptr;
  const char* served_markers[2] = {nullptr, nullptr};
};
Attempt unix_attempt(const std::string& path, int type, std::string hello) {
  Attempt a;
  auto* un = reinterpret_cast<sockaddr_un*>(&a.addr);
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.c_str(), std::min(path.size() + 1, sizeof un->sun_path));
  a.addr_len = sizeof(sockaddr_un);
  a.type = type;
  a.hello = std::move(hello);
  return a;
}
Attempt tcp_attempt(const std::string& host, const std::string& port, std::string hello) {
  Attempt a;
  auto* in = reinterpret_cast<sockaddr_in*>(&a.addr);
  in->sin_family = AF_INET;
  in->sin_port = htons(static_cast<std::uint16_t>(std::stoi(port)));
  if (::inet_pton(AF_INET, host.c_str(), &in->sin_addr) != 1) throw ProtocolError("bad " + host);
  a.addr_len = sizeof(sockaddr_in);
  a.hello = std::move(hello);
  return a;
}
// ZeroMQ sends its greeting to anyone. It answers a login it refuses with an ERROR
// command carrying the check's status ("RROR": libzmq 4.3.4 spells the command's name
// "^RROR" on the wire), takes a PLAIN login with WELCOME, a NULL one with READY.
void zmq_markers(Attempt& a) {
  a.refused_marker = "RROR";
  a.served_markers[0] = "WELCOME";
  a.served_markers[1] = "READY";
}

// Listens on a connected socket for up to timeout_ms and says how the listener treats
// it. Only system calls and a fixed buffer: it also runs in a forked child of this
// multi-threaded process.
int hear(int fd, int timeout_ms, const Attempt& a) {
  char got[4096];
  std::size_t have = 0;
  auto saw = [&](const char* m) { return m && ::memmem(got, have, m, std::strlen(m)); };
  auto served = [&] {
    if (!a.served_markers[0]) return have > 0;
    return saw(a.served_markers[0]) || saw(a.served_markers[1]);
  };
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::max<long>(left.count(), 0)));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return served() ? kServed : kHeld;
    const ssize_t n = ::recv(fd, got + have, sizeof got - have, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return served() ? kServed : kRefused;  // end of file, or reset
    have += static_cast<std::size_t>(n);
    if (saw(a.refused_marker)) return kLoginRefused;
    if (served() || have == sizeof got) return kServed;
  }
}

// Connects, says hello; -1 and *verdict set when the connect failed.
int dial(const Attempt& a, int* verdict) {
  int fd = ::socket(a.addr.ss_family, a.type | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *verdict = kErrno + errno;
    return -1;
  }
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a.addr), a.addr_len) != 0) {
    *verdict = errno_verdict(errno);
    ::close(fd);
    return -1;
  }
  // Sent whole or not at all matters little: a listener that closed at once shows later.
  if (!a.hello.empty()) (void)::send(fd, a.hello.data(), a.hello.size(), MSG_NOSIGNAL);
  return fd;
}

// ---------------------------------------------------------------------------------
// Another user.

struct OtherUser {
  uid_t uid;
  gid_t gid;
};

// `nobody`, when this process may become it (it runs as root).
std::optional<OtherUser> other_user() {
  if (::geteuid() != 0) return std::nullopt;
  const passwd* pw = ::getpwnam("nobody");
  if (!pw || pw->pw_uid == 0) return std::nullopt;
  return OtherUser{pw->pw_uid, pw->pw_gid};
}

// In a forked child: keeps descriptors 0..keep (closing the rest, so the child holds
// nothing of the link) and becomes `u` for good. False when it could not.
bool become(const OtherUser& u, unsigned keep) {
  ::close_range(keep + 1, ~0U, 0);
  return ::setgroups(1, &u.gid) == 0 && ::setgid(u.gid) == 0 && ::setuid(u.uid) == 0 &&
         ::geteuid() == u.uid && ::setuid(0) != 0;  // and cannot come back
}

// A child of another uid making `body`'s attempt; body returns a Verdict. Descriptor 3
// of the child is `signal_w` (-1: none), where body may say how far it got.
class OtherUserChild {
 public:
  OtherUserChild(const OtherUser& u, const std::function<int(int)>& body, int signal_w = -1) {
    pid_ = ::fork();
    if (pid_ < 0) throw SysError("fork", errno);
    if (pid_ == 0) {
      ::alarm(40);  // whatever happens, the child ends
      int sig = -1;
      if (signal_w >= 0) sig = ::dup2(signal_w, 3);
      if (!become(u, 3)) ::_exit(kSetIdFailed);
      ::_exit(body(sig));
    }
  }
  ~OtherUserChild() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      (void)testing_support::wait_exit(pid_);
    }
  }
  OtherUserChild(const OtherUserChild&) = delete;
  OtherUserChild& operator=(const OtherUserChild&) = delete;
  // Its verdict (the exit status; 128 + signal when killed).
  int verdict() { return testing_support::wait_exit(std::exchange(pid_, -1)); }

 private:
  pid_t pid_ = -1;
};

// The other user's attempt, from start to verdict, with nothing in between.
int attempt_as(const OtherUser& u, const Attempt& a) {
  OtherUserChild child(u, [&a](int) {
    int v = 0;
    const int fd = dial(a, &v);
    return fd < 0 ? v : hear(fd, 10000, a);
  });
  return child.verdict();
}

// The other user's attempt, made before the peer is spawned: the attempt is under way
// (connected, hello sent) when this returns; verdict() waits for how it ended.
class AttemptUnderWay {
 public:
  AttemptUnderWay(const OtherUser& u, const Attempt& a) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw SysError("pipe2", errno);
    UniqueFd r(p[0]), w(p[1]);
    child_ = std::make_unique<OtherUserChild>(
        u,
        [&a](int sig) {
          int v = 0;
          const int fd = dial(a, &v);
          if (fd < 0) return v;
          (void)::write(sig, "c", 1);
          return hear(fd, 15000, a);
        },
        w.get());
    w.reset();
    pollfd pf{r.get(), POLLIN, 0};
    char c;
    connected_ = ::poll(&pf, 1, 10000) == 1 && ::read(r.get(), &c, 1) == 1;
  }
  bool connected() const { return connected_; }
  int verdict() { return child_->verdict(); }

 private:
  std::unique_ptr<OtherUserChild> child_;
  bool connected_ = false;
};

// Whether others may pass through every directory above `path` (else widening the run
// directory could not let the other user in, and the widened checks prove nothing).
bool others_can_reach(const std::string& path) {
  std::string p = path;
  while (p.size() > 1) {
    p = p.substr(0, p.rfind('/'));
    if (p.empty()) p = "/";
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0 || !(st.st_mode & S_IXOTH)) return false;
  }
  return true;
}

// Where an endpoint address names an IPC object another user could try to open.
struct IpcObject {
  enum Type { kNone, kPath, kMqueue, kProcFd } type;
  std::string name;
};
IpcObject object_of(const std::string& a, bool descriptors) {
  if (a.rfind("ipcbench-", 0) == 0) return {IpcObject::kPath, "/dev/shm/" + a};
  if (a.rfind("/ipcbench-", 0) == 0) return {IpcObject::kMqueue, a};
  if (a.find('/') != std::string::npos) return {IpcObject::kPath, a};
  if (descriptors && !a.empty() && a.find_first_not_of("0123456789") == std::string::npos)
    return {IpcObject::kProcFd, "/proc/" + std::to_string(::getpid()) + "/fd/" + a};
  return {IpcObject::kNone, a};
}
// In the child: tries to open the object for reading and writing.
int try_open(const IpcObject& o) {
  if (o.type == IpcObject::kMqueue) {
    mqd_t q = ::mq_open(o.name.c_str(), O_RDWR | O_CLOEXEC);
    if (q == static_cast<mqd_t>(-1)) return errno_verdict(errno);
    ::mq_close(q);
    return kOpened;
  }
  int fd = ::open(o.name.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return errno_verdict(errno);
  ::close(fd);
  return kOpened;
}

// The IPC objects an endpoint names (descriptor numbers only for the pipe transport,
// whose addresses are nothing else).
std::vector<IpcObject> objects_of(const LinkSteps& s) {
  std::vector<IpcObject> v;
  const bool descriptors = listener_of(s.t.info()) == "pipe";
  for (const std::string& a : s.ep.addresses)
    if (IpcObject o = object_of(a, descriptors); o.type != IpcObject::kNone) v.push_back(o);
  return v;
}

void widen(const std::string& path, mode_t mode) {
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path << ": " << strerror(errno);
}

// ---------------------------------------------------------------------------------
// gRPC and HTTP: the peer's server, and a stranger that calls it.

// The server reports "serving" (and its TCP port) in a line on a pipe the listener hands
// the peer (the endpoint's second address). The test hands the peer a pipe of its own
// instead, so that it learns when the server is up, and where, before the listener's
// client connects; then it passes the line on to the listener.
class ReadyTap {
 public:
  // Spawns the peer and waits for its server. Fails the test when it does not come.
  explicit ReadyTap(LinkSteps& s) {
    const int real = std::stoi(s.ep.addresses.at(1));
    real_w_.reset(::fcntl(real, F_DUPFD_CLOEXEC, 0));
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw SysError("pipe2", errno);
    r_.reset(p[0]);
    UniqueFd w(p[1]);
    s.ep.addresses[1] = std::to_string(w.get());
    for (int& fd : s.ep.inherit_fds)
      if (fd == real) fd = w.get();
    s.spawn();
    w.reset();
    while (line_.find('\n') == std::string::npos) {
      pollfd pf{r_.get(), POLLIN, 0};
      char buf[64];
      ssize_t n = 0;
      if (::poll(&pf, 1, 20000) != 1 || (n = ::read(r_.get(), buf, sizeof buf)) <= 0) break;
      line_.append(buf, static_cast<std::size_t>(n));
    }
    EXPECT_NE(line_.find('\n'), std::string::npos) << "the peer's server did not come up";
    port_ = line_.substr(0, line_.find('\n'));
    const bool uds = kind_of(s.t.info()) == Kind::kGrpcUnix;
    target_ = uds ? "unix:" + s.ep.addresses[0] : s.ep.addresses[0] + ":" + port_;
  }
  // gRPC's name for the server.
  const std::string& target() const { return target_; }
  // The server's TCP port ("0" over a Unix socket).
  const std::string& port() const { return port_; }
  // Gives the listener the line, as if the peer had written it there.
  void pass_on() {
    write_all(real_w_.get(), std::as_bytes(std::span(line_)), "write (ready line)");
    real_w_.reset();
  }

 private:
  UniqueFd r_, real_w_;
  std::string line_, target_, port_;
};

// A raw HTTP/1.1 request of the kind the benchmark's client makes (POST /echo), with
// "Authorization: Bearer <token>" (none when token is empty).
std::string http_request(const std::string& token) {
  std::string r = "POST /echo HTTP/1.1\r\nHost: x\r\n";
  if (!token.empty()) r += "Authorization: Bearer " + token + "\r\n";
  return r + "Content-Type: application/octet-stream\r\nContent-Length: 5\r\n\r\nhello";
}
// Where a stranger reaches the peer's HTTP server.
Attempt http_attempt(const LinkSteps& s, const ReadyTap& tap, std::string hello) {
  if (kind_of(s.t.info()) == Kind::kHttpUnix)
    return unix_attempt(s.ep.addresses.at(0), SOCK_STREAM, std::move(hello));
  return tcp_attempt(s.ep.addresses.at(0), tap.port(), std::move(hello));
}
// Makes the attempt and reads the answer: "<status code> closed" when the server
// answered and then closed the connection, "<status code> open" when it kept it open,
// "closed" when it closed without a byte, "held" when it said nothing for timeout_ms.
std::string http_outcome(const Attempt& a, int timeout_ms) {
  int v = 0;
  UniqueFd fd(dial(a, &v));
  if (!fd.valid()) return describe(v);
  std::string got;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    pollfd p{fd.get(), POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) break;
    char buf[4096];
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // end of file, or reset
      if (got.empty()) return "closed";
      return got.substr(9, 3) + " closed";
    }
    got.append(buf, static_cast<std::size_t>(n));
  }
  if (got.empty()) return "held";
  return got.substr(9, 3) + " open";
}

#ifdef IPCBENCH_HAVE_GRPC
constexpr const char* kTargetVar = "IPCBENCH_SEC_GRPC_TARGET";
constexpr const char* kTokenVar = "IPCBENCH_SEC_GRPC_TOKEN";
constexpr const char* kStreamVar = "IPCBENCH_SEC_GRPC_STREAM";

// The stranger's calls (in DISABLED_GrpcStrangerProcess.Calls): each the way the
// benchmark's client makes it, with `token` in its metadata (none when empty). Returns
// "<call>=<status code>" for each, space-separated.
std::string stranger_calls(const std::string& target, const std::string& token, bool stream) {
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  auto stub = rpc::Bench::NewStub(channel);
  auto context = [&token](std::chrono::milliseconds limit) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + limit);
    if (!token.empty()) ctx->AddMetadata("ipcbench-token", token);
    return ctx;
  };
  // Long enough for a loaded machine (a refusal comes back at once; only a call the
  // server wrongly holds, which fails the test anyway, waits it out).
  constexpr auto kStrangerWait = 10s;
  rpc::Frame msg, reply;
  msg.set_data(std::string(64, 's'));
  std::string out;
  auto note = [&out](const char* call, const grpc::Status& st) {
    out += std::string(out.empty() ? "" : " ") + call + "=" +
           std::to_string(static_cast<int>(st.error_code()));
  };
  if (stream) {
    auto ctx = context(kStrangerWait);
    auto chat = stub->Chat(ctx.get());
    chat->Write(msg);
    // An echo means the server took this stream for the link.
    if (chat->Read(&reply)) return "Chat=served";
    note("Chat", chat->Finish());
    return out;
  }
  {
    auto ctx = context(kStrangerWait);  // held open by a server that takes it for the client's
    note("Attach", stub->Attach(ctx.get(), rpc::Frame(), &reply));
  }
  {
    auto ctx = context(kStrangerWait);
    note("Exchange", stub->Exchange(ctx.get(), msg, &reply));
  }
  {
    auto ctx = context(kStrangerWait);  // asks for the server's next message
    note("EmptyExchange", stub->Exchange(ctx.get(), rpc::Frame(), &reply));
  }
  {
    auto ctx = context(kStrangerWait);
    auto up = stub->Upload(ctx.get(), &reply);
    up->Write(msg);
    up->WritesDone();
    note("Upload", up->Finish());
  }
  return out;
}

// What every call of stranger_calls says when each is answered with `code`.
std::string all_calls(bool stream, grpc::StatusCode code) {
  const std::string c = std::to_string(static_cast<int>(code));
  if (stream) return "Chat=" + c;
  return "Attach=" + c + " Exchange=" + c + " EmptyExchange=" + c + " Upload=" + c;
}

// Runs stranger_calls in a new process (this binary, exec-ed), as `u` or as ourselves.
std::string call_as_stranger(const std::optional<OtherUser>& u, const std::string& target,
                             const std::string& token, bool stream) {
  UniqueFd exe(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
  UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  int p[2];
  if (!exe.valid() || !null.valid() || ::pipe2(p, O_CLOEXEC) != 0)
    throw SysError("stranger set-up", errno);
  UniqueFd r(p[0]), w(p[1]);
  std::vector<std::string> args = {"ipcbench_tests", "--gtest_also_run_disabled_tests",
                                   "--gtest_filter=DISABLED_GrpcStrangerProcess.Calls"};
  std::vector<std::string> env = {std::string(kTargetVar) + "=" + target,
                                  std::string(kTokenVar) + "=" + token,
                                  std::string(kStreamVar) + "=" + (stream ? "1" : "0")};
  for (const char* name : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS", "LSAN_OPTIONS"})
    if (const char* v = std::getenv(name)) env.push_back(std::string(name) + "=" + v);
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw SysError("fork", errno);
  if (pid == 0) {
    ::alarm(40);
    // 0-2: /dev/null (no test output), 3: the report, 4: the program.
    if (::dup2(null.get(), 0) < 0 || ::dup2(null.get(), 1) < 0 || ::dup2(null.get(), 2) < 0 ||
        ::dup2(w.get(), 3) < 0 || ::dup2(exe.get(), 4) < 0)
      ::_exit(kErrno + errno);
    if (u ? !become(*u, 4) : ::close_range(5, ~0U, 0) != 0) ::_exit(kSetIdFailed);
    ::execveat(4, "", argv.data(), envp.data(), AT_EMPTY_PATH);
    ::_exit(kErrno + errno);
  }
  w.reset();
  std::string out;
  char buf[256];
  pollfd pf{r.get(), POLLIN, 0};
  ssize_t n;
  while (::poll(&pf, 1, 45000) == 1 && (n = ::read(r.get(), buf, sizeof buf)) > 0)
    out.append(buf, static_cast<std::size_t>(n));
  const int st = testing_support::wait_exit(pid);
  if (st != 0) out += " (stranger process: " + describe(st) + ")";
  return out;
}

// Not a test of its own: the stranger process the gRPC tests start.
TEST(DISABLED_GrpcStrangerProcess, Calls) {
  const char* target = std::getenv(kTargetVar);
  if (!target) GTEST_SKIP() << "started by the gRPC stranger tests only";
  const char* token = std::getenv(kTokenVar);
  const char* stream = std::getenv(kStreamVar);
  const std::string out =
      stranger_calls(target, token ? token : "", stream && std::string(stream) == "1");
  write_all(3, std::as_bytes(std::span(out)), "write (stranger report)");
  std::_Exit(0);  // gRPC's threads need no teardown
}
#endif  // IPCBENCH_HAVE_GRPC

// ---------------------------------------------------------------------------------

std::string test_name(const ::testing::TestParamInfo<const Transport*>& info) {
  return testing_support::test_suffix(info.param->info().name);
}

// Every suite here: SIGPIPE ignored, as in the suite's processes (a write to a
// connection a refused stranger closed is then an error, not the end of the tests).
class PerTransport : public ::testing::TestWithParam<const Transport*> {
 protected:
  static void SetUpTestSuite() { cleanup::install_signal_handlers(); }
};

std::vector<const Transport*> transports_where(const std::function<bool(Kind)>& pred) {
  std::vector<const Transport*> v;
  for (const Transport* t : all_transports())
    if (t->info().needs.empty() && pred(kind_of(t->info()))) v.push_back(t);
  return v;
}

// Another uid: cannot open the link's objects or reach its socket; where a check stands
// behind the socket file's mode (uid filter, SO_PEERCRED), it refuses the other uid with
// the modes widened and the run's token in hand. The real peer then gets the link.
class AnotherUid : public PerTransport {
 protected:
  void SetUp() override {
    user_ = other_user();
    if (!user_) GTEST_SKIP() << "needs root and a user 'nobody' to connect as another uid";
  }
  std::optional<OtherUser> user_;
};

TEST_P(AnotherUid, IsRefusedAndThePeerGetsTheLink) {
  const Transport& t = *GetParam();
  const Kind kind = kind_of(t.info());
  const OtherUser u = *user_;
  LinkSteps s(t);
  s.listen();
  if (!others_can_reach(s.dir.path()))
    GTEST_SKIP() << "others cannot pass through the directories above " << s.dir.path();

  if (kind == Kind::kRoudi) {
    // Not the suite's objects: RouDi's, modes as iceoryx sets them (0660). Another uid
    // outside our group opens neither its shared memory nor its socket.
    for (const char* path : {"/dev/shm/iceoryx_mgmt", "/tmp/roudi"}) {
      IpcObject o{IpcObject::kPath, path};
      OtherUserChild child(u, [&o](int) { return try_open(o); });
      EXPECT_EQ(describe(child.verdict()), describe(kNoAccess)) << o.name;
    }
    s.spawn();
    s.accept();
    EXPECT_EQ(echo_fails(s), "");
    return;
  }

  if (kind == Kind::kObjects) {
    auto objects = objects_of(s);
    ASSERT_FALSE(objects.empty()) << "no object named";
    auto all_refused = [&] {
      for (const IpcObject& o : objects) {
        OtherUserChild child(u, [&o](int) { return try_open(o); });
        EXPECT_EQ(describe(child.verdict()), describe(kNoAccess)) << o.name;
      }
    };
    all_refused();  // as the run has them: 0700 directory, 0600 objects
    widen(s.dir.path(), 0711);
    all_refused();  // the objects' own modes
    s.spawn();
    s.accept();
    EXPECT_EQ(echo_fails(s), "");
    return;
  }

  if (kind == Kind::kTcp || kind == Kind::kZmqTcp) {  // anyone may connect to a port
    Attempt a = tcp_attempt(s.ep.addresses.at(0), s.ep.addresses.at(1),
                            kind == Kind::kTcp ? kWrongToken : zmtp_login(kWrongToken));
    if (kind == Kind::kZmqTcp) zmq_markers(a);
    AttemptUnderWay stranger(u, a);
    ASSERT_TRUE(stranger.connected());
    s.spawn();
    s.accept();
    EXPECT_EQ(describe(stranger.verdict()),
              describe(kind == Kind::kTcp ? kRefused : kLoginRefused));
    EXPECT_EQ(echo_fails(s), "");
    return;
  }

  if (is_http(kind)) {
    const std::string token = peek_token(s.ep);
    ReadyTap tap(s);
    expect_off_the_command_line(s, token);
    if (kind == Kind::kHttpUnix) {
      const std::string& path = s.ep.addresses.at(0);
      const Attempt a = http_attempt(s, tap, http_request(token));
      EXPECT_EQ(describe(attempt_as(u, a)), describe(kNoAccess));  // 0700 directory
      widen(s.dir.path(), 0711);
      EXPECT_EQ(describe(attempt_as(u, a)), describe(kNoAccess));  // 0600 socket
      widen(path, 0666);
      // The server closes the other uid's connection as it accepts it (SO_PEERCRED),
      // before a byte, the token in its request notwithstanding.
      EXPECT_EQ(describe(attempt_as(u, a)), describe(kRefused));
    } else {  // anyone may connect to the port; without the token: 401
      Attempt a = http_attempt(s, tap, http_request(""));
      a.refused_marker = "HTTP/1.1 401 ";
      a.served_markers[0] = "HTTP/1.1 200 ";
      EXPECT_EQ(describe(attempt_as(u, a)), describe(kLoginRefused));
    }
    tap.pass_on();
    s.accept();
    EXPECT_EQ(echo_fails(s), "");
    return;
  }

#ifdef IPCBENCH_HAVE_GRPC
  if (is_grpc(kind)) {
    const bool stream = t.info().name.find("stream") != std::string::npos;
    const std::string token = peek_token(s.ep);
    ReadyTap tap(s);
    expect_off_the_command_line(s, token);
    if (kind == Kind::kGrpcUnix) {
      const std::string& path = s.ep.addresses.at(0);
      const Attempt a = unix_attempt(path, SOCK_STREAM, "");
      EXPECT_EQ(describe(attempt_as(u, a)), describe(kNoAccess));  // 0700 directory
      widen(s.dir.path(), 0711);
      EXPECT_EQ(describe(attempt_as(u, a)), describe(kNoAccess));  // 0600 socket
      widen(path, 0666);
      // The server closes the other uid's connection as it accepts it: every call
      // fails for want of a connection (UNAVAILABLE), the token notwithstanding.
      EXPECT_EQ(call_as_stranger(u, tap.target(), token, stream),
                all_calls(stream, grpc::StatusCode::UNAVAILABLE));
    } else {  // anyone may connect to the port; without the token no call counts
      EXPECT_EQ(call_as_stranger(u, tap.target(), "", stream),
                all_calls(stream, grpc::StatusCode::UNAUTHENTICATED));
    }
    tap.pass_on();
    s.accept();
    EXPECT_EQ(echo_fails(s), "");
    return;
  }
#endif

  // A listener's socket file: uds, uds-seqpacket, zmq-ipc.
  const std::string& path = s.ep.addresses.at(0);
  const int type = t.info().name == "uds-seqpacket" ? SOCK_SEQPACKET : SOCK_STREAM;
  const std::string token = peek_token(s.ep);
  EXPECT_EQ(describe(attempt_as(u, unix_attempt(path, type, ""))), describe(kNoAccess));
  widen(s.dir.path(), 0711);
  EXPECT_EQ(describe(attempt_as(u, unix_attempt(path, type, ""))), describe(kNoAccess));
  widen(path, 0666);
  // Now only the uid check stands in the way: the other uid presents the right token
  // (or logs in with it) ahead of the peer, and is closed as it is accepted.
  Attempt a = unix_attempt(path, type, kind == Kind::kZmqIpc ? zmtp_login(token) : token);
  if (kind == Kind::kZmqIpc) zmq_markers(a);
  AttemptUnderWay stranger(u, a);
  ASSERT_TRUE(stranger.connected()) << describe(stranger.verdict());
  s.spawn();
  expect_off_the_command_line(s, token);
  s.accept();
  EXPECT_EQ(describe(stranger.verdict()), describe(kRefused));
  EXPECT_EQ(echo_fails(s), "");
}

INSTANTIATE_TEST_SUITE_P(AllTransports, AnotherUid,
                         ::testing::ValuesIn(transports_where([](Kind) { return true; })),
                         test_name);

// A stranger of our own uid, without the token (none, or a wrong one), connects ahead of
// the peer: it is refused, and the peer gets the link.
class AStrangerWithoutTheToken : public PerTransport {};

TEST_P(AStrangerWithoutTheToken, IsRefusedAndThePeerGetsTheLink) {
  const Transport& t = *GetParam();
  const Kind kind = kind_of(t.info());
  LinkSteps s(t);
  s.listen();

  if (is_http(kind)) {
    const std::string token = peek_token(s.ep);
    ReadyTap tap(s);
    // A silent connection first: it holds a session of the server's, never the link.
    const Attempt silent = http_attempt(s, tap, "");
    int v = 0;
    UniqueFd quiet(dial(silent, &v));
    ASSERT_TRUE(quiet.valid()) << describe(v);
    EXPECT_EQ(http_outcome(http_attempt(s, tap, http_request("")), 5000), "401 closed");
    EXPECT_EQ(http_outcome(http_attempt(s, tap, http_request(kWrongToken)), 5000), "401 closed");
    EXPECT_EQ(http_outcome(http_attempt(s, tap, "\x16\x03\x01 not http\r\n\r\n"), 5000),
              "400 closed");
    // With the token but not a request the link serves: refused, and it takes nothing.
    std::string wrong_path = http_request(token);
    wrong_path.replace(wrong_path.find("/echo"), 5, "/nope");
    EXPECT_EQ(http_outcome(http_attempt(s, tap, wrong_path), 5000), "400 closed");
    tap.pass_on();
    s.accept();
    EXPECT_EQ(echo_fails(s), "");
    // And while the link runs: strangers are refused, a second client with the token
    // too (one connection owns the link), and the link still works.
    EXPECT_EQ(http_outcome(http_attempt(s, tap, http_request(kWrongToken)), 5000), "401 closed");
    EXPECT_EQ(http_outcome(http_attempt(s, tap, http_request(token)), 5000), "409 closed");
    EXPECT_EQ(echo_fails(s), "");
    EXPECT_EQ(hear(quiet.get(), 200, silent), kHeld);
    return;
  }

#ifdef IPCBENCH_HAVE_GRPC
  if (is_grpc(kind)) {
    const bool stream = t.info().name.find("stream") != std::string::npos;
    const std::string refused = all_calls(stream, grpc::StatusCode::UNAUTHENTICATED);
    ReadyTap tap(s);
    EXPECT_EQ(call_as_stranger(std::nullopt, tap.target(), "", stream), refused);
    EXPECT_EQ(call_as_stranger(std::nullopt, tap.target(), kWrongToken, stream), refused);
    tap.pass_on();
    s.accept();
    EXPECT_EQ(echo_fails(s), "");
    // And while the link runs.
    EXPECT_EQ(call_as_stranger(std::nullopt, tap.target(), kWrongToken, stream), refused);
    EXPECT_EQ(echo_fails(s), "");
    return;
  }
#endif

  const bool zmq = kind == Kind::kZmqIpc || kind == Kind::kZmqTcp;
  const bool tcp = kind == Kind::kTcp || kind == Kind::kZmqTcp;
  const int type = t.info().name == "uds-seqpacket" ? SOCK_SEQPACKET : SOCK_STREAM;
  auto attempt = [&](std::string hello) {
    Attempt a = tcp ? tcp_attempt(s.ep.addresses.at(0), s.ep.addresses.at(1), std::move(hello))
                    : unix_attempt(s.ep.addresses.at(0), type, std::move(hello));
    if (zmq) zmq_markers(a);
    return a;
  };
  // One with a wrong token (a wrong login), one that speaks another protocol (ZMTP
  // without a login), one that says nothing.
  const Attempt wrong = attempt(zmq ? zmtp_login(kWrongToken) : kWrongToken);
  const Attempt other = attempt(zmq ? zmtp_greeting("NULL") : "GET / HTTP/1.1\r\n\r\n");
  const Attempt silent = attempt("");
  std::vector<UniqueFd> fds;
  for (const Attempt* a : {&wrong, &other, &silent}) {
    int v = 0;
    fds.emplace_back(dial(*a, &v));
    ASSERT_TRUE(fds.back().valid()) << describe(v);
  }
  s.spawn();
  s.accept();
  // ZeroMQ answers a wrong login with its refusal, and closes on a mechanism it does not
  // take; the others close every connection but the peer's once it is in.
  EXPECT_EQ(describe(hear(fds[0].get(), 5000, wrong)), describe(zmq ? kLoginRefused : kRefused));
  const int other_verdict = hear(fds[1].get(), 5000, other);
  EXPECT_TRUE(other_verdict == kRefused || (zmq && other_verdict == kLoginRefused))
      << describe(other_verdict);
  // A silent connection is never taken for the peer's (ZeroMQ keeps waiting on it).
  EXPECT_EQ(describe(hear(fds[2].get(), zmq ? 200 : 5000, silent)),
            describe(zmq ? kHeld : kRefused));
  fds.clear();
  EXPECT_EQ(echo_fails(s), "");
}

INSTANTIATE_TEST_SUITE_P(ListeningTransports, AStrangerWithoutTheToken,
                         ::testing::ValuesIn(transports_where([](Kind k) {
                           return k != Kind::kObjects && k != Kind::kRoudi;
                         })),
                         test_name);

// A socket file the suite binds is 0600 from the moment it exists, whatever the process's
// umask: its mode is never changed after it was made (inotify reports any change of its
// attributes, a chmod among them), and it is 0600.
class SocketFile : public PerTransport {};

TEST_P(SocketFile, IsPrivateFromTheMomentItExists) {
  LinkSteps s(*GetParam());
  UniqueFd in(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  ASSERT_TRUE(in.valid()) << strerror(errno);
  ASSERT_GE(::inotify_add_watch(in.get(), s.dir.path().c_str(), IN_CREATE | IN_ATTRIB), 0);
  {
    ScopedUmask open_to_all(0);  // the worst umask a user could run the suite with
    s.listen();
    s.spawn();  // a gRPC peer binds the socket: it inherits the umask
    s.accept();
  }
  const std::string& path = s.ep.addresses.at(0);
  const std::string name = path.substr(path.rfind('/') + 1);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
  EXPECT_TRUE(S_ISSOCK(st.st_mode)) << path;
  EXPECT_EQ(st.st_mode & 0777, 0600u) << path;
  bool created = false, changed = false;
  alignas(inotify_event) char buf[4096];
  ssize_t n;
  while ((n = ::read(in.get(), buf, sizeof buf)) > 0) {
    for (char* p = buf; p < buf + n;) {
      const auto* e = reinterpret_cast<const inotify_event*>(p);
      if (e->len && name == e->name) {
        created |= (e->mask & IN_CREATE) != 0;
        changed |= (e->mask & IN_ATTRIB) != 0;
      }
      p += sizeof(inotify_event) + e->len;
    }
  }
  EXPECT_TRUE(created) << name;
  EXPECT_FALSE(changed) << name << ": its attributes changed after it was made (chmod)";
  EXPECT_EQ(echo_fails(s), "");
}

INSTANTIATE_TEST_SUITE_P(SocketFiles, SocketFile, ::testing::ValuesIn(transports_where([](Kind k) {
                           return k == Kind::kUnixSocket || k == Kind::kZmqIpc ||
                                  k == Kind::kGrpcUnix || k == Kind::kHttpUnix;
                         })),
                         test_name);

}  // namespace
}  // namespace ipcbench
