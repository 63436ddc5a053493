// The link set-up of the byte-stream transports pipe, uds and tcp, for transports that
// run a protocol of their own over the same kind of link (jsonrpc-*): the same IPC
// objects, endpoint, token and peer-side connect, with the connected descriptors handed
// to `wrap` instead of the suite's length-prefix framing. Each function lives in the
// unit of its transport (transports/pipe, uds, tcp); `transport` is the name errors and
// the socket file carry.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "base/fd.h"
#include "transports/framing.h"
#include "transports/transport.h"

namespace ipcbench {

// A connected byte stream: two pipes, or one socket (wr invalid) used both ways.
struct StreamFds {
  UniqueFd rd;
  UniqueFd wr;
};
using WrapStream = std::function<std::unique_ptr<Channel>(StreamFds)>;

// The suite's own wrapping: length-prefix framing (framing.h).
inline std::unique_ptr<Channel> framed_stream(StreamFds fds) {
  if (!fds.wr.valid()) return std::make_unique<StreamChannel>(std::move(fds.rd));
  return std::make_unique<StreamChannel>(std::move(fds.rd), std::move(fds.wr));
}

// Two anonymous pipes the peer inherits (transports/pipe).
std::unique_ptr<Listener> listen_pipe_link(WrapStream wrap);
std::unique_ptr<Channel> connect_pipe_link(const Endpoint& ep, const std::string& transport,
                                           const WrapStream& wrap);
// A Unix SOCK_STREAM socket file 0600 in the run directory, own uid, token first
// (transports/uds).
std::unique_ptr<Listener> listen_uds_link(RunDir& dir, const std::string& transport,
                                          WrapStream wrap);
std::unique_ptr<Channel> connect_uds_link(const Endpoint& ep, const std::string& transport,
                                          const WrapStream& wrap);
// TCP on settings.bind_address, TCP_NODELAY, token first (transports/tcp).
std::unique_ptr<Listener> listen_tcp_link(const TransportSettings& settings,
                                          const std::string& transport, WrapStream wrap);
std::unique_ptr<Channel> connect_tcp_link(const Endpoint& ep, const std::string& transport,
                                          const WrapStream& wrap);

}  // namespace ipcbench
