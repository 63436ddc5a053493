#include "bench/protocol.h"

#include <sys/resource.h>
#include <time.h>

#include <bit>
#include <cstdio>
#include <random>

namespace ipcbench {

namespace {

constexpr std::uint64_t kP1 = 0x9E3779B185EBCA87ull, kP2 = 0xC2B2AE3D27D4EB4Full;
constexpr std::size_t kNoMark = ~std::size_t{0};

std::uint64_t avalanche(std::uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 33);
}

// Distinct for distinct sequence numbers at one offset (an odd multiplier is a bijection
// mod 2^64); one multiply, as the sender pays it per mark. The digest does the mixing.
std::uint64_t mark_value(std::uint32_t seq, std::size_t offset) {
  return (std::uint64_t{seq} + 1) * kP1 ^ (offset * kP2);
}

// The marked offsets of an n-byte payload, in order: first_mark(n), then next_mark(n, o).
// Every one but the single mark of a payload under 32 bytes starts a 32-byte block; a
// payload under 8 bytes takes as many bytes of its mark as it has.
std::size_t last_block(std::size_t n) { return (n / 32 - 1) * 32; }  // n >= 32
std::size_t first_mark(std::size_t n) { return n > 0 ? 0 : kNoMark; }
std::size_t next_mark(std::size_t n, std::size_t o) {
  if (n < 32 || o >= last_block(n)) return kNoMark;
  return std::min(o - o % kMarkStride + kMarkStride, last_block(n));
}

// xxHash64-style lanes: multiply, rotate, multiply; then a full avalanche of each lane.
// Marked: the marks of seq are undone as the words are read (a separate instance, so the
// unmarked digest keeps its plain loop).
template <bool Marked>
std::uint32_t digest(std::span<const std::byte> p, std::uint32_t seq) {
  std::uint64_t lane[4] = {kP1, kP2, kP1 ^ kP2, kP2 * 3};
  std::size_t i = 0, n = p.size();
  std::size_t mark = Marked ? first_mark(n) : kNoMark;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k) {
      std::uint64_t w;
      std::memcpy(&w, p.data() + i + 8 * k, 8);
      if constexpr (Marked) {
        if (k == 0 && i == mark) {
          w ^= mark_value(seq, i);
          mark = next_mark(n, i);
        }
      }
      lane[k] = std::rotl(lane[k] + w * kP2, 31) * kP1;
    }
  }
  std::uint64_t h = n;
  for (std::uint64_t l : lane) h = (h ^ avalanche(l)) * kP1;
  const std::uint64_t small_mark = mark == 0 ? mark_value(seq, 0) : 0;  // under 32 bytes
  for (; i < n; ++i) {
    auto b = static_cast<std::uint8_t>(p[i]);
    if (i < 8) b ^= static_cast<std::uint8_t>(small_mark >> (8 * i));
    h = std::rotl(h ^ b * kP2, 23) * kP1;
  }
  return static_cast<std::uint32_t>(avalanche(h));
}

}  // namespace

std::uint32_t payload_digest(std::span<const std::byte> p) { return digest<false>(p, 0); }

std::uint32_t marked_digest(std::span<const std::byte> p, std::uint32_t seq) {
  return digest<true>(p, seq);
}

void mark_payload(std::span<std::byte> payload, std::span<const std::byte> pattern,
                  std::uint32_t seq) {
  const std::size_t n = payload.size();
  for (std::size_t o = first_mark(n); o != kNoMark; o = next_mark(n, o)) {
    const std::size_t len = std::min<std::size_t>(8, n - o);
    std::uint64_t w = 0;
    std::memcpy(&w, pattern.data() + o, len);
    w ^= mark_value(seq, o);
    std::memcpy(payload.data() + o, &w, len);
  }
}

