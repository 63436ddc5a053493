#include "bench/rate.h"

#include <sched.h>
#include <sys/prctl.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <exception>
#include <functional>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/wait.h"
#include "bench/mailbox.h"
#include "bench/protocol.h"
#include "harness/aligned_buffer.h"
#include "harness/placement.h"
#include "harness/watchdog.h"

namespace ipcbench {
namespace {

// steady_clock is CLOCK_MONOTONIC here (libstdc++), the clock clock_nanosleep sleeps on.
std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// This thread's CPU time (a system call: read around a whole run, never per message).
std::int64_t thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void sleep_until_ns(std::int64_t t) {
  timespec ts{static_cast<time_t>(t / 1'000'000'000), static_cast<long>(t % 1'000'000'000)};
  while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

// The calling thread's timer slack at 1 ns while alive (the default, 50 µs, would let
// every sleep overshoot by up to that much), restored after.
class TightTimers {
 public:
  TightTimers() : old_(::prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0)) {
    ::prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);
  }
  ~TightTimers() {
    if (old_ > 0) ::prctl(PR_SET_TIMERSLACK, static_cast<unsigned long>(old_), 0, 0, 0);
  }
  TightTimers(const TightTimers&) = delete;
  TightTimers& operator=(const TightTimers&) = delete;

 private:
  long old_;
};

// The receiver thread: takes the echoes of pings first_seq, first_seq + 1, … in order
// until the kAck that answers the kSync sent after the last one, and hands each to
// on_reply(index, receipt time). Errors are kept for the sender to rethrow.
class Receiver {
 public:
  template <class OnReply>
  Receiver(Channel& ch, std::size_t size, bool verify, int cpu, std::uint32_t first_seq,
           Watchdog* dog, std::function<void()> unblock, OnReply on_reply)
      : thread_([this, &ch, size, verify, cpu, first_seq, dog, unblock, on_reply]() mutable {
          try {
            pin_this_thread(cpu);
            Inbox in(ch, std::max(size, kHeaderBytes));
            for (std::uint32_t seq = first_seq;; ++seq) {
              std::span<const std::byte> msg = in.next();
              const std::int64_t t = now_ns();
              if (msg.size() >= kHeaderBytes && read_header(msg).kind == Kind::kAck) {
                if (std::string err = check_message(msg, Kind::kAck, seq, false); !err.empty())
                  throw ProtocolError(err);
                in.done();
                return;
              }
              if (!reply_ok(msg, size, seq, verify))
                throw ProtocolError(explain_reply(msg, seq, verify));
              in.done();
              if (dog) dog->progress(seq);
              on_reply(seq - first_seq, t);
            }
          } catch (...) {
            error_ = std::current_exception();
            failed_.store(true, std::memory_order_release);
            unblock();  // the sender may be blocked on a link nobody drains any more
          }
        }) {}
  ~Receiver() {
    if (thread_.joinable()) thread_.join();
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  // Waits for the thread; rethrows what stopped it, if anything did.
  void finish() {
    thread_.join();
    if (error_) std::rethrow_exception(error_);
  }
  // After the sender failed with `sent`: ends the receiver's wait unless it had failed
  // already, waits for it, and rethrows the first cause: the receiver's error when it
  // had failed first (the sender's failure then followed from the unblocking), else
  // the sender's.
  [[noreturn]] void fail(std::exception_ptr sent, bool receiver_first,
                         const std::function<void()>& unblock) {
    if (!receiver_first) unblock();
    thread_.join();
    std::rethrow_exception(receiver_first && error_ ? error_ : sent);
  }

 private:
  std::exception_ptr error_;
  std::atomic<bool> failed_{false};
  std::thread thread_;  // last: it uses the members above
};

// The sender's side of one run: the cell's ping, stamped per sequence number.
class PingSender {
 public:
  PingSender(Channel& ch, std::size_t size)
      : ch_(ch), proto_(size), digest_(fill_payload(proto_, size)), out_(ch, proto_) {}
  void ping(std::uint32_t seq) {
    stamp(out_.begin(seq), seq, Kind::kPing, digest_);
    out_.finish();
  }
  void sync(std::uint32_t seq) {
    std::byte msg[kHeaderBytes];
    stamp(msg, seq, Kind::kSync, payload_digest({}));
    ch_.send(msg);
  }

