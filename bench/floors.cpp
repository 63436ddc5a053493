#include "bench/floors.h"

#include <benchmark/benchmark.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>

#include "base/cleanup.h"
#include "base/error.h"
#include "base/liveness.h"
#include "base/process.h"
#include "base/wait.h"
#include "bench/hgrm_files.h"
#include "bench/protocol.h"
#include "bench/rtt_clock.h"
#include "bench/workloads.h"
#include "harness/aligned_buffer.h"
#include "transports/encodings.h"

namespace ipcbench {
namespace {

// The shared page of a floor. The round-trip floors hand a number back and forth:
// through `ball` alone (one line written by both sides) or, for the pair floor, out
// through `ball` and back through `back` (one line per direction, each written by one
// side only). The stream floor moves bytes through the ring after this page,
// `head` and `tail` counting bytes written and read.
struct alignas(64) Shared {
  alignas(64) std::atomic<std::uint32_t> ball;
  std::atomic<std::uint32_t> quit;  // beside `ball`: the partner polls no extra line
  alignas(64) std::atomic<std::uint32_t> back;
  alignas(64) std::atomic<std::uint64_t> head;
  alignas(64) std::atomic<std::uint64_t> tail;
};

constexpr std::size_t kStreamRing = std::size_t{8} << 20;  // as the zero-copy transport's
constexpr std::size_t kStreamPiece = 64 * 1024;            // as Outbox writes in place

// A forked partner process (no exec: it only touches the shared mapping), pinned to
// cpu, running body(shared page, ring) until told to quit.
class Partner {
 public:
  using Clock = std::chrono::steady_clock;
  template <class Body>
  Partner(int cpu, std::chrono::milliseconds stall_timeout, Body body,
          std::size_t ring_bytes = kStreamRing)
      : stall_timeout_(stall_timeout), pages_(kPage + ring_bytes) {
    s_ = new (pages_.base) Shared{};
    ring_ = static_cast<std::byte*>(pages_.base) + kPage;
    child_ = ChildProcess::fork_run(cpu, [&] { body(*s_, ring_); });
    watch_ = PeerWatch(child_.pid());  // should this throw, child_ ends the partner
  }
  // Ends the partner once the timed loop is over, and fails the floor if it died during
  // the run (a partner killed after its last hand-off is noticed only here) or does not
  // exit within the cell timeout (stopped or asleep: it is then killed). Without it, the
  // floor failed and child_ kills the partner.
  void finish() {
    s_->quit.store(1);
    // Move `ball` as well as setting `quit`: a sleeping partner that read both just
    // before would otherwise enter FUTEX_WAIT after this wake and sleep on. Changed, the
    // word makes that FUTEX_WAIT return at once, and the partner then sees `quit`.
    s_->ball.fetch_add(1, std::memory_order_release);
    futex_wake(s_->ball);
    pollfd pfd{watch_.fd(), POLLIN, 0};
    int ready;
    while ((ready = ::poll(&pfd, 1, static_cast<int>(stall_timeout_.count()))) < 0 &&
           errno == EINTR && !cleanup::interrupted()) {
    }
    const int poll_errno = errno;
    const std::string how = child_.finish(std::chrono::milliseconds(0));  // reaps, or kills
    if (cleanup::interrupted()) throw ProtocolError("interrupted");       // its handler killed it
    if (ready < 0) throw SysError("poll (floor partner)", poll_errno);
    if (ready == 0) throw stalled();
    if (how != describe_wait_status(0))
      throw ProtocolError("floor: the partner process died (" + how + ")");
  }
  Partner(const Partner&) = delete;
  Partner& operator=(const Partner&) = delete;
  Shared& shared() { return *s_; }
  std::byte* ring() { return ring_; }
  // For the measuring side's wait loops, asked now and then during one wait (`since`:
  // zero before the first ask): throws when the run was interrupted, the partner died,
  // or it has not answered within the cell timeout (stopped or stuck: it is then killed
  // when the floor ends).
  void check(Clock::time_point& since) const {
    if (cleanup::interrupted()) throw ProtocolError("interrupted");
    if (watch_.gone()) throw ProtocolError("floor: the partner process died");
    const auto now = Clock::now();
    if (since == Clock::time_point{}) since = now;
    if (now - since <= stall_timeout_) return;
    throw stalled();
  }

