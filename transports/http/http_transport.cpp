// REST over HTTP/1.1 (Boost.Beast), over a Unix socket in the run directory (http-uds)
// or TCP on the bind address (http-tcp). As with gRPC, the peer process is the server
// and the benchmark process is the client, on one kept-alive connection.
//
// How the suite's Channel calls map onto requests (messages: http_codec.h). The client
// holds each message until its next call says what it was:
//  - send then recv: one POST /echo, the message as its body; the 200 reply's body is
//    the server's answer (the echo of a ping, the ack of a sync, stats).
//  - send then send (throughput): one POST /upload with Transfer-Encoding: chunked, one
//    chunk per message, the server taking each chunk as one message; the last chunk
//    goes when the client next calls recv, and the 200 reply (the ack) answers the run.
//    This is the analogue of the other transports' one-way stream: the messages flow
//    back to back with no answer each, over one request. Pipelined POSTs would each
//    need a response (HTTP/1.1 answers every request), so the server would send one
//    reply per message and the run would measure request/response, not a stream.
//  - recv with nothing held: GET /next, answered with the server's next message. The
//    server cannot speak first; what it sends before anyone asked (the peer's greeting,
//    an error report) waits in an outbox for that request.
// End of link: the client closing its connection is the end for the server (recv
// returns 0), the server's connection closing is the end for the client. The client's
// destructor still delivers a held last message (a stop), within half a second.
//
// The server runs Asio on the peer's own thread: recv and send drive the io_context
// until what they wait for has happened, and every accepted connection is a session of
// its own, so a stranger's connection never blocks the client's. The client uses
// Beast's synchronous calls on a blocking socket, as most clients do.
//
// Who may call: any local process can reach the TCP port. The benchmark side makes a
// token (PeerToken), the peer inherits it in a pipe, and the client sends it as
// "Authorization: Bearer <token>" on every request. The server reads a request's header
// alone first and checks it before it reads the body or lets the request count: others
// get 401 and their connection is closed. The first authenticated request owns the link;
// another connection presenting the token gets 409 and is closed. A malformed request
// (method, target, chunk) gets 400 and is closed. At most kMaxCallers other connections
// are kept open, the oldest closed first, so that strangers cannot use up the peer's
// descriptors and keep the client out. Until its first request has been read, the
// client's own connection is one of those: a flood of connections in that moment can
// close it, which fails the cell (an error row); a stranger is never counted. Over a Unix socket
// the server also closes, as it accepts it, any connection from a process of another uid
// (SO_PEERCRED); the socket file is 0600 from its creation, in the 0700 run directory.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/version.hpp>
#include <charconv>
#include <chrono>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <optional>

#include "base/error.h"
#include "base/run_dir.h"
#include "transports/endpoint_reader.h"
#include "transports/framing.h"
#include "transports/http/http_codec.h"
#include "transports/socket_util.h"

namespace ipcbench {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Proto = net::generic::stream_protocol;
using beast::error_code;
using namespace http_codec;

constexpr auto kCloseGrace = std::chrono::milliseconds(500);
// How long a refused connection may still send (its body, say) before it is closed: the
// refusal is read before a reset could destroy it.
constexpr auto kRefusalLinger = std::chrono::seconds(1);
// Beast reads as much as its buffer has room for, and at least 512 bytes: without room
// reserved, a 1 MiB body came in 2048 reads of 512 bytes. (Beast reads 64 KiB at most.)
constexpr std::size_t kReadBytes = 64 * 1024;

std::span<const std::byte> bytes_of(const std::vector<char>& v) {
  return {reinterpret_cast<const std::byte*>(v.data()), v.size()};
}

void set_nodelay(int fd) {
  int one = 1;
  check_sys(::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), "TCP_NODELAY");
}

