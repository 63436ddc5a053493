// What the ping-pong loop adds to every round trip besides the transport, measured on
// the same code the loop runs (bench/rtt_clock.h, bench/protocol.h).
// Run: build/ipcbench-bookkeeping.
#include <benchmark/benchmark.h>

#include <chrono>
#include <vector>

#include "bench/protocol.h"
#include "bench/rtt_clock.h"
#include "harness/histogram.h"

namespace ipcbench {
namespace {

using Clock = std::chrono::steady_clock;

// Everything the ping-pong loop does per round trip except send and recv: the sequence
// marks and the header, one clock read and histogram record (RttClock::lap), the reply
// check, and SetIterationTime. Real time: the loop's whole cost per iteration is the
// bookkeeping.
void BM_RoundTripBookkeeping(benchmark::State& state) {
  std::vector<std::byte> msg(64);
  const std::uint32_t digest = fill_payload(msg, 64);
  const std::vector<std::byte> pattern = msg;
  RttClock clock;
  clock.start();
  std::uint32_t seq = 0;
  for (auto _ : state) {
    ++seq;
    mark_payload(std::span(msg).subspan(kHeaderBytes), std::span(pattern).subspan(kHeaderBytes),
                 seq);
    stamp(msg, seq, Kind::kPing, digest);
    benchmark::DoNotOptimize(msg.data());  // where send + recv would be
    benchmark::ClobberMemory();
    std::uint64_t rtt = clock.lap();
    if (!reply_ok(msg, msg.size(), seq, false)) state.SkipWithError("bad reply");
    state.SetIterationTime(static_cast<double>(rtt) * 1e-9);
  }
  benchmark::DoNotOptimize(clock.histogram().percentile(50));
}
BENCHMARK(BM_RoundTripBookkeeping)->UseRealTime();

void BM_ClockRead(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(Clock::now());
}
BENCHMARK(BM_ClockRead);

void BM_HistogramRecord(benchmark::State& state) {
  Histogram hist;
  std::uint64_t v = 20000;
  for (auto _ : state) {
    hist.record(v);
    v = v * 1103515245 % 1000003 + 10000;
  }
  benchmark::DoNotOptimize(hist.count());
}
BENCHMARK(BM_HistogramRecord);

void BM_PayloadDigest(benchmark::State& state) {
  std::vector<std::byte> msg(static_cast<std::size_t>(state.range(0)));
  fill_payload(msg, 1);
  for (auto _ : state) benchmark::DoNotOptimize(payload_digest(msg));
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_PayloadDigest)->Arg(64)->Arg(65536)->Arg(1 << 20);

// What --verify pays per message: the digest with the sequence marks undone.
void BM_MarkedDigest(benchmark::State& state) {
  std::vector<std::byte> msg(static_cast<std::size_t>(state.range(0)));
  fill_payload(msg, 1);
  std::uint32_t seq = 0;
  for (auto _ : state) benchmark::DoNotOptimize(marked_digest(msg, ++seq));
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_MarkedDigest)->Arg(64)->Arg(65536)->Arg(1 << 20);

// What the sender pays per message for the marks (one word per 4 KiB and the last block).
void BM_SequenceMarks(benchmark::State& state) {
  std::vector<std::byte> pattern(static_cast<std::size_t>(state.range(0))), msg;
  fill_payload(pattern, 1);
  msg = pattern;
  std::uint32_t seq = 0;
  for (auto _ : state) {
    mark_payload(msg, pattern, ++seq);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_SequenceMarks)->Arg(64)->Arg(4096)->Arg(65536)->Arg(1 << 20);

}  // namespace
}  // namespace ipcbench

BENCHMARK_MAIN();
