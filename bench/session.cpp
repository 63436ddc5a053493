#include "bench/session.h"

#include <cstring>

#include "base/error.h"
#include "bench/peer.h"
#include "bench/protocol.h"
#include "bench/split.h"

namespace ipcbench {

std::size_t expect(Channel& ch, std::span<std::byte> buf, Kind kind, std::uint32_t seq,
                   bool verify) {
  std::size_t n = ch.recv(buf);
  if (n == 0) throw ProtocolError("peer closed the link");
  std::span<const std::byte> msg(buf.data(), n);
  if (n >= kHeaderBytes && read_header(msg).kind == Kind::kError)
    throw ProtocolError(
        "peer: " +
        std::string(reinterpret_cast<const char*>(buf.data()) + kHeaderBytes, n - kHeaderBytes));
  std::string err = check_message(msg, kind, seq, verify);
  if (!err.empty()) throw ProtocolError(err);
  return n;
}

PeerSession::PeerSession(RunDir& dir, Watchdog& dog, SessionConfig config)
    : dog_(dog), config_(std::move(config)) {
  std::unique_ptr<Listener> listener =
      config_.transport->listen(dir, config_.max_size, config_.settings);
  PeerArgs args{config_.transport->info().name,
                listener->endpoint().addresses,
                config_.max_size,
                config_.verify,
                "bench",
                config_.peer_program,
                config_.setup_timeout};
  if (config_.split) {
    config_.split->spawn(args, listener->endpoint().inherit_fds);
  } else {
    SpawnOptions so{peer_command(args), listener->endpoint().inherit_fds,
                    config_.placement.peer_cpu};
    child_ = ChildProcess::spawn(so);
  }
  auto deadline = std::chrono::steady_clock::now() + config_.setup_timeout;
  // Killing the peer does not end a wait on something else: an AMQP link waits on its
  // broker, a ZeroMQ socket may hold a stranger's connection, a TCP connection may be an
  // impostor's that presented the peer's token. So the watchdog also aborts the link,
  // once there is one. It sets `fired` before it looks for the link, we look at `fired`
  // after publishing it: one of us sees the other.
  std::atomic<Channel*> link{nullptr};
  dog_.arm(child_.pid(), config_.setup_timeout, [&link] {
    if (Channel* c = link.load()) c->abort();
  });
  try {
    channel_ = listener->accept(SetupWait{deadline, [this] { return peer_alive(); }});
    link.store(channel_.get());
    if (dog_.fired()) channel_->abort();
    std::byte ready[kHeaderBytes];
    expect(*channel_, ready, Kind::kReady, 0, false);
    // A ready message already queued is still read after the abort; the peer is dead.
    if (dog_.fired()) throw ProtocolError("the peer was killed as it became ready");
  } catch (const std::exception& e) {
    dog_.disarm();
    throw ProtocolError(explain(std::string("peer set-up: ") + e.what()));
  }
  dog_.disarm();
  in_setup_ = false;
}

CpuSample PeerSession::cpu_sample() {
  std::uint32_t seq = next_seq();
  std::byte msg[1024];  // room for a peer's error text instead of the reply
  stamp(std::span(msg).first(kHeaderBytes), seq, Kind::kStats, payload_digest({}));
  channel_->send(std::span(msg).first(kHeaderBytes));
  CpuUse self = cpu_use_self();
  std::size_t n = expect(*channel_, msg, Kind::kStats, seq, true);
  if (n != kHeaderBytes + sizeof(CpuUse))
    throw ProtocolError("stats reply of " + std::to_string(n) + " bytes");
  CpuUse peer;
  std::memcpy(&peer, msg + kHeaderBytes, sizeof peer);
  return {self, peer, channel_->service_cpu_ns()};
}

PeerSession::~PeerSession() {
  // Ending the link can block too: boost-mq's stop message waits for a queue lock that
  // a stopped peer holds, a publish waits on a broker that stopped answering. The
  // watchdog bounds the stop as it bounds a cell; it kills the peer only while it is
  // ours (an already reaped pid may be another process's by now).
  constexpr std::chrono::milliseconds kGrace(2000);
  const pid_t pid = !config_.split && child_.alive() ? child_.pid() : -1;
  if (channel_) {
    dog_.arm(pid, kGrace, [this] { channel_->abort(); });
    try {
      std::byte stop[kHeaderBytes];
      stamp(stop, next_seq(), Kind::kStop, 0);
      channel_->send(stop);
    } catch (const std::exception&) {
    }
  }
  // Closing the link runs without the hook, as the channel goes; a link that waits on
  // its broker here is bounded by the broker client's own RPC timeouts.
  dog_.arm(pid, kGrace);
  channel_.reset();  // closing our end also ends a peer that missed the stop
  dog_.disarm();
  finish_peer(kGrace);
}

bool PeerSession::peer_alive() {
  if (!config_.split) return child_.alive();
  try {
    return config_.split->alive();
  } catch (const std::exception&) {
    return false;  // the server is gone, and the peer with it
  }
}

std::string PeerSession::finish_peer(std::chrono::milliseconds grace) {
  if (!config_.split) return child_.finish(grace);
  try {
    return config_.split->finish(grace);
  } catch (const std::exception& e) {
    return std::string("unknown: ") + e.what();
  }
}

std::string PeerSession::explain(const std::string& what) {
  // The session is being abandoned: give the peer a moment to exit on its own, then
  // make sure it is gone, and say how it ended.
  std::string how = finish_peer(std::chrono::milliseconds(500));
  std::string out = what + " (peer " + how;
  if (dog_.fired())
    out += "; watchdog: no progress within " +
           std::to_string((in_setup_ ? config_.setup_timeout : config_.timeout).count()) +
           (config_.split ? " ms, link aborted" : " ms, peer killed");
  return out + ")";
}

}  // namespace ipcbench
