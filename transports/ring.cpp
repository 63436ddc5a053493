#include "transports/ring.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>

#include "base/error.h"
#include "base/wait.h"

namespace ipcbench {
namespace {

constexpr std::uint32_t kProducerClosed = 1, kConsumerClosed = 2;
constexpr std::size_t kRecord = 64;
constexpr std::size_t kPageBytes = 4096;
constexpr std::size_t kStreamBytes = 64 * 1024;
constexpr int kWarmLinesPerPoll = 8;
constexpr std::uint32_t kPausesPerClockRead = 32;

std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

// A sleeping side wakes up this often to check on its partner.
constexpr std::chrono::milliseconds kSleepSlice{10};

// CLOCK_MONOTONIC in ns: one clock for both processes.
std::int64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// The first bytes of a record's 64-byte header line. `pos` is the record's absolute
// position + 1, written last with release: it tells a fresh record from one left by the
// previous lap of the ring.
struct RecordHeader {
  std::atomic<std::uint64_t> pos;
  std::uint64_t len;
};
static_assert(sizeof(RecordHeader) <= 64);

class RingChannel final : public Channel {
 public:
  RingChannel(std::unique_ptr<Mapping> m, bool is_client, WaitMode mode, bool zero_copy,
              pid_t partner)
      : map_(std::move(m)), mode_(mode), zero_copy_(zero_copy), watch_(partner) {
    auto* ctl = static_cast<LinkControl*>(map_->base());
    cap_ = ctl->ring_bytes;
    auto* data = static_cast<std::byte*>(map_->base()) + sizeof(LinkControl);
    out_ = is_client ? &ctl->down : &ctl->up;
    in_ = is_client ? &ctl->up : &ctl->down;
    out_data_ = is_client ? data : data + cap_;
    in_data_ = is_client ? data + cap_ : data;
    wpos_ = out_->head.load(std::memory_order_relaxed);
    tail_cache_ = out_->tail.load(std::memory_order_relaxed);
    rpos_ = in_->tail.load(std::memory_order_relaxed);
  }

  ~RingChannel() override {
    out_->closed.fetch_or(kProducerClosed);
    in_->closed.fetch_or(kConsumerClosed);
    wake(out_->data);
    wake(in_->space);
  }

  void send(std::span<const std::byte> msg) override {
    if (msg.empty()) throw ProtocolError("shm: zero-length message");
    const std::size_t len = msg.size();
    const std::size_t total = kRecord + round_up(len, kRecord);
    const std::uint64_t start = wpos_;
    RecordHeader* hdr = header_at(out_data_, start);
    if (total <= cap_) {
      // Whole record at once; the header is written last, so a reader that sees it
      // sees the payload too, and polls nothing but that one line.
      if (zero_copy_) return send_contiguous(msg);
      wait_space(total);
      wpos_ += kRecord;
      put(msg.data(), len);
      hdr->len = len;
      hdr->pos.store(start + 1, std::memory_order_release);
      wpos_ = start + total;
      publish();
      plan_warm(total);
      return;
    }
    // Larger than the ring: header first, then the payload streams through in pieces
    // that the reader follows through `head`.
    wait_space(kRecord);
    hdr->len = len;
    wpos_ += kRecord;
    // head first: a reader that sees the header must not see an older head behind it.
    out_->head.store(wpos_, std::memory_order_release);
    hdr->pos.store(start + 1, std::memory_order_release);
    publish();
    std::size_t done = 0;
    while (done < len) {
      std::size_t free = wait_space(std::min(kRecord, len - done));
      // Pieces of at most kStreamBytes let the reader copy out while we copy in.
      std::size_t chunk = std::min({len - done, free, kStreamBytes});
      if (chunk < len - done) chunk -= chunk % kRecord;  // keep pieces aligned
      put(msg.data() + done, chunk);
      done += chunk;
      if (done == len) wpos_ = round_up(wpos_, kRecord);
      publish();
    }
    warm_to_ = warm_from_;  // an earlier plan would point into this message's lines
  }

