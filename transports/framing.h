// Message framing, in one place for every transport that needs it.
//
// StreamChannel carries messages over a byte stream (pipe, FIFO, stream socket, TCP):
// each message is a 4-byte little-endian length followed by the body, sent with one
// system call: a write of a staged copy up to kStagedFrameBytes (a two-piece writev made
// small round trips longer; figures: docs/measurement.md), a writev beyond.
// Receiving takes one read per message in the common case: small messages come through
// a 64 KiB buffer; once messages are large, the body is read straight into the caller's
// buffer (readv), so the suite adds no copy of its own to the kernel's.
//
// RecordChannel carries messages over a transport that keeps record boundaries
// (SOCK_SEQPACKET, message queues). A message of up to 64 KiB that fits in one record
// travels as one record [length | message]; a larger one as a length-only record
// followed by the message in records of the transport's largest size: never truncated,
// and a transport that cannot gather (a queue API takes one buffer) copies at most
// 64 KiB to put the length in front.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "base/fd.h"
#include "transports/transport.h"

namespace ipcbench {

// Largest message any framed channel accepts (the suite's size limit).
inline constexpr std::size_t kMaxFrameBytes = std::size_t{256} << 20;
// The little-endian length in front of every framed message.
inline constexpr std::size_t kLengthPrefixBytes = 4;
// StreamChannel copies a message up to this size behind its length and sends both with
// one write; a larger one goes out by writev straight from the caller's memory.
inline constexpr std::size_t kStagedFrameBytes = 1024;
// Once the previous message had this size, StreamChannel reads a message's body straight
// into the caller's buffer; smaller ones arrive in its own buffer and are copied out.
inline constexpr std::size_t kDirectFrameBytes = 4096;

// The codec the channels below run on every message, apart from their system calls; the
// "framing" encoding floor (transports/encodings.cpp) times these same functions.
// Writes the length prefix of an n-byte message at out. Throws ProtocolError when n is 0
// or exceeds kMaxFrameBytes.
void put_frame_length(std::byte* out, std::size_t n);
// The message length in the prefix at in. Throws ProtocolError when it is 0 or exceeds
// cap (the receive buffer).
std::size_t get_frame_length(const std::byte* in, std::size_t cap);
// StreamChannel's send side: [length | msg] into stage when msg has up to
// kStagedFrameBytes, else the length alone (the body then goes out from msg). Returns
// the bytes staged; stage holds kLengthPrefixBytes + kStagedFrameBytes.
std::size_t stage_frame(std::span<std::byte> stage, std::span<const std::byte> msg);
// StreamChannel's receive side, for a message whose start is in its buffer: `in` begins
// with the length prefix (checked against buf, as get_frame_length) and may hold body
// bytes after it; copies those (up to the length) into buf and returns the length.
std::size_t unstage_frame(std::span<const std::byte> in, std::span<std::byte> buf);

// writev until every byte of every iovec is out (iov is consumed); throws SysError(what).
void writev_all(int fd, iovec* iov, int cnt, const char* what);

class StreamChannel final : public Channel {
 public:
  // Reads from rd and writes to wr. For a socket pass the same descriptor twice via
  // the one-argument form.
  StreamChannel(UniqueFd rd, UniqueFd wr);
  explicit StreamChannel(UniqueFd sock);

  void send(std::span<const std::byte> msg) override;
  std::size_t recv(std::span<std::byte> buf) override;
  // Shuts a socket link down, so that a read blocked on a connection that is not the
  // peer's (whoever else got through the listener) returns. Pipes and FIFOs admit no
  // one else: for them killing the peer is enough, and this does nothing.
  void abort() noexcept override;
  int wait_fd() const override { return rd_.get(); }

 private:
  int rfd() const { return rd_.get(); }
  int wfd() const { return wr_.valid() ? wr_.get() : rd_.get(); }
  std::size_t buffered() const { return end_ - pos_; }
  std::size_t ended() const;  // the end of the link: 0, or an error after abort()
  void compact();
  void stash(const std::byte* p, std::size_t n);  // put bytes back in front of the buffer
  void read_body(std::span<std::byte> dst, std::size_t have, std::size_t len);

