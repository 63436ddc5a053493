#include "transports/framing.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "base/error.h"

namespace ipcbench {
namespace {

constexpr std::size_t kPrefix = kLengthPrefixBytes;
constexpr std::size_t kBufferBytes = 64 * 1024;

std::uint32_t load_len(const std::byte* p) {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);  // x86-64 and aarch64 Linux are little-endian
  return v;
}

void check_len(std::size_t len, std::size_t cap) {
  if (len == 0) throw ProtocolError("framing: zero-length message on the wire");
  if (len > cap)
    throw ProtocolError("framing: incoming message of " + std::to_string(len) +
                        " bytes exceeds the receive buffer of " + std::to_string(cap));
}

[[noreturn]] void closed_mid_message(std::size_t got, std::size_t len) {
  throw ProtocolError("peer closed mid-message (" + std::to_string(got) + " of " +
                      std::to_string(len) + " bytes arrived)");
}

}  // namespace

void writev_all(int fd, iovec* iov, int cnt, const char* what) {
  while (cnt > 0) {
    ssize_t n = ::writev(fd, iov, cnt);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw SysError(what, errno);
    }
    auto left = static_cast<std::size_t>(n);
    while (cnt > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --cnt;
    }
    if (cnt > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
}

void put_frame_length(std::byte* out, std::size_t n) {
  check_len(n, kMaxFrameBytes);
  const auto len = static_cast<std::uint32_t>(n);
  std::memcpy(out, &len, kPrefix);  // little-endian, as load_len reads it
}

std::size_t get_frame_length(const std::byte* in, std::size_t cap) {
  const std::size_t len = load_len(in);
  check_len(len, cap);
  return len;
}

std::size_t stage_frame(std::span<std::byte> stage, std::span<const std::byte> msg) {
  put_frame_length(stage.data(), msg.size());
  if (msg.size() > kStagedFrameBytes) return kPrefix;
  // One write of a copy: cheaper than the kernel's import of a two-piece iovec.
  std::memcpy(stage.data() + kPrefix, msg.data(), msg.size());
  return kPrefix + msg.size();
}

std::size_t unstage_frame(std::span<const std::byte> in, std::span<std::byte> buf) {
  const std::size_t len = get_frame_length(in.data(), buf.size());
  std::memcpy(buf.data(), in.data() + kPrefix, std::min(in.size() - kPrefix, len));
  return len;
}

StreamChannel::StreamChannel(UniqueFd rd, UniqueFd wr)
    : rd_(std::move(rd)), wr_(std::move(wr)), rbuf_(kBufferBytes) {}

StreamChannel::StreamChannel(UniqueFd sock) : rd_(std::move(sock)), rbuf_(kBufferBytes) {}

void StreamChannel::send(std::span<const std::byte> msg) {
  const std::size_t staged = stage_frame(stage_, msg);
  if (msg.size() <= kStagedFrameBytes)
    return write_all(wfd(), std::span(stage_).first(staged), "send (stream)");
  iovec iov[2] = {{stage_.data(), kPrefix}, {const_cast<std::byte*>(msg.data()), msg.size()}};
  writev_all(wfd(), iov, 2, "send (stream)");
}

void StreamChannel::abort() noexcept {
  if (wr_.valid()) return;  // a pair of pipes or FIFOs: no socket to shut down
  aborted_.store(true);
  ::shutdown(rfd(), SHUT_RDWR);
}

std::size_t StreamChannel::ended() const {
  if (aborted_.load()) throw ProtocolError("recv (stream): connection shut down by the watchdog");
  return 0;
}

void StreamChannel::compact() {
  if (pos_ == end_) {
    pos_ = end_ = 0;
  } else if (pos_ > 0) {
    std::memmove(rbuf_.data(), rbuf_.data() + pos_, buffered());
    end_ -= pos_;
    pos_ = 0;
  }
}

void StreamChannel::stash(const std::byte* p, std::size_t n) {
  compact();
  if (end_ + n > rbuf_.size()) rbuf_.resize(end_ + n);
  std::memmove(rbuf_.data() + n, rbuf_.data(), end_);
  std::memcpy(rbuf_.data(), p, n);
  end_ += n;
}

void StreamChannel::read_body(std::span<std::byte> dst, std::size_t have, std::size_t len) {
  std::size_t got = have + read_full(rfd(), dst.subspan(have, len - have), "recv (stream)");
  if (got < len) closed_mid_message(got, len);
}

std::size_t StreamChannel::recv(std::span<std::byte> buf) {
  while (buffered() < kPrefix) {
    compact();
    const std::size_t need = kPrefix - buffered();
    if (last_len_ >= kDirectFrameBytes && buffered() == 0) {
      // Header into our buffer, body (as long as the last one) straight into buf.
      iovec iov[2] = {{rbuf_.data(), need}, {buf.data(), std::min(buf.size(), last_len_)}};
      ssize_t n = ::readv(rfd(), iov, 2);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw SysError("recv (stream)", errno);
      }
      if (n == 0) return ended();
      if (static_cast<std::size_t>(n) < need) {
        end_ += static_cast<std::size_t>(n);
        continue;
      }
      const std::size_t len = get_frame_length(rbuf_.data(), buf.size());
      pos_ = end_ = 0;
      std::size_t direct = static_cast<std::size_t>(n) - need;
      if (direct > len) {  // the next message began: keep its bytes for later
        stash(buf.data() + len, direct - len);
        direct = len;
      }
      read_body(buf, direct, len);
      last_len_ = len;
      return len;
    }
    ssize_t n = ::read(rfd(), rbuf_.data() + end_, rbuf_.size() - end_);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw SysError("recv (stream)", errno);
    }
    if (n == 0) {
      if (buffered() == 0) return ended();
      closed_mid_message(buffered(), kPrefix);
    }
    end_ += static_cast<std::size_t>(n);
  }
  const std::size_t len = unstage_frame({rbuf_.data() + pos_, buffered()}, buf);
  const std::size_t take = std::min(buffered() - kPrefix, len);
  pos_ += kPrefix + take;
  if (take < len) read_body(buf, take, len);
  last_len_ = len;
  return len;
}

