#include "bench/workloads.h"

#include <signal.h>

#include <chrono>
#include <functional>
#include <vector>

#include "base/error.h"
#include "bench/hgrm_files.h"
#include "bench/mailbox.h"
#include "bench/protocol.h"
#include "bench/rate.h"
#include "bench/rtt_clock.h"
#include "harness/aligned_buffer.h"
#include "harness/histogram.h"

namespace ipcbench {
namespace {

using Clock = std::chrono::steady_clock;

// Runs untimed round trips (or one-way messages plus a sync) for about `budget` or
// `max_msgs` messages, whichever comes first: caches, page tables and socket buffers warm.
constexpr auto kWarmupBudget = std::chrono::milliseconds(20);
constexpr int kWarmupMsgs = 200;

void record_placement(benchmark::State& state, const PeerSession& s, std::size_t size) {
  const Placement& p = s.config().placement;
  state.counters["msg_bytes"] = static_cast<double>(size);
  state.counters["client_cpu"] = p.client_cpu;
  state.counters["peer_cpu"] = p.peer_cpu;
  state.SetLabel(cell_label(s));
}

// CPU per message of both processes over the measured run (msgs = round trips for
// pingpong, messages for throughput), and context switches of both per message; the
// daemon's CPU per message too where the link knows its daemon.
void record_cpu(benchmark::State& state, const CpuSample& before, const CpuSample& after,
                double msgs) {
  if (msgs <= 0) return;
  auto cpu = [](const CpuUse& a, const CpuUse& b) {
    return static_cast<double>(b.cpu_ns - a.cpu_ns);
  };
  auto csw = [](const CpuUse& a, const CpuUse& b) {
    return static_cast<double>((b.voluntary_switches + b.involuntary_switches) -
                               (a.voluntary_switches + a.involuntary_switches));
  };
  state.counters["cpu_client_ns_per_msg"] = cpu(before.self, after.self) / msgs;
  state.counters["cpu_peer_ns_per_msg"] = cpu(before.peer, after.peer) / msgs;
  state.counters["ctx_switches_per_msg"] =
      (csw(before.self, after.self) + csw(before.peer, after.peer)) / msgs;
  if (before.daemon_ns >= 0 && after.daemon_ns >= before.daemon_ns)
    state.counters["cpu_daemon_ns_per_msg"] =
        static_cast<double>(after.daemon_ns - before.daemon_ns) / msgs;
}

void sync(PeerSession& s, std::span<std::byte> buf) {
  std::uint32_t seq = s.next_seq();
  std::byte msg[kHeaderBytes];
  stamp(msg, seq, Kind::kSync, payload_digest({}));
  s.channel().send(msg);
  expect(s.channel(), buf, Kind::kAck, seq, false);
}

// Untimed round trips, closed loop, as ping-pong warms up.
void warm_round_trips(PeerSession& s, std::size_t size) {
  AlignedBuffer proto(size);
  const std::uint32_t digest = fill_payload(proto, size);
  Outbox out(s.channel(), proto);
  Inbox in(s.channel(), size);
  auto warm_end = Clock::now() + kWarmupBudget;
  for (int i = 0; i < kWarmupMsgs && Clock::now() < warm_end; ++i) {
    std::uint32_t seq = s.next_seq();
    stamp(out.begin(seq), seq, Kind::kPing, digest);
    out.finish();
    std::span<const std::byte> reply = in.next();
    if (!reply_ok(reply, size, seq, s.config().verify))
      throw ProtocolError(explain_reply(reply, seq, s.config().verify));
    in.done();
  }
}

// Where the rate workload's threads run and how its sender waits. The receiver thread
// is pinned with the sender (the placement names two CPUs: the client's and the peer's).
// The sender spins to each send time only with a CPU of its own, which it never has
// when pinned; otherwise it sleeps to just before it and yields while it spins the rest.
// A "one thread" transport (ZeroMQ) has no receiver thread: the sender waits for replies
// until each send time. Marked as shared: a busy-polling (or spin-then-futex) receiver
// pinned beside the sender, or, unpinned, more busy threads (a spinning receiver and peer, a sender
// that spins through every gap: unpaced, or at more than one request per kSpinMargin) than allowed
// CPUs. rate: the offered rate; 0: unpaced.
struct RateThreads {
  Pacing pacing;
  int receiver_cpu;  // -1: not pinned, or no receiver thread
  bool shared;       // a busy thread shares its CPU with another busy one
  std::string note;  // what was shared, for the label
};
RateThreads rate_threads(const Placement& p, const TransportInfo& info, double rate) {
  if (info.pipelining == "one thread") return {Pacing::kPollReplies, -1, false, ""};
  const bool spins = info.wait == "spin";
  RateThreads r{Pacing::kSleepSpin, p.client_cpu, false, ""};
  if (spins && p.client_cpu < 0 && p.cpus_allowed >= 4) r.pacing = Pacing::kSpin;
  const double spin_rate = 1e9 / static_cast<double>(std::chrono::nanoseconds(kSpinMargin).count());
  const bool sender_busy = r.pacing == Pacing::kSpin || rate <= 0 || rate >= spin_rate;
  const int busy = (spins ? 2 : 0) + (sender_busy ? 1 : 0);
  if (spins && p.client_cpu >= 0) {
    r.shared = true;
    r.note =
        "the busy-polling receiver shares cpu " + std::to_string(p.client_cpu) + " with the sender";
  } else if (info.wait == "spin-then-futex" && p.client_cpu >= 0) {
    // Its receiver spins for up to its budget before each sleep; the sender, yielding
    // while it spins to a send time, hands it the CPU for that long.
    r.shared = true;
    r.note = "the receiver, which spins before it sleeps, shares cpu " +
             std::to_string(p.client_cpu) + " with the sender";
  } else if (p.client_cpu < 0 && busy > p.cpus_allowed) {
    r.shared = true;
    r.note = std::string(spins ? "a busy-polling receiver and peer" : "") +
             (spins && sender_busy ? " and " : "") +
             (sender_busy ? "a sender that spins through every gap" : "") + " on " +
             std::to_string(p.cpus_allowed) + " CPUs";
  }
  return r;
}

constexpr std::uint64_t kPoissonSeed = 1;

// Ends a rate run's other wait when one side fails: the peer is killed, so every wait on
// it ends, and the link is aborted, for waits on something else (as the watchdog does).
std::function<void()> unblocker(PeerSession& s) {
  return [&s] {
    if (s.child().pid() > 0) ::kill(s.child().pid(), SIGKILL);  // none here in split mode
    s.channel().abort();
  };
}

void record_latency(benchmark::State& state, const char* prefix, const Histogram& h) {
  const std::string p = prefix;
  state.counters[p + "_p50_ns"] = h.percentile(50);
  state.counters[p + "_p90_ns"] = h.percentile(90);
  state.counters[p + "_p99_ns"] = h.percentile(99);
  state.counters[p + "_p999_ns"] = h.percentile(99.9);
  state.counters[p + "_max_ns"] = static_cast<double>(h.max());
}

}  // namespace

void run_rate(benchmark::State& state, PeerSession& s, std::size_t size, const RateCell& cell) {
  const Placement& p = s.config().placement;
  const std::string& wait = s.config().transport->info().wait;
  const double rate = cell.load_pct > 0 ? cell.max_rate * cell.load_pct / 100 : cell.rate;
  const RateThreads threads = rate_threads(p, s.config().transport->info(), rate);
  // A fixed seed: every repetition of a Poisson cell runs the same schedule.
  RateSpec spec{.rate = rate,
                .poisson = cell.poisson,
                .window = cell.window,
                .pacing = threads.pacing,
                .verify = s.config().verify,
                .receiver_cpu = threads.receiver_cpu,
                .seed = kPoissonSeed,
                .unblock = unblocker(s)};
  warm_round_trips(s, size);

  auto cpu_before = s.cpu_sample();
  RateResult r;
  for (auto _ : state) {
    std::uint32_t used = 0;
    r = run_rate_schedule(s.channel(), size, spec, s.upcoming_seq(), &s.watchdog(), &used);
    s.skip_seqs(used);
    state.SetIterationTime(std::chrono::duration<double>(r.elapsed).count());
  }
  record_cpu(state, cpu_before, s.cpu_sample(), static_cast<double>(r.messages));
  state.counters["cpu_pacing_ns_per_msg"] =
      static_cast<double>(r.pacing_spin_ns) / static_cast<double>(r.messages);
  state.counters["scheduled_rate"] = r.scheduled_rate;
  state.counters["arrivals_seed"] = cell.poisson ? static_cast<double>(kPoissonSeed) : 0;

  record_placement(state, s, size);
  state.SetLabel("pin=" + p.describe() + " wait=" + wait +
                 " pacing=" + pacing_name(threads.pacing) +
                 " arrivals=" + (cell.poisson ? "poisson" : "uniform") +
                 " receiver_cpu=" + std::to_string(threads.receiver_cpu) +
                 (threads.shared ? " shared CPU: " + threads.note : "") +
                 (s.config().split ? " link=cross-host" : ""));
  state.counters["receiver_cpu"] = threads.receiver_cpu;
  state.counters["offered_rate"] = r.offered_rate;
  state.counters["achieved_rate"] = r.achieved_rate;
  state.counters["send_rate"] = r.send_rate;
  state.counters["max_rate"] = cell.load_pct > 0 ? cell.max_rate : 0;
  state.counters["load_pct"] = cell.load_pct;
  state.counters["saturated"] = r.saturated ? 1 : 0;
  state.counters["shared_cpu"] = threads.shared ? 1 : 0;
  state.counters["messages"] = static_cast<double>(r.messages);
  record_latency(state, "lat", r.corrected);
  record_latency(state, "unc", r.uncorrected);
  record_latency(state, "lag", r.lag);
  hgrm_files::save("corrected", r.corrected);
  hgrm_files::save("uncorrected", r.uncorrected);
  hgrm_files::save("lag", r.lag);
}

double probe_max_rate(PeerSession& s, std::size_t size, std::chrono::nanoseconds window) {
  const RateThreads threads = rate_threads(s.config().placement, s.config().transport->info(), 0);
  warm_round_trips(s, size);
  std::uint32_t used = 0;
  RateSpec spec{.window = window,
                .pacing = threads.pacing,
                .verify = s.config().verify,
                .receiver_cpu = threads.receiver_cpu,
                .unblock = unblocker(s)};
  const double max =
      measure_max_rate(s.channel(), size, spec, s.upcoming_seq(), &s.watchdog(), &used);
  s.skip_seqs(used);
  if (!(max > 0)) throw ProtocolError("rate: the unpaced maximum could not be measured");
  return max;
}

void record_rtt(benchmark::State& state, const Histogram& hist) {
  state.counters["rtt_p50_ns"] = hist.percentile(50);
  state.counters["rtt_p90_ns"] = hist.percentile(90);
  state.counters["rtt_p99_ns"] = hist.percentile(99);
  state.counters["rtt_p999_ns"] = hist.percentile(99.9);
  state.counters["rtt_max_ns"] = static_cast<double>(hist.max());
  state.counters["rtt_mean_ns"] = hist.mean();
  state.counters["rtt_min_ns"] = static_cast<double>(hist.min());
  hgrm_files::save("rtt", hist);
}

std::string cell_label(const PeerSession& s) {
  return "pin=" + s.config().placement.describe() + " wait=" + s.config().transport->info().wait +
         (s.config().split ? " link=cross-host" : "");
}

CellFigure run_pingpong(benchmark::State& state, PeerSession& s, std::size_t size) {
  Channel& ch = s.channel();
  const bool verify = s.config().verify;
  AlignedBuffer proto(size);
  const std::uint32_t digest = fill_payload(proto, size);
  Outbox out(ch, proto);
  Inbox in(ch, size);

  Watchdog& dog = s.watchdog();
  auto request = [&](std::uint32_t seq) {
    stamp(out.begin(seq), seq, Kind::kPing, digest);
    out.finish();
  };
  auto take_reply = [&](std::uint32_t seq) {
    std::span<const std::byte> reply = in.next();
    dog.progress(seq);
    if (!reply_ok(reply, size, seq, verify)) throw ProtocolError(explain_reply(reply, seq, verify));
    in.done();
  };
  auto warm_end = Clock::now() + kWarmupBudget;
  for (int i = 0; i < kWarmupMsgs && Clock::now() < warm_end; ++i) {
    std::uint32_t seq = s.next_seq();
    request(seq);
    take_reply(seq);
  }

  // Each lap runs from just after one request is handed to the transport to just after
  // the next one is: the reply's wait, its check, and the next request. The clock is
  // read while that request is in flight, so reading it costs the round trip nothing;
  // read after the reply, it sat in the critical path (RttClock says what that cost).
  // The last request's reply is taken after the loop, untimed.
  auto cpu_before = s.cpu_sample();
  std::uint32_t seq = s.next_seq();
  RttClock clock;
  request(seq);
  clock.start();
  double seconds = 0;
  for (auto _ : state) {
    take_reply(seq);
    seq = s.next_seq();
    request(seq);
    const double lap = static_cast<double>(clock.lap()) * 1e-9;
    state.SetIterationTime(lap);
    seconds += lap;
  }
  take_reply(seq);

  record_placement(state, s, size);
  // The CPU window holds the iterations' round trips and the one taken after the loop.
  record_cpu(state, cpu_before, s.cpu_sample(), static_cast<double>(state.iterations() + 1));
  record_rtt(state, clock.histogram());
  return {static_cast<double>(clock.histogram().percentile(50)), seconds};
}

CellFigure run_throughput(benchmark::State& state, PeerSession& s, std::size_t size) {
  Channel& ch = s.channel();
  AlignedBuffer proto(size), in(kHeaderBytes + sizeof(CpuUse));
  const std::uint32_t digest = fill_payload(proto, size);
  Outbox out(ch, proto);

  auto warm_end = Clock::now() + kWarmupBudget;
  for (int i = 0; i < kWarmupMsgs && Clock::now() < warm_end; ++i) {
    std::uint32_t seq = s.next_seq();
    stamp(out.begin(seq), seq, Kind::kData, digest);
    out.finish();
  }
  sync(s, in);

  auto cpu_before = s.cpu_sample();
  Watchdog& dog = s.watchdog();
  StreamClock clock(state);
  for (auto _ : state) {
    std::uint32_t seq = s.next_seq();
    stamp(out.begin(seq), seq, Kind::kData, digest);
    out.finish();
    dog.progress(seq);
    clock.lap([&] { sync(s, in); });  // the peer has received and checked every message
  }

  record_cpu(state, cpu_before, s.cpu_sample(), static_cast<double>(state.iterations()));
  record_placement(state, s, size);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(size));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  // As Google Benchmark reckons it: the bytes over the manual time, which ends at the last
  // iteration's drain (StreamClock).
  const double seconds = clock.seconds();
  return {seconds > 0
              ? static_cast<double>(state.iterations()) * static_cast<double>(size) / seconds
              : 0,
          seconds};
}

void fail_repetition(benchmark::State& state, const std::string& why) {
  state.SkipWithError(why.c_str());
  // Only now does iterations() tell: 0 if the loop never started, max_iterations if it
  // did (inside a range-for loop it reads 0 either way).
  if (state.iterations() == 0)
    for (auto _ : state) {
    }
}

}  // namespace ipcbench
