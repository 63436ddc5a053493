// JSON-RPC 2.0 over a byte stream: jsonrpc-pipe, jsonrpc-uds, jsonrpc-tcp. The link is
// set up exactly as pipe, uds and tcp set theirs up (stream_link.h: the same objects,
// token and checks); over it the peer process is the JSON-RPC server and the benchmark
// process the client. Messages are framed, encoded and decoded by jsonrpc_codec.h.
//
// A call carries one message there and its answer back, so the client holds each message
// it sends until its next call says what the message was (as grpc-tcp does):
//  - send then recv: an "echo" request; its result is the peer's next message (the echo
//    of a ping, the ack of a sync).
//  - send then send: the held message goes as a "push" notification, unanswered (a
//    throughput run; its last message goes as the echo request the ack answers).
//  - recv with nothing held (the peer speaks first: its greeting, an error report): a
//    "next" request, answered with the peer's next message.
// The server answers requests in order with the messages its side sends, in order; one
// sent before any request asks for it waits in an outbox. Ids count up from 1 and the
// client checks that each response carries the id of its request.
//
// The link's end: end of file between frames is recv's 0; in the middle of a frame, a
// ProtocolError. A server that cannot serve a request answers it with the JSON-RPC error
// (-32700 invalid JSON, -32600 invalid request, -32601 unknown method, -32602 bad params)
// and then fails; an error object the client receives is a ProtocolError naming its code
// and message. Destructors deliver what is left (the client's held stop, the server's
// unasked messages) within kCloseGrace: each wait for a frame to start or for room to
// write is bounded by it; a partner that stops in the middle of a frame it is sending
// holds the server's destructor until the benchmark side, which gives the peer 2 s to
// exit once the link is closed (PeerSession), kills it.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>

#include "transports/jsonrpc/jsonrpc_codec.h"
#include "transports/stream_link.h"

namespace ipcbench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kCloseGrace = std::chrono::milliseconds(500);
constexpr std::size_t kReadBytes = 64 * 1024;

int left_ms(Clock::time_point deadline) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<std::int64_t>(0, ms.count()));
}

void check_size(std::span<const std::byte> msg) {
  if (msg.empty() || msg.size() > kMaxFrameBytes)
    throw ProtocolError("jsonrpc: a message of " + std::to_string(msg.size()) + " bytes (1 to " +
                        std::to_string(kMaxFrameBytes) + " are carried)");
}

// Frames on one byte stream: two pipes, or one socket.
class FrameStream {
 public:
  explicit FrameStream(StreamFds fds)
      : rd_(std::move(fds.rd)), wr_(std::move(fds.wr)), buf_(kReadBytes) {}

  // The next frame's body; false when the link ended between frames.
  bool read(std::string& body) {
    std::size_t searched = 0;
    std::size_t length = 0;
    for (;;) {
      const std::string_view have(buf_.data() + pos_, end_ - pos_);
      const std::size_t at = have.find("\r\n\r\n", searched < 3 ? 0 : searched - 3);
      if (at != std::string_view::npos && at + 4 <= kMaxJsonRpcHeader) {
        length = parse_header_block(have.substr(0, at + 4));
        pos_ += at + 4;
        break;
      }
      if (at != std::string_view::npos || have.size() >= kMaxJsonRpcHeader)
        throw ProtocolError("jsonrpc: no end of the header block in its first " +
                            std::to_string(kMaxJsonRpcHeader) + " bytes");
      searched = have.size();
      std::memmove(buf_.data(), buf_.data() + pos_, have.size());
      pos_ = 0;
      end_ = have.size();
      const ssize_t n = read_some(buf_.data() + end_, buf_.size() - end_);
      if (n == 0) {
        if (end_ == 0) return ended();
        throw ProtocolError("jsonrpc: the link ended in the middle of a header (" +
                            std::to_string(end_) + " bytes)");
      }
      end_ += static_cast<std::size_t>(n);
    }
    body.resize(length);
    const std::size_t take = std::min(length, end_ - pos_);
    std::memcpy(body.data(), buf_.data() + pos_, take);
    pos_ += take;
    if (take < length) {
      const std::size_t got =
          take + read_full(rd_.get(), std::as_writable_bytes(std::span(body)).subspan(take),
                           "jsonrpc: recv");
      if (got < length)
        throw ProtocolError("jsonrpc: the link ended in the middle of a body (" +
                            std::to_string(got) + " of " + std::to_string(length) + " bytes)");
    }
    return true;
  }

  void write(const JsonRpcFrame& f) {
    iovec iov[2] = {piece(f.header), piece(f.body)};
    writev_all(wfd(), iov, 2, "jsonrpc: send");
  }

