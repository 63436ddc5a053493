// AMQP 0-9-1 through a RabbitMQ broker (rabbitmq-c): the brokered message queue.
//
//   amqp          transient queues, no publisher confirms, consumer without acks
//   amqp-durable  durable queues, persistent messages, each publish confirmed by the
//                 broker before send() returns, each delivery acknowledged
//
// Two queues per link, named per run (<stamp>-amqp-<n>-req/-rep, base/ipc_name.h) and deleted at
// the end; they also carry x-expires so the broker drops them if the run dies. Each side
// publishes on one connection and consumes on another, as RabbitMQ advises. The broker
// is TransportSettings::broker_url, given to listen; the peer gets that URL in a pipe it
// inherits, not on its command line, as it holds the password. Messages name the broker
// without credentials.
//
// A partner that is gone shows as its queue losing its consumer: a side waiting for a
// message looks every kSliceMs, a sender every kProbeBytes or kSliceMs.
//
// The many-party forms (fan-in: the RPC pattern; fan-out: a fanout exchange) are
// described where they are defined, below.
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "base/ipc_name.h"
#include "transports/endpoint_reader.h"
#include "transports/many.h"
#include "transports/socket_util.h"
#include "transports/transport.h"

namespace ipcbench {
namespace {

constexpr int kSliceMs = 50;
constexpr std::size_t kProbeBytes = std::size_t{16} << 20;
constexpr int kQueueExpiresMs = 60000;
// How long the benchmark side gives the broker to answer while listening (listen has no
// set-up deadline: the peer is not started yet); the peer uses what is left of its own.
constexpr std::chrono::milliseconds kListenBrokerWait{5000};
constexpr int kFrameMax = 131072;
constexpr const char* kQueuePrefix = "queue=";
// Fan-in: the request headers that name the client and carry its token.
constexpr const char* kClientHeader = "ipcbench-client";
constexpr const char* kTokenHeader = "ipcbench-token";

// A short string property (reply_to, correlation_id), "" when absent.
std::string text_of(const amqp_bytes_t& b, bool present) {
  return present ? std::string(static_cast<const char*>(b.bytes), b.len) : std::string();
}

// The broker's URL without user and password, for messages.
struct BrokerAddress {
  std::string host, vhost, shown;
  std::string user, password;
  int port = 5672;
};

BrokerAddress parse_broker(const std::string& url) {
  std::vector<char> buf(url.begin(), url.end());
  buf.push_back('\0');
  amqp_connection_info ci{};
  if (amqp_parse_url(buf.data(), &ci) != AMQP_STATUS_OK)
    throw ProtocolError("amqp: IPCBENCH_AMQP_URL is not an amqp:// URL");
  BrokerAddress b{ci.host, ci.vhost, "", ci.user, ci.password, ci.port};
  b.shown =
      "amqp://" + b.host + ":" + std::to_string(b.port) + "/" + (b.vhost == "/" ? "" : b.vhost);
  return b;
}

std::string describe(const amqp_rpc_reply_t& r) {
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return "ok";
    case AMQP_RESPONSE_NONE:
      return "no reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return amqp_error_string2(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        auto* m = static_cast<amqp_connection_close_t*>(r.reply.decoded);
        return "broker closed the connection: " + std::to_string(m->reply_code) + " " +
               std::string(static_cast<char*>(m->reply_text.bytes), m->reply_text.len);
      }
      if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        auto* m = static_cast<amqp_channel_close_t*>(r.reply.decoded);
        return "broker closed the channel: " + std::to_string(m->reply_code) + " " +
               std::string(static_cast<char*>(m->reply_text.bytes), m->reply_text.len);
      }
      return "broker error (method " + std::to_string(r.reply.id) + ")";
  }
  return "unknown reply";
}

