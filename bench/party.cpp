#include "bench/party.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <thread>

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

namespace {

using Clock = std::chrono::steady_clock;

std::string text_of(const std::vector<std::byte>& msg, std::size_t n) {
  return std::string(reinterpret_cast<const char*>(msg.data()) + sizeof(PartyKind),
                     n - sizeof(PartyKind));
}

// Checks one control message of `n` bytes in buf against `want`.
void check_party_message(const std::vector<std::byte>& buf, std::size_t n, PartyKind want,
                         const std::string& who, ChildProcess& child) {
  if (n == 0)
    throw ProtocolError(who + " closed its control link (" +
                        child.finish(std::chrono::milliseconds(200)) + ")");
  PartyKind k;
  std::memcpy(&k, buf.data(), sizeof k);
  if (k == PartyKind::kFailed) throw ProtocolError(who + ": " + text_of(buf, n));
  if (k != want || (want == PartyKind::kResult && n != sizeof(PartyResult)))
    throw ProtocolError(who + ": unexpected control message");
}

}  // namespace

std::size_t party_expect(int fd, std::vector<std::byte>& buf, PartyKind want,
                         const std::string& who, Clock::time_point deadline, ChildProcess& child) {
  std::size_t n;
  try {
    n = party_recv(fd, buf.data(), buf.size(), deadline, who);
  } catch (const std::exception& e) {
    throw ProtocolError(std::string(e.what()) + " (" + who + " " +
                        (child.alive() ? std::string("still running, killed") : child.finish({})) +
                        ")");
  }
  check_party_message(buf, n, want, who, child);
  return n;
}

std::string dead_parties(std::vector<ChildProcess>& children, const std::string& role) {
  std::string out;
  auto until = Clock::now() + std::chrono::seconds(2);
  do {
    for (std::size_t i = 0; i < children.size(); ++i)
      if (!children[i].alive())
        out += "; " + role + " " + std::to_string(i) + " " + children[i].finish({});
    if (!out.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  } while (Clock::now() < until);
  return out;
}

std::vector<PartyResult> collect_party_results(std::vector<UniqueFd>& control,
                                               std::vector<ChildProcess>& children,
                                               const PartyWatch& watch) {
  const std::size_t parties = control.size();
  std::vector<PartyResult> results(parties);
  std::vector<bool> have(parties);
  std::size_t missing = parties;
  std::vector<std::byte> buf(sizeof(PartyResult) + 1);
  auto who = [&watch](std::size_t i) { return watch.role + " " + std::to_string(i); };
  while (missing > 0) {
    if (watch.own_error) {
      std::string own = watch.own_error();
      if (!own.empty()) throw ProtocolError(own + dead_parties(children, watch.role));
    }
    if (watch.tick) watch.tick();
    if (Clock::now() > watch.deadline) {
      std::string late;
      for (std::size_t i = 0; i < parties; ++i)
        if (!have[i]) late += (late.empty() ? "" : ", ") + std::to_string(i);
      throw ProtocolError(watch.role + "(s) " + late + ": no answer in time" +
                          (watch.late_note ? watch.late_note() : std::string()));
    }
    std::vector<pollfd> fds;
    std::vector<std::size_t> which;
    for (std::size_t i = 0; i < parties; ++i)
      if (!have[i]) {
        fds.push_back(pollfd{control[i].get(), POLLIN, 0});
        which.push_back(i);
      }
    int r = ::poll(fds.data(), fds.size(), 20);
    if (r < 0 && errno == EINTR) continue;
    check_sys(r, "poll (control links)");
    for (std::size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      const std::size_t i = which[k];
      const std::size_t n = party_recv(fds[k].fd, buf.data(), buf.size(),
                                       Clock::now() + std::chrono::seconds(1), who(i));
      try {
        check_party_message(buf, n, PartyKind::kResult, who(i), children[i]);
      } catch (const ProtocolError& e) {
        // The benchmark side may know better (a misrouted message): say both.
        std::string own = watch.own_error ? watch.own_error() : std::string();
        throw ProtocolError(own.empty() ? std::string(e.what()) : own + "; " + e.what());
      }
      std::memcpy(&results[i], buf.data(), sizeof(PartyResult));
      have[i] = true;
      --missing;
    }
  }
  return results;
}

}  // namespace ipcbench
