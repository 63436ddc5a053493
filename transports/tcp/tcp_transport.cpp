// TCP over loopback (127.0.0.1 unless --bind says otherwise, ephemeral port),
// TCP_NODELAY on both ends.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <charconv>

#include "harness/error.h"
#include "transports/framing.h"
#include "transports/socket_util.h"

namespace ipcbench {
namespace {

void set_nodelay(int fd) {
  int one = 1;
  check_sys(::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), "TCP_NODELAY");
}

class TcpListener final : public Listener {
 public:
  TcpListener() {
    fd_.reset(static_cast<int>(
        check_sys(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket AF_INET")));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    const std::string& host = bind_address();
    if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1)
      throw ProtocolError("tcp: bad IPv4 address '" + host + "'");
    a.sin_port = 0;
    check_sys(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), "bind " + host + ":0");
    check_sys(::listen(fd_.get(), 1), "listen tcp");
    socklen_t len = sizeof a;
    check_sys(::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&a), &len), "getsockname");
    ep_.addresses = {host, std::to_string(ntohs(a.sin_port))};
  }
  const Endpoint& endpoint() const override { return ep_; }
  std::unique_ptr<Channel> accept(const SetupWait& wait) override {
    UniqueFd c = accept_one(fd_.get(), wait, "accept (tcp)");
    fd_.reset();
    set_nodelay(c.get());
    return std::make_unique<StreamChannel>(std::move(c));
  }

 private:
  UniqueFd fd_;
  Endpoint ep_;
};

class TcpTransport final : public Transport {
 public:
  const TransportInfo& info() const override { return info_; }
  std::unique_ptr<Listener> listen(RunDir&, std::size_t) const override {
    return std::make_unique<TcpListener>();
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep) const override {
    if (ep.addresses.size() != 2) throw ProtocolError("tcp: expected host and port");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    if (::inet_pton(AF_INET, ep.addresses[0].c_str(), &a.sin_addr) != 1)
      throw ProtocolError("tcp: bad IPv4 address '" + ep.addresses[0] + "'");
    unsigned port = 0;
    const std::string& p = ep.addresses[1];
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
    if (ec != std::errc() || end != p.data() + p.size() || port == 0 || port > 65535)
      throw ProtocolError("tcp: bad port '" + p + "'");
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    UniqueFd fd(
        static_cast<int>(check_sys(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")));
    check_sys(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a),
              "connect " + ep.addresses[0] + ":" + p);
    set_nodelay(fd.get());
    return std::make_unique<StreamChannel>(std::move(fd));
  }

 private:
  TransportInfo info_{"tcp",
                      "byte stream",
                      false,
                      "network (measured on 127.0.0.1)",
                      "by address and port; connection-oriented, one connection per client",
                      kMaxFrameBytes,
                      "TCP over loopback, ephemeral port, TCP_NODELAY; length-prefix framing"};
};

}  // namespace

std::unique_ptr<Transport> make_tcp_transport() { return std::make_unique<TcpTransport>(); }

}  // namespace ipcbench
