#include "transports/socket_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/random.h>
#include <unistd.h>

#include "harness/error.h"

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
  int p[2];
  check_sys(::pipe2(p, O_CLOEXEC), "pipe2 (peer token)");
  t.pipe.reset(p[0]);
  UniqueFd w(p[1]);
  // 32 bytes fit an empty pipe's buffer at once; the write end closes here.
  write_all(w.get(), std::as_bytes(std::span(t.text.data(), t.text.size())), "write (peer token)");
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

UniqueFd accept_one(int listen_fd, const SetupWait& wait, const char* what) {
  wait_fd(listen_fd, POLLIN, wait, what);
  for (;;) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) return UniqueFd(fd);
    if (errno != EINTR) throw SysError(what, errno);
  }
}

namespace {
std::string& bind_address_storage() {
  static std::string a = "127.0.0.1";
  return a;
}
}  // namespace

const std::string& bind_address() { return bind_address_storage(); }

void set_bind_address(const std::string& ipv4) {
  in_addr a{};
  if (::inet_pton(AF_INET, ipv4.c_str(), &a) != 1)
    throw ProtocolError("'" + ipv4 + "' is not an IPv4 address");
  bind_address_storage() = ipv4;
}

void require_same_uid(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  check_sys(::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len), "getsockopt SO_PEERCRED");
  if (cred.uid != ::geteuid())
    throw ProtocolError("unix socket: refused a peer running as uid " + std::to_string(cred.uid));
}

}  // namespace ipcbench
