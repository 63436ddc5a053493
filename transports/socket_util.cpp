#include "transports/socket_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "transports/endpoint_reader.h"

namespace ipcbench {

PeerToken PeerToken::make() {
  unsigned char r[kBytes / 2];
  if (::getrandom(r, sizeof r, 0) != static_cast<ssize_t>(sizeof r))
    throw SysError("getrandom", errno);
  PeerToken t;
  for (unsigned char b : r) {
    t.text += "0123456789abcdef"[b >> 4];
    t.text += "0123456789abcdef"[b & 15];
  }
  t.pipe = pipe_holding(t.text, "peer token");
  return t;
}

std::string take_peer_token(const std::string& fd_number, const std::string& what) {
  // The whole token was in the pipe before this process started: one read that never
  // waits (a peer started by hand with another descriptor must not hang here).
  // (poll, not O_NONBLOCK: that would change a descriptor shared with others, a terminal)
  UniqueFd fd = adopt_inherited_fd(fd_number, what + " token");
  pollfd p{fd.get(), POLLIN, 0};
  std::string token(PeerToken::kBytes, '\0');
  ssize_t n = -1;
  while (::poll(&p, 1, 0) == 1 && (n = ::read(fd.get(), token.data(), token.size())) < 0 &&
         errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(token.size()))
    throw ProtocolError(what + ": descriptor " + fd_number + " did not hold the peer's token");
  return token;
}

bool same_uid(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  check_sys(::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len), "getsockopt SO_PEERCRED");
  return cred.uid == ::geteuid();
}

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path)
    throw ProtocolError("unix socket path too long (" + std::to_string(path.size()) +
                        " bytes): " + path);
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

UniqueFd listen_unix_private(const std::string& path, int type, int backlog) {
  sockaddr_un a = unix_address(path);
  UniqueFd fd(static_cast<int>(
      check_sys(::socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), "socket AF_UNIX")));
  int rc;
  {
    // The umask is process-wide, and restored as soon as bind returns. This runs in the
    // benchmark process (uds, uds-seqpacket) and in a gRPC peer before gRPC starts (the
    // peer has no thread of its own): in both, files are made only by the thread that
    // sets up the link, here. The other threads there may be (the watchdog, ZeroMQ's
    // and gRPC's, the boost-mq guard) create none, so no other file gets this mask.
    ScopedUmask private_files(0177);
    rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  check_sys(rc, "bind " + path);
  check_sys(::listen(fd.get(), backlog), "listen " + path);
  return fd;
}

UniqueFd accept_with_token(int listen_fd, const std::string& token, bool unix_same_uid,
                           const SetupWait& wait, const char* what) {
  return std::move(accept_with_tokens(listen_fd, {token}, unix_same_uid, wait, what).front());
}

std::vector<UniqueFd> accept_with_tokens(int listen_fd, const std::vector<std::string>& tokens,
                                         bool unix_same_uid, const SetupWait& wait,
                                         const char* what) {
  struct Caller {
    UniqueFd fd;
    std::string said;
  };
  std::vector<Caller> callers;
  std::vector<UniqueFd> found(tokens.size());
  std::size_t missing = tokens.size();
  while (missing > 0) {
    wait.check(what);
    std::vector<pollfd> p{{listen_fd, POLLIN, 0}};
    for (const Caller& c : callers) p.push_back({c.fd.get(), POLLIN, 0});
    if (::poll(p.data(), p.size(), 50) < 0) {
      if (errno == EINTR) continue;
      throw SysError(std::string("poll (") + what + ")", errno);
    }
    // Read before accepting: p[i + 1] is callers[i] until the list changes.
    for (std::size_t i = callers.size(); i-- > 0;) {
      if (!p[i + 1].revents) continue;
      Caller& c = callers[i];
      char buf[PeerToken::kBytes];
      // At most the rest of the token: what follows it is the peer's first message.
      ssize_t n = ::read(c.fd.get(), buf, PeerToken::kBytes - c.said.size());
      if (n < 0 && errno == EINTR) continue;
      if (n > 0) c.said.append(buf, static_cast<std::size_t>(n));
      if (n > 0 && c.said.size() < PeerToken::kBytes) continue;
      for (std::size_t k = 0; k < tokens.size(); ++k)
        if (!found[k].valid() && c.said == tokens[k]) {
          found[k] = std::move(c.fd);
          --missing;
          break;
        }
      callers.erase(callers.begin() + static_cast<std::ptrdiff_t>(i));  // a peer, or a stranger
    }
    if (missing > 0 && (p[0].revents & POLLIN)) {
      int c = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0 && errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
        throw SysError(what, errno);
      if (c >= 0) {
        UniqueFd fd(c);
        if (unix_same_uid && !same_uid(fd.get())) continue;  // another user: closed
        if (callers.size() == static_cast<std::size_t>(kMaxCallers) + missing - 1)
          callers.erase(callers.begin());
        callers.push_back({std::move(fd), {}});
      }
    }
  }
  return found;
}