// An error from Beast's parser (a malformed message), as opposed to the connection's.
bool parse_error(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

// Channels lend the message they received until the next call (view), or copy it.
class MessageChannel : public Channel {
 public:
  std::size_t recv(std::span<std::byte> buf) final {
    std::optional<std::span<const std::byte>> m = next();
    if (!m) return 0;
    if (m->size() > buf.size())
      throw ProtocolError("http: message of " + std::to_string(m->size()) +
                          " bytes does not fit in " + std::to_string(buf.size()));
    std::memcpy(buf.data(), m->data(), m->size());
    return m->size();
  }
  bool view(std::span<const std::byte>* out) final {
    *out = next().value_or(std::span<const std::byte>());
    return true;
  }
  void release() final {}

 protected:
  // The next message; nullopt once the link has ended.
  virtual std::optional<std::span<const std::byte>> next() = 0;
};

// ----------------------------------------------------------------------------------
// Server side (the peer process).

class HttpServer;

// One accepted connection, from its first byte to its close. Asio's handlers hold it.
struct Session : std::enable_shared_from_this<Session> {
  enum State { kHeader, kEchoBody, kUploading, kAwaiting, kWriting, kClosing };
  explicit Session(Proto::socket s) : sock(std::move(s)), timer(sock.get_executor()) {}
  Proto::socket sock;
  net::steady_timer timer;
  beast::flat_buffer buf;
  std::optional<HeadParser> head;  // also the upload's parser (its chunks go to callbacks)
  std::optional<EchoBodyParser> echo;
  Response res;
  State state = kHeader;
  bool keep_alive = true;
  unsigned version = 11;  // the request's HTTP version, answered in kind
  bool reading = false;   // an upload read in flight
  bool writing = false;   // an answer or a refusal on its way
  char sink[4096];        // what a refused connection still sends
};
using SessionPtr = std::shared_ptr<Session>;

class HttpServer final : public MessageChannel {
 public:
  HttpServer(const std::string& address, bool uds, UniqueFd ready, std::string token,
             const SetupWait& wait)
      : uds_(uds), auth_(authorization(token)), wait_(wait), acceptor_(io_) {
    int port = 0;
    if (uds) {
      path_ = address;
      UniqueFd fd = listen_unix_private(address, SOCK_STREAM, kMaxCallers);
      acceptor_.assign(Proto(AF_UNIX, 0), fd.release());
    } else {
      UniqueFd fd(static_cast<int>(check_sys(
          ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), "socket AF_INET")));
      sockaddr_in a{};
      a.sin_family = AF_INET;
      auto ip = parse_ipv4(address);
      if (!ip) throw ProtocolError("http: bad address '" + address + "'");
      a.sin_addr = *ip;
      check_sys(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a),
                "bind " + address + ":0");
      check_sys(::listen(fd.get(), kMaxCallers), "listen (http)");
      socklen_t len = sizeof a;
      check_sys(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len), "getsockname");
      port = ntohs(a.sin_port);
      acceptor_.assign(Proto(AF_INET, IPPROTO_TCP), fd.release());
    }
    accept_next();
    std::string line = std::to_string(port) + "\n";  // "serving" (and the TCP port)
    write_all(ready.get(), std::as_bytes(std::span(line)), "write (http server ready)");
  }

  ~HttpServer() override {
    // Whatever the peer sent last (an error report, an answer) reaches the client if it
    // asks within the grace period.
    const auto end = std::chrono::steady_clock::now() + kCloseGrace;
    try {
      while (owner_ && std::chrono::steady_clock::now() < end) {
        if (!gone() && owner_->state == Session::kAwaiting && !outbox_.empty()) {
          answer(owner_, bytes_of(outbox_.front()));
          outbox_.pop_front();
        }
        if (!owner_->writing && (gone() || outbox_.empty())) break;
        if (io_.stopped()) io_.restart();
        io_.run_one_until(end);
      }
    } catch (...) {
    }
    stopping_ = true;
    error_code ec;
    acceptor_.close(ec);
    if (owner_) owner_->sock.close(ec);
    owner_.reset();
    if (!path_.empty()) ::unlink(path_.c_str());
    // The io_context goes next and takes the other sessions (their handlers) with it.
  }

  void send(std::span<const std::byte> msg) override {
    if (gone()) throw SysError("http: the client went away", EPIPE);
    if (owner_ && owner_->state == Session::kUploading) {
      // The answer to a run: it goes once the client has sent the last chunk (msg may
      // lie in the upload's buffer, which reading on may move: copy it first).
      held_reply_.assign(reinterpret_cast<const char*>(msg.data()),
                         reinterpret_cast<const char*>(msg.data()) + msg.size());
      while (!gone() && owner_->state == Session::kUploading) {
        pump(true);
        step();
      }
      if (gone()) throw SysError("http: the client went away", EPIPE);
      msg = bytes_of(held_reply_);
    }
    if (owner_ && owner_->state == Session::kAwaiting) {
      if (outbox_.empty()) return answer(owner_, msg);
      // Messages nobody has collected yet go first: the peer's messages keep their order.
      outbox_.emplace_back(reinterpret_cast<const char*>(msg.data()),
                           reinterpret_cast<const char*>(msg.data()) + msg.size());
      held_reply_ = std::move(outbox_.front());
      outbox_.pop_front();
      return answer(owner_, bytes_of(held_reply_));
    }
    // Nobody asked (the greeting, an error report): the next GET /next collects it.
    outbox_.emplace_back(reinterpret_cast<const char*>(msg.data()),
                         reinterpret_cast<const char*>(msg.data()) + msg.size());
  }

 private:
  bool gone() const { return closed_ || !failure_.empty(); }

  // Runs one handler; before a client has come, within the set-up's deadline.
  void step() {
    if (io_.stopped()) io_.restart();
    if (!ever_owned_) {
      io_.run_one_for(std::chrono::milliseconds(100));
      wait_.check("http: waiting for the client");
    } else {
      io_.run_one();
    }
  }

  std::optional<std::span<const std::byte>> next() override {
    if (lent_chunk_) {
      ready_.pop_front();
      lent_chunk_ = false;
    }
    for (;;) {
      if (!ready_.empty()) {
        lent_chunk_ = true;
        return std::span<const std::byte>(
            reinterpret_cast<const std::byte*>(upload_.data()) + ready_.front().first,
            ready_.front().second);
      }
      if (echo_ready_) {
        echo_ready_ = false;
        return bytes_of(owner_->echo->get().body());
      }
      if (!failure_.empty()) throw ProtocolError(failure_);
      if (closed_) return std::nullopt;
      pump(false);
      step();
    }
  }

  // During an upload: reads on when the received chunks are used up (or always, when
  // the answer waits for the upload's end).
  void pump(bool always) {
    Session* o = owner_.get();
    if (!o || o->state != Session::kUploading || o->reading) return;
    if (!always && !ready_.empty()) return;
    if (ready_.empty()) {  // nothing received is still wanted: keep the partial chunk only
      upload_.erase(upload_.begin(), upload_.begin() + static_cast<std::ptrdiff_t>(chunk_start_));
      chunk_start_ = 0;
    }
    read_upload(owner_);
  }

  void accept_next() {
    acceptor_.async_accept([this](error_code ec, Proto::socket s) {
      if (stopping_ || ec == net::error::operation_aborted) return;
      if (!ec) {
        on_accept(std::move(s));
        return accept_next();
      }
      // Out of descriptors or memory (a flood of connections): try again in a while.
      auto t = std::make_shared<net::steady_timer>(io_, std::chrono::milliseconds(100));
      t->async_wait([this, t](error_code e) {
        if (!e && !stopping_) accept_next();
      });
    });
  }

  void on_accept(Proto::socket s) {
    const int fd = s.native_handle();
    if (uds_) {
      ucred cred{};
      socklen_t len = sizeof cred;
      if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != ::geteuid())
        return;  // another user's process: closed as s goes
    } else {
      int one = 1;
      (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    auto session = std::make_shared<Session>(std::move(s));
    keep_callers_few(session);
    read_header(session);
  }

  // At most kMaxCallers connections besides the client's are kept (the oldest are closed
  // first), so that strangers cannot take every descriptor the peer may open and keep
  // the client's connection from being accepted.
  void keep_callers_few(const SessionPtr& s) {
    std::erase_if(callers_, [this](const std::weak_ptr<Session>& w) {
      const SessionPtr c = w.lock();
      return !c || c == owner_ || !c->sock.is_open();
    });
    callers_.push_back(s);
    while (callers_.size() > static_cast<std::size_t>(kMaxCallers)) {
      if (const SessionPtr oldest = callers_.front().lock()) {
        error_code ec;
        oldest->timer.cancel();
        oldest->sock.close(ec);
      }
      callers_.pop_front();
    }
  }

  void read_header(const SessionPtr& s) {
    if (s->echo) {  // the previous request's body storage serves the next one
      s->echo->get().body().swap(spare_);
      s->echo.reset();
    }
    s->state = Session::kHeader;
    s->head.emplace();
    prepare(*s->head);
    http::async_read_header(s->sock, s->buf, *s->head,
                            [this, s](error_code ec, std::size_t) { on_header(s, ec); });
  }

  void on_header(const SessionPtr& s, error_code ec) {
    if (stopping_) return;
    const bool owner = s == owner_;
    if (ec) {
      if (parse_error(ec))
        return refuse(s, http::status::bad_request, "a malformed request (" + ec.message() + ")");
      if (owner) closed_ = true;  // the client closed (or reset) its connection
      return;
    }
    const Route r = route(s->head->get(), auth_);
    if (r == Route::kUnauthorized) return refuse(s, http::status::unauthorized, "");
    if (!owner && (owner_ || closed_)) return refuse(s, http::status::conflict, "");
    if (r == Route::kBadRequest)
      return refuse(s, http::status::bad_request,
                    "a bad request (" + std::string(s->head->get().method_string()) + " " +
                        std::string(s->head->get().target()) + ")");
    if (!owner) {
      owner_ = s;
      ever_owned_ = true;
      s->buf.reserve(kReadBytes);
    }
    s->keep_alive = s->head->get().keep_alive();
    s->version = s->head->get().version();
    switch (r) {
      case Route::kEcho:
        s->state = Session::kEchoBody;
        s->echo.emplace(std::move(*s->head));
        s->head.reset();
        prepare(*s->echo);
        spare_.clear();
        s->echo->get().body().swap(spare_);
        http::async_read(s->sock, s->buf, *s->echo,
                         [this, s](error_code e, std::size_t) { on_echo_body(s, e); });
        break;
      case Route::kNext:
        s->state = Session::kAwaiting;
        if (!outbox_.empty()) {
          answer(s, bytes_of(outbox_.front()));
          outbox_.pop_front();
        }
        break;
      case Route::kUpload:
        s->state = Session::kUploading;
        start_upload(*s->head);
        break;
      default:
        break;
    }
  }

  void on_echo_body(const SessionPtr& s, error_code ec) {
    if (stopping_) return;
    if (ec) {
      if (parse_error(ec)) return refuse(s, http::status::bad_request, "a malformed body");
      failure_ =
          "http: the client's connection ended in the middle of a request (" + ec.message() + ")";
      return;
    }
    s->state = Session::kAwaiting;
    echo_ready_ = true;
  }

  // The upload's chunks, each one message, go into upload_ as they arrive.
  void start_upload(HeadParser& p) {
    // Each chunk is checked instead. (Not boost::none: Beast 1.74 compares a length with
    // the optional, and every length is more than none.)
    p.body_limit(std::numeric_limits<std::uint64_t>::max());
    upload_.clear();
    ready_.clear();
    chunk_start_ = 0;
    p.on_chunk_header(on_chunk_header_);
    p.on_chunk_body(on_chunk_body_);
  }
  // (The parser keeps references to these: they live as long as the server.)
  std::function<void(std::uint64_t, beast::string_view, error_code&)> on_chunk_header_ =
      [](std::uint64_t size, beast::string_view, error_code& ec) {
        if (size > kMaxFrameBytes) ec = http::error::body_limit;
      };
  std::function<std::size_t(std::uint64_t, beast::string_view, error_code&)> on_chunk_body_ =
      [this](std::uint64_t remain, beast::string_view body, error_code&) {
        upload_.insert(upload_.end(), body.begin(), body.end());
        if (remain == body.size()) {  // the chunk is complete
          ready_.emplace_back(chunk_start_, upload_.size() - chunk_start_);
          chunk_start_ = upload_.size();
        }
        return body.size();
      };

  void read_upload(const SessionPtr& s) {
    s->reading = true;
    http::async_read_some(s->sock, s->buf, *s->head, [this, s](error_code ec, std::size_t) {
      if (stopping_) return;
      s->reading = false;
      if (ec) {
        if (parse_error(ec))
          return refuse(s, http::status::bad_request, "a malformed upload (" + ec.message() + ")");
        // Gone between chunks: the link ended; in the middle of one: it failed.
        if (s->head->is_header_done() && upload_.size() != chunk_start_)
          failure_ = "http: the client's connection ended in the middle of a message";
        else
          closed_ = true;
        return;
      }
      if (s->head->is_done()) s->state = Session::kAwaiting;
    });
  }

  void answer(const SessionPtr& s, std::span<const std::byte> msg) {
    make_reply(s->res, msg, s->keep_alive, s->version);
    s->state = Session::kWriting;
    s->writing = true;
    http::async_write(s->sock, s->res, [this, s](error_code ec, std::size_t) {
      s->writing = false;
      if (stopping_) return;
      if (ec || !s->keep_alive) {
        if (s == owner_) closed_ = true;
        error_code e;
        s->sock.close(e);
        return;
      }
      read_header(s);
    });
  }

  // Answers with a refusal and closes. `fails_link`: the client itself sent it.
  void refuse(const SessionPtr& s, http::status status, const std::string& what) {
    if (s == owner_) failure_ = "http: the client sent " + what;
    make_refusal(s->res, status);
    s->state = Session::kClosing;
    s->writing = true;
    http::async_write(s->sock, s->res, [this, s](error_code ec, std::size_t) {
      s->writing = false;
      if (stopping_) return;
      error_code e;
      if (ec) return (void)s->sock.close(e);
      // Closed once the other side has stopped sending (or after a while): closing with
      // its bytes unread would reset the connection, and the reset can destroy the
      // refusal before the other side read it.
      s->sock.shutdown(Proto::socket::shutdown_send, e);
      s->timer.expires_after(kRefusalLinger);
      s->timer.async_wait([s](error_code t) {
        error_code e2;
        if (!t) s->sock.close(e2);
      });
      drain(s);
    });
  }
  void drain(const SessionPtr& s) {
    s->sock.async_read_some(net::buffer(s->sink), [this, s](error_code ec, std::size_t) {
      if (stopping_) return;
      if (!ec) return drain(s);
      s->timer.cancel();
      error_code e;
      s->sock.close(e);
    });
  }

  bool uds_;
  std::string path_;
  std::string auth_;
  SetupWait wait_;
  net::io_context io_{1};
  net::basic_socket_acceptor<Proto> acceptor_;
  SessionPtr owner_;
  std::deque<std::weak_ptr<Session>> callers_;  // connections accepted, owner aside
  bool ever_owned_ = false, closed_ = false, stopping_ = false;
  std::string failure_;
  std::deque<std::vector<char>> outbox_;
  std::vector<char> held_reply_;
  std::vector<char> spare_;
  bool echo_ready_ = false;
  // The upload's messages: their bytes back to back, and (offset, size) of each one
  // received and not yet consumed; chunk_start_ is where the chunk being received starts.
  std::vector<char> upload_;
  std::deque<std::pair<std::size_t, std::size_t>> ready_;
  std::size_t chunk_start_ = 0;
  bool lent_chunk_ = false;
};

