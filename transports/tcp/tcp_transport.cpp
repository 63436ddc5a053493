// TCP over loopback (127.0.0.1 unless --bind says otherwise, ephemeral port),
// TCP_NODELAY on both ends.
//
// Any local process can connect to the port (any host, with --bind). So the listener
// makes a token (PeerToken: the peer inherits it in a pipe, not on its command line),
// the peer sends it first on the connection, and the listener takes the connection that
// presents it: strangers' connections, silent or not, are read alongside and closed once
// they fail to. (Processes of the peer's own user, or root, could still learn it.)
// Fan-in (the clients workload): one listening port, one connection per client; each
// client inherits a token of its own, and the connection that presents client i's token
// is client i's link (SocketFanIn, socket_util.h).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <charconv>

#include "base/error.h"
#include "transports/endpoint_reader.h"
#include "transports/framing.h"
#include "transports/socket_util.h"
#include "transports/stream_link.h"

namespace ipcbench {
namespace {

void set_nodelay(int fd) {
  int one = 1;
  check_sys(::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), "TCP_NODELAY");
}

struct TcpListening {
  UniqueFd fd;
  std::string host, port;
};

// A listening socket on settings.bind_address, ephemeral port.
TcpListening listen_tcp(const TransportSettings& settings, const std::string& transport,
                        int backlog) {
  // Non-blocking: a connection reset between poll and accept must not block accept.
  TcpListening l;
  l.fd.reset(static_cast<int>(check_sys(
      ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), "socket AF_INET")));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  l.host = checked_bind_address(settings, transport);
  a.sin_addr = *parse_ipv4(l.host);
  a.sin_port = 0;
  check_sys(::bind(l.fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), "bind " + l.host + ":0");
  check_sys(::listen(l.fd.get(), backlog), "listen tcp");
  socklen_t len = sizeof a;
  check_sys(::getsockname(l.fd.get(), reinterpret_cast<sockaddr*>(&a), &len), "getsockname");
  l.port = std::to_string(ntohs(a.sin_port));
  return l;
}

class TcpListener final : public Listener {
 public:
  TcpListener(const TransportSettings& settings, const std::string& transport, WrapStream wrap)
      : wrap_(std::move(wrap)) {
    auto l = listen_tcp(settings, transport, kMaxCallers);
    fd_ = std::move(l.fd);
    ep_.addresses = {l.host, l.port, std::to_string(token_.pipe.get())};
    ep_.inherit_fds = {token_.pipe.get()};
  }
  const Endpoint& endpoint() const override { return ep_; }
  std::unique_ptr<Channel> accept(const SetupWait& wait) override {
    token_.handed_over(ep_);
    UniqueFd peer = accept_with_token(fd_.get(), token_.text, false, wait, "accept (tcp)");
    fd_.reset();
    set_nodelay(peer.get());
    return wrap_({std::move(peer), {}});
  }

 private:
  WrapStream wrap_;
  UniqueFd fd_;
  PeerToken token_ = PeerToken::make();
  Endpoint ep_;
};

class TcpTransport final : public TransportBase {
 public:
  TcpTransport()
      : TransportBase(
            {.name = "tcp",
             .family = TransportFamily::kSockets,
             .paradigm = "byte stream",
             .kernel_boundaries = false,
             .reach = "network (measured on 127.0.0.1)",
             .coupling = "by address and port; connection-oriented, one connection per client",
             .max_message = kMaxFrameBytes,
             .summary = "TCP over loopback, ephemeral port, TCP_NODELAY; length-prefix framing; "
                        "the peer presents a token (handed over in an inherited pipe) first, "
                        "other connections are closed",
             .encoding = "framing",
             .fan_in = "one connection per client on one listening port",
             .server_models = {"event-loop", "thread-per-client"},
             .fan_out = "one connection (own port and token) per subscriber; the publisher "
                        "writes one copy per subscriber, blocking on a full socket (nothing "
                        "dropped)",
             .pipelining = "two threads"}) {}
  std::unique_ptr<Listener> listen(RunDir&, std::size_t,
                                   const TransportSettings& settings) const override {
    return listen_tcp_link(settings, name(), framed_stream);
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep, const SetupWait& /*wait*/) const override {
    return connect_tcp_link(ep, name(), framed_stream);
  }
  // Fan-in: one listening port, one connection per client, each client with a token of
  // its own (SocketFanIn). A client connects as a single-link peer does.
  std::unique_ptr<FanInListener> listen_fan_in(RunDir&, std::size_t,
                                               const TransportSettings& settings,
                                               std::size_t clients,
                                               const std::string& /*model*/) const override {
    auto [fd, host, port] = listen_tcp(settings, name(), kMaxCallers + static_cast<int>(clients));
    return std::make_unique<SocketFanIn>(std::move(fd), std::vector<std::string>{host, port},
                                         clients, false, "accept (tcp)", [](UniqueFd c) {
                                           set_nodelay(c.get());
                                           return framed_stream({std::move(c), {}});
                                         });
  }
};

}  // namespace

std::unique_ptr<Listener> listen_tcp_link(const TransportSettings& settings,
                                          const std::string& transport, WrapStream wrap) {
  return std::make_unique<TcpListener>(settings, transport, std::move(wrap));
}

std::unique_ptr<Channel> connect_tcp_link(const Endpoint& ep, const std::string& transport,
                                          const WrapStream& wrap) {
  EndpointReader r(ep, transport, {"host", "port", "token pipe"});
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr = r.ipv4(0);
  a.sin_port = htons(r.port(1));
  const std::string token = r.token(2);
  const std::string& p = r.text(1);
  UniqueFd fd(
      static_cast<int>(check_sys(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")));
  check_sys(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a),
            "connect " + ep.addresses[0] + ":" + p);
  set_nodelay(fd.get());
  write_all(fd.get(), std::as_bytes(std::span(token.data(), token.size())), "send (tcp token)");
  return wrap({std::move(fd), {}});
}

std::unique_ptr<Transport> make_tcp_transport() { return std::make_unique<TcpTransport>(); }

}  // namespace ipcbench