// One connection to the broker: channel 1 carries messages, channel 2 asks questions
// (declare, consumer count, delete) so that a refused question never closes channel 1.
class Connection {
 public:
  // within: how long opening the connection (and every later broker question) may take.
  Connection(const BrokerAddress& b, bool confirms, std::chrono::milliseconds within)
      : owned_(amqp_new_connection()), conn_(owned_.get()), where_(b.shown) {
    amqp_socket_t* sock = amqp_tcp_socket_new(conn_);
    if (!sock) fail_sys("cannot create a socket", ENOMEM);
    within = std::max(within, std::chrono::milliseconds(1));
    timeval tv{static_cast<time_t>(within.count() / 1000),
               static_cast<suseconds_t>(within.count() % 1000 * 1000)};
    int rc = amqp_socket_open_noblock(sock, b.host.c_str(), b.port, &tv);
    if (rc != AMQP_STATUS_OK)
      throw SysError("amqp: cannot reach the broker at " + where_ + " (" + amqp_error_string2(rc) +
                         "; start one with ./scripts/broker.sh start or set IPCBENCH_AMQP_URL)",
                     ECONNREFUSED);
    // Our own descriptor of the socket, for abort(): rabbitmq-c closes its own on an RPC
    // timeout, and that number may then name another file.
    abort_fd_ = UniqueFd(::fcntl(amqp_socket_get_sockfd(sock), F_DUPFD_CLOEXEC, 0));
    if (!abort_fd_.valid()) fail_sys("cannot duplicate the socket", errno);
    amqp_set_rpc_timeout(conn_, &tv);
    check(amqp_login(conn_, b.vhost.c_str(), 0, kFrameMax, 0, AMQP_SASL_METHOD_PLAIN,
                     b.user.c_str(), b.password.c_str()),
          "login");
    amqp_channel_open(conn_, 1);
    check(amqp_get_rpc_reply(conn_), "channel.open");
    amqp_channel_open(conn_, 2);
    check(amqp_get_rpc_reply(conn_), "channel.open");
    if (confirms) {
      amqp_confirm_select(conn_, 1);
      check(amqp_get_rpc_reply(conn_), "confirm.select");
    }
  }
  ~Connection() {
    if (open_) {
      if (questions_) amqp_channel_close(conn_, 2, AMQP_REPLY_SUCCESS);
      amqp_channel_close(conn_, 1, AMQP_REPLY_SUCCESS);
      amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
    }
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  amqp_connection_state_t get() { return conn_; }
  // The broker's address, for messages; says so when the watchdog cut the connection.
  std::string where() const {
    return aborted_.load() ? where_ + ", connection shut down by the watchdog" : where_;
  }

  void check(const amqp_rpc_reply_t& r, const char* what) {
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return;
    if (r.reply_type != AMQP_RESPONSE_LIBRARY_EXCEPTION || r.library_error != AMQP_STATUS_TIMEOUT)
      open_ = false;  // the connection is not usable any more
    throw ProtocolError("amqp: " + std::string(what) + " at " + where() + ": " + describe(r));
  }
  [[noreturn]] void fail_sys(const std::string& what, int err) {
    open_ = false;
    throw SysError("amqp: " + what + " (broker " + where() + ")", err);
  }
  void lost() { open_ = false; }
  // From another thread: a publish or a wait blocked on a broker that stopped answering
  // (stopped, or blocking publishers on a memory or disk alarm) fails at once.
  void abort() noexcept {
    aborted_.store(true);
    ::shutdown(abort_fd_.get(), SHUT_RDWR);
  }

  void declare(const std::string& queue, bool durable) {
    amqp_table_entry_t e{};
    e.key = amqp_cstring_bytes("x-expires");
    e.value.kind = AMQP_FIELD_KIND_I32;
    e.value.value.i32 = kQueueExpiresMs;
    amqp_table_t args{1, &e};
    amqp_queue_declare(conn_, 2, amqp_cstring_bytes(queue.c_str()), 0, durable, 0, 0, args);
    check(amqp_get_rpc_reply(conn_), "queue.declare");
  }
  // Consumers of `queue` now; 0 once its consumer's connection is gone or the queue was
  // deleted (its owner ended the link).
  std::uint32_t consumers(const std::string& queue) {
    if (!questions_) return 0;
    auto* ok = amqp_queue_declare(conn_, 2, amqp_cstring_bytes(queue.c_str()), 1, 0, 0, 0,
                                  amqp_empty_table);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(conn_);
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
        static_cast<amqp_channel_close_t*>(r.reply.decoded)->reply_code == AMQP_NOT_FOUND) {
      amqp_channel_close_ok_t close_ok{};
      amqp_send_method(conn_, 2, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok);
      questions_ = false;  // channel 2 is closed now
      return 0;
    }
    check(r, "queue.declare (passive)");
    return ok ? ok->consumer_count : 0;
  }
  // Whether this connection can still ask the broker (not cut by abort(), not failed).
  bool usable() const { return open_ && questions_ && !aborted_.load(); }
  void remove(const std::string& queue) {
    if (!open_ || !questions_) return;
    amqp_queue_delete(conn_, 2, amqp_cstring_bytes(queue.c_str()), 0, 0);
    if (amqp_get_rpc_reply(conn_).reply_type != AMQP_RESPONSE_NORMAL) open_ = false;
  }
  // A fanout exchange, deleted by the broker once no queue is bound to it any more.
  void declare_fanout(const std::string& exchange, bool durable) {
    amqp_exchange_declare(conn_, 2, amqp_cstring_bytes(exchange.c_str()),
                          amqp_cstring_bytes("fanout"), 0, durable, 1, 0, amqp_empty_table);
    check(amqp_get_rpc_reply(conn_), "exchange.declare");
  }
  void bind(const std::string& queue, const std::string& exchange) {
    amqp_queue_bind(conn_, 2, amqp_cstring_bytes(queue.c_str()),
                    amqp_cstring_bytes(exchange.c_str()), amqp_empty_bytes, amqp_empty_table);
    check(amqp_get_rpc_reply(conn_), "queue.bind");
  }
  void remove_exchange(const std::string& exchange) {
    if (!open_ || !questions_) return;
    amqp_exchange_delete(conn_, 2, amqp_cstring_bytes(exchange.c_str()), 0);
    if (amqp_get_rpc_reply(conn_).reply_type != AMQP_RESPONSE_NORMAL) open_ = false;
  }

