#include "transports/queue_fan_in.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <utility>

#include "base/error.h"
#include "transports/framing.h"

namespace ipcbench {
namespace {

struct Envelope {
  std::uint32_t client = 0;
  std::uint32_t len = 0;
};

void put_envelope(std::byte* out, Envelope e) {
  for (int i = 0; i < 4; ++i) {
    out[i] = static_cast<std::byte>(e.client >> (8 * i));
    out[4 + i] = static_cast<std::byte>(e.len >> (8 * i));
  }
}

Envelope get_envelope(const std::byte* in) {
  Envelope e;
  for (int i = 0; i < 4; ++i) {
    e.client |= static_cast<std::uint32_t>(in[i]) << (8 * i);
    e.len |= static_cast<std::uint32_t>(in[4 + i]) << (8 * i);
  }
  return e;
}

// Slices of the waits: how soon a gone partner or an abort is noticed.
constexpr int kSliceMs = 10;

// RecordChannel's records over one queue port. `gone` says the process on the other end
// has exited; `aborted`, when given, that the server was aborted. With `goodbye`, an
// empty record (the end of the link) goes out when it closes.
class PortIo final : public RecordIo {
 public:
  PortIo(std::unique_ptr<QueuePort> port, std::function<bool()> gone,
         const std::atomic<bool>* aborted, std::string what, bool goodbye)
      : port_(std::move(port)),
        gone_(std::move(gone)),
        aborted_(aborted),
        what_(std::move(what)),
        goodbye_(goodbye),
        stage_(port_->max_record()) {}
  ~PortIo() override {
    if (!goodbye_ || (aborted_ && aborted_->load())) return;
    try {
      // Empty, but at a real address: the ports hand it to memcpy, mq_timedsend and
      // Boost's send, which may not be given a null pointer even for no bytes.
      static constexpr std::byte kNothing{};
      port_->try_send(std::span<const std::byte>(&kNothing, 0), 5);
    } catch (const std::exception&) {
    }
  }
  std::size_t max_record() const override { return port_->max_record(); }
  void send_record(std::span<const std::byte> a, std::span<const std::byte> b) override {
    std::span<const std::byte> rec = stage_.join(a, b);  // queues send one buffer
    while (!port_->try_send(rec, kSliceMs)) {
      if (aborted_ && aborted_->load()) throw ProtocolError(what_ + ": aborted");
      if (gone_()) throw SysError(what_ + " send: the peer process is gone", EPIPE);
    }
  }
  std::size_t recv_record(std::span<std::byte> a, std::span<std::byte> b) override {
    std::byte* p = stage_.landing(a, b);
    for (;;) {
      auto n = port_->try_recv({p, port_->max_record()}, kSliceMs);
      if (n) return stage_.split(p, *n, a, b, what_.c_str());
      if (aborted_ && aborted_->load()) throw ProtocolError(what_ + ": aborted");
      if (gone_()) return 0;
    }
  }

 private:
  std::unique_ptr<QueuePort> port_;
  std::function<bool()> gone_;
  const std::atomic<bool>* aborted_;
  std::string what_;
  bool goodbye_;
  StagedRecords stage_;
};

class QueueServer final : public FanInServer {
 public:
  QueueServer(std::string transport, std::unique_ptr<QueuePort> requests,
              std::vector<std::unique_ptr<QueuePort>> replies, std::vector<PeerWatch> clients,
              std::deque<std::vector<std::byte>> early)
      : transport_(std::move(transport)),
        requests_(std::move(requests)),
        watches_(std::move(clients)),
        early_(std::move(early)),
        rec_(requests_->max_record()),
        pending_(watches_.size()),
        ended_(watches_.size()) {
    links_model_ = "shared-queue";
    for (std::size_t i = 0; i < replies.size(); ++i) {
      const PeerWatch* w = &watches_[i];
      replies_.push_back(std::make_unique<RecordChannel>(std::make_unique<PortIo>(
          std::move(replies[i]), [w] { return w->gone(); }, &aborted_,
          transport_ + " reply to client " + std::to_string(i), true)));
    }
  }
  std::vector<Channel*> links() override { return {}; }
  void abort() noexcept override { aborted_.store(true); }

  std::pair<std::size_t, std::size_t> recv_any(std::span<std::byte> buf) override {
    for (;;) {
      std::size_t n;
      if (!early_.empty()) {
        n = early_.front().size();
        std::memcpy(rec_.data(), early_.front().data(), n);
        early_.pop_front();
      } else {
        if (aborted_.load()) return {0, 0};
        auto got = requests_->try_recv(rec_, kSliceMs);
        if (!got) {
          if (all_gone()) return {0, 0};
          continue;
        }
        n = *got;
      }
      if (auto done = take(buf, n)) return *done;
    }
  }