  std::size_t recv(std::span<std::byte> buf) override {
    RecordHeader* hdr = next_record();
    if (!hdr) return 0;
    const std::size_t len = hdr->len;
    if (len == 0 || len > buf.size())
      throw ProtocolError("shm: incoming message of " + std::to_string(len) +
                          " bytes does not fit the receive buffer of " +
                          std::to_string(buf.size()));
    rpos_ += kRecord;
    if (kRecord + round_up(len, kRecord) <= cap_) {
      take(buf.data(), len);  // written before the header: all there
    } else {
      std::size_t done = 0;
      while (done < len) {
        std::size_t chunk = std::min<std::size_t>(len - done, wait_data(1));
        take(buf.data() + done, chunk);
        done += chunk;
        if (done < len) release_tail();  // let the writer stream on
      }
    }
    rpos_ = round_up(rpos_, kRecord);
    release_tail();
    return len;
  }

  void set_duplex(bool on) override { duplex_ = on; }

  bool polls() const override { return true; }
  bool poll_ready() override {
    for (;;) {
      RecordHeader* hdr = header_at(in_data_, rpos_);
      if (hdr->pos.load(std::memory_order_acquire) != rpos_ + 1)
        // The partner's death is a system call to ask: only now and then.
        return (in_->closed.load(std::memory_order_acquire) & kProducerClosed) ||
               ((++idle_polls_ & 0x3fff) == 0 && watch_.gone());
      if (hdr->len != kSkip) return true;
      rpos_ += cap_ - at(rpos_);  // as next_record does
      release_tail();
    }
  }

  std::span<std::byte> loan(std::size_t n) override {
    const std::size_t total = kRecord + round_up(n, kRecord);
    if (!zero_copy_ || n == 0 || total > cap_) return {};
    loan_start_ = reserve(total);
    loan_len_ = n;
    return {out_data_ + at(loan_start_ + kRecord), n};
  }

  void commit() override {
    RecordHeader* hdr = header_at(out_data_, loan_start_);
    hdr->len = loan_len_;
    hdr->pos.store(loan_start_ + 1, std::memory_order_release);
    const std::size_t total = kRecord + round_up(loan_len_, kRecord);
    wpos_ = loan_start_ + total;
    publish();
    plan_warm(total);
  }

  bool view(std::span<const std::byte>* out) override {
    if (!zero_copy_) return false;
    RecordHeader* hdr = next_record();
    if (!hdr) {
      *out = {};
      return true;
    }
    const std::size_t len = hdr->len;
    if (kRecord + round_up(len, kRecord) > cap_) return false;  // streamed: use recv
    view_len_ = len;
    *out = {in_data_ + at(rpos_ + kRecord), len};
    return true;
  }

  void release() override {
    rpos_ += kRecord + round_up(view_len_, kRecord);
    release_tail();
  }

 private:
  static constexpr std::uint64_t kSkip = ~std::uint64_t{0};

  // Zero-copy channels keep every record in one piece: when one would cross the end of
  // the ring, a skip record fills the rest of the lap and the record starts the next.
  // Returns the record's start, with `total` bytes free there.
  std::uint64_t reserve(std::size_t total) {
    if (std::size_t room = cap_ - at(wpos_); room < total) {
      wait_space(room);
      RecordHeader* skip = header_at(out_data_, wpos_);
      skip->len = kSkip;
      skip->pos.store(wpos_ + 1, std::memory_order_release);
      wpos_ += room;
      publish();
    }
    wait_space(total);
    return wpos_;
  }

  void send_contiguous(std::span<const std::byte> msg) {
    std::span<std::byte> dst = loan(msg.size());
    std::memcpy(dst.data(), msg.data(), msg.size());
    commit();
  }