SocketFanIn::SocketFanIn(UniqueFd listening, const std::vector<std::string>& addresses,
                         std::size_t clients, bool unix_same_uid, const char* what, Wrap wrap)
    : fd_(std::move(listening)),
      unix_same_uid_(unix_same_uid),
      what_(what),
      wrap_(std::move(wrap)) {
  for (std::size_t i = 0; i < clients; ++i) {
    tokens_.push_back(PeerToken::make());
    Endpoint ep;
    ep.addresses = addresses;
    ep.addresses.push_back(std::to_string(tokens_.back().pipe.get()));
    ep.inherit_fds = {tokens_.back().pipe.get()};
    eps_.push_back(std::move(ep));
  }
}

namespace {
class LinksServer final : public FanInServer {
 public:
  explicit LinksServer(std::vector<std::unique_ptr<Channel>> links) : links_(std::move(links)) {}
  std::vector<Channel*> links() override {
    std::vector<Channel*> out;
    for (auto& l : links_) out.push_back(l.get());
    return out;
  }

 private:
  std::vector<std::unique_ptr<Channel>> links_;
};
}  // namespace

std::unique_ptr<FanInServer> SocketFanIn::accept(const SetupWait& wait) {
  std::vector<std::string> texts;
  for (std::size_t i = 0; i < tokens_.size(); ++i) {
    tokens_[i].handed_over(eps_[i]);
    texts.push_back(tokens_[i].text);
  }
  std::vector<UniqueFd> fds = accept_with_tokens(fd_.get(), texts, unix_same_uid_, wait, what_);
  fd_.reset();  // every client is in: nobody else gets through
  std::vector<std::unique_ptr<Channel>> links;
  for (UniqueFd& fd : fds) links.push_back(wrap_(std::move(fd)));
  return std::make_unique<LinksServer>(std::move(links));
}

PeerServerLink::PeerServerLink(std::string where) : where_(std::move(where)) {
  int p[2];
  check_sys(::pipe2(p, O_CLOEXEC), "pipe2 (server ready)");
  ready_r_.reset(p[0]);
  ready_w_.reset(p[1]);
  ep_.addresses = {where_, std::to_string(ready_w_.get()), std::to_string(token_.pipe.get())};
  ep_.inherit_fds = {ready_w_.get(), token_.pipe.get()};
}

int PeerServerLink::await_serving(const SetupWait& wait, const std::string& what) {
  ready_w_.reset();  // the peer holds it now: its exit shows as end of file
  token_.handed_over(ep_);
  std::string line;
  while (line.find('\n') == std::string::npos) {
    wait_fd(ready_r_.get(), POLLIN, wait, (what + " server start").c_str());
    char buf[32];
    ssize_t n = ::read(ready_r_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    check_sys(n, "read (" + what + " server start)");
    if (n == 0) throw ProtocolError(what + ": the server exited before serving");
    line.append(buf, static_cast<std::size_t>(n));
    if (line.size() > 16) throw ProtocolError(what + ": the server's ready line is too long");
  }
  line.resize(line.find('\n'));
  const std::optional<int> port = ready_port(line);
  if (!port) throw ProtocolError(what + ": bad port '" + line + "' from the server");
  return *port;
}

std::optional<int> ready_port(std::string_view line) {
  int port = -1;
  auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), port);
  if (line.empty() || !std::isdigit(static_cast<unsigned char>(line[0])) || ec != std::errc() ||
      end != line.data() + line.size() || port < 0 || port > 65535)
    return std::nullopt;
  return port;
}

const std::string& checked_peer_server_address(const TransportSettings& settings,
                                               const std::string& transport) {
  if (settings.peer_server_address.empty()) return checked_bind_address(settings, transport);
  const std::string& a = settings.peer_server_address;
  if (!parse_ipv4(a))
    throw ProtocolError(transport + ": the peer's server address '" + a +
                        "' is not an IPv4 address");
  return a;
}

const std::string& checked_bind_address(const TransportSettings& settings,
                                        const std::string& transport) {
  const std::string& a = settings.bind_address;
  if (!parse_ipv4(a))
    throw ProtocolError(transport + ": bind address '" + a + "' is not an IPv4 address");
  return a;
}

}  // namespace ipcbench
