#include "transports/socket_util.h"

#include <arpa/inet.h>
#include <poll.h>
#include <unistd.h>

#include "harness/error.h"

namespace ipcbench {

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