  // Waits for the record at rpos_, stepping over skip records; nullptr when the link
  // ended first.
  RecordHeader* next_record() {
    for (;;) {
      RecordHeader* hdr = header_at(in_data_, rpos_);
      if (!wait_record(*hdr, rpos_ + 1)) return nullptr;
      if (hdr->len != kSkip) return hdr;
      rpos_ += cap_ - at(rpos_);
      release_tail();
    }
  }

  // Warming. Writing a record whose lines are not in this core's cache fetches each one
  // (from the shared cache, or from the reader, which read it a lap ago) before the store
  // completes, and the reader cannot see the record until the last has arrived. So after
  // publishing a record, a side notes the lines its next record would take if it is as
  // large (within the free space), and while it waits for a message it fetches them, a
  // few per poll; the next send then writes into its own cache. The first two lines are
  // left alone: the reader is polling them.
  void plan_warm(std::size_t total) {
    warm_from_ = wpos_ + 2 * kRecord;
    warm_to_ = wpos_ + std::min<std::uint64_t>(total, cap_ - (wpos_ - tail_cache_));
  }
  void warm_some() {
    if (duplex_) return;  // the warm plan is the sending thread's
    for (int i = 0; i < kWarmLinesPerPoll && warm_from_ < warm_to_; ++i, warm_from_ += kRecord)
      __builtin_prefetch(out_data_ + at(warm_from_), 0, 3);
  }

  // Offset of an absolute position in a ring (its size is a power of two).
  std::size_t at(std::uint64_t pos) const { return pos & (cap_ - 1); }
  RecordHeader* header_at(std::byte* data, std::uint64_t pos) const {
    return reinterpret_cast<RecordHeader*>(data + at(pos));
  }
  // Copies into the outgoing ring at wpos_, splitting at the wrap.
  void put(const std::byte* p, std::size_t n) {
    std::size_t off = at(wpos_), first = std::min(n, cap_ - off);
    std::memcpy(out_data_ + off, p, first);
    if (first < n) std::memcpy(out_data_, p + first, n - first);
    wpos_ += n;
  }
  void take(std::byte* p, std::size_t n) {
    std::size_t off = at(rpos_), first = std::min(n, cap_ - off);
    std::memcpy(p, in_data_ + off, first);
    if (first < n) std::memcpy(p + first, in_data_, n - first);
    rpos_ += n;
  }
  void publish() {
    out_->head.store(wpos_, std::memory_order_release);
    if (mode_ == WaitMode::kFutex) notify(out_->data);
  }
  void release_tail() {
    in_->tail.store(rpos_, std::memory_order_release);
    if (mode_ == WaitMode::kFutex) notify(in_->space);
  }
  void notify(Doorbell& bell) {
    // An RMW reads the latest `sleeping`: either it sees the sleeper's flag, or the
    // sleeper's exchange in wait() reads from it and then sees our store. (No fences:
    // ThreadSanitizer cannot model them.)
    if (bell.sleeping.fetch_add(0, std::memory_order_seq_cst)) wake(bell);
  }
  static void wake(Doorbell& bell) {
    std::int64_t unstamped = 0;  // the first wake of a sleep stamps it, later ones leave it
    bell.woken_ns.compare_exchange_strong(unstamped, now_ns(), std::memory_order_relaxed);
    bell.seq.fetch_add(1, std::memory_order_release);
    futex_wake(bell.seq);
  }

  // Waits for `need` free bytes in the outgoing ring; returns the free byte count. The
  // reader's tail is re-read only when the cached value does not show enough room.
  std::size_t wait_space(std::size_t need) {
    if (cap_ - (wpos_ - tail_cache_) >= need) return cap_ - (wpos_ - tail_cache_);
    auto free = [&] {
      tail_cache_ = out_->tail.load(std::memory_order_acquire);
      return cap_ - (wpos_ - tail_cache_);
    };
    wait([&] { return free() >= need; }, out_->space,
         [&] {
           if (out_->closed.load() & kConsumerClosed)
             throw SysError("send (shm): the peer closed the link", EPIPE);
           if (watch_.gone()) throw SysError("send (shm): the peer process is gone", EPIPE);
         });
    return cap_ - (wpos_ - tail_cache_);
  }