// ----------------------------------------------------------------------------------
// Client side (the benchmark process).

class HttpClient final : public MessageChannel {
 public:
  HttpClient(UniqueFd fd, int family, std::string host, const std::string& token)
      : fd_(fd.get()), sock_(io_), host_(std::move(host)), auth_(authorization(token)) {
    sock_.assign(Proto(family, family == AF_INET ? IPPROTO_TCP : 0), fd.release());
    buf_.reserve(kReadBytes);
  }
  ~HttpClient() override {
    try {
      finish_briefly();
    } catch (...) {
    }
  }

  void send(std::span<const std::byte> msg) override {
    if (held_) {  // two sends in a row: a run of messages goes up one chunked upload
      if (!uploading_) {
        http::request<http::empty_body> up;
        make_upload(up, host_, auth_);
        http::request_serializer<http::empty_body> sr(up);
        error_code ec;
        http::write_header(sock_, sr, ec);
        if (ec) fail_write(ec, "POST /upload");
        uploading_ = true;
      }
      error_code ec;
      net::write(sock_, http::make_chunk(net::buffer(req_.body())), ec);
      if (ec) fail_write(ec, "POST /upload");
    }
    hold(req_, msg);
    held_ = true;
  }

  void abort() noexcept override { ::shutdown(fd_, SHUT_RDWR); }

