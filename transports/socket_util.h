// Socket helpers shared by the socket transports.
#pragma once

#include <sys/socket.h>
#include <sys/stat.h>

#include <string>

#include "harness/fd.h"

namespace ipcbench {

// Waits (bounded by `wait`) for a connection on a listening socket and accepts it.
UniqueFd accept_one(int listen_fd, const SetupWait& wait, const char* what);

// Throws ProtocolError unless the connected Unix socket's peer runs as our own uid.
void require_same_uid(int fd);

// The IPv4 address network transports (tcp, zmq-tcp, grpc-tcp) listen on: 127.0.0.1
// unless the user gives one (--bind). Set once, before any transport listens.
const std::string& bind_address();
// Throws ProtocolError unless `ipv4` is a dotted IPv4 address.
void set_bind_address(const std::string& ipv4);

// A token that tells the peer's connection from a stranger's on a network port. The
// listener makes it and writes it into a pipe the peer inherits, not onto the peer's
// command line, which other local users can usually read (ps); only processes of the
// same user (or root) can reach a process's descriptors. The peer takes it from there.
struct PeerToken {
  static constexpr std::size_t kBytes = 32;  // 16 random bytes in hex
  static PeerToken make();                   // the listener's side
  std::string text;
  UniqueFd pipe;  // read end: goes in Endpoint::inherit_fds; closed (and taken out of
                  // inherit_fds) once the peer has it
};
// The peer's side: reads the token from the inherited pipe named by `fd_number`.
std::string take_peer_token(const std::string& fd_number, const std::string& what);

// Sets the process umask for one scope: for libraries that create socket files
// themselves (ZeroMQ, gRPC), so the file is private from the moment it exists.
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
