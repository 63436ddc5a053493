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

class LocalParties final : public Parties {
 public:
  void start(PeerArgs a, std::vector<int> inherit, int cpu) override {
    int sv[2];
    check_sys(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), "socketpair (control)");
    UniqueFd mine(sv[0]), theirs(sv[1]);
    a.control_fd = theirs.get();
    inherit.push_back(theirs.get());
    children_.push_back(ChildProcess::spawn(SpawnOptions{peer_command(a), inherit, cpu}));
    control_.push_back(std::move(mine));
  }
  bool alive(std::size_t i) override { return children_.at(i).alive(); }
  std::string finish(std::size_t i, std::chrono::milliseconds grace) override {
    return children_.at(i).finish(grace);
  }
  void kill_all() override {
    for (ChildProcess& c : children_) c.kill_now();
  }
  std::vector<pid_t> pids() override {
    std::vector<pid_t> out;
    for (ChildProcess& c : children_) out.push_back(c.pid());
    return out;
  }

 private:
  std::vector<ChildProcess> children_;  // killed and reaped before control_ closes
};

// Checks one control message of `n` bytes in buf against `want`.
void check_party_message(const std::vector<std::byte>& buf, std::size_t n, PartyKind want,
                         const std::string& who, Parties& parties, std::size_t i) {
  if (n == 0)
    throw ProtocolError(who + " closed its control link (" +
                        parties.finish(i, std::chrono::milliseconds(200)) + ")");
  PartyKind k;
  std::memcpy(&k, buf.data(), sizeof k);
  if (k == PartyKind::kFailed) throw ProtocolError(who + ": " + text_of(buf, n));
  if (k != want || (want == PartyKind::kResult && n != sizeof(PartyResult)))
    throw ProtocolError(who + ": unexpected control message");
}

}  // namespace

std::unique_ptr<Parties> local_parties() { return std::make_unique<LocalParties>(); }

CpuUse cpu_use_self_but(const Parties& parties) {
  const CpuUse all = cpu_use_self(), theirs = parties.own_use();
  auto less = [](std::uint64_t a, std::uint64_t b) { return a > b ? a - b : 0; };
  return {less(all.cpu_ns, theirs.cpu_ns), less(all.voluntary_switches, theirs.voluntary_switches),
          less(all.involuntary_switches, theirs.involuntary_switches)};
}

std::size_t party_expect(Parties& parties, std::size_t i, std::vector<std::byte>& buf,
                         PartyKind want, const std::string& who, Clock::time_point deadline) {
  std::size_t n;
  try {
    n = party_recv(parties.control(i), buf.data(), buf.size(), deadline, who);
  } catch (const std::exception& e) {
    throw ProtocolError(
        std::string(e.what()) + " (" + who + " " +
        (parties.alive(i) ? std::string("still running, killed") : parties.finish(i, {})) + ")");
  }
  check_party_message(buf, n, want, who, parties, i);
  return n;
}

std::string dead_parties(Parties& parties, const std::string& role) {
  std::string out;
  auto until = Clock::now() + std::chrono::seconds(2);
  do {
    for (std::size_t i = 0; i < parties.size(); ++i)
      if (!parties.alive(i))
        out += "; " + role + " " + std::to_string(i) + " " + parties.finish(i, {});
    if (!out.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  } while (Clock::now() < until);
  return out;
}

std::vector<PartyResult> collect_party_results(Parties& peers, const PartyWatch& watch) {
  const std::size_t parties = peers.size();
  std::vector<PartyResult> results(parties);
  std::vector<bool> have(parties);
  std::size_t missing = parties;
  std::vector<std::byte> buf(sizeof(PartyResult) + 1);
  auto who = [&watch](std::size_t i) { return watch.role + " " + std::to_string(i); };
  while (missing > 0) {
    if (watch.own_error) {
      std::string own = watch.own_error();
      if (!own.empty()) throw ProtocolError(own + dead_parties(peers, watch.role));
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
        fds.push_back(pollfd{peers.control(i), POLLIN, 0});
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
        check_party_message(buf, n, PartyKind::kResult, who(i), peers, i);
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
