// ZeroMQ through cppzmq: a PAIR socket pair over ipc:// (socket file in the run
// directory) or tcp://127.0.0.1 (ephemeral port). PAIR keeps message boundaries and
// carries both directions, so ping-pong and one-way throughput run over the same link.
//
// Messages travel as whole zmq messages. The sender writes its message straight into a
// zmq_msg_init_size buffer that zmq then owns (loan/commit); the receiver reads it where
// zmq put it (view/release). Plain send/recv (zmq_send/zmq_recv) copy once.
//
// ZeroMQ hides connections, so a dead partner would leave a blocking call waiting for
// ever: every blocking call here waits in slices of kSliceMs and, between slices, reads
// the socket monitor. The partner is there once a ZMTP handshake has succeeded; the link
// ends (recv returns 0, send throws) when, after that, no connection is left. Anyone can
// connect to a tcp:// port; an ipc:// socket file is 0600 in the 0700 run directory, and
// ZeroMQ closes a connection from another uid as it accepts it (ZMQ_IPC_FILTER_UID).
// Over both, the peer logs in (ZMTP PLAIN) with a token it inherits in a pipe, so that
// neither a stranger on the port nor another process of our own uid takes its place:
// ZeroMQ refuses a stranger that speaks another protocol or offers another mechanism,
// and the binding side's ZAP handler refuses any other login until the peer is in (after
// that ZeroMQ refuses every login). A silent stranger's connection, which never completes
// a handshake, neither stands for the partner nor ends the link when it goes, nor does a
// refused login's, which ZeroMQ keeps open until the stranger closes it (or 30 s pass).
// While one stays, the partner's death goes unseen; the watchdog's abort() then ends the
// wait.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "base/error.h"
#include "base/run_dir.h"
#include "transports/endpoint_reader.h"
#include "transports/socket_util.h"
#include "transports/transport.h"

namespace ipcbench {
namespace {

constexpr int kSliceMs = 50;
// High-water mark (messages queued per direction): ZeroMQ's default of 1000, lowered for
// large messages so that one direction never holds more than kQueueBudget bytes.
constexpr int kDefaultHwm = 1000;
constexpr int kMinHwm = 16;
constexpr std::size_t kQueueBudget = std::size_t{256} << 20;
constexpr int kLingerMs = 100;
constexpr const char* kMonitor = "inproc://ipcbench-monitor";

int hwm_for(std::size_t max_message) {
  std::size_t h = kQueueBudget / std::max<std::size_t>(max_message, 1);
  return static_cast<int>(std::clamp<std::size_t>(h, kMinHwm, kDefaultHwm));
}

[[noreturn]] void fail(const std::string& what, const zmq::error_t& e) {
  throw SysError("zmq " + what + ": " + e.what(), e.num());
}

constexpr const char* kZapDomain = "ipcbench";
constexpr const char* kPeerUser = "ipcbench-peer";

// Judges the logins of a socket with ZMTP PLAIN on (ZeroMQ's ZAP, RFC 27): only the
// peer's user with `token` as password gets in. (Turning PLAIN on is itself what makes
// ZeroMQ refuse a stranger that speaks first and not ZMTP 3, say HTTP, which it would
// otherwise take for an old-protocol peer and give the PAIR socket's one slot, or one
// that offers another mechanism.) Runs on a thread of its own, in the socket's context,
// until destroyed; with no handler, ZeroMQ refuses every login outright.
class ZapHandler {
 public:
  ZapHandler(zmq::context_t& ctx, std::string token)
      : sock_(ctx, zmq::socket_type::rep), token_(std::move(token)) {
    sock_.set(zmq::sockopt::linger, 0);
    sock_.bind("inproc://zeromq.zap.01");  // before any handshake needs it
    thread_ = std::thread([this] { serve(); });
  }
  ~ZapHandler() {
    stop_.store(true);
    thread_.join();
  }
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;
  // Why the handler stopped before it was told to; empty while it runs.
  std::string failure() const {
    return failed_.load(std::memory_order_acquire) ? failure_ : std::string();
  }