 private:
  ProtocolError stalled() const {
    return ProtocolError("floor: the partner did not answer within the cell timeout (" +
                         std::to_string(stall_timeout_.count()) + " ms)");
  }
  static constexpr std::size_t kPage = 4096;
  static_assert(sizeof(Shared) <= kPage);
  // The shared page and the ring after it, mapped before the fork: both processes use them.
  struct Pages {
    explicit Pages(std::size_t bytes)
        : bytes(bytes),
          base(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)) {
      if (base == MAP_FAILED) throw SysError("mmap (floor)", errno);
    }
    ~Pages() { ::munmap(base, bytes); }
    Pages(const Pages&) = delete;
    Pages& operator=(const Pages&) = delete;
    std::size_t bytes;
    void* base;
  };
  std::chrono::milliseconds stall_timeout_;
  Pages pages_;  // declared before child_: unmapped only once the partner is gone
  Shared* s_;
  std::byte* ring_;
  ChildProcess child_;
  PeerWatch watch_;
};

// Waits until word == want, spinning or sleeping on the futex, or until quit is set. The
// measuring side passes its partner, to give up when the run was interrupted or the
// partner died: asked now and then (a sleeper every 4th 10 ms wait), never per hand-off.
inline void await(std::atomic<std::uint32_t>& word, const std::atomic<std::uint32_t>& quit,
                  std::uint32_t want, bool sleep, const Partner* partner) {
  Partner::Clock::time_point since{};
  for (std::uint32_t i = 1;; ++i) {
    std::uint32_t v = word.load(std::memory_order_acquire);
    if (v == want || quit.load(std::memory_order_relaxed)) return;
    if (partner && (i & (sleep ? 3u : 0xffffu)) == 0) partner->check(since);
    if (sleep && partner) {
      futex_wait(word, v, std::chrono::milliseconds(10));
    } else if (sleep) {
      futex_wait(word, v);
    } else {
      cpu_relax();
    }
  }
}

inline void serve(std::atomic<std::uint32_t>& word, std::uint32_t v, bool sleep) {
  word.store(v, std::memory_order_release);
  if (sleep) futex_wake(word);
}

// The partner's side of a round-trip floor or probe: answers each hand-off on `ball`
// through `back` (pair) or `ball` itself, spinning or sleeping, until told to quit.
auto answer_round_trips(bool sleep, bool pair) {
  return [sleep, pair](Shared& s, std::byte*) {
    std::atomic<std::uint32_t>& back = pair ? s.back : s.ball;
    for (std::uint32_t v = 1; !s.quit.load(); v += 2) {
      await(s.ball, s.quit, v, sleep, nullptr);
      serve(back, v + 1, sleep);
    }
  };
}

// pair: out through `ball`, back through `back`; otherwise both ways through `ball`.
void round_trip_floor(benchmark::State& state, const Placement& pl,
                      std::chrono::milliseconds stall_timeout, bool sleep, bool pair) {
  if (std::string why = pl.spinning_refused(); !sleep && !why.empty())
    throw std::runtime_error(why);
  Partner partner(pl.peer_cpu, stall_timeout, answer_round_trips(sleep, pair));
  Shared& s = partner.shared();
  std::atomic<std::uint32_t>& back = pair ? s.back : s.ball;
  const std::atomic<std::uint32_t> never{0};  // the measuring side is never told to quit
  std::uint32_t v = 1;
  for (int i = 0; i < 1000; ++i, v += 2) {  // warm-up
    serve(s.ball, v, sleep);
    await(back, never, v + 1, sleep, &partner);
  }
  // Timed as the ping-pong workload times its round trips: each lap ends just after the
  // next hand-off, with the clock read while the ball is in flight.
  RttClock clock;
  serve(s.ball, v, sleep);
  clock.start();
  for (auto _ : state) {
    await(back, never, v + 1, sleep, &partner);
    v += 2;
    serve(s.ball, v, sleep);
    state.SetIterationTime(static_cast<double>(clock.lap()) * 1e-9);
  }
  await(back, never, v + 1, sleep, &partner);
  partner.finish();
  record_rtt(state, clock.histogram());
  state.counters["client_cpu"] = pl.client_cpu;
  state.counters["peer_cpu"] = pl.peer_cpu;
  state.SetLabel("pin=" + pl.describe() + (sleep ? " wait=futex" : " wait=spin"));
}

// Bytes streamed from this process to the partner through a shared ring: we copy each
// message in (64 KiB pieces, as a zero-copy sender writes in place), the partner reads
// every byte where it lies (payload_touch, as a zero-copy receiver) and hands the space
// back. No headers, no checks, no waiting strategy beyond spinning: what the two CPUs of
// this placement move between them, the mark for a shared-memory transport doing the same.
void stream_floor(benchmark::State& state, const Placement& pl,
                  std::chrono::milliseconds stall_timeout, std::size_t size) {
  if (std::string why = pl.spinning_refused(); !why.empty()) throw std::runtime_error(why);
  constexpr std::uint64_t kMask = kStreamRing - 1;
  Partner partner(pl.peer_cpu, stall_timeout, [](Shared& s, std::byte* ring) {
    std::uint64_t r = 0, sink = 0;
    for (;;) {
      const std::uint64_t h = s.head.load(std::memory_order_acquire);
      if (h == r) {
        if (s.quit.load(std::memory_order_relaxed)) break;
        cpu_relax();
        continue;
      }
      while (r < h) {  // release the space piece by piece, so the writer streams on
        std::size_t n = std::min<std::uint64_t>({h - r, kStreamPiece, kStreamRing - (r & kMask)});
        sink += payload_touch({ring + (r & kMask), n});
        r += n;
        s.tail.store(r, std::memory_order_release);
      }
    }
    benchmark::DoNotOptimize(sink);
  });
  Shared& s = partner.shared();
  std::byte* ring = partner.ring();
  AlignedBuffer src(size);
  std::memset(src.data(), 0x5a, size);
  std::uint64_t w = 0, tail = 0;
  auto wait_until = [&](auto done) {
    Partner::Clock::time_point since{};
    for (std::uint32_t i = 1; !done(); ++i) {
      cpu_relax();
      if ((i & 0xffff) == 0) partner.check(since);
    }
  };
  auto send = [&] {
    for (std::size_t off = 0; off < size;) {
      std::size_t n = std::min({size - off, kStreamPiece, kStreamRing - (w & kMask)});
      wait_until([&] {
        return kStreamRing - (w - tail) >= n ||
               kStreamRing - (w - (tail = s.tail.load(std::memory_order_acquire))) >= n;
      });
      std::memcpy(ring + (w & kMask), src.data() + off, n);
      w += n;
      off += n;
      s.head.store(w, std::memory_order_release);
    }
  };
  do send();  // warm-up: one lap, so every page of the ring is mapped on both sides
  while (w < kStreamRing);
  wait_until([&] { return s.tail.load(std::memory_order_acquire) == w; });
  StreamClock clock(state);
  for (auto _ : state) {
    send();  // the time ends when the partner has read every byte
    clock.lap([&] { wait_until([&] { return s.tail.load(std::memory_order_acquire) == w; }); });
  }
  partner.finish();
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(size));
  state.counters["msg_bytes"] = static_cast<double>(size);
  state.SetLabel("pin=" + pl.describe());
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

// One round trip of an encoding's codec (transports/encodings.h) on this thread: no
// IPC, no second process. The real time per iteration is the time per round trip.
void encoding_floor(benchmark::State& state, EncodingRoundTrip round_trip, std::size_t size) {
  std::vector<std::byte> payload(size, std::byte{0x5a}), scratch;
  if (round_trip(payload, scratch) != size)  // also grows scratch before the clock runs
    throw ProtocolError("encoding floor: the round trip lost bytes");
  for (auto _ : state) {
    benchmark::DoNotOptimize(round_trip(payload, scratch));
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(size));
  state.counters["msg_bytes"] = static_cast<double>(size);
}

// --- the floor beside each cell ----------------------------------------------------

// A probe runs its hand-offs for this long (at least kProbeMinLaps round trips, or
// kProbeMinSlots slots of the copying channel), after a warm-up.
constexpr auto kProbeBudget = std::chrono::milliseconds(2);
constexpr int kProbeWarmLaps = 50;
constexpr int kProbeMinLaps = 100;
constexpr std::uint64_t kProbeMinSlots = 16;

// p50 ns of a round trip handed off as round_trip_floor does (pair: out through `ball`,
// back through `back`, spinning; otherwise both ways through `ball`, sleeping on futexes).
double rtt_probe(const Placement& pl, std::chrono::milliseconds stall_timeout, bool pair) {
  const bool sleep = !pair;
  Partner partner(pl.peer_cpu, stall_timeout, answer_round_trips(sleep, pair), 0);
  Shared& s = partner.shared();
  std::atomic<std::uint32_t>& back = pair ? s.back : s.ball;
  const std::atomic<std::uint32_t> never{0};
  std::uint32_t v = 1;
  for (int i = 0; i < kProbeWarmLaps; ++i, v += 2) {
    serve(s.ball, v, sleep);
    await(back, never, v + 1, sleep, &partner);
  }
  RttClock clock;
  serve(s.ball, v, sleep);
  clock.start();
  const auto until = Partner::Clock::now() + kProbeBudget;
  for (int laps = 1;; ++laps) {
    await(back, never, v + 1, sleep, &partner);
    v += 2;
    serve(s.ball, v, sleep);
    clock.lap();
    if (laps >= kProbeMinLaps && Partner::Clock::now() >= until) break;
  }
  await(back, never, v + 1, sleep, &partner);
  partner.finish();
  return static_cast<double>(clock.histogram().percentile(50));
}

// Bytes per second through a copying channel of two shared slots, each of one message
// or of 64 KiB when messages are smaller: this process copies messages of the cell's size
// into the free slot, one memcpy per message (a message that straddles a slot's end goes
// in two pieces), and hands the slot over when it is full; the partner copies each
// message out the same way and frees the slot. A copying transport pays at least those
// two copies per message; the hand-off is paid once per slot. The figure is a slot's
// bytes over the median time from one slot handed over to the next. Spins on the slots'
// words, or sleeps on them (futexes) where spinning is refused.
double copy_probe(const Placement& pl, std::chrono::milliseconds stall_timeout, std::size_t size,
                  bool sleep) {
  size = std::max<std::size_t>(size, 1);
  const std::size_t slot_bytes = std::max(kStreamPiece, (size + 63) / 64 * 64);
  // The pieces of one slot's bytes, from stream position pos (a multiple of the slot):
  // copy(offset in the slot, offset in the message, bytes) per piece.
  auto pieces = [size, slot_bytes](std::uint64_t pos, auto copy) {
    for (std::size_t at = 0; at < slot_bytes;) {
      const std::size_t in_msg = (pos + at) % size;
      const std::size_t n = std::min(size - in_msg, slot_bytes - at);
      copy(at, in_msg, n);
      at += n;
    }
  };
  AlignedBuffer src(size), dst(size);  // dst: the partner's (its own copy after the fork)
  std::memset(src.data(), 0x5a, size);
  // Slot 0 is full while `ball` is 1, slot 1 while `back` is; 0 is empty.
  Partner partner(
      pl.peer_cpu, stall_timeout,
      [sleep, pieces, slot_bytes, out = dst.data()](Shared& s, std::byte* ring) {
        for (std::uint64_t n = 0; !s.quit.load(std::memory_order_relaxed); ++n) {
          std::atomic<std::uint32_t>& full = (n & 1) ? s.back : s.ball;
          await(full, s.quit, 1, sleep, nullptr);
          if (s.quit.load(std::memory_order_relaxed)) break;
          const std::byte* slot = ring + (n & 1) * slot_bytes;
          pieces(n * slot_bytes, [&](std::size_t at, std::size_t in_msg, std::size_t len) {
            std::memcpy(out + in_msg, slot + at, len);
          });
          serve(full, 0, sleep);
        }
      },
      2 * slot_bytes);
  Shared& s = partner.shared();
  std::byte* ring = partner.ring();
  const std::atomic<std::uint32_t> never{0};
  std::uint64_t n = 0;  // slots handed over
  auto put = [&] {
    std::atomic<std::uint32_t>& full = (n & 1) ? s.back : s.ball;
    await(full, never, 0, sleep, &partner);
    std::byte* slot = ring + (n & 1) * slot_bytes;
    pieces(n * slot_bytes, [&](std::size_t at, std::size_t in_msg, std::size_t len) {
      std::memcpy(slot + at, src.data() + in_msg, len);
    });
    serve(full, 1, sleep);
    ++n;
  };
  auto drained = [&] {
    await(s.ball, never, 0, sleep, &partner);
    await(s.back, never, 0, sleep, &partner);
  };
  for (int i = 0; i < 4; ++i) put();  // both slots' pages touched on both sides
  drained();
  // Each lap is the time from one slot handed over to the next: in steady state, the
  // slower side's copy of a slot. Its median, like a round trip's p50, is not moved by
  // the odd lap in which another process took the CPU.
  RttClock clock;
  clock.start();
  const auto until = Partner::Clock::now() + kProbeBudget;
  for (std::uint64_t laps = 1;; ++laps) {
    put();
    clock.lap();
    if (laps >= kProbeMinSlots && Partner::Clock::now() >= until) break;
  }
  drained();
  const double slot_ns = static_cast<double>(clock.histogram().percentile(50));
  // The partner may sleep on either word: quit, then change both and wake both.
  s.quit.store(1);
  for (std::atomic<std::uint32_t>* w : {&s.ball, &s.back}) {
    w->fetch_add(2, std::memory_order_release);
    futex_wake(*w);
  }
  partner.finish();
  return slot_ns > 0 ? static_cast<double>(slot_bytes) * 1e9 / slot_ns : 0;
}

// Floors that failed (their partner died or stalled, the run was interrupted), by name.
std::set<std::string>& failed() {
  static std::set<std::string> names;
  return names;
}

// Registers a floor, run after quiet(); an exception fails the repetition, with its
// message, and the floor.
template <class Body>
benchmark::internal::Benchmark* add_floor(const std::string& name,
                                          const std::function<void()>& quiet, Body body) {
  return benchmark::RegisterBenchmark(name.c_str(), [name, quiet, body](benchmark::State& st) {
    hgrm_files::Cell cell(name, st);
    try {
      quiet();
      body(st);
    } catch (const std::exception& e) {
      failed().insert(name);
      fail_repetition(st, e.what());
    }
  });
}

}  // namespace

