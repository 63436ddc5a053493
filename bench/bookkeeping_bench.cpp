// What the ping-pong loop adds to every round trip besides the transport: two clock
// reads, stamping the header, checking the reply header, recording into the histogram
// and handing Google Benchmark the iteration time. Run: build/ipcbench-bookkeeping.
#include <benchmark/benchmark.h>

#include <chrono>
#include <vector>

#include "bench/protocol.h"
#include "harness/histogram.h"

namespace ipcbench {
namespace {

using Clock = std::chrono::steady_clock;

void BM_RoundTripBookkeeping(benchmark::State& state) {
  std::vector<std::byte> msg(64);
  const std::uint32_t digest = fill_payload(msg, 64);
  Histogram hist;
  std::uint32_t seq = 0;
  for (auto _ : state) {
    ++seq;
    stamp(msg, seq, Kind::kPing, digest);
    auto t0 = Clock::now();
    benchmark::DoNotOptimize(msg.data());  // where send + recv would be
    benchmark::ClobberMemory();
    auto t1 = Clock::now();
    MsgHeader h = read_header(msg);
    if (h.seq != seq || h.kind != Kind::kPing || h.len != msg.size()) state.SkipWithError("bad");
    auto rtt = static_cast<std::uint64_t>((t1 - t0).count());
    hist.record(rtt + 20000);  // a realistic 20 µs round trip lands in a realistic bucket
    state.SetIterationTime(static_cast<double>(rtt) * 1e-9);
  }
  benchmark::DoNotOptimize(hist.percentile(50));
}
// Real time: the loop's whole cost per iteration is the bookkeeping cost.
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

}  // namespace
}  // namespace ipcbench

BENCHMARK_MAIN();