 private:
  Channel& ch_;
  AlignedBuffer proto_;
  std::uint32_t digest_;
  Outbox out_;
};

// Duplex use for the lifetime of one run, also when it throws.
class DuplexScope {
 public:
  explicit DuplexScope(Channel& ch) : ch_(ch) { ch_.set_duplex(true); }
  ~DuplexScope() { ch_.set_duplex(false); }
  DuplexScope(const DuplexScope&) = delete;
  DuplexScope& operator=(const DuplexScope&) = delete;

 private:
  Channel& ch_;
};

double rate_of(std::uint64_t n, std::int64_t first, std::int64_t last) {
  return n >= 2 && last > first
             ? static_cast<double>(n - 1) * 1e9 / static_cast<double>(last - first)
             : 0.0;
}

// The intended send times, as offsets from t_0 in nanoseconds.
std::vector<std::int64_t> schedule(std::uint64_t n, double rate, bool poisson, std::uint64_t seed) {
  std::vector<std::int64_t> off(n);
  if (!poisson) {
    for (std::uint64_t i = 0; i < n; ++i)
      off[i] = std::llround(static_cast<double>(i) * 1e9 / rate);
    return off;
  }
  std::mt19937_64 gen(seed);
  std::exponential_distribution<double> gap(rate);  // seconds between arrivals
  double t = 0;
  for (std::uint64_t i = 1; i < n; ++i) {
    t += gap(gen);
    off[i] = std::llround(t * 1e9);
  }
  return off;
}

// Time for the receiver thread to start (and pin itself) before the first send is due.
constexpr std::int64_t kStartLeadNs = 2'000'000;

std::chrono::steady_clock::time_point time_point_of(std::int64_t ns) {
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns));
}

// Pipelining on one thread (TransportInfo::pipelining "one thread"): request i goes out
// once due(i) has come, while fewer than the channel's pipeline_room() are unanswered;
// until then the thread waits for replies (Channel::wait_readable) and takes each as it
// arrives. A reply that has arrived is taken before the next send, so its receipt time
// is not a send late. more(i): whether there is a request i. on_send(i, t) is called
// just before request i goes out, on_reply(i, t) as its echo is taken. Returns the
// number of requests sent; a kSync follows them, and its kAck ends the run.
template <class More, class Due, class OnSend, class OnReply>
std::uint64_t one_thread(Channel& ch, PingSender& tx, std::size_t size, bool verify,
                         std::uint32_t first_seq, Watchdog* dog, More more, Due due, OnSend on_send,
                         OnReply on_reply) {
  const std::size_t room = ch.pipeline_room();
  if (room == 0) throw ProtocolError("rate: this channel leaves no room for requests in flight");
  Inbox in(ch, std::max(size, kHeaderBytes));
  std::uint64_t sent = 0, got = 0;
  bool synced = false;
  // Takes the next message: an echo, or (after the kSync) the kAck; true for the kAck.
  auto take = [&]() -> bool {
    std::span<const std::byte> msg = in.next();
    const std::int64_t t = now_ns();
    const auto seq = static_cast<std::uint32_t>(first_seq + got);
    if (synced && got == sent) {
      if (std::string err = check_message(msg, Kind::kAck, seq, false); !err.empty())
        throw ProtocolError(
            msg.empty() || (msg.size() >= kHeaderBytes && read_header(msg).kind == Kind::kError)
                ? explain_reply(msg, seq, false)  // the link's end, or the peer's words
                : err);
      in.done();
      return true;
    }
    if (!reply_ok(msg, size, seq, verify)) throw ProtocolError(explain_reply(msg, seq, verify));
    in.done();
    if (dog) dog->progress(seq);
    on_reply(static_cast<std::uint32_t>(got++), t);
    return false;
  };
  const auto now = [] { return time_point_of(now_ns()); };
  for (;;) {
    if (!more(sent)) {
      tx.sync(static_cast<std::uint32_t>(first_seq + sent));
      synced = true;
      while (!take()) {
      }
      return sent;
    }
    if (sent - got >= room) {  // full: the next send waits, and its lag counts
      take();
      continue;
    }
    while (ch.wait_readable(now())) take();
    const std::int64_t when = due(sent);
    std::int64_t t = now_ns();
    if (t >= when) {
      on_send(sent, t);
      tx.ping(static_cast<std::uint32_t>(first_seq + sent++));
    } else if (ch.wait_readable(time_point_of(when))) {
      take();
    }
  }
}

}  // namespace