  // For the destructors: writes f if the stream takes it within kCloseGrace (a frame
  // larger than the room then left in the kernel's buffer is cut short).
  void write_briefly(const JsonRpcFrame& f) noexcept {
    const int flags = ::fcntl(wfd(), F_GETFL);
    pollfd p{wfd(), POLLOUT, 0};
    if (flags < 0 || ::fcntl(wfd(), F_SETFL, flags | O_NONBLOCK) != 0 ||
        ::poll(&p, 1, static_cast<int>(kCloseGrace.count())) <= 0)
      return;
    try {
      write(f);
    } catch (...) {
    }
    // On a socket the same descriptor also reads: blocking again, so that reading on
    // (the server's destructor) waits rather than fail with EAGAIN.
    (void)::fcntl(wfd(), F_SETFL, flags);
  }

  // Whether a frame (or the end) can be read before `deadline`.
  bool readable_by(Clock::time_point deadline) const {
    if (pos_ < end_) return true;
    pollfd p{rd_.get(), POLLIN, 0};
    return ::poll(&p, 1, left_ms(deadline)) > 0;
  }

  void abort() noexcept {
    if (wr_.valid()) return;  // pipes: killing the peer is enough
    aborted_.store(true);
    ::shutdown(rd_.get(), SHUT_RDWR);
  }

 private:
  static iovec piece(const std::string& s) { return {const_cast<char*>(s.data()), s.size()}; }
  int wfd() const { return wr_.valid() ? wr_.get() : rd_.get(); }
  bool ended() const {
    if (aborted_.load()) throw ProtocolError("jsonrpc: connection shut down by the watchdog");
    return false;
  }
  ssize_t read_some(char* p, std::size_t n) {
    for (;;) {
      const ssize_t r = ::read(rd_.get(), p, n);
      if (r >= 0) return r;
      if (errno != EINTR) throw SysError("jsonrpc: recv", errno);
    }
  }

  UniqueFd rd_, wr_;
  std::vector<char> buf_;
  std::size_t pos_ = 0, end_ = 0;
  std::atomic<bool> aborted_{false};
};

// The benchmark side.
class JsonRpcClient final : public Channel {
 public:
  explicit JsonRpcClient(StreamFds fds) : io_(std::move(fds)) {}
  ~JsonRpcClient() override {
    if (!held_) return;
    try {  // the last message (a stop): a notification, as nothing will answer it
      encode_call(frame_, "push", &text_, std::nullopt);
      io_.write_briefly(frame_);
    } catch (...) {
    }
  }

  void send(std::span<const std::byte> msg) override {
    check_size(msg);
    if (held_) {  // two sends in a row: the first needs no answer
      held_ = false;
      encode_call(frame_, "push", &text_, std::nullopt);
      io_.write(frame_);
    }
    base64_encode(msg, text_);
    held_ = true;
  }

  std::size_t recv(std::span<std::byte> buf) override {
    const std::uint64_t id = ++next_id_;
    encode_call(frame_, held_ ? "echo" : "next", held_ ? &text_ : nullptr, id);
    held_ = false;
    try {
      io_.write(frame_);
    } catch (const SysError& e) {
      if (e.code() == EPIPE || e.code() == ECONNRESET) return 0;  // the server is gone
      throw;
    }
    if (!io_.read(body_)) return 0;
    return decode_response(body_, parsed_, id, buf);
  }

  void abort() noexcept override { io_.abort(); }

 private:
  FrameStream io_;
  JsonRpcFrame frame_;
  std::string text_;  // the held message, in base64
  bool held_ = false;
  std::uint64_t next_id_ = 0;
  std::string body_;
  nlohmann::json parsed_;
};

// The peer's side.
class JsonRpcServer final : public Channel {
 public:
  explicit JsonRpcServer(StreamFds fds) : io_(std::move(fds)) {}
  ~JsonRpcServer() override {
    // Messages never asked for (an error report before the peer gives up) go to the
    // client's next requests, as long as it makes them soon.
    const auto deadline = Clock::now() + kCloseGrace;
    try {
      while (!outbox_.empty() && io_.readable_by(deadline) && io_.read(body_)) {
        std::vector<std::byte> sink(body_.size());
        const JsonRpcCall call = decode_call(body_, parsed_, sink);
        if (call.method != JsonRpcCall::kPush) pending_.push_back(call.id);
        while (!pending_.empty() && !outbox_.empty()) {
          encode_answer(outbox_.front());
          outbox_.pop_front();
          io_.write_briefly(frame_);
        }
      }
    } catch (...) {
    }
  }

  void send(std::span<const std::byte> msg) override {
    check_size(msg);
    if (pending_.empty()) {
      outbox_.emplace_back(msg.begin(), msg.end());
      return;
    }
    encode_answer(msg);
    io_.write(frame_);
  }

  std::size_t recv(std::span<std::byte> buf) override {
    for (;;) {
      if (!io_.read(body_)) return 0;
      JsonRpcCall call;
      try {
        call = decode_call(body_, parsed_, buf);
      } catch (const JsonRpcFault& f) {
        try {
          encode_error(frame_, f.id(), f.code(), f.message());
          io_.write(frame_);
        } catch (...) {
        }
        throw;
      }
      if (call.method != JsonRpcCall::kPush) pending_.push_back(std::move(call.id));
      while (!pending_.empty() && !outbox_.empty()) {
        encode_answer(outbox_.front());
        outbox_.pop_front();
        io_.write(frame_);
      }
      if (call.method != JsonRpcCall::kNext) return call.size;
    }
  }

