// Sending and receiving a workload message, in place when the channel lends its memory
// (zero-copy channels: loan/commit, view/release) and through our own buffer otherwise.
// Either way every payload byte is written by the sender and read by the receiver once:
// a zero-copy figure never skips touching the data.
#pragma once

#include <algorithm>
#include <cstring>
#include <span>

#include "bench/protocol.h"
#include "harness/aligned_buffer.h"
#include "transports/transport.h"

namespace ipcbench {

class Outbox {
 public:
  // prototype: the cell's message (payload pattern; the header is stamped per message,
  // the pattern's sequence marks are written per message).
  Outbox(Channel& ch, std::span<const std::byte> prototype)
      : ch_(ch), pattern_(prototype), own_(prototype.size()) {
    std::memcpy(own_.data(), prototype.data(), prototype.size());
  }
  // Space for message seq, holding the payload with seq's marks; stamp the header, then
  // finish().
  std::span<std::byte> begin(std::uint32_t seq) {
    std::span<std::byte> l = ch_.loan(own_.size());
    loaned_ = !l.empty();
    if (loaned_) {
      // The payload, written in place in pieces: one large memcpy would take glibc's
      // non-temporal path, which sends the data to DRAM instead of to the reader's cache.
      for (std::size_t off = 0; off < own_.size(); off += kPiece)
        std::memcpy(l.data() + off, own_.data() + off, std::min(kPiece, own_.size() - off));
    }
    std::span<std::byte> msg = loaned_ ? l : std::span<std::byte>(own_);
    mark_payload(msg.subspan(kHeaderBytes), pattern_.subspan(kHeaderBytes), seq);
    return msg;
  }
  void finish() {
    if (loaned_)
      ch_.commit();
    else
      ch_.send(own_);
  }

 private:
  static constexpr std::size_t kPiece = 64 * 1024;
  Channel& ch_;
  std::span<const std::byte> pattern_;  // the caller's prototype, alive while we are
  AlignedBuffer own_;
  bool loaned_ = false;
};

class Inbox {
 public:
  Inbox(Channel& ch, std::size_t capacity) : ch_(ch), own_(capacity) {}
  // The next message; empty when the link ended. Valid until done().
  std::span<const std::byte> next() {
    std::span<const std::byte> v;
    in_place_ = ch_.view(&v);
    if (in_place_) {
      sink_ ^= payload_touch(v);  // read where it lies, as a zero-copy consumer would
      return v;
    }
    return {own_.data(), ch_.recv(own_)};
  }
  void done() {
    if (in_place_) ch_.release();
    in_place_ = false;
  }
  std::uint64_t sink() const { return sink_; }

 private:
  Channel& ch_;
  AlignedBuffer own_;
  bool in_place_ = false;
  std::uint64_t sink_ = 0;
};

}  // namespace ipcbench