  bool partner_ended() { return (in_->closed.load() & kProducerClosed) || watch_.gone(); }

  // Waits for the record that starts at rpos_; false when the partner closed or died
  // before writing it (a clean end of the link).
  bool wait_record(RecordHeader& hdr, std::uint64_t want) {
    bool ended = false;
    // Each poll of the header also asks for the record's first payload line, so that
    // line crosses while the header does instead of after it: a small message then
    // costs one line transfer, not two in a row. (A prefetch reads nothing: the payload
    // is read after the acquire load that saw the header.)
    const std::byte* payload = in_data_ + at(want - 1 + kRecord);
    auto ready = [&] {
      bool here = hdr.pos.load(std::memory_order_acquire) == want;
      __builtin_prefetch(payload, 0, 3);
      if (!here) warm_some();
      return ended || here;
    };
    wait(ready, in_->data, [&] {
      if (partner_ended() && hdr.pos.load(std::memory_order_acquire) != want) ended = true;
    });
    return !ended;
  }

  // Inside a streamed message: waits for published payload bytes; returns their count.
  std::size_t wait_data(std::size_t need) {
    auto avail = [&] { return in_->head.load(std::memory_order_acquire) - rpos_; };
    wait([&] { return avail() >= need; }, in_->data,
         [&] {
           if (partner_ended() && avail() < need)
             throw ProtocolError("shm: peer closed mid-message");
         });
    return avail();
  }

  template <class Ready, class Check>
  void wait(Ready ready, Doorbell& bell, Check check_partner) {
    if (ready()) return;
    if (mode_ == WaitMode::kSpin) {
      for (std::uint32_t i = 1;; ++i) {
        if (ready()) return;
        cpu_relax();
        if ((i & 0x3fff) == 0) {
          check_partner();
          if (ready()) return;
        }
      }
    }
    // Spin first, for the budget. The clock is read every kPausesPerClockRead pauses and
    // not before: a message that comes sooner costs no clock read.
    std::int64_t deadline = 0;
    for (std::uint32_t i = 1;; ++i) {
      if (ready()) return;
      cpu_relax();
      if (i % kPausesPerClockRead == 0) {
        const std::int64_t t = now_ns();
        if (deadline == 0) {
          deadline = t + spin_budget_ns();
        } else if (t >= deadline) {
          break;
        }
      }
    }
    for (;;) {
      // Cleared before the flag goes up: the first wake the flag brings stamps it.
      bell.woken_ns.store(0, std::memory_order_relaxed);
      std::uint32_t v = bell.seq.load(std::memory_order_acquire);
      bell.sleeping.exchange(1, std::memory_order_seq_cst);
      if (ready()) break;
      const bool woken = futex_wait(bell.seq, v, kSleepSlice);
      bell.sleeping.store(0, std::memory_order_relaxed);
      if (woken && bell.seq.load(std::memory_order_acquire) != v) learn_wakeup(bell);
      if (ready()) return;
      check_partner();
    }
    bell.sleeping.store(0, std::memory_order_relaxed);
  }

  // Spin-then-futex budget. Sleeping costs a message this side's wake-up latency W:
  // from the partner's FUTEX_WAKE to this side running again. A side that spins for
  // less than the gap a sleeping partner causes goes to sleep too, and a ping-pong then
  // locks into a wake-up per message, as each side's wait is the other's wake-up; a
  // fixed spin shorter than W did that (figures: docs/ring-design.md). Spinning for 2W
  // outlasts the partner's wake-up, so the lock breaks, and bounds what a spin can waste
  // at twice what sleeping costs. W is learned from the wakes this side receives (the
  // waker stamps the time) and smoothed.
  // Both directions' waits learn it and use it: relaxed atomic, for duplex use, where a
  // sender's and a receiver's update may race (one of them is then lost; it is an estimate).
  std::int64_t spin_budget_ns() const {
    return std::clamp(2 * wakeup_ns_.load(std::memory_order_relaxed), kMinSpinNs, kMaxSpinNs);
  }
  void learn_wakeup(const Doorbell& bell) {
    const std::int64_t sent = bell.woken_ns.load(std::memory_order_relaxed);
    if (sent == 0) return;
    const std::int64_t w = std::clamp<std::int64_t>(now_ns() - sent, 0, kMaxSpinNs);
    const std::int64_t old = wakeup_ns_.load(std::memory_order_relaxed);
    wakeup_ns_.store(old + (w - old) / 4, std::memory_order_relaxed);
  }