  void reply(std::size_t client, std::span<const std::byte> msg) override {
    if (client >= replies_.size())
      throw ProtocolError(transport_ + ": no client " + std::to_string(client) + " to reply to");
    replies_[client]->send(msg);
  }

 private:
  struct Pending {
    std::uint32_t len = 0;  // 0: no message in progress
    std::size_t got = 0;
    std::vector<std::byte> data;
  };

  bool all_gone() const {
    for (std::size_t i = 0; i < watches_.size(); ++i)
      if (!ended_[i] && !watches_[i].gone()) return false;
    return true;
  }

  // One record of n bytes in rec_: a whole request (returned), or part of one.
  std::optional<std::pair<std::size_t, std::size_t>> take(std::span<std::byte> buf, std::size_t n) {
    if (n < kQueueEnvelopeBytes)
      throw ProtocolError(transport_ + ": a request record of " + std::to_string(n) +
                          " bytes has no envelope");
    const Envelope e = get_envelope(rec_.data());
    const std::string who = transport_ + ": client " + std::to_string(e.client);
    if (e.client >= watches_.size())
      throw ProtocolError(transport_ + ": a request names client " + std::to_string(e.client) +
                          " of " + std::to_string(watches_.size()));
    std::span<const std::byte> body(rec_.data() + kQueueEnvelopeBytes, n - kQueueEnvelopeBytes);
    Pending& p = pending_[e.client];
    if (e.len == 0) {
      if (!body.empty()) throw ProtocolError(who + " said hello twice");
      if (p.len != 0) throw ProtocolError(who + " left in the middle of a message");
      ended_[e.client] = true;
      return std::nullopt;
    }
    if (body.empty()) throw ProtocolError(who + ": an empty record of a message");
    if (p.len == 0) {
      if (e.len > buf.size())
        throw ProtocolError(who + ": a request of " + std::to_string(e.len) +
                            " bytes exceeds the receive buffer of " + std::to_string(buf.size()));
      if (body.size() > e.len)
        throw ProtocolError(who + ": a record of " + std::to_string(body.size()) +
                            " bytes for a message of " + std::to_string(e.len));
      if (body.size() == e.len) {  // the common case: the whole request in one record
        std::memcpy(buf.data(), body.data(), body.size());
        return std::pair{static_cast<std::size_t>(e.client), body.size()};
      }
      p.len = e.len;
      p.got = 0;
      if (p.data.size() < e.len) p.data.resize(e.len);
    } else if (e.len != p.len || body.size() > p.len - p.got) {
      throw ProtocolError(who + ": a record of " + std::to_string(body.size()) +
                          " bytes does not continue its message of " + std::to_string(p.len) +
                          " (" + std::to_string(p.got) + " received)");
    }
    std::memcpy(p.data.data() + p.got, body.data(), body.size());
    p.got += body.size();
    if (p.got < p.len) return std::nullopt;
    const std::size_t len = p.len;
    p.len = 0;
    std::memcpy(buf.data(), p.data.data(), len);
    return std::pair{static_cast<std::size_t>(e.client), len};
  }

  std::string transport_;
  std::unique_ptr<QueuePort> requests_;
  std::vector<PeerWatch> watches_;  // before replies_: their PortIos ask these
  std::vector<std::unique_ptr<RecordChannel>> replies_;
  std::deque<std::vector<std::byte>> early_;  // records that came before the last hello
  std::vector<std::byte> rec_;
  std::vector<Pending> pending_;
  std::vector<bool> ended_;
  std::atomic<bool> aborted_{false};
};

class QueueClient final : public Channel {
 public:
  QueueClient(std::string transport, std::unique_ptr<QueuePort> requests,
              std::unique_ptr<QueuePort> replies, std::uint32_t client, pid_t server)
      : transport_(std::move(transport)),
        requests_(std::move(requests)),
        client_(client),
        server_(std::make_shared<PeerWatch>(server)),
        rec_(requests_->max_record()),
        replies_(std::make_unique<PortIo>(
            std::move(replies), [w = server_] { return w->gone(); }, nullptr,
            transport_ + " replies", false)) {
    if (rec_.size() <= kQueueEnvelopeBytes)
      throw ProtocolError(transport_ + ": request records of " + std::to_string(rec_.size()) +
                          " bytes leave no room for a message");
  }
  ~QueueClient() override {
    put_envelope(rec_.data(), {client_, 0});  // the goodbye
    try {
      requests_->try_send(std::span(rec_).first(kQueueEnvelopeBytes), 50);
    } catch (const std::exception&) {
    }
  }