std::uint64_t payload_touch(std::span<const std::byte> p) {
  // Four lines per step into four independent 16-byte sums, and every line prefetched
  // 2 KiB ahead, so the loads of many lines are in flight at once: a zero-copy reader
  // then reads data the other core just wrote as fast as the lines cross. (One running
  // sum, or a compiler's choice of vectors, ran at 1/2 to 3/4 of that; one line per step
  // at 0.85. Each 16 bytes is loaded on its own: a step copied into a local array in one
  // memcpy went through the stack, at 0.7.)
  using V = std::uint64_t __attribute__((vector_size(16)));
  constexpr std::size_t kStep = 256, kAhead = 2048;
  const std::byte* q = p.data();
  const std::size_t n = p.size();
  V a{}, b{}, c{}, d{};
  auto load = [q](std::size_t at) {
    V w;
    std::memcpy(&w, q + at, sizeof w);
    return w;
  };
  auto step = [&](std::size_t at) {  // sum k takes the k-th 16 bytes of each line
    a += (load(at) + load(at + 64)) + (load(at + 128) + load(at + 192));
    b += (load(at + 16) + load(at + 80)) + (load(at + 144) + load(at + 208));
    c += (load(at + 32) + load(at + 96)) + (load(at + 160) + load(at + 224));
    d += (load(at + 48) + load(at + 112)) + (load(at + 176) + load(at + 240));
  };
  std::size_t i = 0;
  for (; i + kAhead + kStep <= n; i += kStep) {
    const std::byte* ahead = q + i + kAhead;  // stays inside p: never the record after it
    __builtin_prefetch(ahead);
    __builtin_prefetch(ahead + 64);
    __builtin_prefetch(ahead + 128);
    __builtin_prefetch(ahead + 192);
    step(i);
  }
  for (; i + kStep <= n; i += kStep) step(i);
  for (; i + 16 <= n; i += 16) a += load(i);
  V t = a + b + c + d;
  std::uint64_t sum = t[0] + t[1];
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, q + i, 8);
    sum += w;
  }
  for (; i < n; ++i) sum += static_cast<std::uint8_t>(q[i]);
  return sum;
}

std::uint32_t fill_payload(std::span<std::byte> msg, std::uint64_t seed) {
  auto payload = msg.subspan(kHeaderBytes);
  std::mt19937_64 rng(seed);
  std::size_t i = 0;
  for (; i + 8 <= payload.size(); i += 8) {
    std::uint64_t w = rng();
    std::memcpy(payload.data() + i, &w, 8);
  }
  for (; i < payload.size(); ++i) payload[i] = static_cast<std::byte>(rng());
  return payload_digest(payload);
}

CpuUse cpu_use_self() {
  // On-CPU time of the whole process from the scheduler (CLOCK_PROCESS_CPUTIME_ID: exact
  // nanoseconds, every thread, exited ones included), so the I/O threads of ZeroMQ and
  // gRPC count; getrusage's user/system split is tick-sampled and, on a VM, can exceed
  // wall time.
  CpuUse u;
  timespec ts{};
  if (::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0)
    u.cpu_ns = static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull +
               static_cast<std::uint64_t>(ts.tv_nsec);
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  u.voluntary_switches = static_cast<std::uint64_t>(ru.ru_nvcsw);
  u.involuntary_switches = static_cast<std::uint64_t>(ru.ru_nivcsw);
  return u;
}

namespace {
const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kReady:
      return "ready";
    case Kind::kPing:
      return "ping";
    case Kind::kData:
      return "data";
    case Kind::kSync:
      return "sync";
    case Kind::kAck:
      return "ack";
    case Kind::kStop:
      return "stop";
    case Kind::kError:
      return "error";
    case Kind::kStats:
      return "stats";
  }
  return "unknown";
}
}  // namespace

std::string describe_kind(Kind k) {
  char code[16];
  std::snprintf(code, sizeof code, "0x%08x", static_cast<std::uint32_t>(k));
  return std::string(kind_name(k)) + " (" + code + ")";
}

std::string check_message(std::span<const std::byte> msg, Kind kind, std::uint32_t seq,
                          bool verify) {
  if (msg.size() < kHeaderBytes)
    return "message of " + std::to_string(msg.size()) + " bytes is shorter than its header";
  MsgHeader h = read_header(msg);
  if (h.kind != kind)
    return std::string("expected a ") + kind_name(kind) + " message, got kind " +
           describe_kind(h.kind);
  if (h.len != msg.size())
    return "length mismatch: header says " + std::to_string(h.len) + ", " +
           std::to_string(msg.size()) + " bytes arrived";
  if (h.seq != seq)
    return "sequence mismatch: expected " + std::to_string(seq) + ", got " + std::to_string(h.seq);
  if (verify) {
    std::uint32_t want = h.check ^ header_mix(h.seq, h.len, h.kind);
    auto payload = msg.subspan(kHeaderBytes);
    if ((carries_marks(h.kind) ? marked_digest(payload, h.seq) : payload_digest(payload)) != want)
      return "payload checksum mismatch in message " + std::to_string(seq);
  }
  return {};
}

std::string explain_reply(std::span<const std::byte> reply, std::uint32_t seq, bool verify) {
  if (reply.empty()) return "peer closed the link";
  if (reply.size() >= kHeaderBytes && read_header(reply).kind == Kind::kError)
    return "peer: " + std::string(reinterpret_cast<const char*>(reply.data()) + kHeaderBytes,
                                  reply.size() - kHeaderBytes);
  std::string err = check_message(reply, Kind::kPing, seq, verify);
  return err.empty() ? "reply differs from the request" : err;
}

}  // namespace ipcbench