 private:
  [[noreturn]] static void fail_write(const error_code& ec, const char* what) {
    if (ec.category() == boost::system::system_category())
      throw SysError(std::string("http: write (") + what + ")", ec.value());
    throw ProtocolError(std::string("http: write (") + what + "): " + ec.message());
  }
  static bool peer_gone(const error_code& ec) {
    return ec == net::error::broken_pipe || ec == net::error::connection_reset ||
           ec == net::error::eof || ec == http::error::end_of_stream;
  }

  std::optional<std::span<const std::byte>> next() override {
    if (ended_) return std::nullopt;
    const char* what;
    error_code ec;
    if (uploading_) {
      what = "POST /upload";
      if (held_) net::write(sock_, http::make_chunk(net::buffer(req_.body())), ec);
      if (!ec) net::write(sock_, http::make_chunk_last(), ec);
      uploading_ = false;
    } else if (held_) {
      what = "POST /echo";
      make_echo(req_, host_, auth_);
      http::write(sock_, req_, ec);
    } else {
      what = "GET /next";
      make_next(req_, host_, auth_);
      http::write(sock_, req_, ec);
    }
    held_ = false;
    if (ec) {
      if (peer_gone(ec)) return end();
      fail_write(ec, what);
    }
    ReplyParser p;
    prepare(p);
    reply_.clear();
    p.get().body().swap(reply_);            // the last reply's storage serves this one
    http::read_header(sock_, buf_, p, ec);  // first, for the body limit (http_codec.h)
    if (!ec) http::read(sock_, buf_, p, ec);
    if (ec) {
      if (!p.got_some() && peer_gone(ec)) return end();
      if (ec == http::error::partial_message || peer_gone(ec))
        throw ProtocolError(std::string("http: the server closed in the middle of its answer to ") +
                            what);
      throw ProtocolError(std::string("http: malformed answer to ") + what + ": " + ec.message());
    }
    check_reply(p.get(), what);
    if (!p.get().keep_alive()) ended_ = true;  // the server is leaving after this
    p.get().body().swap(reply_);
    return bytes_of(reply_);
  }
  std::nullopt_t end() {
    ended_ = true;
    return std::nullopt;
  }

