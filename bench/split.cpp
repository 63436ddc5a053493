#include "bench/split.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <thread>

#include "base/cleanup.h"
#include "base/error.h"
#include "base/process.h"
#include "harness/context.h"
#include "transports/endpoint_reader.h"
#include "transports/registry.h"
#include "transports/socket_util.h"

namespace ipcbench {
namespace {

using Failure = std::runtime_error;
// The other side closed the control connection (or it broke): not answered with ERR.
struct Closed : Failure {
  using Failure::Failure;
};
constexpr const char* kHello = "HELLO ipcbench-split 1 ";
constexpr std::size_t kMaxAddresses = 8, kMaxAddress = 256, kMaxPipeBytes = 4096;

struct HostPort {
  in_addr addr{};
  std::uint16_t port = 0;
};

// "A.B.C.D:PORT" (PORT 0 allowed only where `any_port`); throws Failure naming `what`.
HostPort parse_host_port(const std::string& text, const std::string& what, bool any_port) {
  const auto colon = text.rfind(':');
  const auto ip = parse_ipv4(text.substr(0, colon == std::string::npos ? text.size() : colon));
  unsigned port = 0;
  const char* end = text.data() + text.size();
  bool ok = ip && colon != std::string::npos;
  if (ok) {
    auto [p, ec] = std::from_chars(text.data() + colon + 1, end, port);
    ok = ec == std::errc() && p == end && port <= 65535 && (any_port || port > 0);
  }
  if (!ok) throw Failure(what + ": '" + text + "' is not IPV4:PORT");
  return {*ip, static_cast<std::uint16_t>(port)};
}

std::string describe(const sockaddr_in& a) {
  char ip[INET_ADDRSTRLEN] = "?";
  ::inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
  return std::string(ip) + ":" + std::to_string(ntohs(a.sin_port));
}

void write_line(int fd, const std::string& line) {
  std::string out = line + "\n";
  write_all(fd, std::as_bytes(std::span(out.data(), out.size())), "control connection");
}

// The next line (without its newline); waits timeout_ms at most (-1: for ever). Throws
// Failure when the connection closes, a line is longer than kMaxLine or time runs out.
std::string read_line(int fd, std::string& buffered, int timeout_ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (auto nl = buffered.find('\n'); nl != std::string::npos) {
      std::string line = buffered.substr(0, nl);
      buffered.erase(0, nl + 1);
      return line;
    }
    if (buffered.size() > kMaxLine)
      throw Failure("a control line longer than " + std::to_string(kMaxLine) + " bytes");
    int wait = -1;
    if (timeout_ms >= 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) throw Failure("no answer on the control connection in time");
      wait = static_cast<int>(left.count());
    }
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, wait);
    if (r < 0 && errno == EINTR) continue;
    check_sys(r, "poll (control connection)");
    if (r == 0) continue;  // the deadline is looked at above
    char chunk[4096];
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Closed("the control connection closed");
    buffered.append(chunk, static_cast<std::size_t>(n));
  }
}

// A control connection whose other host vanished (no FIN, no RST) fails within about
// 30 s instead of TCP's default two hours: keep-alive probes after 10 s idle, 5 s apart,
// 3 unanswered ones end it; unacknowledged data ends it after 30 s.
void watch_connection(int fd) {
  int one = 1, idle = 10, interval = 5, count = 3;
  unsigned timeout_ms = 30000;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms, sizeof timeout_ms);
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

bool same_token(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;  // every byte looked at: the time says nothing of where they differ
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// The network interface holding `addr`, and its driver where the kernel names one
// ("eth0 (virtio_net)"; a veth or the loopback has none: "veth0", "lo").
std::string nic_of(in_addr addr) {
  ifaddrs* all = nullptr;
  if (::getifaddrs(&all) != 0) return "unavailable";
  std::string name = "unavailable";
  for (ifaddrs* i = all; i; i = i->ifa_next)
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
        reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr == addr.s_addr)
      name = i->ifa_name;
  ::freeifaddrs(all);
  std::error_code ec;
  const auto driver =
      std::filesystem::read_symlink("/sys/class/net/" + name + "/device/driver", ec);
  return ec ? name : name + " (" + driver.filename().string() + ")";
}

