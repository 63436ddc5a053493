#include "bench/peer.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <vector>

#include "base/error.h"
#include "base/process.h"
#include "bench/clients.h"
#include "bench/fanout.h"
#include "bench/mailbox.h"
#include "bench/party.h"
#include "bench/protocol.h"
#include "harness/aligned_buffer.h"
#include "transports/registry.h"

namespace ipcbench {
namespace {

void send_control(Channel& ch, Kind kind, std::uint32_t seq) {
  std::byte msg[kHeaderBytes];
  stamp(msg, seq, kind, payload_digest({}));
  ch.send(msg);
}

// Returns msg to the sender: written in place when the channel lends its memory.
void echo(Channel& ch, std::span<const std::byte> msg) {
  std::span<std::byte> l = ch.loan(msg.size());
  if (l.empty()) return ch.send(msg);
  std::memcpy(l.data(), msg.data(), msg.size());
  ch.commit();
}

int run_bench(Channel& ch, const PeerArgs& a) {
  Inbox in(ch, std::max(a.max_size, kHeaderBytes + sizeof(CpuUse)));
  send_control(ch, Kind::kReady, 0);
  std::uint32_t expected = 1;
  for (;;) {
    std::span<const std::byte> msg = in.next();
    const std::size_t n = msg.size();
    if (n == 0) return 0;  // the benchmark side closed: nothing more to do
    if (n < kHeaderBytes) throw ProtocolError("short message of " + std::to_string(n) + " bytes");
    Kind kind = read_header(msg).kind;
    if (kind == Kind::kStop) return 0;
    std::string err = check_message(msg, kind, expected, a.verify);
    if (!err.empty()) throw ProtocolError(err);
    switch (kind) {
      case Kind::kPing:
        echo(ch, msg);
        break;
      case Kind::kData:
        break;
      case Kind::kSync:
        send_control(ch, Kind::kAck, expected);
        break;
      case Kind::kStats: {
        std::byte reply[kHeaderBytes + sizeof(CpuUse)];
        CpuUse use = cpu_use_self();
        std::memcpy(reply + kHeaderBytes, &use, sizeof use);
        stamp(reply, expected, Kind::kStats,
              payload_digest(std::span(reply).subspan(kHeaderBytes)));
        ch.send(reply);
        break;
      }
      default:
        throw ProtocolError("unexpected message kind " + describe_kind(kind));
    }
    in.done();
    ++expected;
  }
}

int run_echo(Channel& ch, const PeerArgs& a) {
  AlignedBuffer buf(std::max<std::size_t>(a.max_size, 1));
  for (;;) {
    std::size_t n = ch.recv(buf);
    if (n == 0) return 0;
    ch.send(std::span(buf.data(), n));
  }
}

}  // namespace

int run_peer(const PeerArgs& a) {
  const Transport* t = find_transport(a.transport);
  if (!t) {
    std::fprintf(stderr, "ipcbench peer: unknown transport '%s'\n", a.transport.c_str());
    return 2;
  }
  std::unique_ptr<Channel> ch;
  UniqueFd control;
  try {
    // The benchmark side spawned us: while it lives it waits for us, and once it is gone
    // (we were re-parented) nobody will ever answer.
    const pid_t parent = ::getppid();
    SetupWait wait{std::chrono::steady_clock::now() + a.setup_timeout,
                   [parent] { return ::getppid() == parent; }};
    if (a.role == "client" || a.role == "subscriber") {
      const bool client = a.role == "client";
      const std::size_t most = client ? kMaxClients : kMaxSubscribers;
      if (a.client_id < 0 || a.client_id >= static_cast<int>(most) || a.control_fd < 0)
        throw ProtocolError("role " + a.role + " needs --client-id (0.." +
                            std::to_string(most - 1) + ") and --control-fd");
      control = adopt_inherited_fd(std::to_string(a.control_fd), "control link");
      PeerArgs args = a;
      args.control_fd = control.get();
      try {
        ch = t->connect(Endpoint{a.addresses, {}}, wait);
      } catch (const std::exception& e) {
        party_send_failed(control.get(), std::string("connect: ") + e.what());
        throw;
      }
      return client ? run_fan_in_client(*t, *ch, args) : run_subscriber(*ch, args);
    }
    ch = t->connect(Endpoint{a.addresses, {}}, wait);
    return a.role == "echo" ? run_echo(*ch, a) : run_bench(*ch, a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipcbench peer (%s): %s\n", a.transport.c_str(), e.what());
    if (ch) {
      try {  // tell the benchmark side why, if the link still carries anything
        std::string text = e.what();
        std::vector<std::byte> msg(kHeaderBytes + text.size());
        std::memcpy(msg.data() + kHeaderBytes, text.data(), text.size());
        stamp(msg, 0, Kind::kError, 0);
        ch->send(msg);
      } catch (const std::exception&) {
      }
    }
    return 3;
  }
}

std::vector<std::string> peer_command(const PeerArgs& a) {
  std::vector<std::string> argv = {a.program.empty() ? self_exe() : a.program, "--peer",
                                   "--transport=" + a.transport,
                                   "--max-size=" + std::to_string(a.max_size), "--role=" + a.role};
  for (const auto& addr : a.addresses) argv.push_back("--address=" + addr);
  if (a.verify) argv.push_back("--verify");
  if (a.client_id >= 0) argv.push_back("--client-id=" + std::to_string(a.client_id));
  if (a.control_fd >= 0) argv.push_back("--control-fd=" + std::to_string(a.control_fd));
  argv.push_back("--setup-timeout-ms=" + std::to_string(a.setup_timeout.count()));
  return argv;
}

}  // namespace ipcbench