std::size_t failed_floors() { return failed().size(); }

CellFloor cell_floor_for(const std::string& workload, const std::string& wait,
                         const Placement& pl) {
  if (workload == "throughput") return CellFloor::kCopyStream;
  return wait != "blocking" && pl.spinning_refused().empty() ? CellFloor::kPairRtt
                                                             : CellFloor::kFutexRtt;
}

const char* cell_floor_name(CellFloor k) {
  switch (k) {
    case CellFloor::kPairRtt:
      return "pair_rtt";
    case CellFloor::kFutexRtt:
      return "futex_rtt";
    case CellFloor::kCopyStream:
      return "copy_stream";
  }
  return "";
}

double probe_cell_floor(CellFloor k, const Placement& pl, std::size_t size,
                        std::chrono::milliseconds stall_timeout) {
  switch (k) {
    case CellFloor::kPairRtt:
      return rtt_probe(pl, stall_timeout, true);
    case CellFloor::kFutexRtt:
      return rtt_probe(pl, stall_timeout, false);
    case CellFloor::kCopyStream:
      return copy_probe(pl, stall_timeout, size, !pl.spinning_refused().empty());
  }
  return 0;
}

double floor_change(double before, double after) {
  const double lo = std::min(before, after), hi = std::max(before, after);
  return lo > 0 ? hi / lo - 1 : 0;
}

