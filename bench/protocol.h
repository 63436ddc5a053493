// What the workloads put in every message: a 16-byte header, then the payload.
//
// The header carries a sequence number, the message's length, its kind and a checksum
// over the header fields and the payload. Receivers always check kind, sequence and
// length; with --verify they also recompute the payload checksum. The payload is a
// pseudo-random pattern per cell carrying sequence marks (below), so the sender's
// per-message work is the 16-byte header and one 8-byte word per 4 KiB; the checksum of
// the pattern is computed once per cell.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

namespace ipcbench {

enum class Kind : std::uint32_t {
  kReady = 0x52454459,  // peer → client, once connected
  kPing = 0x50494e47,   // client → peer, echoed back unchanged
  kData = 0x44415441,   // client → peer, one way
  kSync = 0x53594e43,   // client → peer: acknowledge everything so far
  kAck = 0x41434b21,    // peer → client, answer to kSync
  kStop = 0x53544f50,   // client → peer: exit
  kError = 0x4552524f,  // peer → client: the payload is an error text
  kStats = 0x53544154,  // client → peer: report your CPU use; peer → client: CpuUse payload
};

// CPU time so far of the whole process (every thread, CLOCK_PROCESS_CPUTIME_ID, so the
// I/O threads of ZeroMQ and gRPC count) and context switches of the process, as carried
// by a kStats reply.
struct CpuUse {
  std::uint64_t cpu_ns = 0;
  std::uint64_t voluntary_switches = 0, involuntary_switches = 0;
};
CpuUse cpu_use_self();

struct MsgHeader {
  std::uint32_t seq;
  std::uint32_t len;  // whole message, header included
  Kind kind;
  std::uint32_t check;
};
static_assert(sizeof(MsgHeader) == 16);
inline constexpr std::size_t kHeaderBytes = sizeof(MsgHeader);

// Reads every 8-byte word of p (a sum; vectorizes to memory speed). What a zero-copy
// receiver does to the data in place when it does not verify a checksum.
std::uint64_t payload_touch(std::span<const std::byte> p);

// Checksum of a payload (4 independent multiply-xor lanes, for speed; its measured rate:
// docs/measurement.md), folded to 32 bits.
std::uint32_t payload_digest(std::span<const std::byte> payload);
inline std::uint32_t header_mix(std::uint32_t seq, std::uint32_t len, Kind kind) {
  std::uint64_t h = (std::uint64_t{seq} << 32 | len) * 0x9E3779B97F4A7C15ull;
  h ^= static_cast<std::uint32_t>(kind) * 0xC2B2AE3D27D4EB4Full;
  return static_cast<std::uint32_t>(h ^ (h >> 29));
}

inline MsgHeader read_header(std::span<const std::byte> msg) {
  MsgHeader h;
  std::memcpy(&h, msg.data(), sizeof h);
  return h;
}
inline void write_header(std::span<std::byte> msg, const MsgHeader& h) {
  std::memcpy(msg.data(), &h, sizeof h);
}

// Fills msg[kHeaderBytes..] with the cell's pattern and returns its digest.
std::uint32_t fill_payload(std::span<std::byte> msg, std::uint64_t seed);

// Sequence marks. The payload of a ping or data message is the cell's pattern with some
// 8-byte words XORed with a value of the message's sequence number: the word at offset 0,
// every kMarkStride bytes after it, and the first word of the payload's last whole 32-byte
// block (under 32 bytes, the first word only; under 8, as many bytes as there are). A body
// from another message (stale, replayed or misdelivered under a fresh header) therefore
// fails the --verify checksum, which is computed with the marks undone; so does a body
// partly from another message wherever a stale part covers a mark (at least every 4 KiB).
inline constexpr std::size_t kMarkStride = 4096;
// Writes seq's marks into payload, whose unmarked content is pattern (of the same size).
void mark_payload(std::span<std::byte> payload, std::span<const std::byte> pattern,
                  std::uint32_t seq);
// payload_digest of the unmarked pattern, read from a payload carrying seq's marks.
std::uint32_t marked_digest(std::span<const std::byte> payload, std::uint32_t seq);
// Whether messages of this kind carry sequence marks (ping and data do).
inline bool carries_marks(Kind k) { return k == Kind::kPing || k == Kind::kData; }

// Stamps seq/len/kind/check into msg, given the payload's digest.
inline void stamp(std::span<std::byte> msg, std::uint32_t seq, Kind kind, std::uint32_t digest) {
  auto len = static_cast<std::uint32_t>(msg.size());
  write_header(msg, MsgHeader{seq, len, kind, header_mix(seq, len, kind) ^ digest});
}

// The fast-path check of an echoed ping: size, sequence and kind (and with verify, the
// payload checksum). No allocation; check_message says what is wrong when it fails.
inline bool reply_ok(std::span<const std::byte> reply, std::size_t size, std::uint32_t seq,
                     bool verify) {
  if (reply.size() != size || size < kHeaderBytes) return false;
  MsgHeader h = read_header(reply);
  if (h.seq != seq || h.kind != Kind::kPing || h.len != size) return false;
  return !verify || marked_digest(reply.subspan(kHeaderBytes), seq) ==
                        (h.check ^ header_mix(h.seq, h.len, h.kind));
}

// "ping (0x50494e47)": a kind's name and its value in hex.
std::string describe_kind(Kind k);

// Why an echo failed reply_ok (off the fast path): the link ended, what the peer said
// (a kError), or what check_message finds wrong.
std::string explain_reply(std::span<const std::byte> reply, std::uint32_t seq, bool verify);

// Checks a received message. Returns an empty string when it is what was expected, or
// a one-line description of what is wrong. With verify, the payload checksum too.
std::string check_message(std::span<const std::byte> msg, Kind kind, std::uint32_t seq,
                          bool verify);

}  // namespace ipcbench