nlohmann::json this_machine(in_addr local) {
  nlohmann::json c = nlohmann::json::object();
  c["nic"] = nic_of(local);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  c["host_name"] = host;
  for (const auto& [k, v] : machine_context()) c[k] = v;
  return c;
}

// The peer a SPAWN request asks for, checked field by field; its pipes made and filled.
struct PeerRequest {
  PeerArgs args;
  std::vector<UniqueFd> pipes;  // what the peer inherits
  UniqueFd ready;               // a serving peer's ready pipe, our end
};

// How a split transport's link is made (bench/split.h): the peer connects to the client,
// its endpoint {host, port, token pipe, …}; or the peer serves and the client calls it
// (PeerServerLink), its endpoint {where, ready pipe, token pipe}.
enum class Shape { kPeerConnects, kPeerServes };
struct SplitTransport {
  const char* name;
  Shape shape;
};
constexpr SplitTransport kSplitTransports[] = {
    {"tcp", Shape::kPeerConnects},         {"zmq-tcp", Shape::kPeerConnects},
    {"jsonrpc-tcp", Shape::kPeerConnects}, {"http-tcp", Shape::kPeerServes},
    {"grpc-tcp", Shape::kPeerServes},      {"grpc-stream-tcp", Shape::kPeerServes}};

Shape shape_of(const std::string& transport) {
  for (const SplitTransport& t : kSplitTransports)
    if (transport == t.name) return t.shape;
  return Shape::kPeerConnects;
}

// Where each split transport's endpoint has its token pipe, and a serving peer's endpoint
// its ready pipe (the peer writes its port there: relayed by READY).
constexpr std::size_t kTokenPipe = 2, kReadyPipe = 1;

