// Socket helpers shared by the socket transports.
#pragma once

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/fd.h"
#include "transports/many.h"
#include "transports/transport.h"

namespace ipcbench {

// Whether the connected Unix socket's peer runs as our own (effective) uid (SO_PEERCRED:
// the credentials it had when it connected).
bool same_uid(int fd);

// The address of a Unix socket file. Throws ProtocolError when the path does not fit
// (108 bytes with its terminating NUL).
sockaddr_un unix_address(const std::string& path);

// A listening Unix socket of `type` (SOCK_STREAM, SOCK_SEQPACKET) bound to `path`, close-on-
// exec and non-blocking. The socket file is 0600 from the moment it exists: bind runs
// under umask 0177 (ScopedUmask), not chmod after it, which would leave a window in
// which the file has the process's usual mode.
UniqueFd listen_unix_private(const std::string& path, int type, int backlog);

// settings.bind_address, for the listener of network transport `transport`. Throws
// ProtocolError "<transport>: bind address '<it>' is not an IPv4 address" unless it is
// a dotted IPv4 address.
const std::string& checked_bind_address(const TransportSettings& settings,
                                        const std::string& transport);
// Where the peer's server of a PeerServerLink over TCP listens: settings.peer_server_address,
// or bind_address when that is empty; checked the same way.
const std::string& checked_peer_server_address(const TransportSettings& settings,
                                               const std::string& transport);

// A token that tells the peer's connection from a stranger's on a network port or a
// socket file. The listener makes it and writes it into a pipe the peer inherits, not onto
// the peer's command line, which other local users can usually read (ps); only processes
// of the same user (or root) can reach a process's descriptors. The peer takes it from
// there.
struct PeerToken {
  static constexpr std::size_t kBytes = 32;  // 16 random bytes in hex
  static PeerToken make();                   // the listener's side
  std::string text;
  UniqueFd pipe;  // read end: goes in Endpoint::inherit_fds; closed (and taken out of
                  // inherit_fds) once the peer has it
  // In accept(), once the peer is spawned: the peer inherited the pipe, so our end closes
  // and the endpoint stops listing descriptors to inherit.
  void handed_over(Endpoint& ep) {
    pipe.reset();
    ep.inherit_fds.clear();
  }
};
// The peer's side: reads the token from the inherited pipe named by `fd_number`.
std::string take_peer_token(const std::string& fd_number, const std::string& what);

// The listener's side of a link whose server runs in the peer (gRPC, HTTP): the peer
// binds `where` (a socket path, or an IPv4 address to take an ephemeral port on), then
// writes one line, its TCP port or 0 over a Unix socket, into a pipe it inherits; the
// run's token reaches it in another. Endpoint: {where, ready pipe, token pipe}.
// The port a serving peer's ready line names (the line without its newline): a decimal
// number from 0 to 65535, nothing else; nullopt otherwise. PeerServerLink reads it, and
// split mode relays it (bench/split.h).
std::optional<int> ready_port(std::string_view line);

class PeerServerLink {
 public:
  explicit PeerServerLink(std::string where);
  const Endpoint& endpoint() const { return ep_; }
  const std::string& where() const { return where_; }
  const std::string& token() const { return token_.text; }
  // In accept(), once the peer is spawned: waits (bounded by `wait`) for its line and
  // returns the port it names. Throws ProtocolError "<what>: …" when the peer exits
  // before serving or writes anything but a port number.
  int await_serving(const SetupWait& wait, const std::string& what);

 private:
  std::string where_;
  UniqueFd ready_r_, ready_w_;
  PeerToken token_ = PeerToken::make();
  Endpoint ep_;
};

// Connections accept_with_token reads at once, and the listening sockets' backlog.
inline constexpr int kMaxCallers = 16;

// Waits (bounded by `wait`) on a non-blocking listening socket for the connection whose
// first PeerToken::kBytes bytes are `token`, and returns it; nothing after the token has
// been read from it. Every other connection is closed: at once when `unix_same_uid` and
// its process runs as another uid, else once it has sent kBytes that are not the token
// or hung up. Up to kMaxCallers connections are read at once (the oldest are dropped
// first), so silent strangers cannot keep the peer out.
UniqueFd accept_with_token(int listen_fd, const std::string& token, bool unix_same_uid,
                           const SetupWait& wait, const char* what);

// The same for several peers on one listening socket (fan-in): waits (bounded by `wait`)
// until a connection has presented each of `tokens`, and returns them in the order of
// `tokens`. A token is taken once: a later connection presenting it again is a
// stranger's. Up to kMaxCallers strangers are read at once besides the peers still
// expected.
std::vector<UniqueFd> accept_with_tokens(int listen_fd, const std::vector<std::string>& tokens,
                                         bool unix_same_uid, const SetupWait& wait,
                                         const char* what);

// The fan-in of a socket transport (uds, uds-seqpacket, tcp): ONE listening socket, one
// connection per client. Client i is spawned with {addresses..., its token pipe} and
// inherits that pipe only, so each client presents a token of its own and links()[i] is
// the connection that presented client i's (accept_with_tokens); strangers never become
// a link. The endpoints have the single-link shape, so the transport's connect() serves
// both. `wrap` makes a link of an accepted connection. The server's links are served by
// the workload ("event-loop" or "thread-per-client").
class SocketFanIn final : public FanInListener {
 public:
  using Wrap = std::function<std::unique_ptr<Channel>(UniqueFd)>;
  SocketFanIn(UniqueFd listening, const std::vector<std::string>& addresses, std::size_t clients,
              bool unix_same_uid, const char* what, Wrap wrap);
  std::size_t clients() const override { return eps_.size(); }
  const Endpoint& endpoint(std::size_t client) const override { return eps_.at(client); }
  std::unique_ptr<FanInServer> accept(const SetupWait& wait) override;

 private:
  UniqueFd fd_;
  std::vector<PeerToken> tokens_;
  std::vector<Endpoint> eps_;
  bool unix_same_uid_;
  const char* what_;
  Wrap wrap_;
};

// Sets the process umask for one scope, so that a socket file is private from the moment
// it exists (bind has no mode argument; ZeroMQ creates its socket file itself). The
// umask is the whole process's: this is safe only where no other thread of the process
// creates files meanwhile, which each user states.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t old_;
};

}  // namespace ipcbench
