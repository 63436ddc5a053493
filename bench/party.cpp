#include "bench/party.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "base/error.h"

namespace ipcbench {

void party_send(int fd, const void* msg, std::size_t len) {
  for (;;) {
    ssize_t n = ::send(fd, msg, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    check_sys(n, "send (control link)");
    if (static_cast<std::size_t>(n) != len) throw ProtocolError("control link: short send");
    return;
  }
}

void party_send_failed(int fd, const std::string& why) noexcept {
  std::string msg(sizeof(PartyKind), '\0');
  PartyKind k = PartyKind::kFailed;
  std::memcpy(msg.data(), &k, sizeof k);
  msg += why.substr(0, 1000);
  ::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

std::size_t party_recv(int fd, void* buf, std::size_t len,
                       std::chrono::steady_clock::time_point deadline, const std::string& what) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw ProtocolError(what + ": no answer in time");
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<long>(left.count() + 1, 1000)));
    if (r < 0 && errno == EINTR) continue;
    check_sys(r, "poll (control link)");
    if (r == 0) continue;
    ssize_t n = ::recv(fd, buf, len, MSG_TRUNC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == ECONNRESET) return 0;  // the other end died: the link ended
    check_sys(n, "recv (control link)");
    if (static_cast<std::size_t>(n) > len)
      throw ProtocolError(what + ": control message of " + std::to_string(n) +
                          " bytes is larger than expected");
    return static_cast<std::size_t>(n);
  }
}

}  // namespace ipcbench