 private:
  struct Destroy {
    void operator()(amqp_connection_state_t c) const { amqp_destroy_connection(c); }
  };
  std::unique_ptr<amqp_connection_state_t_, Destroy> owned_;  // freed even if set-up fails
  amqp_connection_state_t conn_;
  UniqueFd abort_fd_;
  std::atomic<bool> aborted_{false};
  std::string where_;
  bool open_ = true;
  bool questions_ = true;  // channel 2 open
};

// Properties of a published message: persistent when durable.
amqp_basic_properties_t publish_properties(bool durable) {
  amqp_basic_properties_t props{};
  if (durable) {
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  }
  return props;
}

// Waits for the broker's confirm of the last publish on pub (to `what`).
void await_confirm(Connection& pub, const std::string& what) {
  for (;;) {
    amqp_frame_t f;
    int rc = amqp_simple_wait_frame(pub.get(), &f);
    if (rc != AMQP_STATUS_OK)
      pub.fail_sys(std::string("waiting for the publish confirm: ") + amqp_error_string2(rc),
                   EPIPE);
    if (f.frame_type != AMQP_FRAME_METHOD) continue;
    if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) return;
    if (f.payload.method.id == AMQP_BASIC_NACK_METHOD)
      throw ProtocolError("amqp: the broker refused a message for " + what + " (nack)");
    if (f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD ||
        f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD)
      pub.fail_sys("the broker closed the link while confirming", EPIPE);
  }
}

// Publishes msg on pub's channel 1 (to `exchange`, with `routing_key`) and, when durable,
// waits for the broker's confirm.
void publish_on(Connection& pub, bool durable, const std::string& exchange,
                const std::string& routing_key, const amqp_basic_properties_t& props,
                std::span<const std::byte> msg) {
  amqp_bytes_t body{msg.size(), const_cast<std::byte*>(msg.data())};
  int rc = amqp_basic_publish(pub.get(), 1, amqp_cstring_bytes(exchange.c_str()),
                              amqp_cstring_bytes(routing_key.c_str()), 0, 0, &props, body);
  if (rc != AMQP_STATUS_OK)
    pub.fail_sys(std::string("basic.publish: ") + amqp_error_string2(rc), EPIPE);
  if (durable) await_confirm(pub, exchange.empty() ? routing_key : exchange);
}

// Consumes `queue` on sub's channel 1 (acknowledging each delivery when `ack`).
void start_consuming(Connection& sub, const std::string& queue, bool ack) {
  amqp_basic_consume(sub.get(), 1, amqp_cstring_bytes(queue.c_str()), amqp_empty_bytes, 0,
                     ack ? 0 : 1, 0, amqp_empty_table);
  sub.check(amqp_get_rpc_reply(sub.get()), "basic.consume");
}

// The next delivery of the consumer on sub's channel 1 (of `queue`), copied into buf and,
// when `ack`, acknowledged. With `correlation`, the delivery must bear that correlation id
// (a reply to the request that carried it). Returns 0 when the link has ended: the broker
// cancelled the consumer (the owner deleted the queue), or gone() (asked every kSliceMs)
// says the partner is no more.
std::size_t consume(Connection& sub, std::span<std::byte> buf, bool ack, const std::string& queue,
                    const std::function<bool()>& gone, const std::string* correlation = nullptr) {
  for (;;) {
    amqp_maybe_release_buffers(sub.get());
    amqp_envelope_t env;
    timeval tv{0, kSliceMs * 1000};
    amqp_rpc_reply_t r = amqp_consume_message(sub.get(), &env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
      std::size_t n = env.message.body.len;
      bool fits = n <= buf.size();
      if (fits) std::memcpy(buf.data(), env.message.body.bytes, n);
      std::uint64_t tag = env.delivery_tag;
      const bool answers =
          !correlation ||
          text_of(env.message.properties.correlation_id,
                  env.message.properties._flags & AMQP_BASIC_CORRELATION_ID_FLAG) == *correlation;
      amqp_destroy_envelope(&env);
      if (!fits)
        throw ProtocolError("amqp: message of " + std::to_string(n) + " bytes does not fit in " +
                            std::to_string(buf.size()));
      if (!answers)
        throw ProtocolError("amqp: a reply that does not answer this client's request " +
                            *correlation);
      if (ack && amqp_basic_ack(sub.get(), 1, tag, 0) != AMQP_STATUS_OK)
        sub.fail_sys("basic.ack failed", EPIPE);
      return n;
    }
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT) {
      if (gone()) return 0;
      continue;
    }
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
      // Not a delivery: the broker cancelled our consumer (the side that owns the link
      // deleted its queues: the link ended), or it is closing the channel/connection.
      amqp_frame_t f;
      if (amqp_simple_wait_frame(sub.get(), &f) == AMQP_STATUS_OK &&
          f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_CANCEL_METHOD)
        return 0;
    }
    sub.lost();
    throw ProtocolError("amqp: consuming " + queue + " at " + sub.where() + ": " + describe(r));
  }
}

