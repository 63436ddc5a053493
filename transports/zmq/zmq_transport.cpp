// ZeroMQ through cppzmq: a PAIR socket pair over ipc:// (socket file in the run
// directory) or tcp://127.0.0.1 (ephemeral port). PAIR keeps message boundaries and
// carries both directions, so ping-pong and one-way throughput run over the same link.
// The many-party forms (fan-in: ROUTER/DEALER; fan-out: XPUB/SUB) are described where
// they are defined, below.
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
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "base/error.h"
#include "base/run_dir.h"
#include "transports/endpoint_reader.h"
#include "transports/many.h"
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

// One login the binding side admits (once), or the connecting side logs in with.
struct Login {
  std::string user, password;
};

// Judges the logins of a socket with ZMTP PLAIN on (ZeroMQ's ZAP, RFC 27): only the
// users of `logins`, each with its own password and once, get in (one user, the peer,
// for a link; one per client for the fan-in ROUTER, one per subscriber for the fan-out
// XPUB). The reply names the user as the
// connection's User-Id, which ZeroMQ attaches to every message that comes over it. (Turning PLAIN
// on is itself what makes ZeroMQ refuse a stranger that speaks first and not ZMTP 3, say HTTP,
// which it would otherwise take for an old-protocol peer and give the PAIR socket's one slot, or
// one that offers another mechanism.) Runs on a thread of its own, in the socket's context, until
// destroyed; with no handler, ZeroMQ refuses every login outright.
class ZapHandler {
 public:
  ZapHandler(zmq::context_t& ctx, std::vector<Login> logins)
      : sock_(ctx, zmq::socket_type::rep), logins_(std::move(logins)), admitted_(logins_.size()) {
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
        std::size_t who = logins_.size();
        if (req.size() == 8 && req[0].to_string_view() == "1.0" &&
            req[2].to_string_view() == kZapDomain && req[5].to_string_view() == "PLAIN")
          for (std::size_t i = 0; i < logins_.size(); ++i)
            if (!admitted_[i] && req[6].to_string_view() == logins_[i].user &&
                req[7].to_string_view() == logins_[i].password)
              who = i;
        const bool ok = who < logins_.size();
        if (ok) admitted_[who] = true;
        const std::string_view reply[] = {"1.0",
                                          req.size() > 1 ? req[1].to_string_view() : "",
                                          ok ? "200" : "400",
                                          ok ? "OK" : "not the peer",
                                          ok ? std::string_view(logins_[who].user) : "",
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
  std::vector<Login> logins_;
  std::vector<bool> admitted_;  // by the handler's thread only
  std::atomic<bool> stop_{false};
  std::string failure_;  // written before failed_ is set
  std::atomic<bool> failed_{false};
  std::thread thread_;
};

// A context, its socket (PAIR for a link; ROUTER and DEALER for fan-in; XPUB and SUB for
// fan-out) and the monitor of its connection events. With logins, the socket logs in as the one it
// is given (connecting) or admits only those (binding). routing_id: a DEALER's name to the ROUTER.
class ZmqLink {
 public:
  ZmqLink(int hwm, bool binding, std::vector<Login> logins = {},
          zmq::socket_type type = zmq::socket_type::pair, const std::string& routing_id = "")
      : ctx_(1), sock_(ctx_, type), hwm_(hwm) {
    try {
      if (!logins.empty() && binding) {
        zap_ = std::make_unique<ZapHandler>(ctx_, std::move(logins));
        sock_.set(zmq::sockopt::zap_domain, kZapDomain);
        sock_.set(zmq::sockopt::plain_server, 1);
      } else if (!logins.empty()) {
        sock_.set(zmq::sockopt::plain_username, logins.at(0).user);
        sock_.set(zmq::sockopt::plain_password, logins.at(0).password);
      }
      if (!routing_id.empty()) sock_.set(zmq::sockopt::routing_id, routing_id);
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
    if (!bound_path_.empty()) ::unlink(bound_path_.c_str());
  }
  // The ipc:// socket file this socket bound, removed when it closes (libzmq leaves it).
  void remove_on_close(std::string path) { bound_path_ = std::move(path); }

  zmq::socket_t& sock() { return sock_; }
  int hwm() const { return hwm_; }

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
      if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) connected_ = true, ++handshakes_;
      wait_ms = 0;
    }
  }
  bool connected() const { return connected_; }
  // Handshakes (logins, with a ZAP handler) that have succeeded so far.
  int handshakes() const { return handshakes_; }
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
  int hwm_;
  zmq::socket_t mon_;
  std::unique_ptr<ZapHandler> zap_;  // ends before the context does
  std::string bound_path_;
  bool connected_ = false, opened_ = false;
  int open_ = 0;  // connections now open
  int handshakes_ = 0;
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