const char* pacing_name(Pacing p) {
  switch (p) {
    case Pacing::kSpin:
      return "spin";
    case Pacing::kSleepSpin:
      return "sleep+spin";
    case Pacing::kPollReplies:
      return "poll";
  }
  return "";
}

RateResult run_rate_schedule(Channel& ch, std::size_t size, const RateSpec& spec,
                             std::uint32_t first_seq, Watchdog* dog, std::uint32_t* used) {
  if (!(spec.rate > 0) || !std::isfinite(spec.rate))
    throw ProtocolError("rate: the offered rate must be a positive number");
  const double want = std::round(spec.rate * std::chrono::duration<double>(spec.window).count());
  if (want > static_cast<double>(kMaxScheduled))
    throw ProtocolError("rate: " + std::to_string(static_cast<std::uint64_t>(want)) +
                        " requests in one window; at most " + std::to_string(kMaxScheduled) +
                        " (shorten the window with --benchmark_min_time)");
  const std::uint64_t n = std::max<std::uint64_t>(2, static_cast<std::uint64_t>(want));
  // The rates are taken up to request k, the 99th percentile of the run: one late last
  // reply (a descheduled thread) must not mark a cell saturated, while a queue that grew
  // through the window still stretches the replies up to k.
  const std::uint64_t k = std::clamp<std::uint64_t>((n * 99 + 99) / 100, 2, n);
  const std::vector<std::int64_t> off = schedule(n, spec.rate, spec.poisson, spec.seed);
  auto actual = std::make_unique<std::atomic<std::int64_t>[]>(n);  // 0: not yet sent

  RateResult r;
  r.messages = n;
  r.offered_rate = spec.rate;
  r.scheduled_rate = rate_of(k, off.front(), off[k - 1]);
  std::int64_t first_rx = 0, last_rx = 0, kth_rx = 0, bad_order = -1;
  PingSender tx(ch, size);
  DuplexScope duplex(ch);
  TightTimers timers;
  const std::function<void()> unblock = spec.unblock ? spec.unblock : [&ch] { ch.abort(); };
  const std::int64_t t0 = now_ns() + kStartLeadNs;
  auto on_reply = [&](std::uint32_t i, std::int64_t t) {
    const std::int64_t sent = actual[i].load(std::memory_order_acquire);
    // A reply is never taken before its request was sent; if the clock said otherwise, a
    // latency would be negative: fail rather than record it.
    if (sent == 0 || t < sent) {
      if (bad_order < 0) bad_order = i;
      return;
    }
    r.corrected.record(static_cast<std::uint64_t>(t - (t0 + off[i])));
    r.uncorrected.record(static_cast<std::uint64_t>(t - sent));
    if (i == 0) first_rx = t;
    if (i == k - 1) kth_rx = t;
    last_rx = t;
  };
  if (spec.pacing == Pacing::kPollReplies) {
    one_thread(
        ch, tx, size, spec.verify, first_seq, dog, [n](std::uint64_t i) { return i < n; },
        [&](std::uint64_t i) { return t0 + off[i]; },
        [&](std::uint64_t i, std::int64_t t) {
          actual[i].store(t, std::memory_order_relaxed);
          r.lag.record(static_cast<std::uint64_t>(t - (t0 + off[i])));
        },
        on_reply);
    r.send_rate = rate_of(n, actual[0].load(), actual[n - 1].load());
  } else {
    Receiver rx(ch, size, spec.verify, spec.receiver_cpu, first_seq, dog, unblock, on_reply);
    std::uint64_t i = 0;
    const std::int64_t sender_cpu0 = thread_cpu_ns();
    try {
      for (; i < n && !rx.failed(); ++i) {
        const std::int64_t target = t0 + off[i];
        std::int64_t t = now_ns();
        if (t < target) {
          if (spec.pacing == Pacing::kSleepSpin &&
              target - t > std::chrono::nanoseconds(kSpinMargin).count()) {
            sleep_until_ns(target - std::chrono::nanoseconds(kSpinMargin).count());
            t = now_ns();
          }
          // Never early, whatever woke us. Sleep+spin yields while it spins, so that a
          // receiver sharing the CPU takes a reply at once rather than at the next tick.
          const std::int64_t spin0 = t;
          while ((t = now_ns()) < target)
            if (spec.pacing == Pacing::kSpin)
              cpu_relax();
            else
              sched_yield();
          r.pacing_spin_ns += t - spin0;
        }
        actual[i].store(t, std::memory_order_release);
        r.lag.record(static_cast<std::uint64_t>(t - target));
        tx.ping(first_seq + static_cast<std::uint32_t>(i));
      }
      if (i == n) {
        r.send_rate = rate_of(n, actual[0].load(), actual[n - 1].load());
        tx.sync(first_seq + static_cast<std::uint32_t>(n));
      }
    } catch (...) {
      rx.fail(std::current_exception(), rx.failed(), unblock);
    }
    // The spin's wall time also holds whatever ran while the sender yielded (a receiver
    // woken on its CPU); the sender cannot have burnt more than its own thread's CPU.
    r.pacing_spin_ns = std::min(r.pacing_spin_ns, thread_cpu_ns() - sender_cpu0);
    rx.finish();  // rethrows why the receiver stopped, if it did
  }
  if (bad_order >= 0)
    throw ProtocolError("rate: the reply to request " + std::to_string(bad_order) +
                        " arrived before the request was sent");
  *used = static_cast<std::uint32_t>(n + 1);
  r.achieved_rate = rate_of(k, first_rx, kth_rx);
  r.saturated = r.achieved_rate < (1 - kSaturationMargin) * r.scheduled_rate;
  r.elapsed = std::chrono::nanoseconds(last_rx - t0);
  return r;
}