  // At the end: the held message (a stop), delivered without waiting for its answer and
  // within kCloseGrace, as raw bytes (the socket may belong to a stalled server).
  void finish_briefly() {
    std::vector<char> out;
    if (uploading_) {
      if (held_) {
        char hex[32];
        auto r = std::to_chars(hex, hex + sizeof hex, req_.body().size(), 16);
        out.insert(out.end(), hex, r.ptr);
        out.insert(out.end(), {'\r', '\n'});
        out.insert(out.end(), req_.body().begin(), req_.body().end());
        out.insert(out.end(), {'\r', '\n'});
      }
      for (char c : std::string_view("0\r\n\r\n")) out.push_back(c);
    } else if (held_) {
      make_echo(req_, host_, auth_);
      serialize(req_, out);
    }
    const auto end = std::chrono::steady_clock::now() + kCloseGrace;
    for (std::size_t off = 0; off < out.size();) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLOUT, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) return;
      const ssize_t n =
          ::send(fd_, out.data() + off, out.size() - off, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) return;
      off += static_cast<std::size_t>(n);
    }
  }

  int fd_;
  net::io_context io_{1};
  Proto::socket sock_;
  std::string host_, auth_;
  beast::flat_buffer buf_;
  Request req_;
  bool held_ = false, uploading_ = false, ended_ = false;
  std::vector<char> reply_;
};