  UniqueFd rd_, wr_;
  // [length | body] of a message up to kStagedFrameBytes
  std::array<std::byte, kLengthPrefixBytes + kStagedFrameBytes> stage_;
  std::vector<std::byte> rbuf_;
  std::size_t pos_ = 0, end_ = 0;
  std::size_t last_len_ = 0;  // size of the previous message, a hint for the next read
  std::atomic<bool> aborted_{false};
};

// One record (datagram) at a time over a transport that keeps boundaries. A record is
// sent from, and received into, two pieces (a may be empty). recv_record returns the
// record's size; 0 means the link ended (the partner closed, or sent its end marker).
class RecordIo {
 public:
  virtual ~RecordIo() = default;
  virtual std::size_t max_record() const = 0;
  virtual void send_record(std::span<const std::byte> a, std::span<const std::byte> b) = 0;
  virtual std::size_t recv_record(std::span<std::byte> a, std::span<std::byte> b) = 0;
  // As Channel::wait_fd: readable when a record has arrived; -1: not offered.
  virtual int wait_fd() const { return -1; }
};

// For a queue API that sends and receives one buffer (message queues): a record's two
// pieces joined into one buffer, and a received record split back into them.
class StagedRecords {
 public:
  explicit StagedRecords(std::size_t max_record) : stage_(max_record) {}
  // [a | b] as one buffer: b itself when a is empty, else both copied into the stage.
  std::span<const std::byte> join(std::span<const std::byte> a, std::span<const std::byte> b);
  // Where to receive a record of up to max_record bytes: straight into b when a is empty
  // and b can hold any record, else the stage.
  std::byte* landing(std::span<std::byte> a, std::span<std::byte> b);
  // A record of n bytes received at `landed`: split over a then b; returns n. Throws
  // ProtocolError (naming `who`) when it does not fit.
  std::size_t split(const std::byte* landed, std::size_t n, std::span<std::byte> a,
                    std::span<std::byte> b, const char* who);

 private:
  std::vector<std::byte> stage_;
};

// The first record a message-queue peer sends, on its up queue: a tag naming the
// transport, then the peer's pid (the listener then watches that process).
std::vector<std::byte> queue_hello(std::string_view tag);
// The pid in a hello with this tag; throws ProtocolError "<tag>: the peer did not say
// hello" when msg is something else.
pid_t read_queue_hello(std::span<const std::byte> msg, std::string_view tag);

class RecordChannel : public Channel {
 public:
  static constexpr std::size_t kOneRecordBytes = 64 * 1024;
  static constexpr std::size_t kPrefixBytes = kLengthPrefixBytes;
  // The record size that carries every message up to max_message without splitting:
  // [length | message] up to kOneRecordBytes, the bare body beyond.
  static constexpr std::size_t whole_record_bytes(std::size_t max_message) {
    return kPrefixBytes + max_message <= kOneRecordBytes ? kPrefixBytes + max_message : max_message;
  }
  explicit RecordChannel(std::unique_ptr<RecordIo> io);

  void send(std::span<const std::byte> msg) override;
  std::size_t recv(std::span<std::byte> buf) override;
  int wait_fd() const override { return io_->wait_fd(); }

 private:
  std::unique_ptr<RecordIo> io_;
};

// SOCK_SEQPACKET records of up to 64 KiB.
class SeqpacketIo final : public RecordIo {
 public:
  static constexpr std::size_t kRecordBytes = 64 * 1024;
  explicit SeqpacketIo(UniqueFd sock);
  std::size_t max_record() const override { return kRecordBytes; }
  void send_record(std::span<const std::byte> a, std::span<const std::byte> b) override;
  std::size_t recv_record(std::span<std::byte> a, std::span<std::byte> b) override;
  int wait_fd() const override { return fd_.get(); }

 private:
  UniqueFd fd_;
};

}  // namespace ipcbench
