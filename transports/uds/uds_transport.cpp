// Unix domain sockets: SOCK_STREAM ("uds", framed by the suite) and SOCK_SEQPACKET
// ("uds-seqpacket", boundaries kept by the kernel). The socket file lives in the run
// directory (0700), mode 0600 from the moment it exists. The listener refuses a
// connection from a process of another uid at once and takes the one that presents the
// run's token (PeerToken: the peer inherits it in a pipe) first, as tcp does: a process
// of our own uid that is not the peer cannot take its place unless it reads the token
// from the peer (which processes of the same user, or root, could do).
// Fan-in (the clients workload): one socket file, one connection per client; each client
// inherits a token of its own, and the connection that presents client i's token is
// client i's link (SocketFanIn, socket_util.h).
#include <sys/un.h>
#include <unistd.h>

#include "base/error.h"
#include "base/run_dir.h"
#include "transports/endpoint_reader.h"
#include "transports/framing.h"
#include "transports/socket_util.h"
#include "transports/stream_link.h"

namespace ipcbench {
namespace {

// The suite's framing for the socket type: the kernel's records, or a length prefix.
WrapStream framing_for(int type) {
  if (type == SOCK_SEQPACKET)
    return [](StreamFds fds) -> std::unique_ptr<Channel> {
      return std::make_unique<RecordChannel>(std::make_unique<SeqpacketIo>(std::move(fds.rd)));
    };
  return framed_stream;
}

class UdsListener final : public Listener {
 public:
  UdsListener(RunDir& dir, int type, const std::string& transport, WrapStream wrap)
      : wrap_(std::move(wrap)) {
    std::string path = dir.make_path(transport);
    fd_ = listen_unix_private(path, type, kMaxCallers);
    ep_.addresses = {path, std::to_string(token_.pipe.get())};
    ep_.inherit_fds = {token_.pipe.get()};
  }
  const Endpoint& endpoint() const override { return ep_; }
  std::unique_ptr<Channel> accept(const SetupWait& wait) override {
    token_.handed_over(ep_);
    UniqueFd c = accept_with_token(fd_.get(), token_.text, true, wait, "accept (unix socket)");
    fd_.reset();
    return wrap_({std::move(c), {}});
  }

 private:
  WrapStream wrap_;
  UniqueFd fd_;
  PeerToken token_ = PeerToken::make();
  Endpoint ep_;
};

std::unique_ptr<Channel> connect_unix(const Endpoint& ep, const std::string& transport, int type,
                                      const WrapStream& wrap) {
  EndpointReader r(ep, transport, {"socket path", "token pipe"});
  const std::string token = r.token(1);
  const std::string& path = r.text(0);
  sockaddr_un a = unix_address(path);
  UniqueFd fd(
      static_cast<int>(check_sys(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0), "socket AF_UNIX")));
  check_sys(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), "connect " + path);
  // The token first (for SOCK_SEQPACKET one record of its own).
  write_all(fd.get(), std::as_bytes(std::span(token.data(), token.size())),
            "send (unix socket token)");
  return wrap({std::move(fd), {}});
}

class UdsTransport final : public TransportBase {
 public:
  UdsTransport(int type, TransportInfo info) : TransportBase(std::move(info)), type_(type) {}
  std::unique_ptr<Listener> listen(RunDir& dir, std::size_t,
                                   const TransportSettings&) const override {
    return std::make_unique<UdsListener>(dir, type_, name(), framing_for(type_));
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep, const SetupWait& /*wait*/) const override {
    return connect_unix(ep, name(), type_, framing_for(type_));
  }
  // Fan-in: one socket file, one connection per client, each client with a token of its
  // own (SocketFanIn); same uid only, as for one link. A client connects as a single-link
  // peer does: its endpoint has the same two fields.
  std::unique_ptr<FanInListener> listen_fan_in(RunDir& dir, std::size_t, const TransportSettings&,
                                               std::size_t clients,
                                               const std::string& /*model*/) const override {
    std::string path = dir.make_path(name());
    UniqueFd fd = listen_unix_private(path, type_, kMaxCallers + static_cast<int>(clients));
    WrapStream wrap = framing_for(type_);
    return std::make_unique<SocketFanIn>(std::move(fd), std::vector<std::string>{path}, clients,
                                         true, "accept (unix socket)", [wrap](UniqueFd c) {
                                           return wrap({std::move(c), {}});
                                         });
  }

 private:
  int type_;
};

}  // namespace

std::unique_ptr<Listener> listen_uds_link(RunDir& dir, const std::string& transport,
                                          WrapStream wrap) {
  return std::make_unique<UdsListener>(dir, SOCK_STREAM, transport, std::move(wrap));
}

std::unique_ptr<Channel> connect_uds_link(const Endpoint& ep, const std::string& transport,
                                          const WrapStream& wrap) {
  return connect_unix(ep, transport, SOCK_STREAM, wrap);
}

std::unique_ptr<Transport> make_uds_transport() {
  return std::make_unique<UdsTransport>(
      SOCK_STREAM,
      TransportInfo{.name = "uds",
                    .family = TransportFamily::kSockets,
                    .paradigm = "byte stream",
                    .kernel_boundaries = false,
                    .reach = "same host (any process, by path)",
                    .coupling = "by socket path; connection-oriented, one connection per client",
                    .max_message = kMaxFrameBytes,
                    .summary =
                        "Unix domain socket, SOCK_STREAM, socket file 0600 in the run directory, "
                        "own uid only; the peer presents a token first; length-prefix framing",
                    .encoding = "framing",
                    .fan_in = "one connection per client on one listening socket file",
                    .server_models = {"event-loop", "thread-per-client"},
                    .fan_out = "one connection (own socket file and token) per subscriber; the "
                               "publisher writes one copy per subscriber, blocking on a full "
                               "socket (nothing dropped)",
                    .pipelining = "two threads"});
}

std::unique_ptr<Transport> make_uds_seqpacket_transport() {
  return std::make_unique<UdsTransport>(
      SOCK_SEQPACKET,
      TransportInfo{.name = "uds-seqpacket",
                    .family = TransportFamily::kSockets,
                    .paradigm = "message stream",
                    .kernel_boundaries = true,
                    .reach = "same host (any process, by path)",
                    .coupling = "by socket path; connection-oriented, one connection per client",
                    .max_message = kMaxFrameBytes,
                    .summary =
                        "Unix domain socket, SOCK_SEQPACKET: the kernel keeps record boundaries; "
                        "messages over 64 KiB travel as several records; socket file 0600, own uid "
                        "only; the peer presents a token first",
                    .fan_in = "one connection per client on one listening socket file",
                    .server_models = {"event-loop", "thread-per-client"},
                    .fan_out = "one connection (own socket file and token) per subscriber; the "
                               "publisher writes one copy per subscriber, blocking on a full "
                               "socket (nothing dropped)",
                    .pipelining = "two threads"});
}

}  // namespace ipcbench