 private:
  void serve() {
    try {
      zmq::pollitem_t item{sock_.handle(), 0, ZMQ_POLLIN, 0};
      while (!stop_.load()) {
        if (!poll_in(item)) continue;
        std::vector<zmq::message_t> req;  // version, request id, domain, address,
        do {                              // routing id, mechanism, user, password
          req.emplace_back();
          if (!sock_.recv(req.back(), zmq::recv_flags::dontwait))
            throw std::runtime_error("a ZAP request ended early");
        } while (req.back().more());
        const bool ok = req.size() == 8 && req[0].to_string_view() == "1.0" &&
                        req[2].to_string_view() == kZapDomain &&
                        req[5].to_string_view() == "PLAIN" &&
                        req[6].to_string_view() == kPeerUser && req[7].to_string_view() == token_;
        const std::string_view reply[] = {"1.0",
                                          req.size() > 1 ? req[1].to_string_view() : "",
                                          ok ? "200" : "400",
                                          ok ? "OK" : "not the peer",
                                          "",
                                          ""};
        for (std::size_t i = 0; i < std::size(reply); ++i)
          sock_.send(zmq::buffer(reply[i]),
                     i + 1 < std::size(reply) ? zmq::send_flags::sndmore : zmq::send_flags::none);
      }
    } catch (const std::exception& e) {
      failure_ = e.what();
      failed_.store(true, std::memory_order_release);
    }
    // Closed, the handler makes ZeroMQ refuse later logins at once, rather than leave
    // them waiting for an answer that never comes.
    sock_.close();
  }
  // A request is waiting (within a slice); a signal that interrupts the wait is no end.
  static bool poll_in(zmq::pollitem_t& item) {
    try {
      return zmq::poll(&item, 1, std::chrono::milliseconds(kSliceMs)) > 0;
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) return false;
      throw;
    }
  }

  zmq::socket_t sock_;
  std::string token_;
  std::atomic<bool> stop_{false};
  std::string failure_;  // written before failed_ is set
  std::atomic<bool> failed_{false};
  std::thread thread_;
};

// A context, the PAIR socket and the monitor of its connection events. With a token, the
// socket logs in with it (connecting) or admits only who does (binding).
class ZmqLink {
 public:
  ZmqLink(int hwm, bool binding, const std::string& token = "")
      : ctx_(1), sock_(ctx_, zmq::socket_type::pair) {
    try {
      if (!token.empty() && binding) {
        zap_ = std::make_unique<ZapHandler>(ctx_, token);
        sock_.set(zmq::sockopt::zap_domain, kZapDomain);
        sock_.set(zmq::sockopt::plain_server, 1);
      } else if (!token.empty()) {
        sock_.set(zmq::sockopt::plain_username, kPeerUser);
        sock_.set(zmq::sockopt::plain_password, token);
      }
      sock_.set(zmq::sockopt::sndhwm, hwm);
      sock_.set(zmq::sockopt::rcvhwm, hwm);
      sock_.set(zmq::sockopt::linger, kLingerMs);
      sock_.set(zmq::sockopt::rcvtimeo, kSliceMs);
      sock_.set(zmq::sockopt::sndtimeo, kSliceMs);
      if (!binding) sock_.set(zmq::sockopt::reconnect_ivl, -1);  // a lost link stays lost
      int events = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                   ZMQ_EVENT_HANDSHAKE_SUCCEEDED;
      if (zmq_socket_monitor(sock_.handle(), kMonitor, events) != 0) throw zmq::error_t();
      mon_ = zmq::socket_t(ctx_, zmq::socket_type::pair);
      mon_.set(zmq::sockopt::rcvhwm, 0);  // no event dropped, however many strangers come
      mon_.connect(kMonitor);
    } catch (const zmq::error_t& e) {
      fail("socket set-up", e);
    }
  }
  ~ZmqLink() {
    // Stop the monitor before the sockets close, then let the context finish.
    zmq_socket_monitor(sock_.handle(), nullptr, 0);
    mon_.close();
    sock_.close();
  }

  zmq::socket_t& sock() { return sock_; }

  // Reads pending monitor events (waiting up to wait_ms for the first) and notes whether
  // the partner has connected and whether it has gone since. Every connection, the
  // partner's or a stranger's, is one ACCEPTED or CONNECTED and one DISCONNECTED.
  void poll_events(int wait_ms) {
    zmq::pollitem_t item{mon_.handle(), 0, ZMQ_POLLIN, 0};
    while (zmq::poll(&item, 1, std::chrono::milliseconds(wait_ms)) > 0) {
      zmq::message_t ev, addr;
      if (!mon_.recv(ev, zmq::recv_flags::dontwait)) break;
      (void)mon_.recv(addr, zmq::recv_flags::dontwait);
      std::uint16_t id = 0;
      if (ev.size() >= sizeof id) std::memcpy(&id, ev.data(), sizeof id);
      if (id == ZMQ_EVENT_ACCEPTED || id == ZMQ_EVENT_CONNECTED) {
        ++open_;
        opened_ = true;
      }
      if (id == ZMQ_EVENT_DISCONNECTED && open_ > 0) --open_;
      if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) connected_ = true;
      wait_ms = 0;
    }
  }
  bool connected() const { return connected_; }
  // Why the login check stopped, if it did; ends it once the peer is in (ZeroMQ then
  // refuses any later login outright, and no thread wakes during the measurements).
  std::string login_check_failure() const { return zap_ ? zap_->failure() : std::string(); }
  void end_login_check() { zap_.reset(); }
  bool gone() const { return connected_ && open_ == 0; }
  // A connection was made and none is left (a partner that hung up during the handshake).
  bool dropped() const { return opened_ && open_ == 0; }