bool host_changed(double before, double after) {
  return floor_change(before, after) > kHostChangeMargin;
}

void record_cell_floor(benchmark::State& state, CellFloor k, double before, double after,
                       double figure) {
  const double floor = (before + after) / 2;
  state.counters["floor_before"] = before;
  state.counters["floor_after"] = after;
  state.counters["floor"] = floor;
  // Cost ÷ floor cost, as every "× floor" of the report: a round trip's time ÷ the
  // probe's; for a stream, the probe's bytes/s ÷ the cell's (its time per byte ÷ the
  // probe's). 1 is the floor itself; larger is further from it.
  if (figure > 0 && floor > 0)
    state.counters["floor_ratio"] = k == CellFloor::kCopyStream ? floor / figure : figure / floor;
  state.counters["floor_change"] = floor_change(before, after);
  state.counters["host_changed"] = host_changed(before, after) ? 1 : 0;
}

void register_floors(const Placement& pl, const std::vector<std::size_t>& sizes,
                     std::chrono::milliseconds limit, std::function<void()> quiet) {
  add_floor("floor/cacheline_rtt", quiet,
            [pl, limit](benchmark::State& st) { round_trip_floor(st, pl, limit, false, false); })
      ->UseManualTime()
      ->Unit(benchmark::kNanosecond);
  add_floor("floor/cacheline_pair_rtt", quiet,
            [pl, limit](benchmark::State& st) { round_trip_floor(st, pl, limit, false, true); })
      ->UseManualTime()
      ->Unit(benchmark::kNanosecond);
  add_floor("floor/futex_rtt", quiet,
            [pl, limit](benchmark::State& st) { round_trip_floor(st, pl, limit, true, false); })
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
  add_floor("floor/syscall", quiet, syscall_floor)->UseRealTime();
  for (std::size_t size : sizes)
    add_floor("floor/memcpy/" + std::to_string(size), quiet, [size](benchmark::State& st) {
      memcpy_floor(st, size);
    })->UseRealTime();
  for (std::size_t size : sizes)
    add_floor("floor/shm_stream/" + std::to_string(size), quiet,
              [pl, limit, size](benchmark::State& st) { stream_floor(st, pl, limit, size); })
        ->UseManualTime();
  for (const Encoding& e : encodings())
    for (std::size_t size : sizes)
      add_floor("floor/encoding-" + e.name + "/" + std::to_string(size), quiet,
                [rt = e.round_trip, size](benchmark::State& st) { encoding_floor(st, rt, size); })
          ->UseRealTime()
          ->Unit(benchmark::kNanosecond);
}

}  // namespace ipcbench
