// A live peer: its process, the connected channel, the shared sequence counter.
//
// Google Benchmark calls a cell's function several times (to find an iteration count,
// then per repetition); a session outlives those calls, so the peer is spawned and
// connected once per transport, not once per call. A session that saw any error is
// ended at once and never reused.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/process.h"
#include "base/run_dir.h"
#include "bench/protocol.h"
#include "harness/placement.h"
#include "harness/watchdog.h"
#include "transports/transport.h"

namespace ipcbench {

class SplitClient;

struct SessionConfig {
  const Transport* transport = nullptr;
  Placement placement;
  bool verify = false;
  std::size_t max_size = 0;                        // largest message the peer must take
  std::chrono::milliseconds timeout{60000};        // a cell without progress for this long fails
  std::chrono::milliseconds setup_timeout{60000};  // starting and connecting the peer
  std::string peer_program;                        // the peer's executable; empty: this one
  TransportSettings settings;                      // what the transport listens with
  // Split mode (bench/split.h): the peer runs on the server this names, not here.
  SplitClient* split = nullptr;
};

// CPU used so far by this process, by the peer and, where the link runs through a daemon
// it knows (Channel::service_cpu_ns), by that daemon (-1: none).
struct CpuSample {
  CpuUse self, peer;
  std::int64_t daemon_ns = -1;
};

class PeerSession {
 public:
  // Listens, spawns the peer (pinned), accepts and waits for its ready message, all
  // within config.timeout. Throws on any failure; nothing is left behind.
  PeerSession(RunDir& dir, Watchdog& dog, SessionConfig config);
  // Sends kStop, waits briefly for a clean exit, kills and reaps otherwise.
  ~PeerSession();

  Channel& channel() { return *channel_; }
  const SessionConfig& config() const { return config_; }
  // The local peer process; in split mode none (pid -1: the watchdog only aborts the
  // link, nothing here is killed).
  ChildProcess& child() { return child_; }
  Watchdog& watchdog() { return dog_; }
  std::uint32_t next_seq() { return ++seq_; }
  // For a workload that numbers a run of messages itself (rate): the sequence number
  // next_seq() would return, and moving past n of them.
  std::uint32_t upcoming_seq() const { return seq_ + 1; }
  void skip_seqs(std::uint32_t n) { seq_ += n; }

  // CPU use of this process and of the peer (asks the peer with a kStats round trip;
  // call it outside timed regions).
  CpuSample cpu_sample();

  // Turns a failure into the text of the cell's error: names a watchdog kill or the
  // peer's exit status.
  std::string explain(const std::string& what);

 private:
  bool peer_alive();
  std::string finish_peer(std::chrono::milliseconds grace);
  Watchdog& dog_;
  SessionConfig config_;
  ChildProcess child_;
  std::unique_ptr<Channel> channel_;
  std::uint32_t seq_ = 0;
  bool in_setup_ = true;
};

// Reads the next message and throws ProtocolError unless it is of `kind` with `seq`.
// A kError message from the peer becomes "peer: <its text>".
std::size_t expect(Channel& ch, std::span<std::byte> buf, Kind kind, std::uint32_t seq,
                   bool verify);

}  // namespace ipcbench