// Waits until each of `queues` has a consumer (`who` of the run consumes it).
void await_consumers(Connection& pub, const std::vector<std::string>& queues, const SetupWait& wait,
                     const std::string& who) {
  for (const std::string& q : queues)
    while (pub.consumers(q) == 0) {
      if (!wait.peer_alive()) throw ProtocolError("amqp: " + who + " exited before consuming");
      if (std::chrono::steady_clock::now() > wait.deadline)
        throw ProtocolError("amqp: timed out waiting for " + who + " to consume " + q);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

// Deletes what a run declared on the broker (queues, then an exchange, if any) at the end
// of a link or a cell, on every path: with `own` while it can still ask, else (the
// watchdog cut it, or it failed) over a connection of its own, so an aborted cell leaves
// nothing on the broker. Never throws (a destructor's clean-up).
void remove_declared(Connection& own, const BrokerAddress& b,
                     const std::vector<std::string>& queues,
                     const std::string& exchange = "") noexcept {
  auto remove_all = [&](Connection& c) {
    for (const std::string& q : queues) c.remove(q);
    if (!exchange.empty()) c.remove_exchange(exchange);
  };
  try {
    if (own.usable()) {
      remove_all(own);
      if (own.usable()) return;
    }
    Connection fresh(b, false, kListenBrokerWait);
    remove_all(fresh);
  } catch (const std::exception&) {
    // The broker is gone: its queues expire after kQueueExpiresMs unused.
  }
}

class AmqpChannel final : public Channel {
 public:
  // out: the queue this side publishes to (its partner consumes it); in: the queue this
  // side consumes. owner: this side deletes both at the end.
  // within: how long each broker connection may take to open.
  AmqpChannel(const BrokerAddress& b, bool durable, std::string out, std::string in, bool owner,
              std::chrono::milliseconds within)
      : durable_(durable),
        broker_(b),
        pub_(b, durable, within),
        sub_(b, false, within),
        out_(std::move(out)),
        in_(std::move(in)),
        owner_(owner) {
    pub_.declare(out_, durable_);
    pub_.declare(in_, durable_);
    start_consuming(sub_, in_, durable_);
  }
  // Fan-in client: every request names its reply queue (reply_to), a correlation id, and
  // carries the client's number and token in its headers; a reply must bear the id of
  // the request it answers.
  void rpc_client(std::string client, std::string token) {
    client_ = std::move(client);
    token_ = std::move(token);
  }
  ~AmqpChannel() override {
    if (owner_) remove_declared(pub_, broker_, {out_, in_});
  }

  void abort() noexcept override {
    pub_.abort();
    sub_.abort();
  }

  // Waits until the partner consumes its queue (the link is up).
  void await_partner(const SetupWait& wait) { await_consumers(pub_, {out_}, wait, "the peer"); }

  void send(std::span<const std::byte> msg) override {
    auto now = std::chrono::steady_clock::now();
    if (unprobed_bytes_ >= kProbeBytes || now - probed_at_ > std::chrono::milliseconds(kSliceMs)) {
      if (pub_.consumers(out_) == 0)
        throw SysError("amqp: nobody consumes " + out_ + " any more (broker " + pub_.where() + ")",
                       EPIPE);
      probed_at_ = now;
      unprobed_bytes_ = 0;
    }
    unprobed_bytes_ += msg.size();
    amqp_basic_properties_t props = publish_properties(durable_);
    amqp_table_entry_t headers[2];
    const std::string corr = std::to_string(++correlation_);
    if (!token_.empty()) {
      headers[0].key = amqp_cstring_bytes(kClientHeader);
      headers[0].value.kind = AMQP_FIELD_KIND_UTF8;
      headers[0].value.value.bytes = amqp_cstring_bytes(client_.c_str());
      headers[1].key = amqp_cstring_bytes(kTokenHeader);
      headers[1].value.kind = AMQP_FIELD_KIND_UTF8;
      headers[1].value.value.bytes = amqp_cstring_bytes(token_.c_str());
      props._flags |=
          AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_HEADERS_FLAG;
      props.reply_to = amqp_cstring_bytes(in_.c_str());
      props.correlation_id = amqp_cstring_bytes(corr.c_str());
      props.headers = {2, headers};
    }
    publish_on(pub_, durable_, "", out_, props, msg);
  }

  std::size_t recv(std::span<std::byte> buf) override {
    const std::string expected = std::to_string(correlation_);
    return consume(
        sub_, buf, durable_, in_, [this] { return pub_.consumers(out_) == 0; },
        token_.empty() ? nullptr : &expected);
  }

 private:
  bool durable_;
  BrokerAddress broker_;
  Connection pub_, sub_;
  std::string out_, in_;
  bool owner_;
  std::chrono::steady_clock::time_point probed_at_{};
  std::size_t unprobed_bytes_ = 0;
  std::string client_, token_;     // fan-in client only
  std::uint64_t correlation_ = 0;  // the last request's id
};

std::string queue_base() { return ipc_name::next(ipc_name::Kind::kAmqp); }

class AmqpListener final : public Listener {
 public:
  AmqpListener(bool durable, const std::string& broker_url) {
    std::string base = queue_base();
    std::string req = base + "-req", rep = base + "-rep";
    ch_ = std::make_unique<AmqpChannel>(parse_broker(broker_url), durable, req, rep, true,
                                        kListenBrokerWait);
    url_pipe_ = pipe_holding(broker_url, "amqp broker URL");
    ep_.addresses = {kQueuePrefix + req, kQueuePrefix + rep, std::to_string(url_pipe_.get())};
    ep_.inherit_fds = {url_pipe_.get()};
  }
  const Endpoint& endpoint() const override { return ep_; }
  std::unique_ptr<Channel> accept(const SetupWait& wait) override {
    url_pipe_.reset();  // the peer inherited it
    ep_.inherit_fds.clear();
    ch_->await_partner(wait);
    return std::move(ch_);
  }

 private:
  std::unique_ptr<AmqpChannel> ch_;
  UniqueFd url_pipe_;
  Endpoint ep_;
};

// ----------------------------------------------------------------------------------
// Fan-in (the clients workload): RabbitMQ's RPC pattern. One request queue, consumed by
// the server; one reply queue per client, which that client consumes. A request carries
// reply_to (its client's reply queue), a correlation id, and headers naming the client
// and bearing its token; the server publishes the reply to reply_to with the same
// correlation id, and the client checks the id. The server takes every client's
// requests from its one queue on one thread: the server model is "shared-queue".
//
// Who is who: the broker's login lets anyone with the broker's password publish to the
// request queue, so client i gets a token of its own (in a pipe, with the broker URL in
// another). The server takes a request only when its client number is one of the run's,
// its token is that client's and its reply_to is that client's reply queue; anything
// else is refused with ProtocolError. The queues (per run names, x-expires) are deleted
// when the server goes.

class AmqpFanInServer final : public FanInServer {
 public:
  AmqpFanInServer(const BrokerAddress& b, bool durable, std::string requests,
                  std::vector<std::string> replies, std::vector<std::string> tokens)
      : durable_(durable),
        broker_(b),
        pub_(b, durable, kListenBrokerWait),
        sub_(b, false, kListenBrokerWait),
        requests_(std::move(requests)),
        replies_(std::move(replies)),
        tokens_(std::move(tokens)),
        correlation_(replies_.size()) {
    pub_.declare(requests_, durable_);
    for (const std::string& q : replies_) pub_.declare(q, durable_);
    start_consuming(sub_, requests_, durable_);
  }
  ~AmqpFanInServer() override {
    std::vector<std::string> queues = replies_;
    queues.push_back(requests_);
    remove_declared(pub_, broker_, queues);
  }

  // Waits until every client consumes its reply queue.
  void await_clients(const SetupWait& wait) { await_consumers(pub_, replies_, wait, "a client"); }

  std::vector<Channel*> links() override { return {}; }
  std::string model() const override { return "shared-queue"; }

  std::pair<std::size_t, std::size_t> recv_any(std::span<std::byte> buf) override {
    for (;;) {
      amqp_maybe_release_buffers(sub_.get());
      amqp_envelope_t env;
      timeval tv{0, kSliceMs * 1000};
      amqp_rpc_reply_t r = amqp_consume_message(sub_.get(), &env, &tv, 0);
      if (aborted_.load()) {
        if (r.reply_type == AMQP_RESPONSE_NORMAL) amqp_destroy_envelope(&env);
        return {0, 0};
      }
      if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
        continue;
      if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        sub_.lost();
        throw ProtocolError("amqp: consuming " + requests_ + " at " + sub_.where() + ": " +
                            describe(r));
      }
      const amqp_basic_properties_t& p = env.message.properties;
      std::string client, token;
      if (p._flags & AMQP_BASIC_HEADERS_FLAG)
        for (int i = 0; i < p.headers.num_entries; ++i) {
          const amqp_table_entry_t& e = p.headers.entries[i];
          if (e.value.kind != AMQP_FIELD_KIND_UTF8 && e.value.kind != AMQP_FIELD_KIND_BYTES)
            continue;
          std::string key(static_cast<const char*>(e.key.bytes), e.key.len);
          if (key == kClientHeader) client = text_of(e.value.value.bytes, true);
          if (key == kTokenHeader) token = text_of(e.value.value.bytes, true);
        }
      const std::string reply_to = text_of(p.reply_to, p._flags & AMQP_BASIC_REPLY_TO_FLAG);
      const std::string corr = text_of(p.correlation_id, p._flags & AMQP_BASIC_CORRELATION_ID_FLAG);
      const std::size_t n = env.message.body.len;
      const bool fits = n <= buf.size();
      if (fits) std::memcpy(buf.data(), env.message.body.bytes, n);
      const std::uint64_t tag = env.delivery_tag;
      amqp_destroy_envelope(&env);
      if (durable_ && amqp_basic_ack(sub_.get(), 1, tag, 0) != AMQP_STATUS_OK)
        sub_.fail_sys("basic.ack failed", EPIPE);
      const std::size_t k = client_of(client);
      if (k == replies_.size() || token != tokens_[k] || reply_to != replies_[k])
        throw ProtocolError("amqp: a request that names client '" + client.substr(0, 8) +
                            "' without its token or its reply queue: refused");
      if (!fits)
        throw ProtocolError("amqp: message of " + std::to_string(n) + " bytes does not fit in " +
                            std::to_string(buf.size()));
      if (n == 0) throw ProtocolError("amqp: an empty request from client " + client);
      correlation_[k] = corr;
      return {k, n};
    }
  }

  void reply(std::size_t k, std::span<const std::byte> msg) override {
    if (k >= replies_.size()) throw ProtocolError("amqp: no client " + std::to_string(k));
    amqp_basic_properties_t props = publish_properties(durable_);
    props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
    props.correlation_id = amqp_cstring_bytes(correlation_[k].c_str());
    publish_on(pub_, durable_, "", replies_[k], props, msg);
  }

  void abort() noexcept override {
    aborted_.store(true);
    pub_.abort();
    sub_.abort();
  }

 private:
  std::size_t client_of(const std::string& text) const {
    if (text.empty() || text.size() > 3 ||
        text.find_first_not_of("0123456789") != std::string::npos ||
        (text.size() > 1 && text[0] == '0'))
      return replies_.size();
    return std::min<std::size_t>(std::stoul(text), replies_.size());
  }
  bool durable_;
  BrokerAddress broker_;
  Connection pub_, sub_;
  std::string requests_;
  std::vector<std::string> replies_, tokens_, correlation_;
  std::atomic<bool> aborted_{false};
};

class AmqpFanInListener final : public FanInListener {
 public:
  // Endpoint of client i: {"fan-in", request queue, its reply queue, broker URL pipe,
  // token pipe, i}.
  AmqpFanInListener(bool durable, const std::string& broker_url, std::size_t clients) {
    const std::string base = queue_base();
    std::vector<std::string> replies, texts;
    for (std::size_t i = 0; i < clients; ++i) {
      replies.push_back(base + "-rep-" + std::to_string(i));
      tokens_.push_back(PeerToken::make());
      texts.push_back(tokens_.back().text);
      url_pipes_.push_back(pipe_holding(broker_url, "amqp broker URL"));
    }
    server_ = std::make_unique<AmqpFanInServer>(parse_broker(broker_url), durable, base + "-req",
                                                replies, std::move(texts));
    for (std::size_t i = 0; i < clients; ++i)
      eps_.push_back({{"fan-in", kQueuePrefix + base + "-req", kQueuePrefix + replies[i],
                       std::to_string(url_pipes_[i].get()), std::to_string(tokens_[i].pipe.get()),
                       std::to_string(i)},
                      {url_pipes_[i].get(), tokens_[i].pipe.get()}});
  }
  std::size_t clients() const override { return eps_.size(); }
  const Endpoint& endpoint(std::size_t i) const override { return eps_.at(i); }
  std::unique_ptr<FanInServer> accept(const SetupWait& wait) override {
    if (!server_) throw ProtocolError("amqp: accept called twice");
    for (std::size_t i = 0; i < eps_.size(); ++i) {
      url_pipes_[i].reset();  // the client inherited it
      tokens_[i].handed_over(eps_[i]);
    }
    server_->await_clients(wait);
    return std::move(server_);
  }

 private:
  std::vector<PeerToken> tokens_;
  std::vector<UniqueFd> url_pipes_;
  std::unique_ptr<AmqpFanInServer> server_;
  std::vector<Endpoint> eps_;
};

// ----------------------------------------------------------------------------------
// Fan-out (the fanout workload): a fanout exchange and one queue per subscriber bound to
// it, all named for the run (<stamp>-amqp-<n>-fanout, -sub-<i>) and deleted at the end
// (the queues also carry x-expires, and the exchange is auto-delete: it goes with its
// last queue, should the run die). The publisher publishes each message once, to the
// exchange; the broker copies it into every queue; each subscriber consumes its own
// queue on a connection of its own. Nothing is dropped: the queues have no length limit.
// The publisher starts once every queue has its consumer. Each subscriber gets its queue's
// name and, in a pipe it inherits, the broker URL. The broker's login lets anyone with
// its password consume a queue too; a second consumer takes messages from the
// subscriber, which then finds them missing (the workload fails a cell that loses any).

class AmqpPublisher final : public FanOutPublisher {
 public:
  AmqpPublisher(std::unique_ptr<Connection> pub, BrokerAddress broker, bool durable,
                std::string exchange, std::vector<std::string> queues)
      : pub_(std::move(pub)),
        broker_(std::move(broker)),
        durable_(durable),
        exchange_(std::move(exchange)),
        queues_(std::move(queues)) {}
  ~AmqpPublisher() override { remove_declared(*pub_, broker_, queues_, exchange_); }
  void publish(std::span<const std::byte> msg) override {
    publish_on(*pub_, durable_, exchange_, "", publish_properties(durable_), msg);
  }
  void abort() noexcept override { pub_->abort(); }

 private:
  std::unique_ptr<Connection> pub_;
  BrokerAddress broker_;
  bool durable_;
  std::string exchange_;
  std::vector<std::string> queues_;
};

class AmqpFanOutListener final : public FanOutListener {
 public:
  // Endpoint of subscriber i: {"fan-out", its queue, broker URL pipe}.
  AmqpFanOutListener(bool durable, const std::string& broker_url, std::size_t subscribers)
      : durable_(durable),
        broker_(parse_broker(broker_url)),
        pub_(std::make_unique<Connection>(broker_, durable, kListenBrokerWait)) {
    const std::string base = queue_base();
    exchange_ = base + "-fanout";
    try {
      pub_->declare_fanout(exchange_, durable);
      for (std::size_t i = 0; i < subscribers; ++i) {
        queues_.push_back(base + "-sub-" + std::to_string(i));
        pub_->declare(queues_.back(), durable);
        pub_->bind(queues_.back(), exchange_);
        url_pipes_.push_back(pipe_holding(broker_url, "amqp broker URL"));
        eps_.push_back(
            {{"fan-out", kQueuePrefix + queues_.back(), std::to_string(url_pipes_.back().get())},
             {url_pipes_.back().get()}});
      }
    } catch (...) {
      remove_declared(*pub_, broker_, queues_, exchange_);
      throw;
    }
  }
  ~AmqpFanOutListener() override {
    if (pub_) remove_declared(*pub_, broker_, queues_, exchange_);
  }
  std::size_t subscribers() const override { return eps_.size(); }
  const Endpoint& endpoint(std::size_t i) const override { return eps_.at(i); }
  std::unique_ptr<FanOutPublisher> accept(const SetupWait& wait) override {
    if (!pub_) throw ProtocolError("amqp: accept called twice");
    url_pipes_.clear();  // the subscribers inherited them
    for (Endpoint& ep : eps_) ep.inherit_fds.clear();
    await_consumers(*pub_, queues_, wait, "a subscriber");
    // From here the publisher removes them.
    return std::make_unique<AmqpPublisher>(std::move(pub_), broker_, durable_, exchange_,
                                           std::move(queues_));
  }

 private:
  bool durable_;
  BrokerAddress broker_;
  std::unique_ptr<Connection> pub_;
  std::string exchange_;
  std::vector<std::string> queues_;
  std::vector<UniqueFd> url_pipes_;
  std::vector<Endpoint> eps_;
};

// A subscriber's end: consumes its own queue, sends nothing.
class AmqpSubscriber final : public Channel {
 public:
  AmqpSubscriber(const BrokerAddress& b, bool durable, std::string queue,
                 std::chrono::milliseconds within)
      : durable_(durable), sub_(b, false, within), queue_(std::move(queue)) {
    start_consuming(sub_, queue_, durable_);
  }
  void send(std::span<const std::byte>) override {
    throw ProtocolError("amqp: a subscriber's link carries nothing back");
  }
  // Ends when the publisher deletes the queue (the broker cancels the consumer).
  std::size_t recv(std::span<std::byte> buf) override {
    return consume(sub_, buf, durable_, queue_, [] { return false; });
  }
  void abort() noexcept override { sub_.abort(); }

 private:
  bool durable_;
  Connection sub_;
  std::string queue_;
};

class AmqpTransport final : public TransportBase {
 public:
  AmqpTransport(bool durable, TransportInfo info)
      : TransportBase(std::move(info)), durable_(durable) {}
  std::unique_ptr<Listener> listen(RunDir&, std::size_t,
                                   const TransportSettings& settings) const override {
    return std::make_unique<AmqpListener>(durable_, settings.broker_url);
  }
  std::unique_ptr<FanInListener> listen_fan_in(RunDir&, std::size_t,
                                               const TransportSettings& settings,
                                               std::size_t clients,
                                               const std::string& /*model*/) const override {
    return std::make_unique<AmqpFanInListener>(durable_, settings.broker_url, clients);
  }
  std::unique_ptr<FanOutListener> listen_fan_out(RunDir&, std::size_t,
                                                 const TransportSettings& settings,
                                                 std::size_t subscribers) const override {
    return std::make_unique<AmqpFanOutListener>(durable_, settings.broker_url, subscribers);
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep, const SetupWait& wait) const override {
    const bool fan_in = !ep.addresses.empty() && ep.addresses[0] == "fan-in";
    const bool fan_out = !ep.addresses.empty() && ep.addresses[0] == "fan-out";
    auto queue = [&](std::size_t i) {
      const std::string& a = ep.addresses.at(i);
      if (a.rfind(kQueuePrefix, 0) != 0) throw ProtocolError("amqp: bad address '" + a + "'");
      return a.substr(std::strlen(kQueuePrefix));
    };
    EndpointReader r =
        fan_in    ? EndpointReader(ep, name(),
                                   {"fan-in", "request queue", "reply queue", "broker URL pipe",
                                    "token pipe", "client"})
        : fan_out ? EndpointReader(ep, name(), {"fan-out", "queue", "broker URL pipe"})
                  : EndpointReader(ep, name(), {"request queue", "reply queue", "broker URL pipe"});
    const std::string url = r.pipe_text(fan_in ? 3 : 2);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        wait.deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      throw ProtocolError("amqp: the set-up deadline passed before connecting");
    if (fan_out)  // a subscriber consumes its own queue
      return std::make_unique<AmqpSubscriber>(parse_broker(url), durable_, queue(1), left);
    if (fan_in) {
      // A fan-in client publishes requests to the shared queue and consumes its own.
      std::string token = r.token(4);
      auto ch = std::make_unique<AmqpChannel>(parse_broker(url), durable_, queue(1), queue(2),
                                              false, left);
      ch->rpc_client(r.text(5), std::move(token));
      return ch;
    }
    // The peer publishes replies to the second queue and consumes the first.
    return std::make_unique<AmqpChannel>(parse_broker(url), durable_, queue(1), queue(0), false,
                                         left);
  }

 private:
  bool durable_;
};

TransportInfo amqp_info(const char* name, bool durable) {
  return {.name = name,
          .family = TransportFamily::kMessageQueues,
          .paradigm = "message queue (brokered)",
          .kernel_boundaries = true,
          .reach = "network (via a broker; measured on 127.0.0.1)",
          .coupling =
              "decoupled by a broker: producers and consumers know only queue names; "
              "the broker stores, routes and (durable) persists",
          .max_message = std::size_t{64} << 20,
          .summary = std::string("RabbitMQ via rabbitmq-c (AMQP 0-9-1), default exchange, a "
                                 "request and a reply queue per link, separate publishing and "
                                 "consuming connections; ") +
                     (durable ? "durable queues, persistent messages, every publish confirmed "
                                "by the broker before it counts, every delivery acknowledged"
                              : "transient queues, no publisher confirms, no consumer acks"),
          .needs = "AMQP broker (IPCBENCH_AMQP_URL or ./scripts/broker.sh start)",
          .daemon =
              "RabbitMQ broker: a private node ./scripts/broker.sh starts (test.sh and "
              "bench.sh do), or the one IPCBENCH_AMQP_URL names",
          .fan_in =
              "RabbitMQ RPC: one request queue the server consumes, one reply queue per "
              "client (reply_to, correlation_id); each request names its client and "
              "carries that client's token",
          .server_models = {"shared-queue"},
          .fan_out = std::string("a fanout exchange and one queue per subscriber bound to it: the "
                                 "publisher publishes each message once, the broker copies it "
                                 "into every queue (no length limit: nothing dropped)") +
                     (durable ? "; persistent messages, every publish confirmed, every delivery "
                                "acknowledged"
                              : "")};
}

}  // namespace

std::unique_ptr<Transport> make_amqp_transport() {
  return std::make_unique<AmqpTransport>(false, amqp_info("amqp", false));
}
std::unique_ptr<Transport> make_amqp_durable_transport() {
  return std::make_unique<AmqpTransport>(true, amqp_info("amqp-durable", true));
}

}  // namespace ipcbench