 private:
  zmq::context_t ctx_;
  zmq::socket_t sock_;
  zmq::socket_t mon_;
  std::unique_ptr<ZapHandler> zap_;  // ends before the context does
  bool connected_ = false, opened_ = false;
  int open_ = 0;  // connections now open
};

class ZmqChannel final : public Channel {
 public:
  explicit ZmqChannel(std::unique_ptr<ZmqLink> link) : link_(std::move(link)) {}

  void send(std::span<const std::byte> msg) override {
    zmq::message_t m(msg.data(), msg.size());
    push(m);
  }
  std::span<std::byte> loan(std::size_t n) override {
    out_.rebuild(n);
    return {static_cast<std::byte*>(out_.data()), n};
  }
  void commit() override { push(out_); }

  std::size_t recv(std::span<std::byte> buf) override {
    if (!pull()) return 0;
    if (in_.size() > buf.size())
      throw ProtocolError("zmq: message of " + std::to_string(in_.size()) +
                          " bytes does not fit in " + std::to_string(buf.size()));
    std::memcpy(buf.data(), in_.data(), in_.size());
    return in_.size();
  }
  bool view(std::span<const std::byte>* out) override {
    *out = pull()
               ? std::span<const std::byte>(static_cast<const std::byte*>(in_.data()), in_.size())
               : std::span<const std::byte>();
    return true;
  }
  void release() override {}
  void abort() noexcept override { aborted_.store(true); }

 private:
  void check_aborted(const char* what) const {
    if (aborted_.load(std::memory_order_relaxed))
      throw ProtocolError(std::string("zmq ") + what + ": link shut down by the watchdog");
  }
  // Sends m (zmq takes its content). Throws once the partner has gone.
  void push(zmq::message_t& m) {
    for (;;) {
      try {
        if (link_->sock().send(m, zmq::send_flags::none)) return;
      } catch (const zmq::error_t& e) {
        fail("send", e);
      }
      link_->poll_events(0);
      if (link_->gone()) throw SysError("zmq send: the partner disconnected", EPIPE);
      check_aborted("send");
    }
  }
  // Receives the next message into in_; false when the partner has gone.
  bool pull() {
    for (;;) {
      try {
        if (link_->sock().recv(in_, zmq::recv_flags::none)) return true;
      } catch (const zmq::error_t& e) {
        fail("recv", e);
      }
      link_->poll_events(0);
      if (link_->gone()) {
        // Anything that arrived before the disconnect is still delivered.
        try {
          return link_->sock().recv(in_, zmq::recv_flags::dontwait).has_value();
        } catch (const zmq::error_t&) {
          return false;
        }
      }
      check_aborted("recv");
    }
  }

  std::unique_ptr<ZmqLink> link_;
  zmq::message_t out_, in_;
  std::atomic<bool> aborted_{false};
};

class ZmqListener final : public Listener {
 public:
  ZmqListener(RunDir& dir, bool ipc, std::size_t max_message, const TransportSettings& settings)
      : link_(std::make_unique<ZmqLink>(hwm_for(max_message), true, token_.text)) {
    std::string hwm = std::to_string(hwm_for(max_message));
    try {
      if (ipc) {
        std::string path = dir.make_path("zmq");
        // Only our own uid gets in (SO_PEERCRED, checked at accept). Set before bind:
        // libzmq copies a socket's options into the listener that bind creates, so an
        // option set later never reaches it.
        int uid = static_cast<int>(::geteuid());
        if (zmq_setsockopt(link_->sock().handle(), ZMQ_IPC_FILTER_UID, &uid, sizeof uid) != 0)
          throw zmq::error_t();
        {
          // The socket file is 0600 from its creation. libzmq binds on this thread; the
          // umask is restored at once, and no other thread of the benchmark process makes
          // files (see listen_unix_private).
          ScopedUmask private_files(0177);
          link_->sock().bind("ipc://" + path);
        }
        ep_.addresses = {path, std::to_string(token_.pipe.get()), hwm};
      } else {
        const std::string& host = checked_bind_address(settings, "zmq-tcp");
        link_->sock().bind("tcp://" + host + ":*");
        std::string last = link_->sock().get(zmq::sockopt::last_endpoint);
        ep_.addresses = {host, last.substr(last.rfind(':') + 1), std::to_string(token_.pipe.get()),
                         hwm};
      }
      ep_.inherit_fds = {token_.pipe.get()};
    } catch (const zmq::error_t& e) {
      fail("bind", e);
    }
  }
  const Endpoint& endpoint() const override { return ep_; }
  std::unique_ptr<Channel> accept(const SetupWait& wait) override {
    token_.handed_over(ep_);
    while (!link_->connected()) {
      if (!wait.peer_alive()) throw ProtocolError("zmq: the peer exited before connecting");
      if (std::chrono::steady_clock::now() > wait.deadline)
        throw ProtocolError("zmq: timed out waiting for the peer to connect");
      if (std::string why = link_->login_check_failure(); !why.empty())
        throw ProtocolError("zmq: the login check failed: " + why);
      link_->poll_events(kSliceMs);
    }
    link_->end_login_check();
    return std::make_unique<ZmqChannel>(std::move(link_));
  }

