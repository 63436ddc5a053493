#include "bench/floors.h"

#include <benchmark/benchmark.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>

#include "bench/rtt_clock.h"
#include "bench/workloads.h"
#include "harness/aligned_buffer.h"
#include "harness/cleanup.h"
#include "harness/error.h"

namespace ipcbench {
namespace {

struct alignas(64) Shared {
  std::atomic<std::uint32_t> ball;  // odd: the client served; even: the peer returned it
  std::atomic<std::uint32_t> quit;
};

void futex(std::atomic<std::uint32_t>& w, int op, std::uint32_t val) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&w), op, val, nullptr, nullptr, 0);
}

// Waits until ball == want, spinning or sleeping on the futex. The measuring side
// (checked) gives up, now and then, when the run was interrupted (its partner is gone).
inline void await(Shared& s, std::uint32_t want, bool sleep, bool checked) {
  for (std::uint32_t i = 1;; ++i) {
    std::uint32_t v = s.ball.load(std::memory_order_acquire);
    if (v == want || s.quit.load(std::memory_order_relaxed)) return;
    if (checked && (sleep || (i & 0xffff) == 0) && cleanup::interrupted())
      throw ProtocolError("interrupted");
    if (sleep) {
      timespec ts{0, checked ? 10'000'000 : 0};
      ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&s.ball), FUTEX_WAIT, v,
                checked ? &ts : nullptr, nullptr, 0);
    } else {
      __builtin_ia32_pause();
    }
  }
}

inline void serve(Shared& s, std::uint32_t v, bool sleep) {
  s.ball.store(v, std::memory_order_release);
  if (sleep) futex(s.ball, FUTEX_WAKE, 1);
}

// A forked partner process (no exec: it only touches the shared page), pinned to cpu.
class Partner {
 public:
  Partner(int cpu, bool sleep) {
    void* p =
        ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw SysError("mmap (floor)", errno);
    s_ = new (p) Shared{};
    pid_ = ::fork();
    if (pid_ < 0) throw SysError("fork (floor)", errno);
    if (pid_ > 0) cleanup::add_pid(pid_);
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::signal(SIGINT, SIG_DFL);  // not the runner's graceful handler: just go
      ::signal(SIGTERM, SIG_DFL);
      if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        ::sched_setaffinity(0, sizeof set, &set);
      }
      for (std::uint32_t v = 1; !s_->quit.load(); v += 2) {
        await(*s_, v, sleep, false);
        serve(*s_, v + 1, sleep);
      }
      ::_exit(0);
    }
  }
  ~Partner() {
    s_->quit.store(1);
    futex(s_->ball, FUTEX_WAKE, 1);
    ::waitpid(pid_, nullptr, 0);
    cleanup::forget_pid(pid_);
    ::munmap(s_, sizeof(Shared));
  }
  Shared& shared() { return *s_; }

 private:
  Shared* s_;
  pid_t pid_;
};

void round_trip_floor(benchmark::State& state, const Placement& pl, bool sleep) {
  try {
    Partner partner(pl.peer_cpu, sleep);
    Shared& s = partner.shared();
    std::uint32_t v = 1;
    for (int i = 0; i < 1000; ++i, v += 2) {  // warm-up
      serve(s, v, sleep);
      await(s, v + 1, sleep, true);
    }
    RttClock clock;
    clock.start();
    for (auto _ : state) {
      serve(s, v, sleep);
      await(s, v + 1, sleep, true);
      v += 2;
      state.SetIterationTime(static_cast<double>(clock.lap()) * 1e-9);
    }
    record_rtt(state, clock.histogram());
    state.counters["client_cpu"] = pl.client_cpu;
    state.counters["peer_cpu"] = pl.peer_cpu;
    state.SetLabel("pin=" + pl.describe() + (sleep ? " wait=futex" : " wait=spin"));
  } catch (const std::exception& e) {
    fail_repetition(state, e.what());
  }
}

void syscall_floor(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(::syscall(SYS_getppid));
  state.counters["ns_per_call"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 1e-9,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void memcpy_floor(benchmark::State& state, std::size_t size) {
  AlignedBuffer src(size), dst(size);
  std::memset(src.data(), 0x5a, size);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), size);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(size));
  state.counters["msg_bytes"] = static_cast<double>(size);
}

}  // namespace

void register_floors(const Placement& placement, const std::vector<std::size_t>& sizes) {
  benchmark::RegisterBenchmark(
      "floor/cacheline_rtt",
      [placement](benchmark::State& st) { round_trip_floor(st, placement, false); })
      ->UseManualTime()
      ->Unit(benchmark::kNanosecond);
  benchmark::RegisterBenchmark(
      "floor/futex_rtt",
      [placement](benchmark::State& st) { round_trip_floor(st, placement, true); })
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("floor/syscall", syscall_floor)->UseRealTime();
  for (std::size_t size : sizes) {
    benchmark::RegisterBenchmark(("floor/memcpy/" + std::to_string(size)).c_str(),
                                 [size](benchmark::State& st) { memcpy_floor(st, size); })
        ->UseRealTime();
  }
}

}  // namespace ipcbench