PeerRequest parse_spawn(const std::string& text, const std::string& client_ip,
                        const std::string& server_ip) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Failure("SPAWN: not a JSON object");
  auto field = [&j](const char* name) -> const nlohmann::json& {
    if (!j.contains(name)) throw Failure(std::string("SPAWN: no '") + name + "'");
    return j.at(name);
  };
  PeerRequest r;
  const auto& transport = field("transport");
  const auto& allowed = split_transports();
  if (!transport.is_string() ||
      std::find(allowed.begin(), allowed.end(), transport.get<std::string>()) == allowed.end())
    throw Failure("SPAWN: 'transport' is not one split mode runs");
  r.args.transport = transport.get<std::string>();
  const auto& addresses = field("addresses");
  if (!addresses.is_array() || addresses.empty() || addresses.size() > kMaxAddresses)
    throw Failure("SPAWN: 'addresses' is not an array of 1 to 8 strings");
  for (const auto& a : addresses) {
    if (!a.is_string() || a.get<std::string>().size() > kMaxAddress ||
        a.get<std::string>().find('\0') != std::string::npos)
      throw Failure("SPAWN: an address is not a string of at most 256 bytes");
    r.args.addresses.push_back(a.get<std::string>());
  }
  const Shape shape = shape_of(r.args.transport);
  if (shape == Shape::kPeerConnects) {
    // The peer connects to the client that asked, nowhere else.
    if (r.args.addresses.size() <= kTokenPipe || r.args.addresses[0] != client_ip)
      throw Failure("SPAWN: the peer may connect only to the client's own address (" + client_ip +
                    ")");
  } else if (r.args.addresses.size() != 3 || r.args.addresses[0] != server_ip) {
    // The peer's server listens on this host's address on the control connection only.
    throw Failure("SPAWN: the peer's server may listen only on this host's address (" + server_ip +
                  ")");
  }
  const auto& max_size = field("max_size");
  const Transport* t = find_transport(r.args.transport);
  if (!max_size.is_number_unsigned() || max_size.get<std::uint64_t>() == 0 ||
      max_size.get<std::uint64_t>() > t->info().max_message)
    throw Failure("SPAWN: 'max_size' is not a size the transport carries");
  r.args.max_size = max_size.get<std::size_t>();
  const auto& verify = field("verify");
  if (!verify.is_boolean()) throw Failure("SPAWN: 'verify' is not true or false");
  r.args.verify = verify.get<bool>();
  const auto& timeout = field("setup_timeout_ms");
  if (!timeout.is_number_unsigned() || timeout.get<std::uint64_t>() == 0 ||
      timeout.get<std::uint64_t>() > 600000)
    throw Failure("SPAWN: 'setup_timeout_ms' is not in 1..600000");
  r.args.setup_timeout = std::chrono::milliseconds(timeout.get<std::uint64_t>());
  const auto& pipes = field("pipes");
  if (!pipes.is_object() || pipes.size() != 1 || !pipes.contains(std::to_string(kTokenPipe)))
    throw Failure("SPAWN: 'pipes' is not one object member, the token pipe's (\"2\")");
  for (const auto& item : pipes.items()) {
    const std::string& index = item.key();
    const nlohmann::json& content = item.value();
    std::size_t i = kMaxAddresses;
    std::from_chars(index.data(), index.data() + index.size(), i);
    if (i >= r.args.addresses.size() || std::to_string(i) != index || !content.is_string() ||
        content.get<std::string>().size() > kMaxPipeBytes)
      throw Failure("SPAWN: 'pipes' names no address, or holds more than 4096 bytes");
    int p[2];
    check_sys(::pipe2(p, O_CLOEXEC), "pipe");
    UniqueFd read_end(p[0]), write_end(p[1]);
    const std::string& bytes = content.get_ref<const std::string&>();
    write_all(write_end.get(), std::as_bytes(std::span(bytes.data(), bytes.size())), "pipe");
    r.args.addresses[i] = std::to_string(read_end.get());
    r.pipes.push_back(std::move(read_end));
  }
  // Pipes the peer writes into, whose line READY relays: a serving peer's ready pipe.
  const bool serves = shape == Shape::kPeerServes;
  const nlohmann::json replies = j.contains("replies") ? j.at("replies") : nlohmann::json::array();
  if (!replies.is_array() ||
      replies != (serves ? nlohmann::json::array({kReadyPipe}) : nlohmann::json::array()))
    throw Failure(serves ? "SPAWN: 'replies' is not [1], the ready pipe"
                         : "SPAWN: 'replies' names a pipe this transport has none of");
  if (serves) {
    int p[2];
    check_sys(::pipe2(p, O_CLOEXEC), "pipe");
    r.ready.reset(p[0]);
    UniqueFd write_end(p[1]);
    r.args.addresses[kReadyPipe] = std::to_string(write_end.get());
    r.pipes.push_back(std::move(write_end));
  }
  return r;
}