RecordChannel::RecordChannel(std::unique_ptr<RecordIo> io) : io_(std::move(io)) {}

void RecordChannel::send(std::span<const std::byte> msg) {
  std::array<std::byte, kPrefix> prefix;
  put_frame_length(prefix.data(), msg.size());
  const std::size_t max = io_->max_record();
  if (kPrefix + msg.size() <= std::min(max, kOneRecordBytes)) {
    io_->send_record(prefix, msg);  // one record: [length | message]
    return;
  }
  io_->send_record(prefix, {});  // a length-only record, then the body in records
  for (std::size_t off = 0; off < msg.size(); off += max)
    io_->send_record({}, msg.subspan(off, std::min(max, msg.size() - off)));
}

std::size_t RecordChannel::recv(std::span<std::byte> buf) {
  std::uint32_t len = 0;
  std::span<std::byte> prefix(reinterpret_cast<std::byte*>(&len), kPrefix);
  const std::size_t max = io_->max_record();
  std::size_t n = io_->recv_record(prefix, buf.first(std::min(buf.size(), kOneRecordBytes)));
  if (n == 0) return 0;
  if (n < kPrefix) throw ProtocolError("record framing: short first record");
  len = static_cast<std::uint32_t>(get_frame_length(prefix.data(), buf.size()));
  if (n > kPrefix) {
    if (n - kPrefix != len)
      throw ProtocolError("record framing: a record of " + std::to_string(n - kPrefix) +
                          " bytes for a message of " + std::to_string(len));
    return len;
  }
  std::size_t got = 0;
  while (got < len) {
    // All the room left, so a queue that insists on a full-size buffer can receive in place.
    std::size_t r = io_->recv_record({}, buf.subspan(got));
    if (r == 0) closed_mid_message(got, len);
    if (r > std::min(len - got, max))
      throw ProtocolError("record framing: a record of " + std::to_string(r) + " bytes with " +
                          std::to_string(len - got) + " left of the message");
    got += r;
  }
  return len;
}