 private:
  PeerToken token_ = PeerToken::make();
  std::unique_ptr<ZmqLink> link_;
  Endpoint ep_;
};

class ZmqTransport final : public TransportBase {
 public:
  ZmqTransport(bool ipc, TransportInfo info) : TransportBase(std::move(info)), ipc_(ipc) {}
  std::unique_ptr<Listener> listen(RunDir& dir, std::size_t max_message,
                                   const TransportSettings& settings) const override {
    return std::make_unique<ZmqListener>(dir, ipc_, max_message, settings);
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep, const SetupWait& wait) const override {
    EndpointReader r = ipc_ ? EndpointReader(ep, name(), {"socket path", "token pipe", "hwm"})
                            : EndpointReader(ep, name(), {"host", "port", "token pipe", "hwm"});
    const std::size_t n = ep.addresses.size();
    if (!ipc_) r.port(1);
    int hwm = static_cast<int>(r.count(n - 1));
    const std::string token = r.token(n - 2);
    auto link = std::make_unique<ZmqLink>(hwm, false, token);
    std::string to =
        ipc_ ? "ipc://" + ep.addresses[0] : "tcp://" + ep.addresses[0] + ":" + ep.addresses[1];
    try {
      link->sock().connect(to);
    } catch (const zmq::error_t& e) {
      fail("connect " + to, e);
    }
    // Connecting is asynchronous in ZeroMQ: wait until the link is up.
    while (!link->connected()) {
      if (link->dropped()) throw ProtocolError(name() + ": could not connect to " + to);
      wait.check(name() + ": connecting to " + to);
      link->poll_events(kSliceMs);
    }
    return std::make_unique<ZmqChannel>(std::move(link));
  }

 private:
  bool ipc_;
};

const char* kOptions =
    "; options: SNDHWM=RCVHWM=min(1000, 256 MiB / largest message of the run) messages, "
    "LINGER=100 ms, 1 I/O thread, reconnect off";

TransportInfo zmq_info(const char* name, bool ipc) {
  return {.name = name,
          .family = TransportFamily::kMessageQueues,
          .paradigm = "messaging",
          .kernel_boundaries = true,
          .reach = ipc ? "same host (by ipc:// path)" : "network (measured on 127.0.0.1)",
          .coupling = "by endpoint; brokerless, peers may start in any order",
          .max_message = std::size_t{256} << 20,
          .summary = std::string(ipc ? "ZeroMQ PAIR sockets over ipc:// (Unix socket file 0600 in "
                                       "the run directory, own uid only); the peer logs in "
                                       "(ZMTP PLAIN) with a token, other logins are refused"
                                     : "ZeroMQ PAIR sockets over tcp://127.0.0.1, ephemeral "
                                       "port (ZeroMQ sets TCP_NODELAY); the peer logs in "
                                       "(ZMTP PLAIN) with a token, other logins and "
                                       "protocols are refused") +
                     kOptions,
          .built_on = ipc ? "uds" : "tcp"};  // libzmq's ipc:// is a Unix stream socket
}

}  // namespace

std::unique_ptr<Transport> make_zmq_ipc_transport() {
  return std::make_unique<ZmqTransport>(true, zmq_info("zmq-ipc", true));
}

std::unique_ptr<Transport> make_zmq_tcp_transport() {
  return std::make_unique<ZmqTransport>(false, zmq_info("zmq-tcp", false));
}

}  // namespace ipcbench