  void send(std::span<const std::byte> msg) override {
    if (msg.empty() || msg.size() > kMaxFrameBytes)
      throw ProtocolError(transport_ + ": cannot send a message of " + std::to_string(msg.size()) +
                          " bytes");
    const std::size_t room = rec_.size() - kQueueEnvelopeBytes;
    put_envelope(rec_.data(), {client_, static_cast<std::uint32_t>(msg.size())});
    for (std::size_t off = 0; off < msg.size();) {
      const std::size_t k = std::min(room, msg.size() - off);
      std::memcpy(rec_.data() + kQueueEnvelopeBytes, msg.data() + off, k);
      std::span<const std::byte> rec(rec_.data(), kQueueEnvelopeBytes + k);
      while (!requests_->try_send(rec, kSliceMs))
        if (server_->gone()) throw SysError(transport_ + " send: the server is gone", EPIPE);
      off += k;
    }
  }
  std::size_t recv(std::span<std::byte> buf) override { return replies_.recv(buf); }

 private:
  std::string transport_;
  std::unique_ptr<QueuePort> requests_;
  std::uint32_t client_;
  std::shared_ptr<PeerWatch> server_;
  std::vector<std::byte> rec_;
  RecordChannel replies_;
};

}  // namespace

QueueFanIn::QueueFanIn(std::string transport, QueueFanInPorts ports,
                       std::vector<Endpoint> endpoints, std::function<void()> remove_names,
                       std::function<void(std::vector<pid_t>)> on_clients)
    : transport_(std::move(transport)),
      ports_(std::move(ports)),
      eps_(std::move(endpoints)),
      remove_names_(std::move(remove_names)),
      on_clients_(std::move(on_clients)) {}

std::unique_ptr<FanInServer> QueueFanIn::accept(const SetupWait& wait) {
  const std::size_t n = eps_.size();
  std::vector<std::byte> rec(ports_.requests->max_record());
  std::vector<pid_t> pids(n, 0);
  std::deque<std::vector<std::byte>> early;
  for (std::size_t have = 0; have < n;) {
    auto got = ports_.requests->try_recv(rec, 20);
    if (!got) {
      wait.check(transport_);
      continue;
    }
    if (*got < kQueueEnvelopeBytes)
      throw ProtocolError(transport_ + ": a record of " + std::to_string(*got) +
                          " bytes has no envelope");
    const Envelope e = get_envelope(rec.data());
    if (e.client >= n)
      throw ProtocolError(transport_ + ": a hello names client " + std::to_string(e.client) +
                          " of " + std::to_string(n));
    std::span<const std::byte> body =
        std::span(rec).subspan(kQueueEnvelopeBytes, *got - kQueueEnvelopeBytes);
    if (e.len != 0 || body.empty()) {
      if (pids[e.client] == 0)
        throw ProtocolError(transport_ + ": client " + std::to_string(e.client) +
                            " sent a record before its hello");
      early.emplace_back(rec.begin(), rec.begin() + static_cast<std::ptrdiff_t>(*got));
      continue;
    }
    if (pids[e.client] != 0)
      throw ProtocolError(transport_ + ": client " + std::to_string(e.client) +
                          " said hello twice");
    pids[e.client] = read_queue_hello(body, transport_);
    ++have;
  }
  remove_names_();  // every client has its queues open: the names are no longer needed
  std::vector<PeerWatch> watches;
  for (pid_t p : pids) watches.emplace_back(p);
  if (on_clients_) on_clients_(pids);
  return std::make_unique<QueueServer>(transport_, std::move(ports_.requests),
                                       std::move(ports_.replies), std::move(watches),
                                       std::move(early));
}

std::unique_ptr<Channel> connect_queue_fan_in(const std::string& transport,
                                              std::unique_ptr<QueuePort> requests,
                                              std::unique_ptr<QueuePort> replies,
                                              std::uint32_t client, pid_t server,
                                              const SetupWait& wait) {
  std::vector<std::byte> hello = queue_hello(transport);
  std::vector<std::byte> rec(kQueueEnvelopeBytes + hello.size());
  put_envelope(rec.data(), {client, 0});
  std::memcpy(rec.data() + kQueueEnvelopeBytes, hello.data(), hello.size());
  if (rec.size() > requests->max_record())
    throw ProtocolError(transport + ": the request queue's records are too small for a hello");
  // A full queue is a server that is not reading yet: retry until the set-up deadline.
  while (!requests->try_send(rec, 20)) wait.check(transport + ": sending the hello");
  return std::make_unique<QueueClient>(transport, std::move(requests), std::move(replies), client,
                                       server);
}

}  // namespace ipcbench
