// The control link between the benchmark process and each peer of a many-party cell
// (the clients and fanout workloads): a SOCK_SEQPACKET socketpair whose one end the peer
// inherits (--control-fd). The data links carry only the workload's messages; the
// start barrier and the results travel here, so a transport whose data link is one way
// (a subscriber) reports the same way as any other.
//
//   peer -> bench   kReady    connected to the data link
//   bench -> peer   kGo       size, the window [start_ns, end_ns) on CLOCK_MONOTONIC
//   bench -> peer   kEnd      fanout: the publisher has stopped; how many messages it sent
//   peer -> bench   kResult   what it measured in the window (PartyResult)
//   peer -> bench   kFailed   one line of text: why it stopped
//
// Every process of a cell runs on this host, so CLOCK_MONOTONIC times taken in one
// process compare with those taken in another: the window is one instant for all, and
// a fan-out message's publish time is read by its subscribers. In split mode the clients
// or subscribers run on the server's host: it relays their control links, and moves a
// client's window onto its own clock; a subscriber keeps the publisher's window and
// measures no one-way latency (bench/split.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/process.h"
#include "bench/peer.h"
#include "bench/protocol.h"
#include "harness/histogram.h"

namespace ipcbench {

enum class PartyKind : std::uint32_t { kReady = 1, kGo = 2, kResult = 3, kFailed = 4, kEnd = 5 };

struct PartyGo {
  PartyKind kind = PartyKind::kGo;
  std::uint32_t verify = 0;
  std::uint64_t size = 0;
  std::int64_t start_ns = 0;    // CLOCK_MONOTONIC: measuring starts (warm-up before it)
  std::int64_t end_ns = 0;      // and ends
  std::uint64_t count = 0;      // fanout: messages the publisher will send in all
  std::int64_t give_up_ns = 0;  // fanout: a subscriber that has not seen the end marker
                                // by then stops waiting for it (a transport that drops)
  // fanout in split mode: start_ns and end_ns are on the publisher's host's clock (only
  // compared with publish times), give_up_ns on the subscriber's; no one-way latency.
  std::uint64_t two_clocks = 0;
};

// fanout: sent once the publisher has stopped, so that a subscriber that never saw the
// end marker still knows what it missed.
struct PartyEnd {
  PartyKind kind = PartyKind::kEnd;
  std::uint32_t pad = 0;
  std::uint64_t published = 0;  // data messages published, sequence numbers 1..published
};

struct PartyResult {
  PartyKind kind = PartyKind::kResult;
  std::uint32_t pad = 0;
  std::uint64_t done = 0;                  // clients: round trips completed in the window;
                                           // fanout: messages received in the window
  std::uint64_t received = 0;              // fanout: every message received (warm-up included)
  std::uint64_t lost = 0;                  // fanout: sequence numbers never received
  std::int64_t first_ns = 0, last_ns = 0;  // fanout: receipt of the first and last
                                           // message counted in `done`
  CpuUse cpu;                              // over the window
  Histogram hist;                          // clients: round trips; fanout: publish-to-receipt times
};
static_assert(std::is_trivially_copyable_v<PartyResult>);

// CLOCK_MONOTONIC now, in nanoseconds (steady_clock is CLOCK_MONOTONIC on Linux).
inline std::int64_t mono_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Sends one control message (throws SysError).
void party_send(int fd, const void* msg, std::size_t len);
void party_send_failed(int fd, const std::string& why) noexcept;
// Waits up to `deadline` for one control message into buf; returns its size, 0 when the
// other end closed (or died: ECONNRESET). Throws ProtocolError on timeout (naming `what`).
std::size_t party_recv(int fd, void* buf, std::size_t len,
                       std::chrono::steady_clock::time_point deadline, const std::string& what);

// The peers of one many-party cell and their control links: processes this one starts
// (local_parties), or that a split server starts on its host (split_parties in
// bench/split.h), whose control links it relays. Peer i is the i-th started.
class Parties {
 public:
  virtual ~Parties() = default;
  // Starts peer `a` (its control_fd is filled in here) inheriting `inherit`, on CPU `cpu`
  // (-1: any; a split server's peers are not pinned). Throws on failure.
  virtual void start(PeerArgs a, std::vector<int> inherit, int cpu) = 0;
  std::size_t size() const { return control_.size(); }
  // This side's end of peer i's control link.
  int control(std::size_t i) const { return control_.at(i).get(); }
  virtual bool alive(std::size_t i) = 0;
  // Gives peer i up to `grace` to end by itself, then kills it; says how it ended.
  virtual std::string finish(std::size_t i, std::chrono::milliseconds grace) = 0;
  // Kills every peer at once.
  virtual void kill_all() = 0;
  // The peers' process ids on this host (none for a split server's peers).
  virtual std::vector<pid_t> pids() = 0;
  // What this process spends on the parties' own machinery so far (split mode: the relay
  // thread's CPU and switches), for cpu_use_self_but.
  virtual CpuUse own_use() const { return {}; }
  // How much later the window must start for every party to hear of it in time, beyond
  // a local party's needs (split mode: the relay's rounds and round trips).
  virtual std::chrono::nanoseconds start_lead() const { return {}; }

 protected:
  std::vector<UniqueFd> control_;
};

// Peers started here, each a child process with a SOCK_SEQPACKET control link.
std::unique_ptr<Parties> local_parties();

// This process's CPU use (cpu_use_self) less the parties' own machinery's (own_use): what
// the workload's side itself spends. Safe from any thread.
CpuUse cpu_use_self_but(const Parties& parties);

// Waits for one control message of kind `want` from peer i of `parties`, named `who`
// ("client 3"); returns its size. A kFailed message becomes the error; so does a closed
// link (naming how the process ended), a late answer, or any other kind.
std::size_t party_expect(Parties& parties, std::size_t i, std::vector<std::byte>& buf,
                         PartyKind want, const std::string& who,
                         std::chrono::steady_clock::time_point deadline);

// The peers that have died on their own ("; client 2 killed by signal 9"), after giving a
// killed one up to 2 s to go (its link closes before it can be reaped; 300 ms was too short
// for a killed client under TSan on a busy 2-CPU machine); "" when none has.
std::string dead_parties(Parties& parties, const std::string& role);

// How collect_party_results watches a cell while its peers finish.
struct PartyWatch {
  std::string role;  // "client", "subscriber": names peer i in errors
  std::chrono::steady_clock::time_point deadline;
  // The benchmark side's own failure ("" while there is none): checked every round, so a
  // failed server or publisher ends the wait at once instead of at the deadline.
  std::function<std::string()> own_error;
  // Called every round before waiting (fanout sends kEnd from it); may be empty.
  std::function<void()> tick;
  // Added to the timeout's error (e.g. "the publisher is still publishing"); may be empty.
  std::function<std::string()> late_note;
};

// Waits for every peer's kResult, watching all control links at once. The first of these
// ends the wait with a ProtocolError naming the peer: a kFailed message, a closed link
// (and how that process ended), the benchmark side's own failure (with every peer that
// has died by then), the deadline (with the peers still missing).
std::vector<PartyResult> collect_party_results(Parties& parties, const PartyWatch& watch);

}  // namespace ipcbench
