// What the ping-pong loop adds to every round trip besides the transport, measured on
// the same code the loop runs (bench/rtt_clock.h, bench/protocol.h), and what it costs
// a round trip depending on where the clock is read.
// Run: build/ipcbench-bookkeeping --benchmark_repetitions=9 (interleaved).
#include <benchmark/benchmark.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <vector>

#include "bench/protocol.h"
#include "bench/rtt_clock.h"
#include "harness/histogram.h"

namespace ipcbench {
namespace {

using Clock = std::chrono::steady_clock;

// Everything the ping-pong loop does per round trip except send and recv: stamp the
// header, one clock read and histogram record (RttClock::lap), the reply check, and
// SetIterationTime. Real time: the loop's whole cost per iteration is the bookkeeping,
// CPU work that lengthens a round trip only where it sits between the reply and the
// next request (BM_CacheLineRoundTrip shows the difference).
void BM_RoundTripBookkeeping(benchmark::State& state) {
  std::vector<std::byte> msg(64);
  const std::uint32_t digest = fill_payload(msg, 64);
  RttClock clock;
  clock.start();
  std::uint32_t seq = 0;
  for (auto _ : state) {
    ++seq;
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

// A cache line handed back and forth between this process (CPU 0) and a forked partner
// (CPU 1), one RttClock lap per round trip, read where the ping-pong loop reads it
// (arg 1: just after the hand-off, while the line is in flight) or after the line came
// back (arg 0: between the reply and the next hand-off). Manual time: the laps.
void BM_CacheLineRoundTrip(benchmark::State& state) {
  const bool in_flight = state.range(0) == 1;
  auto pin = [](int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return ::sched_setaffinity(0, sizeof set, &set) == 0;
  };
  cpu_set_t before;
  ::sched_getaffinity(0, sizeof before, &before);
  void* page = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) return state.SkipWithError("mmap failed");
  auto* ball = new (page) std::atomic<std::uint32_t>{0};
  // The partner inherits CPU 1; then this process moves to CPU 0.
  const pid_t pid = pin(1) ? ::fork() : -1;
  if (pid == 0) {
    for (std::uint32_t v = 1;; v += 2) {  // ends by SIGKILL
      while (ball->load(std::memory_order_acquire) != v) __builtin_ia32_pause();
      ball->store(v + 1, std::memory_order_release);
    }
  }
  if (pid < 0 || !pin(0)) state.SkipWithError("needs CPUs 0 and 1 and fork");
  std::uint32_t v = 1;
  auto await_reply = [&] {
    while (ball->load(std::memory_order_acquire) != v + 1) __builtin_ia32_pause();
    v += 2;
  };
  RttClock clock;
  ball->store(v, std::memory_order_release);
  clock.start();
  for (auto _ : state) {
    await_reply();
    if (in_flight) ball->store(v, std::memory_order_release);
    state.SetIterationTime(static_cast<double>(clock.lap()) * 1e-9);
    if (!in_flight) ball->store(v, std::memory_order_release);
  }
  if (pid > 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  ::sched_setaffinity(0, sizeof before, &before);
  ::munmap(page, 4096);
  state.counters["rtt_p50_ns"] = clock.histogram().percentile(50);
  state.SetLabel(in_flight ? "clock read in flight" : "clock read after the reply");
}
BENCHMARK(BM_CacheLineRoundTrip)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kNanosecond);

}  // namespace
}  // namespace ipcbench

BENCHMARK_MAIN();