  // ZMQ_FD signals that ZMQ_EVENTS may have changed (edge-triggered), so the events are
  // read before every sleep and after every wake-up. The partner's end is looked for
  // every kSliceMs, as a blocking recv does.
  bool wait_readable(std::chrono::steady_clock::time_point deadline) override {
    for (;;) {
      try {
        if (fd_ < 0) fd_ = link_->sock().get(zmq::sockopt::fd);
        if (link_->sock().get(zmq::sockopt::events) & ZMQ_POLLIN) return true;
      } catch (const zmq::error_t& e) {
        fail("poll", e);
      }
      check_aborted("recv");
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return false;
      const auto slice = std::chrono::milliseconds(kSliceMs);
      const auto left = std::min<std::chrono::nanoseconds>(deadline - now, slice);
      timespec ts{static_cast<time_t>(left.count() / 1'000'000'000),
                  static_cast<long>(left.count() % 1'000'000'000)};
      pollfd p{fd_, POLLIN, 0};
      if (::ppoll(&p, 1, &ts, nullptr) == 0 && left == slice) {
        link_->poll_events(0);
        if (link_->gone()) return true;  // recv reports the end
      }
    }
  }
  // Each direction's pipes hold SNDHWM + RCVHWM messages before a send blocks: with at
  // most the high-water mark unanswered, neither side's send waits.
  std::size_t pipeline_room() const override { return static_cast<std::size_t>(link_->hwm()); }

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
  int fd_ = -1;  // ZMQ_FD, once asked for
};

// Binds the listening socket: a 0600 socket file in the run directory that only our own
// uid may connect to, or an ephemeral TCP port. Returns the addresses the other side
// needs: {path} or {host, port}.
std::vector<std::string> bind_listening(ZmqLink& link, RunDir& dir, bool ipc,
                                        const TransportSettings& settings,
                                        const std::string& transport) {
  try {
    if (ipc) {
      std::string path = dir.make_path("zmq");
      // Only our own uid gets in (SO_PEERCRED, checked at accept). Set before bind:
      // libzmq copies a socket's options into the listener that bind creates, so an
      // option set later never reaches it.
      int uid = static_cast<int>(::geteuid());
      if (zmq_setsockopt(link.sock().handle(), ZMQ_IPC_FILTER_UID, &uid, sizeof uid) != 0)
        throw zmq::error_t();
      {
        // The socket file is 0600 from its creation. libzmq binds on this thread; the
        // umask is restored at once, and no other thread of the benchmark process makes
        // files (see listen_unix_private).
        ScopedUmask private_files(0177);
        link.sock().bind("ipc://" + path);
      }
      link.remove_on_close(path);
      return {path};
    }
    const std::string& host = checked_bind_address(settings, transport);
    link.sock().bind("tcp://" + host + ":*");
    std::string last = link.sock().get(zmq::sockopt::last_endpoint);
    return {host, last.substr(last.rfind(':') + 1)};
  } catch (const zmq::error_t& e) {
    fail("bind", e);
  }
}

class ZmqListener final : public Listener {
 public:
  ZmqListener(RunDir& dir, bool ipc, std::size_t max_message, const TransportSettings& settings)
      : link_(std::make_unique<ZmqLink>(hwm_for(max_message), true,
                                        std::vector<Login>{{kPeerUser, token_.text}})) {
    ep_.addresses = bind_listening(*link_, dir, ipc, settings, ipc ? "zmq-ipc" : "zmq-tcp");
    ep_.addresses.push_back(std::to_string(token_.pipe.get()));
    ep_.addresses.push_back(std::to_string(hwm_for(max_message)));
    ep_.inherit_fds = {token_.pipe.get()};
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

// ----------------------------------------------------------------------------------
// Many parties on one bound socket: fan-in (the clients workload: one ROUTER, one DEALER
// per client) and fan-out (the fanout workload: one XPUB, one SUB per subscriber).
//
// Who is who: party i logs in (ZMTP PLAIN) as user "ipcbench-client-<i>" or
// "ipcbench-subscriber-<i>" with a token of its own, inherited in a pipe as the link's
// peer does; the ZAP handler admits each of those users once, and no one else, until
// every party is in (then it ends, and ZeroMQ refuses every later login). ipc:// keeps
// the link's protection (0600 socket file, own uid only). Endpoint of party i:
// {form ("fan-in" or "fan-out"), socket path or host and port, token pipe, hwm, i}.

constexpr const char* kFanIn = "fan-in";
constexpr const char* kFanOut = "fan-out";

// The user party i of a form logs in as (a fan-in client's routing id, too).
std::string party_user(std::string_view form, std::size_t i) {
  return (form == kFanIn ? "ipcbench-client-" : "ipcbench-subscriber-") + std::to_string(i);
}

// The listening side's socket, bound, and what each of its parties is spawned with.
class ZmqParties {
 public:
  ZmqParties(RunDir& dir, bool ipc, std::size_t max_message, const TransportSettings& settings,
             std::size_t n, const char* form, zmq::socket_type type) {
    std::vector<Login> logins;
    for (std::size_t i = 0; i < n; ++i) {
      tokens_.push_back(PeerToken::make());
      logins.push_back({party_user(form, i), tokens_.back().text});
    }
    link_ = std::make_unique<ZmqLink>(hwm_for(max_message), true, std::move(logins), type);
    std::vector<std::string> where =
        bind_listening(*link_, dir, ipc, settings, ipc ? "zmq-ipc" : "zmq-tcp");
    for (std::size_t i = 0; i < n; ++i) {
      Endpoint ep;
      ep.addresses = {form};
      ep.addresses.insert(ep.addresses.end(), where.begin(), where.end());
      ep.addresses.push_back(std::to_string(tokens_[i].pipe.get()));
      ep.addresses.push_back(std::to_string(hwm_for(max_message)));
      ep.addresses.push_back(std::to_string(i));
      ep.inherit_fds = {tokens_[i].pipe.get()};
      eps_.push_back(std::move(ep));
    }
  }
  std::size_t size() const { return eps_.size(); }
  const Endpoint& endpoint(std::size_t i) const { return eps_.at(i); }
  // Set-up of the socket before accept(); never after it.
  zmq::socket_t& sock() { return link_->sock(); }

  // In accept(), once the parties are spawned: waits until `in` (called again and again,
  // each call waiting up to a slice) counts every party in; fails when a party exited
  // first, when the deadline passes (saying how many of what it waited for came) or when
  // the login check stopped. Then ends the login check and hands the socket over.
  std::unique_ptr<ZmqLink> await(const SetupWait& wait, const std::string& exited,
                                 const std::string& waiting_for,
                                 const std::function<std::size_t(ZmqLink&)>& in) {
    if (!link_) throw ProtocolError("zmq: accept called twice");
    for (std::size_t i = 0; i < tokens_.size(); ++i) tokens_[i].handed_over(eps_[i]);
    for (std::size_t got = 0; got < eps_.size(); got = in(*link_)) {
      if (!wait.peer_alive()) throw ProtocolError("zmq: " + exited);
      if (std::chrono::steady_clock::now() > wait.deadline)
        throw ProtocolError("zmq: timed out waiting for " + waiting_for + " (" +
                            std::to_string(got) + " of " + std::to_string(eps_.size()) + " in)");
      if (std::string why = link_->login_check_failure(); !why.empty())
        throw ProtocolError("zmq: the login check failed: " + why);
    }
    link_->end_login_check();
    return std::move(link_);
  }

 private:
  std::vector<PeerToken> tokens_;
  std::unique_ptr<ZmqLink> link_;
  std::vector<Endpoint> eps_;
};

// Fan-in: ZeroMQ's own many-clients shape. The ROUTER takes every client's requests from
// one fair-queued socket, each prefixed with the routing id of the connection it came
// from, and sends a reply to the connection a routing id names. So the server model is
// "shared-queue": one thread, one socket, every client.
//
// Each DEALER names itself (ZMQ_ROUTING_ID) with the user it logs in as. The server
// takes a request only when its routing id is one of the run's clients and equals the
// User-Id ZeroMQ attached to the message at login (ZAP): anything else (an unknown or a
// borrowed routing id) is refused with ProtocolError. Two connections cannot share a
// routing id: the ROUTER keeps the first and drops the second (ZMQ_ROUTER_HANDOVER is
// off). Replies go out with ZMQ_ROUTER_MANDATORY, so a reply to a client that has gone
// fails instead of vanishing.

class ZmqFanInServer final : public FanInServer {
 public:
  ZmqFanInServer(std::unique_ptr<ZmqLink> link, std::size_t clients)
      : link_(std::move(link)), clients_(clients) {}
  std::vector<Channel*> links() override { return {}; }
  std::string model() const override { return "shared-queue"; }

  std::pair<std::size_t, std::size_t> recv_any(std::span<std::byte> buf) override {
    zmq::message_t id, body;
    for (;;) {
      try {
        if (link_->sock().recv(id, zmq::recv_flags::none)) break;
      } catch (const zmq::error_t& e) {
        fail("recv", e);
      }
      if (aborted_.load(std::memory_order_relaxed)) return {0, 0};
    }
    // A multipart message arrives whole: the body is there.
    try {
      if (!id.more() || !link_->sock().recv(body, zmq::recv_flags::dontwait) || body.more())
        throw ProtocolError("zmq: a request that is not [routing id, message]");
    } catch (const zmq::error_t& e) {
      fail("recv", e);
    }
    const std::size_t client = client_of(id.to_string_view());
    if (client >= clients_)
      throw ProtocolError("zmq: a request from routing id '" + printable(id.to_string_view()) +
                          "', which is none of the run's " + std::to_string(clients_) +
                          " clients: refused");
    const char* user = zmq_msg_gets(body.handle(), "User-Id");  // null: none
    if (!user || std::string_view(user) != party_user(kFanIn, client))
      throw ProtocolError("zmq: a request names itself " + party_user(kFanIn, client) +
                          " but logged in as " + (user ? std::string(user) : "nobody") +
                          ": refused");
    if (body.size() > buf.size())
      throw ProtocolError("zmq: message of " + std::to_string(body.size()) +
                          " bytes does not fit in " + std::to_string(buf.size()));
    std::memcpy(buf.data(), body.data(), body.size());
    return {client, body.size()};
  }

  void reply(std::size_t client, std::span<const std::byte> msg) override {
    if (client >= clients_) throw ProtocolError("zmq: no client " + std::to_string(client));
    const std::string id = party_user(kFanIn, client);
    for (;;) {
      try {
        // Routed whole or not at all: once the first part is taken, so is the rest.
        if (link_->sock().send(zmq::buffer(id), zmq::send_flags::sndmore)) break;
      } catch (const zmq::error_t& e) {
        if (e.num() == EHOSTUNREACH)
          throw SysError("zmq send: client " + std::to_string(client) + " has gone", EPIPE);
        fail("send", e);
      }
      if (aborted_.load(std::memory_order_relaxed))
        throw ProtocolError("zmq send: link shut down by the watchdog");
    }
    try {
      zmq::message_t m(msg.data(), msg.size());
      (void)link_->sock().send(m, zmq::send_flags::none);
    } catch (const zmq::error_t& e) {
      fail("send", e);
    }
  }

  // Every blocking call above waits in slices of kSliceMs and looks at this in between.
  void abort() noexcept override { aborted_.store(true); }

 private:
  // The client a routing id names, or clients_ when it names none.
  std::size_t client_of(std::string_view id) const {
    constexpr std::string_view prefix = "ipcbench-client-";
    if (id.substr(0, prefix.size()) != prefix) return clients_;
    std::string_view digits = id.substr(prefix.size());
    if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0'))
      return clients_;
    std::size_t n = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return clients_;
      n = n * 10 + static_cast<std::size_t>(c - '0');
    }
    return std::min(n, clients_);
  }
  static std::string printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 40)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    return out;
  }

  std::unique_ptr<ZmqLink> link_;
  std::size_t clients_;
  std::atomic<bool> aborted_{false};
};

class ZmqFanInListener final : public FanInListener {
 public:
  ZmqFanInListener(RunDir& dir, bool ipc, std::size_t max_message,
                   const TransportSettings& settings, std::size_t clients)
      : parties_(dir, ipc, max_message, settings, clients, kFanIn, zmq::socket_type::router) {
    try {
      parties_.sock().set(zmq::sockopt::router_mandatory, 1);
    } catch (const zmq::error_t& e) {
      fail("socket set-up", e);
    }
  }
  std::size_t clients() const override { return parties_.size(); }
  const Endpoint& endpoint(std::size_t i) const override { return parties_.endpoint(i); }
  std::unique_ptr<FanInServer> accept(const SetupWait& wait) override {
    // Every client's login succeeds once (its user is admitted once, strangers never).
    auto link = parties_.await(wait, "a client exited before connecting", "the clients to connect",
                               [](ZmqLink& l) {
                                 l.poll_events(kSliceMs);
                                 return static_cast<std::size_t>(l.handshakes());
                               });
    return std::make_unique<ZmqFanInServer>(std::move(link), parties_.size());
  }

 private:
  ZmqParties parties_;
};

// Fan-out: one XPUB socket, one SUB per subscriber, subscribed (to everything) before it
// connects. XPUB, verbose, passes every subscription up to the publisher, so accept()
// returns only once every subscriber's subscription has arrived: nothing published after
// that is lost to a late subscription (ZeroMQ's slow joiner). Only a subscriber that
// logged in can subscribe, and each login is admitted once, so N subscriptions are the
// run's N subscribers. Publishing never blocks: a subscriber whose queue holds SNDHWM +
// RCVHWM messages misses the next ones (dropped by design; the workload counts them).
class ZmqPublisher final : public FanOutPublisher {
 public:
  explicit ZmqPublisher(std::unique_ptr<ZmqLink> link) : link_(std::move(link)) {}
  void publish(std::span<const std::byte> msg) override {
    zmq::message_t m(msg.data(), msg.size());
    try {
      // Never blocks on a full queue (XPUB drops), but may report EAGAIN.
      for (int tries = 0; tries < 100; ++tries)
        if (link_->sock().send(m, zmq::send_flags::none)) return;
    } catch (const zmq::error_t& e) {
      fail("publish", e);
    }
    throw ProtocolError("zmq publish: the socket would not take the message");
  }
  bool drops_by_design() const override { return true; }

 private:
  std::unique_ptr<ZmqLink> link_;
};

class ZmqFanOutListener final : public FanOutListener {
 public:
  ZmqFanOutListener(RunDir& dir, bool ipc, std::size_t max_message,
                    const TransportSettings& settings, std::size_t subscribers)
      : parties_(dir, ipc, max_message, settings, subscribers, kFanOut, zmq::socket_type::xpub) {
    try {
      parties_.sock().set(zmq::sockopt::xpub_verbose, 1);
    } catch (const zmq::error_t& e) {
      fail("socket set-up", e);
    }
  }
  std::size_t subscribers() const override { return parties_.size(); }
  const Endpoint& endpoint(std::size_t i) const override { return parties_.endpoint(i); }
  std::unique_ptr<FanOutPublisher> accept(const SetupWait& wait) override {
    std::size_t subscribed = 0;
    auto link = parties_.await(wait, "a subscriber exited before subscribing", "the subscriptions",
                               [&subscribed](ZmqLink& l) {
                                 l.poll_events(0);
                                 zmq::message_t m;
                                 try {  // waits up to a slice (ZMQ_RCVTIMEO)
                                   if (l.sock().recv(m, zmq::recv_flags::none) && m.size() >= 1 &&
                                       static_cast<const unsigned char*>(m.data())[0] == 1)
                                     ++subscribed;
                                 } catch (const zmq::error_t& e) {
                                   if (e.num() != EINTR) fail("recv (subscriptions)", e);
                                 }
                                 return subscribed;
                               });
    return std::make_unique<ZmqPublisher>(std::move(link));
  }

 private:
  ZmqParties parties_;
};

class ZmqTransport final : public TransportBase {
 public:
  ZmqTransport(bool ipc, TransportInfo info) : TransportBase(std::move(info)), ipc_(ipc) {}
  std::unique_ptr<Listener> listen(RunDir& dir, std::size_t max_message,
                                   const TransportSettings& settings) const override {
    return std::make_unique<ZmqListener>(dir, ipc_, max_message, settings);
  }
  std::unique_ptr<FanInListener> listen_fan_in(RunDir& dir, std::size_t max_message,
                                               const TransportSettings& settings,
                                               std::size_t clients,
                                               const std::string& /*model*/) const override {
    return std::make_unique<ZmqFanInListener>(dir, ipc_, max_message, settings, clients);
  }
  std::unique_ptr<FanOutListener> listen_fan_out(RunDir& dir, std::size_t max_message,
                                                 const TransportSettings& settings,
                                                 std::size_t subscribers) const override {
    return std::make_unique<ZmqFanOutListener>(dir, ipc_, max_message, settings, subscribers);
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep, const SetupWait& wait) const override {
    // A fan-in client's or a subscriber's endpoint starts with its form (a link's with a
    // path or a host) and ends with its number.
    const std::string form =
        !ep.addresses.empty() && (ep.addresses[0] == kFanIn || ep.addresses[0] == kFanOut)
            ? ep.addresses[0]
            : "";
    const bool many = !form.empty();
    const char* party = form == kFanIn ? "client" : "subscriber";
    std::unique_ptr<EndpointReader> r;
    if (many)
      r = std::make_unique<EndpointReader>(
          ep, name(),
          ipc_ ? std::initializer_list<const char*>{"form", "socket path", "token pipe", "hwm",
                                                    party}
               : std::initializer_list<const char*>{"form", "host", "port", "token pipe", "hwm",
                                                    party});
    else
      r = std::make_unique<EndpointReader>(
          ep, name(),
          ipc_ ? std::initializer_list<const char*>{"socket path", "token pipe", "hwm"}
               : std::initializer_list<const char*>{"host", "port", "token pipe", "hwm"});
    const std::size_t first = many ? 1 : 0;                      // where the path or host is
    const std::size_t n = ep.addresses.size() - (many ? 1 : 0);  // before the party's number
    if (!ipc_) r->port(first + 1);
    int hwm = static_cast<int>(r->count(n - 1));
    std::string user = kPeerUser, routing_id;
    zmq::socket_type type = zmq::socket_type::pair;
    if (many) {
      const std::string& text = r->text(n);
      if (text.empty() || text.size() > 3 ||
          text.find_first_not_of("0123456789") != std::string::npos)
        throw ProtocolError(name() + ": " + party + ": '" + text + "' is not a " + party +
                            " number");
      user = party_user(form, std::stoul(text));
      if (form == kFanIn) routing_id = user;
      type = form == kFanIn ? zmq::socket_type::dealer : zmq::socket_type::sub;
    }
    const std::string token = r->token(n - 2);
    auto link =
        std::make_unique<ZmqLink>(hwm, false, std::vector<Login>{{user, token}}, type, routing_id);
    if (type == zmq::socket_type::sub) {
      try {  // before connecting: the subscription goes out with the handshake
        link->sock().set(zmq::sockopt::subscribe, "");
      } catch (const zmq::error_t& e) {
        fail("subscribe", e);
      }
    }
    std::string to = ipc_ ? "ipc://" + ep.addresses[first]
                          : "tcp://" + ep.addresses[first] + ":" + ep.addresses[first + 1];
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
          .built_on = ipc ? "uds" : "tcp",  // libzmq's ipc:// is a Unix stream socket
          .fan_in =
              "one ROUTER socket in the server, one DEALER per client; each client logs "
              "in (ZMTP PLAIN) with a token of its own and names itself by routing id",
          .server_models = {"shared-queue"},
          .fan_out =
              "one XPUB socket, one SUB per subscriber (each logs in with a token of its "
              "own; publishing starts once every subscription has arrived); drops by "
              "design: a subscriber whose queue is at the high-water mark misses "
              "messages (counted as lost)",
          // A socket must not be used by two threads at once.
          .pipelining = "one thread"};
}

}  // namespace

std::unique_ptr<Transport> make_zmq_ipc_transport() {
  return std::make_unique<ZmqTransport>(true, zmq_info("zmq-ipc", true));
}

std::unique_ptr<Transport> make_zmq_tcp_transport() {
  return std::make_unique<ZmqTransport>(false, zmq_info("zmq-tcp", false));
}

}  // namespace ipcbench