// Connects a stream socket to `a`, bounded by `wait` (a Unix socket's connect fails with
// EAGAIN while its backlog is full; then it is tried again).
UniqueFd dial(const sockaddr* a, socklen_t len, const SetupWait& wait, const std::string& where) {
  UniqueFd fd(static_cast<int>(check_sys(
      ::socket(a->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), "socket (http)")));
  for (;;) {
    if (::connect(fd.get(), a, len) == 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      wait.check("http: connect " + where);
      ::poll(nullptr, 0, 10);
      continue;
    }
    if (errno != EINPROGRESS) throw SysError("connect " + where, errno);
    wait_fd(fd.get(), POLLOUT, wait, "http connect");
    int err = 0;
    socklen_t elen = sizeof err;
    check_sys(::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &elen), "SO_ERROR");
    if (err != 0) throw SysError("connect " + where, err);
    break;
  }
  const int flags = ::fcntl(fd.get(), F_GETFL);
  check_sys(::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK), "fcntl (http)");
  return fd;
}

// Waits for the peer's server to report it is serving (PeerServerLink), then connects.
class HttpListener final : public Listener {
 public:
  HttpListener(RunDir& dir, bool uds, const TransportSettings& settings, const std::string& name)
      : uds_(uds),
        link_(uds ? dir.make_path("http") : checked_peer_server_address(settings, name)) {}
  const Endpoint& endpoint() const override { return link_.endpoint(); }
  std::unique_ptr<Channel> accept(const SetupWait& wait) override {
    const int port = link_.await_serving(wait, "http");
    const std::string& where = link_.where();
    if (uds_) {
      sockaddr_un a = unix_address(where);
      UniqueFd fd = dial(reinterpret_cast<sockaddr*>(&a), sizeof a, wait, where);
      return std::make_unique<HttpClient>(std::move(fd), AF_UNIX, "localhost", link_.token());
    }
    if (port == 0) throw ProtocolError("http: the server reported no TCP port");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr = *parse_ipv4(where);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    const std::string host = where + ":" + std::to_string(port);
    UniqueFd fd = dial(reinterpret_cast<sockaddr*>(&a), sizeof a, wait, host);
    set_nodelay(fd.get());
    return std::make_unique<HttpClient>(std::move(fd), AF_INET, host, link_.token());
  }