  std::unique_ptr<Mapping> map_;
  WaitMode mode_;
  bool zero_copy_;  // records never wrap, so they can be lent and viewed in place
  PeerWatch watch_;
  std::uint64_t loan_start_ = 0, loan_len_ = 0, view_len_ = 0;
  std::size_t cap_;
  RingHeader *out_, *in_;
  std::byte *out_data_, *in_data_;
  std::uint64_t wpos_ = 0, rpos_ = 0;
  std::uint64_t tail_cache_ = 0;
  std::uint64_t warm_from_ = 0, warm_to_ = 0;  // lines of the next record still to fetch
  std::atomic<std::int64_t> wakeup_ns_{kFirstWakeupGuessNs};  // this side's wake-up latency
  bool duplex_ = false;           // set_duplex: two threads, so no warming from the receiving one
  std::uint32_t idle_polls_ = 0;  // poll_ready calls that found nothing
};

// Maps every page of the link into this process, writable, before the first message.
// Otherwise each side takes a page fault every 4 KiB through the first lap of a ring: a
// spin-then-futex side kept waiting that long by a fault goes to sleep, and its partner
// then does too, so the channel settles into paying a futex wake-up per message.
void prefault(void* base, std::size_t bytes) {
  if (::madvise(base, bytes, MADV_POPULATE_WRITE) == 0) return;
  // Kernels before 5.14 lack it: reading each page maps at least that much.
  auto* p = static_cast<volatile std::byte*>(base);
  for (std::size_t off = 0; off < bytes; off += kPageBytes) (void)p[off];
}

}  // namespace

std::size_t link_bytes(std::size_t ring_bytes) {
  return round_up(sizeof(LinkControl), kPageBytes) + 2 * ring_bytes;
}

void init_link(void* base, std::size_t ring_bytes) {
  static_assert(sizeof(LinkControl) % kPageBytes == 0);
  if (!std::has_single_bit(ring_bytes) || ring_bytes < kPageBytes)
    throw ProtocolError("shm: ring size " + std::to_string(ring_bytes) +
                        " is not a power of two of 4 KiB or more");
  auto* ctl = new (base) LinkControl{};
  ctl->ring_bytes = ring_bytes;
  ctl->client_pid.store(::getpid());
  ctl->magic = kLinkMagic;
}

pid_t wait_for_peer(LinkControl& ctl, const SetupWait& wait) {
  for (;;) {
    if (pid_t pid = ctl.peer_pid.load(std::memory_order_acquire); pid > 0) return pid;
    wait.check("shm: mapping the link");
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

std::unique_ptr<Channel> make_ring_channel(std::unique_ptr<Mapping> mapping, bool is_client,
                                           WaitMode mode, bool zero_copy, pid_t partner) {
  auto* ctl = static_cast<LinkControl*>(mapping->base());
  if (ctl->magic != kLinkMagic || !std::has_single_bit(ctl->ring_bytes))
    throw ProtocolError("shm: the mapping is not an ipcbench link");
  prefault(ctl, link_bytes(ctl->ring_bytes));
  if (!is_client) ctl->peer_pid.store(::getpid(), std::memory_order_release);
  return std::make_unique<RingChannel>(std::move(mapping), is_client, mode, zero_copy, partner);
}

}  // namespace ipcbench