double measure_max_rate(Channel& ch, std::size_t size, const RateSpec& spec,
                        std::uint32_t first_seq, Watchdog* dog, std::uint32_t* used) {
  std::int64_t first_rx = 0, last_rx = 0;
  std::uint64_t got = 0;
  PingSender tx(ch, size);
  DuplexScope duplex(ch);
  const std::function<void()> unblock = spec.unblock ? spec.unblock : [&ch] { ch.abort(); };
  std::uint64_t n = 0;
  auto on_reply = [&](std::uint32_t i, std::int64_t t) {
    if (i == 0) first_rx = t;
    last_rx = t;
    ++got;
  };
  const std::int64_t end = now_ns() + spec.window.count();
  if (spec.pacing == Pacing::kPollReplies) {
    n = one_thread(
        ch, tx, size, spec.verify, first_seq, dog,
        [end](std::uint64_t i) { return i < kMaxScheduled && now_ns() < end; },
        [](std::uint64_t) { return std::int64_t{0}; }, [](std::uint64_t, std::int64_t) {},
        on_reply);
  } else {
    Receiver rx(ch, size, spec.verify, spec.receiver_cpu, first_seq, dog, unblock, on_reply);
    try {
      while (!rx.failed() && now_ns() < end && n < kMaxScheduled)
        tx.ping(first_seq + static_cast<std::uint32_t>(n++));
      if (!rx.failed()) tx.sync(first_seq + static_cast<std::uint32_t>(n));
    } catch (...) {
      rx.fail(std::current_exception(), rx.failed(), unblock);
    }
    rx.finish();  // rethrows why the receiver stopped, if it did
  }
  // The kAck came after every echo, in order: got == n.
  *used = static_cast<std::uint32_t>(n + 1);
  return rate_of(got, first_rx, last_rx);
}

}  // namespace ipcbench