 private:
  bool uds_;
  PeerServerLink link_;
};

class HttpTransport final : public TransportBase {
 public:
  HttpTransport(bool uds, TransportInfo info) : TransportBase(std::move(info)), uds_(uds) {}
  std::unique_ptr<Listener> listen(RunDir& dir, std::size_t,
                                   const TransportSettings& settings) const override {
    return std::make_unique<HttpListener>(dir, uds_, settings, name());
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep, const SetupWait& wait) const override {
    EndpointReader r(ep, name(), {"address", "ready pipe", "token pipe"});
    UniqueFd ready = r.inherited_fd(1);
    std::string token = r.token(2);
    if (!uds_) r.ipv4(0);  // checked here, with the field's name in the message
    return std::make_unique<HttpServer>(ep.addresses[0], uds_, std::move(ready), std::move(token),
                                        wait);
  }

 private:
  bool uds_;
};

TransportInfo http_info(const char* name, bool uds) {
  return {.name = name,
          .family = TransportFamily::kRpc,
          .paradigm = "request/response",
          .kernel_boundaries = false,
          .reach = uds ? "same host (by socket path)" : "network (measured on 127.0.0.1)",
          .coupling =
              "client calls REST resources (method + path); the server is a separate "
              "process",
          .max_message = kMaxFrameBytes,
          .summary = "HTTP/1.1 with Boost.Beast " + std::to_string(BOOST_BEAST_VERSION) +
                     " (asio, server asynchronous on the peer's thread, client synchronous), one "
                     "kept-alive connection, " +
                     (uds ? "Unix socket 0600 in the run directory, own uid only"
                          : "127.0.0.1, ephemeral port") +
                     "; POST /echo per request/reply, a chunked POST /upload (one chunk per "
                     "message) for a run of one-way messages, GET /next for what the server "
                     "sends unasked; every request carries Authorization: Bearer <token>, "
                     "others get 401 and are closed",
          .built_on = uds ? "uds" : "tcp",
          .encoding = "http"};
}

}  // namespace

std::unique_ptr<Transport> make_http_uds_transport() {
  return std::make_unique<HttpTransport>(true, http_info("http-uds", true));
}
std::unique_ptr<Transport> make_http_tcp_transport() {
  return std::make_unique<HttpTransport>(false, http_info("http-tcp", false));
}

}  // namespace ipcbench