// READY: the line a serving peer writes into its ready pipe (its port), waited for
// `ms` at most: "READY <port>", "READY -" when the peer closed the pipe first (it
// exited), "READY timeout", or "READY bad" for anything but a port number.
std::string ready_answer(int ready, unsigned ms) {
  std::string line;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (line.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    pollfd p{ready, POLLIN, 0};
    const int r = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return "READY timeout";
    char buf[32];
    const ssize_t n = ::read(ready, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "READY -";
    line.append(buf, static_cast<std::size_t>(n));
    if (line.size() > 16) return "READY bad";
  }
  line.resize(line.find('\n'));
  const std::optional<int> port = ready_port(line);
  return port ? "READY " + std::to_string(*port) : "READY bad";
}

// One client, from its HELLO to its going away. Throws Failure (answered as ERR).
void serve_client(int fd, const std::string& token, std::string& buffered) {
  sockaddr_in self{};
  socklen_t len = sizeof self;
  check_sys(::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &len), "getsockname");
  sockaddr_in client{};
  len = sizeof client;
  check_sys(::getpeername(fd, reinterpret_cast<sockaddr*>(&client), &len), "getpeername");
  char client_ip[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &client.sin_addr, client_ip, sizeof client_ip);
  const std::string hello = read_line(fd, buffered, 3000);
  if (hello.rfind(kHello, 0) != 0 || !same_token(hello.substr(std::strlen(kHello)), token))
    throw Failure("not authenticated (HELLO ipcbench-split 1 <token> expected)");
  write_line(fd, "OK " + this_machine(self.sin_addr).dump());
  ChildProcess peer;
  UniqueFd ready;  // a serving peer's ready pipe until READY relayed its port
  char server_ip[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &self.sin_addr, server_ip, sizeof server_ip);
  for (;;) {
    std::string line;
    try {
      line = read_line(fd, buffered, -1);
    } catch (const Closed&) {
      return;  // the client went away: its peer goes with `peer`
    }
    if (line.rfind("SPAWN ", 0) == 0) {
      if (peer.alive()) throw Failure("SPAWN: a peer of this client still runs");
      PeerRequest r = parse_spawn(line.substr(6), client_ip, server_ip);
      std::vector<int> fds;
      for (const auto& p : r.pipes) fds.push_back(p.get());
      peer = ChildProcess::spawn({peer_command(r.args), fds, -1});
      ready = std::move(r.ready);  // the peer's end closes with r: its exit shows as EOF
      write_line(fd, "SPAWNED");
    } else if (line.rfind("READY ", 0) == 0) {
      unsigned ms = 0;
      const std::string v = line.substr(6);
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), ms);
      if (ec != std::errc() || p != v.data() + v.size() || ms == 0 || ms > 60000)
        throw Failure("READY: not a wait in ms from 1 to 60000");
      if (!ready.valid()) throw Failure("READY: no peer of this client is starting a server");
      const std::string answer = ready_answer(ready.get(), ms);
      if (answer != "READY timeout") ready.reset();  // asked again while the peer starts
      write_line(fd, answer);
    } else if (line == "ALIVE") {
      write_line(fd, peer.alive() ? "YES" : "NO");
    } else if (line.rfind("FINISH ", 0) == 0) {
      unsigned ms = 0;
      const std::string v = line.substr(7);
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), ms);
      if (ec != std::errc() || p != v.data() + v.size() || ms > 60000)
        throw Failure("FINISH: not a grace in ms up to 60000");
      write_line(fd, "ENDED " + peer.finish(std::chrono::milliseconds(ms)));
    } else {
      throw Failure("unknown request");
    }
  }
}

}  // namespace

const std::vector<std::string>& split_transports() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const SplitTransport& t : kSplitTransports)
      if (find_transport(t.name)) out.emplace_back(t.name);
    return out;
  }();
  return names;
}

std::string read_token_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw Failure("--token-file: cannot read " + path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0 || st.st_uid != ::geteuid())
    throw Failure("--token-file: " + path +
                  " must be a file of yours that only you can read (chmod 600)");
  std::ifstream f(path);
  std::string token;
  std::getline(f, token);
  if (token.size() < 16 || token.size() > 256 ||
      token.find_first_of(" \t\r\n") != std::string::npos)
    throw Failure("--token-file: " + path + " holds no token (16 to 256 characters, no blanks)");
  return token;
}

