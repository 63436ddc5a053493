// The rate workload's engine: requests sent at a fixed offered rate, open loop, with
// latency measured from each request's intended send time (coordinated omission
// corrected, as wrk2 and HdrHistogram measure it).
//
// Send times follow a schedule fixed before the first request: t_i = t_0 + i/rate
// (uniform) or the arrival times of a Poisson process of that rate (poisson). The
// schedule is never re-anchored: a sender that falls behind (the transport pushed back,
// the thread was descheduled) sends the overdue requests at once, and their lateness
// counts. The sender is the calling thread; a receiver thread of its own takes every
// echo as it arrives, so a slow reply never delays the next send (TransportInfo::
// pipelining "two threads"). With Pacing::kPollReplies ("one thread") the calling thread
// does both: between sends it waits for replies (Channel::wait_readable) and takes each
// as it arrives, with at most Channel::pipeline_room() requests unanswered. The partner
// must echo every ping as it arrives (the peer's "bench" role does; a kSync after the
// last ping is answered by a kAck, which ends the run).
//
// Three histograms, in nanoseconds, with the suite's histogram precision:
//   corrected    receipt - intended send time: the latency a client on this schedule sees
//   uncorrected  receipt - actual send time: what a closed-loop tool would report
//   lag          actual - intended send time: how late the sender was
// A request is never sent before its intended time (early wake-ups from a sleep are
// spun off), so none of the three can be negative.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "harness/histogram.h"
#include "transports/transport.h"

namespace ipcbench {

class Watchdog;

// How the sender waits for the next intended send time.
enum class Pacing {
  kSpin,       // reads the clock until it is time (for busy-polling transports)
  kSleepSpin,  // clock_nanosleep to an absolute time kSpinMargin before, then spins
  // One thread sends and receives (TransportInfo::pipelining "one thread"): it waits for
  // replies with Channel::wait_readable until each send time, taking them as they come.
  kPollReplies,
};
const char* pacing_name(Pacing p);  // "spin", "sleep+spin", "poll"

// The last stretch before a send that kSleepSpin spins rather than sleeps: more than a
// timer wake-up takes here (the sender's timer slack is set to 1 ns while it runs).
inline constexpr std::chrono::microseconds kSpinMargin{50};

// A cell is saturated when its achieved rate falls short of the offered one by more
// than this fraction (the achieved rate counts replies, so a growing queue shows).
inline constexpr double kSaturationMargin = 0.05;

// The most requests one schedule holds (each takes 16 bytes of bookkeeping).
inline constexpr std::uint64_t kMaxScheduled = 8'000'000;

struct RateSpec {
  double rate = 0;  // offered requests per second (> 0)
  bool poisson = false;
  std::chrono::nanoseconds window{std::chrono::milliseconds(500)};  // the schedule's length
  Pacing pacing = Pacing::kSleepSpin;
  bool verify = false;     // check every echo's payload checksum too
  int receiver_cpu = -1;   // where the receiver thread is pinned; -1: not pinned
  std::uint64_t seed = 1;  // of the Poisson schedule
  // Called (from either thread) when one side of a two-thread run fails, so that the
  // other's wait ends (the runner kills the peer and aborts the link): a receiver that
  // stopped taking echoes leaves the sender blocked on a full link, and a sender that
  // failed leaves the receiver waiting for echoes. Empty: Channel::abort(), which ends
  // only waits on sockets (and those whose peer was killed), so the runner passes one.
  std::function<void()> unblock;
};

struct RateResult {
  Histogram corrected, uncorrected, lag;
  std::uint64_t messages = 0;
  double offered_rate = 0;  // the spec's rate
  // Up to request k = ceil(0.99 n) (at least 2): one late last reply does not count.
  double scheduled_rate = 0;            // (k-1) / (t_{k-1} - t_0) of the schedule itself
  double send_rate = 0;                 // (n-1) / (last actual send - first actual send)
  double achieved_rate = 0;             // (k-1) / (receipt k - receipt 1)
  bool saturated = false;               // achieved_rate < (1 - kSaturationMargin) * scheduled_rate
  std::chrono::nanoseconds elapsed{0};  // first intended send to last receipt
  // Wall time the sender spent spinning to send times (after any sleep), measured with
  // the clock the spin reads anyway, and at most the sender thread's CPU time over the
  // run: the CPU its pacing burnt, or more (the spin yields to a receiver woken on its
  // CPU, whose time the wall clock counts), but never the receiver's own CPU time.
  std::int64_t pacing_spin_ns = 0;
};

// Sends n = max(2, round(rate * window)) pings of `size` bytes on the schedule, with
// sequence numbers first_seq, first_seq + 1, …, then a kSync (sequence first_seq + n),
// and waits for every echo and the kAck. Returns the number of sequence numbers used in
// *used (n + 1). Throws ProtocolError (a wrong or missing reply, a schedule larger than
// kMaxScheduled) or whatever the channel throws; the receiver thread has ended by then.
// dog, if given, is told of every reply.
RateResult run_rate_schedule(Channel& ch, std::size_t size, const RateSpec& spec,
                             std::uint32_t first_seq, Watchdog* dog, std::uint32_t* used);

// The unpaced maximum: pings sent back to back for `window` (the sender blocks only
// when the transport pushes back; one_thread: also while pipeline_room() are
// unanswered), echoes taken as in run_rate_schedule. Returns replies per second,
// (n-1) / (last receipt - first receipt).
// spec: its window, verify, receiver_cpu, pacing (kPollReplies: one thread) and unblock.
double measure_max_rate(Channel& ch, std::size_t size, const RateSpec& spec,
                        std::uint32_t first_seq, Watchdog* dog, std::uint32_t* used);

}  // namespace ipcbench