  void abort() noexcept override { io_.abort(); }

 private:
  // The response to the oldest request waiting, carrying msg, into frame_.
  void encode_answer(std::span<const std::byte> msg) {
    base64_encode(msg, text_);
    encode_result(frame_, pending_.front(), text_);
    pending_.pop_front();
  }

  FrameStream io_;
  JsonRpcFrame frame_;
  std::string text_;
  std::string body_;
  nlohmann::json parsed_;
  std::deque<nlohmann::json> pending_;         // ids of requests not yet answered
  std::deque<std::vector<std::byte>> outbox_;  // messages sent before a request
};

std::unique_ptr<Channel> client(StreamFds fds) {
  return std::make_unique<JsonRpcClient>(std::move(fds));
}
std::unique_ptr<Channel> server(StreamFds fds) {
  return std::make_unique<JsonRpcServer>(std::move(fds));
}

enum class Base { kPipe, kUds, kTcp };

class JsonRpcTransport final : public TransportBase {
 public:
  JsonRpcTransport(Base base, TransportInfo info) : TransportBase(std::move(info)), base_(base) {}
  std::unique_ptr<Listener> listen(RunDir& dir, std::size_t,
                                   const TransportSettings& settings) const override {
    switch (base_) {
      case Base::kPipe:
        return listen_pipe_link(client);
      case Base::kUds:
        return listen_uds_link(dir, name(), client);
      case Base::kTcp:
        break;
    }
    return listen_tcp_link(settings, name(), client);
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep, const SetupWait& /*wait*/) const override {
    switch (base_) {
      case Base::kPipe:
        return connect_pipe_link(ep, name(), server);
      case Base::kUds:
        return connect_uds_link(ep, name(), server);
      case Base::kTcp:
        break;
    }
    return connect_tcp_link(ep, name(), server);
  }

 private:
  Base base_;
};

std::string summary(const char* link) {
  return std::string("JSON-RPC 2.0 over ") + link +
         ": the peer serves, the benchmark side calls; each message one JSON object "
         "(nlohmann-json " +
         std::to_string(NLOHMANN_JSON_VERSION_MAJOR) + "." +
         std::to_string(NLOHMANN_JSON_VERSION_MINOR) + "." +
         std::to_string(NLOHMANN_JSON_VERSION_PATCH) +
         ") framed by a Content-Length header, the payload in base64 (OpenSSL); send then "
         "recv is one echo call, one-way runs go as push notifications and their last "
         "message as the call the ack answers, the peer's own messages come back to next "
         "calls";
}

}  // namespace

std::unique_ptr<Transport> make_jsonrpc_pipe_transport() {
  return std::make_unique<JsonRpcTransport>(
      Base::kPipe,
      TransportInfo{.name = "jsonrpc-pipe",
                    .family = TransportFamily::kRpc,
                    .paradigm = "RPC",
                    .kernel_boundaries = false,
                    .reach = "same host (parent and child)",
                    .coupling = "parent and child only: the descriptors are inherited; the "
                                "client calls methods the peer serves",
                    .max_message = kMaxFrameBytes,
                    .summary = summary("two anonymous pipes the child inherits"),
                    .built_on = "pipe",
                    .encoding = "jsonrpc"});
}

std::unique_ptr<Transport> make_jsonrpc_uds_transport() {
  return std::make_unique<JsonRpcTransport>(
      Base::kUds,
      TransportInfo{.name = "jsonrpc-uds",
                    .family = TransportFamily::kRpc,
                    .paradigm = "RPC",
                    .kernel_boundaries = false,
                    .reach = "same host (any process, by path)",
                    .coupling = "by socket path, one connection; the client calls methods the "
                                "peer serves",
                    .max_message = kMaxFrameBytes,
                    .summary = summary("a Unix SOCK_STREAM socket (file 0600, own uid only, "
                                       "the peer presents a token first)"),
                    .built_on = "uds",
                    .encoding = "jsonrpc"});
}

std::unique_ptr<Transport> make_jsonrpc_tcp_transport() {
  return std::make_unique<JsonRpcTransport>(
      Base::kTcp,
      TransportInfo{.name = "jsonrpc-tcp",
                    .family = TransportFamily::kRpc,
                    .paradigm = "RPC",
                    .kernel_boundaries = false,
                    .reach = "network (measured on 127.0.0.1)",
                    .coupling = "by address and port, one connection; the client calls methods "
                                "the peer serves",
                    .max_message = kMaxFrameBytes,
                    .summary = summary("TCP on loopback (TCP_NODELAY, the peer presents a "
                                       "token first)"),
                    .built_on = "tcp",
                    .encoding = "jsonrpc"});
}

}  // namespace ipcbench