SplitClient::SplitClient(const std::string& host_port, const std::string& token) {
  const HostPort hp = parse_host_port(host_port, "--connect", false);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr = hp.addr;
  a.sin_port = htons(hp.port);
  server_ = describe(a);
  fd_.reset(static_cast<int>(
      check_sys(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), "socket")));
  if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (errno != EINPROGRESS) throw Failure("--connect: " + server_ + ": " + std::strerror(errno));
    pollfd p{fd_.get(), POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    if (::poll(&p, 1, 10000) != 1) throw Failure("--connect: " + server_ + ": no answer in 10 s");
    ::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) throw Failure("--connect: " + server_ + ": " + std::strerror(err));
  }
  const int flags = ::fcntl(fd_.get(), F_GETFL);
  ::fcntl(fd_.get(), F_SETFL, flags & ~O_NONBLOCK);
  watch_connection(fd_.get());
  sockaddr_in self{};
  socklen_t len = sizeof self;
  check_sys(::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&self), &len), "getsockname");
  char ip[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &self.sin_addr, ip, sizeof ip);
  local_ = ip;
  nic_ = nic_of(self.sin_addr);
  const std::string ok = request(kHello + token);
  if (ok.rfind("OK ", 0) != 0) throw Failure("--connect: " + server_ + ": unexpected answer");
  context_ = nlohmann::json::parse(ok.substr(3), nullptr, false);
  if (context_.is_discarded() || !context_.is_object())
    throw Failure("--connect: " + server_ + ": its machine context is not a JSON object");
}

std::string SplitClient::request(const std::string& line) {
  if (!fd_.valid()) throw Failure("split server " + server_ + ": the control connection was lost");
  std::string reply;
  try {
    write_line(fd_.get(), line);
    reply = read_line(fd_.get(), buffered_, 70000);
  } catch (const std::exception& e) {
    fd_.reset();  // a late answer must never be taken for the next request's
    throw Failure("split server " + server_ + ": " + e.what());
  }
  if (reply.rfind("ERR ", 0) == 0) {
    fd_.reset();  // the server closes the connection after an ERR
    throw Failure("split server " + server_ + ": " + reply.substr(4));
  }
  return reply;
}

void SplitClient::spawn(const PeerArgs& args, const std::vector<int>& inherit_fds) {
  nlohmann::json pipes = nlohmann::json::object(), replies = nlohmann::json::array();
  int reply_fd = -1;
  for (int fd : inherit_fds) {
    std::size_t i = 0;
    while (i < args.addresses.size() && args.addresses[i] != std::to_string(fd)) ++i;
    const int mode = ::fcntl(fd, F_GETFL);
    if (i < args.addresses.size() && mode >= 0 && (mode & O_ACCMODE) == O_WRONLY) {
      // A pipe the peer writes into (a serving peer's ready pipe): READY relays its line.
      if (reply_fd >= 0)
        throw Failure(args.transport + ": its link has the peer write into two pipes");
      replies.push_back(i);
      reply_fd = fd;
      continue;
    }
    pollfd p{fd, POLLIN, 0};
    char bytes[kMaxPipeBytes];
    const ssize_t n = ::poll(&p, 1, 0) == 1 ? ::read(fd, bytes, sizeof bytes) : -1;
    if (i == args.addresses.size() || n <= 0)
      throw Failure(args.transport + ": its link hands the peer a pipe split mode cannot forward");
    pipes[std::to_string(i)] = std::string(bytes, static_cast<std::size_t>(n));
  }
  const nlohmann::json j = {{"transport", args.transport},
                            {"addresses", args.addresses},
                            {"pipes", pipes},
                            {"replies", replies},
                            {"max_size", args.max_size},
                            {"verify", args.verify},
                            {"setup_timeout_ms", args.setup_timeout.count()}};
  if (request("SPAWN " + j.dump()) != "SPAWNED")
    throw Failure("split server " + server_ + ": unexpected answer to SPAWN");
  if (reply_fd < 0) return;
  // The peer starts its server over there; its port goes into our end of the ready pipe,
  // where the listener reads it as from a local peer. Nothing written ("-": the peer
  // exited first): the listener sees the pipe end and says the server exited. READY
  // waits 60 s at most per request: asked again until the set-up time is up.
  const auto until = std::chrono::steady_clock::now() + args.setup_timeout;
  std::string port = "timeout", r;
  while (port == "timeout") {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    r = request("READY " + std::to_string(std::min<long long>(left.count(), 60000)));
    port = r.rfind("READY ", 0) == 0 ? r.substr(6) : "";
  }
  if (port == "-") return;
  if (!ready_port(port)) {
    // The peer would outlive the cell, and the server would refuse the next SPAWN.
    finish(std::chrono::milliseconds(0));
    throw Failure(args.transport + ": the peer's server on " + server_ +
                  (port == "timeout" ? " did not start within " +
                                           std::to_string(args.setup_timeout.count()) + " ms"
                                     : " reported no port (" + r + ")"));
  }
  const std::string line = port + "\n";
  write_all(reply_fd, std::as_bytes(std::span(line.data(), line.size())), "ready pipe");
}

