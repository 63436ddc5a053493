#include "bench/workloads.h"

#include <chrono>
#include <vector>

#include "base/error.h"
#include "bench/hgrm_files.h"
#include "bench/mailbox.h"
#include "bench/protocol.h"
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
  state.SetLabel("pin=" + p.describe() + " wait=" + s.config().transport->info().wait);
}

// Why a reply failed reply_ok, off the fast path: what is wrong, or what the peer said.
std::string explain_reply(std::span<const std::byte> reply, std::uint32_t seq, bool verify) {
  if (reply.empty()) return "peer closed the link";
  if (reply.size() >= kHeaderBytes && read_header(reply).kind == Kind::kError)
    return "peer: " + std::string(reinterpret_cast<const char*>(reply.data()) + kHeaderBytes,
                                  reply.size() - kHeaderBytes);
  std::string err = check_message(reply, Kind::kPing, seq, verify);
  return err.empty() ? "reply differs from the request" : err;
}

// CPU per message of both processes over the measured run (msgs = round trips for
// pingpong, messages for throughput), and context switches of both per message.
void record_cpu(benchmark::State& state, const std::pair<CpuUse, CpuUse>& before,
                const std::pair<CpuUse, CpuUse>& after, double msgs) {
  if (msgs <= 0) return;
  auto cpu = [](const CpuUse& a, const CpuUse& b) {
    return static_cast<double>(b.cpu_ns - a.cpu_ns);
  };
  auto csw = [](const CpuUse& a, const CpuUse& b) {
    return static_cast<double>((b.voluntary_switches + b.involuntary_switches) -
                               (a.voluntary_switches + a.involuntary_switches));
  };
  state.counters["cpu_client_ns_per_msg"] = cpu(before.first, after.first) / msgs;
  state.counters["cpu_peer_ns_per_msg"] = cpu(before.second, after.second) / msgs;
  state.counters["ctx_switches_per_msg"] =
      (csw(before.first, after.first) + csw(before.second, after.second)) / msgs;
}

void sync(PeerSession& s, std::span<std::byte> buf) {
  std::uint32_t seq = s.next_seq();
  std::byte msg[kHeaderBytes];
  stamp(msg, seq, Kind::kSync, payload_digest({}));
  s.channel().send(msg);
  expect(s.channel(), buf, Kind::kAck, seq, false);
}

}  // namespace

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

void run_pingpong(benchmark::State& state, PeerSession& s, std::size_t size) {
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
  for (auto _ : state) {
    take_reply(seq);
    seq = s.next_seq();
    request(seq);
    state.SetIterationTime(static_cast<double>(clock.lap()) * 1e-9);
  }
  take_reply(seq);

  record_placement(state, s, size);
  // The CPU window holds the iterations' round trips and the one taken after the loop.
  record_cpu(state, cpu_before, s.cpu_sample(), static_cast<double>(state.iterations() + 1));
  record_rtt(state, clock.histogram());
}

void run_throughput(benchmark::State& state, PeerSession& s, std::size_t size) {
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