std::span<const std::byte> StagedRecords::join(std::span<const std::byte> a,
                                               std::span<const std::byte> b) {
  if (a.empty()) return b;
  std::memcpy(stage_.data(), a.data(), a.size());
  if (!b.empty()) std::memcpy(stage_.data() + a.size(), b.data(), b.size());
  return {stage_.data(), a.size() + b.size()};
}

std::byte* StagedRecords::landing(std::span<std::byte> a, std::span<std::byte> b) {
  return a.empty() && b.size() >= stage_.size() ? b.data() : stage_.data();
}

std::size_t StagedRecords::split(const std::byte* landed, std::size_t n, std::span<std::byte> a,
                                 std::span<std::byte> b, const char* who) {
  if (landed != stage_.data() || n == 0) return n;
  if (n > a.size() + b.size())
    throw ProtocolError(std::string(who) + ": message of " + std::to_string(n) +
                        " bytes exceeds the receive buffer");
  std::size_t in_a = std::min(n, a.size());
  if (in_a > 0) std::memcpy(a.data(), stage_.data(), in_a);
  if (n > in_a) std::memcpy(b.data(), stage_.data() + in_a, n - in_a);
  return n;
}

std::vector<std::byte> queue_hello(std::string_view tag) {
  std::vector<std::byte> h(tag.size() + sizeof(pid_t));
  const pid_t self = ::getpid();
  std::memcpy(h.data(), tag.data(), tag.size());
  std::memcpy(h.data() + tag.size(), &self, sizeof self);
  return h;
}

pid_t read_queue_hello(std::span<const std::byte> msg, std::string_view tag) {
  pid_t peer = 0;
  if (msg.size() != tag.size() + sizeof peer || std::memcmp(msg.data(), tag.data(), tag.size()))
    throw ProtocolError(std::string(tag) + ": the peer did not say hello");
  std::memcpy(&peer, msg.data() + tag.size(), sizeof peer);
  return peer;
}

SeqpacketIo::SeqpacketIo(UniqueFd sock) : fd_(std::move(sock)) {}

void SeqpacketIo::send_record(std::span<const std::byte> a, std::span<const std::byte> b) {
  iovec iov[2] = {{const_cast<std::byte*>(a.data()), a.size()},
                  {const_cast<std::byte*>(b.data()), b.size()}};
  msghdr mh{};
  mh.msg_iov = a.empty() ? iov + 1 : iov;
  mh.msg_iovlen = a.empty() ? 1 : 2;
  while (::sendmsg(fd_.get(), &mh, MSG_NOSIGNAL) < 0) {
    if (errno != EINTR) throw SysError("send (seqpacket)", errno);
  }
}

std::size_t SeqpacketIo::recv_record(std::span<std::byte> a, std::span<std::byte> b) {
  iovec iov[2] = {{a.data(), a.size()}, {b.data(), b.size()}};
  msghdr mh{};
  mh.msg_iov = a.empty() ? iov + 1 : iov;
  mh.msg_iovlen = a.empty() ? 1 : 2;
  for (;;) {
    ssize_t n = ::recvmsg(fd_.get(), &mh, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw SysError("recv (seqpacket)", errno);
    }
    if (mh.msg_flags & MSG_TRUNC)
      throw ProtocolError("seqpacket: record larger than the receive buffer of " +
                          std::to_string(a.size() + b.size()) + " bytes");
    return static_cast<std::size_t>(n);
  }
}

}  // namespace ipcbench