bool SplitClient::alive() { return request("ALIVE") == "YES"; }

std::string SplitClient::finish(std::chrono::milliseconds grace) {
  const std::string r = request("FINISH " + std::to_string(grace.count()));
  if (r.rfind("ENDED ", 0) != 0)
    throw Failure("split server " + server_ + ": unexpected answer to FINISH");
  return r.substr(6) + " on " + server_;
}

int serve_main(const std::string& where, const std::string& token_file) {
  HostPort hp;
  std::string token;
  UniqueFd listening;
  sockaddr_in a{};
  try {
    hp = parse_host_port(where.empty() ? "127.0.0.1:0" : where, "--serve", true);
    token = token_file.empty() ? PeerToken::make().text : read_token_file(token_file);
    listening.reset(
        static_cast<int>(check_sys(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")));
    int one = 1;
    ::setsockopt(listening.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    a.sin_family = AF_INET;
    a.sin_addr = hp.addr;
    a.sin_port = htons(hp.port);
    check_sys(::bind(listening.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), "bind");
    check_sys(::listen(listening.get(), 4), "listen");
    socklen_t len = sizeof a;
    check_sys(::getsockname(listening.get(), reinterpret_cast<sockaddr*>(&a), &len), "getsockname");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipcbench: %s\n", e.what());
    return 2;
  }
  cleanup::install_signal_handlers();  // a signal ends the server and kills its peer
  std::printf("ipcbench: serving on %s\n", describe(a).c_str());
  if (token_file.empty()) std::printf("ipcbench: token %s\n", token.c_str());
  std::fflush(stdout);
  for (;;) {
    sockaddr_in from{};
    socklen_t len = sizeof from;
    UniqueFd c(::accept4(listening.get(), reinterpret_cast<sockaddr*>(&from), &len, SOCK_CLOEXEC));
    if (!c.valid()) {
      // A connection's own trouble (reset before accept, a network error) or a passing
      // shortage of descriptors or memory: the server goes on (after a pause for the
      // latter). Only a broken listening socket ends it.
      const int e = errno;
      if (e == EBADF || e == EINVAL || e == ENOTSOCK || e == EOPNOTSUPP || e == EFAULT) {
        std::fprintf(stderr, "ipcbench: serve: accept: %s\n", std::strerror(e));
        return 1;
      }
      if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    watch_connection(c.get());
    const std::string who = describe(from);
    std::string buffered;
    try {
      serve_client(c.get(), token, buffered);
      std::fprintf(stderr, "ipcbench: serve: %s: done\n", who.c_str());
    } catch (const Closed& e) {
      std::fprintf(stderr, "ipcbench: serve: %s: %s\n", who.c_str(), e.what());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ipcbench: serve: %s: %s\n", who.c_str(), e.what());
      try {
        write_line(c.get(), std::string("ERR ") + e.what());
        // Closed with unread input, the connection would be reset, and the client might
        // lose the line: what it still sends is read and dropped first, for 1 s at most
        // in all (and 1 MiB at most).
        ::shutdown(c.get(), SHUT_WR);
        char sink[4096];
        std::size_t dropped = 0;
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        for (pollfd p{c.get(), POLLIN, 0}; dropped < (1u << 20);) {
          const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
              until - std::chrono::steady_clock::now());
          if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) break;
          const ssize_t n = ::read(c.get(), sink, sizeof sink);
          if (n <= 0) break;
          dropped += static_cast<std::size_t>(n);
        }
      } catch (const std::exception&) {
      }
    }
  }
}

}  // namespace ipcbench
