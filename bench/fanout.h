// The fanout workload: one publisher, N subscribers, all at once.
//
// The benchmark process is the publisher: it listens in the transport's fan-out form
// (Transport::listen_fan_out), spawns N subscriber processes (peers, role "subscriber",
// each with a control link, bench/party.h), waits until every one has connected and said
// kReady (for a transport whose subscriptions travel on their own, such as ZeroMQ's, the
// form's accept() also waits until every subscription has reached the publisher), and
// then publishes kData messages at full speed: a warm-up, then the window [start, end) of
// CLOCK_MONOTONIC told to every subscriber in kGo. After the window it sends the end
// marker (kStop, its sequence number = the number of data messages published) on the data
// link and the same count in kEnd on every control link.
//
// A message is the 16-byte header (kind kData, sequence number from 1), then the time it
// was published (CLOCK_MONOTONIC ns, 8 bytes), then the cell's payload pattern with the
// message's sequence marks (bench/protocol.h; the header's checksum covers the pattern,
// not the time). Every process of a cell runs on this one host, so a publish time read
// in the publisher compares with a receipt time read in a subscriber: the one-way latency
// is receipt - publish time. A message counts in the window when it was published in it.
//
// Each subscriber counts what it receives, fails on a duplicate or out-of-order message,
// counts sequence gaps (and what never came after its last message, by kEnd's count) as
// lost, checks each message's kind, length and sequence (with --verify its payload too),
// and reports a PartyResult. A transport that drops by design (ZeroMQ PUB at its
// high-water mark) may lose the end marker too: the publisher repeats it until every
// subscriber has reported, and a subscriber that has not seen it by the cell timeout after
// the window stops waiting. Lost messages fail the cell unless the transport drops by
// design; then they are counted (lost_msgs), never hidden.
//
// One repetition = one window, with fresh processes and links. Counters: see
// run_fanout() in fanout.cpp and docs/fanout.md.
#pragma once

#include <benchmark/benchmark.h>
#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "bench/clients.h"
#include "bench/party.h"
#include "bench/peer.h"
#include "transports/transport.h"

namespace ipcbench {

class RunDir;

// Largest number of subscribers.
inline constexpr std::size_t kMaxSubscribers = 64;
// Smallest fanout message: the header and the publish time.
inline constexpr std::size_t kFanoutMinBytes = kHeaderBytes + sizeof(std::int64_t);

// What one repetition measured.
struct FanoutOutcome {
  std::vector<PartyResult> results;  // one per subscriber, in subscriber order
  std::uint64_t published = 0;       // data messages published, warm-up included
  std::uint64_t published_in_window = 0;
  CpuUse publisher_cpu;  // the benchmark process, over the window
  bool drops_by_design = false;
  double window_s = 0;
};

// Called once every subscriber has been told to go, with their pids (the tests kill one).
using FanoutHook = std::function<void(const std::vector<pid_t>&)>;

// Runs one repetition and returns what the subscribers reported. Throws on any failure
// (a subscriber that failed, died or lost messages the transport should not lose);
// nothing is left behind either way.
FanoutOutcome measure_fanout(RunDir& dir, const ManyConfig& config, const Transport& t,
                             std::size_t size, std::size_t subscribers,
                             const FanoutHook& after_go = {});

// One repetition of fanout/<transport>/<size>/subscribers:<n>: measure_fanout, then the
// counters and the label.
void run_fanout(benchmark::State& state, RunDir& dir, const ManyConfig& config, const Transport& t,
                std::size_t size, std::size_t subscribers);

// Why this cell cannot be measured as asked, or "" when it can: a spinning transport whose
// busy processes would share a CPU.
std::string fanout_refused(const Placement& p, const Transport& t, std::size_t subscribers);

// The peer side (role "subscriber"): reports ready, receives until the end marker, and
// sends its result over the control link. Returns the exit status.
int run_subscriber(Channel& link, const PeerArgs& args);

}  // namespace ipcbench
