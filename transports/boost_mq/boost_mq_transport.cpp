// Boost.Interprocess message_queue: one queue per direction in POSIX shared memory
// (/dev/shm/ipcbench-<pid>-bmq-<n>-{down,up}, 0600), removed once the peer has opened both.
// The queue preallocates depth x message size, so it is sized from the run's largest
// message (at least 64 KiB, depth 2 to 8 within 64 MiB per queue); every message then
// travels as one record (or a length record and one body record above 64 KiB).
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/interprocess/permissions.hpp>
#include <cstring>
#include <vector>

#include "harness/cleanup.h"
#include "harness/error.h"
#include "harness/liveness.h"
#include "transports/framing.h"

namespace ipcbench {
namespace {

namespace bip = boost::interprocess;
using Queue = bip::message_queue;

boost::posix_time::ptime in_ms(long ms) {
  return boost::posix_time::microsec_clock::universal_time() + boost::posix_time::milliseconds(ms);
}

class BoostMqIo final : public RecordIo {
 public:
  BoostMqIo(std::unique_ptr<Queue> rd, std::unique_ptr<Queue> wr, pid_t partner)
      : rd_(std::move(rd)),
        wr_(std::move(wr)),
        watch_(partner),
        max_(wr_->get_max_msg_size()),
        staging_(rd_->get_max_msg_size()) {}
  ~BoostMqIo() override {
    try {
      wr_->timed_send("", 0, 0, in_ms(50));  // the end marker: the partner's recv returns 0
    } catch (const std::exception&) {
    }
  }
  std::size_t max_record() const override { return max_; }

  void send_record(std::span<const std::byte> a, std::span<const std::byte> b) override {
    const void* p = b.data();
    std::size_t n = b.size();
    if (!a.empty()) {  // the queue takes one buffer: put the length in front
      std::memcpy(staging_.data(), a.data(), a.size());
      if (!b.empty()) std::memcpy(staging_.data() + a.size(), b.data(), b.size());
      p = staging_.data();
      n = a.size() + b.size();
    }
    while (!wr_->timed_send(p, n, 0, in_ms(10)))
      if (watch_.gone()) throw SysError("boost-mq send: the peer process is gone", EPIPE);
  }

  std::size_t recv_record(std::span<std::byte> a, std::span<std::byte> b) override {
    // receive() insists on a buffer of the queue's full message size.
    const bool direct = a.empty() && b.size() >= staging_.size();
    void* p = direct ? static_cast<void*>(b.data()) : staging_.data();
    Queue::size_type got = 0;
    unsigned prio = 0;
    while (!rd_->timed_receive(p, staging_.size(), got, prio, in_ms(10)))
      if (watch_.gone()) return 0;
    if (direct || got == 0) return got;
    if (got > a.size() + b.size())
      throw ProtocolError("boost-mq: message of " + std::to_string(got) +
                          " bytes exceeds the receive buffer");
    std::size_t in_a = std::min<std::size_t>(got, a.size());
    if (in_a > 0) std::memcpy(a.data(), staging_.data(), in_a);
    if (got > in_a) std::memcpy(b.data(), staging_.data() + in_a, got - in_a);
    return got;
  }

 private:
  std::unique_ptr<Queue> rd_, wr_;
  PeerWatch watch_;
  std::size_t max_;
  std::vector<std::byte> staging_;
};

constexpr char kHello[] = "ipcbench-bmq-hello";
constexpr std::size_t kMinMsg = RecordChannel::kOneRecordBytes + 4;
constexpr std::size_t kQueueBudget = std::size_t{64} << 20;

class BoostMqListener final : public Listener {
 public:
  explicit BoostMqListener(std::size_t max_message) {
    static std::atomic<unsigned> counter{0};
    std::string base =
        "ipcbench-" + std::to_string(::getpid()) + "-bmq-" + std::to_string(counter++);
    names_ = {base + "-down", base + "-up"};
    const std::size_t msg = std::max(max_message, kMinMsg);
    const std::size_t depth = std::clamp<std::size_t>(kQueueBudget / msg, 2, 8);
    struct statvfs sv {};
    if (::statvfs("/dev/shm", &sv) == 0 && sv.f_bavail * sv.f_frsize < 2 * depth * msg + (1 << 20))
      throw ProtocolError("boost-mq: /dev/shm has too little room for two queues of " +
                          std::to_string(depth) + " x " + std::to_string(msg) + " bytes");
    try {
      for (int i = 0; i < 2; ++i) {
        slots_[i] = cleanup::add_path(("/dev/shm/" + names_[i]).c_str());
        q_[i] = std::make_unique<Queue>(bip::create_only, names_[i].c_str(), depth, msg,
                                        bip::permissions(0600));
      }
    } catch (const bip::interprocess_exception& e) {
      remove_all();
      throw ProtocolError("boost-mq " + names_[0] + ": " + e.what());
    }
    ep_.addresses = names_;
  }
  ~BoostMqListener() override { remove_all(); }
  const Endpoint& endpoint() const override { return ep_; }

  std::unique_ptr<Channel> accept(const SetupWait& wait) override {
    std::vector<char> buf(q_[1]->get_max_msg_size());
    for (;;) {
      Queue::size_type n = 0;
      unsigned prio = 0;
      if (q_[1]->timed_receive(buf.data(), buf.size(), n, prio, in_ms(20))) {
        pid_t peer = 0;
        if (n != sizeof kHello + sizeof peer || std::memcmp(buf.data(), kHello, sizeof kHello) != 0)
          throw ProtocolError("boost-mq: the peer did not say hello");
        std::memcpy(&peer, buf.data() + sizeof kHello, sizeof peer);
        remove_all();  // both sides have the queues open: the names are no longer needed
        return std::make_unique<RecordChannel>(
            std::make_unique<BoostMqIo>(std::move(q_[1]), std::move(q_[0]), peer));
      }
      if (wait.peer_alive && !wait.peer_alive())
        throw ProtocolError("boost-mq: peer process exited before connecting");
      if (std::chrono::steady_clock::now() >= wait.deadline)
        throw ProtocolError("boost-mq: timed out waiting for the peer");
    }
  }

 private:
  void remove_all() {
    for (int i = 0; i < 2; ++i) {
      if (slots_[i] < 0) continue;
      Queue::remove(names_[i].c_str());
      cleanup::forget_path(slots_[i]);
      slots_[i] = -1;
    }
  }
  std::vector<std::string> names_;
  std::unique_ptr<Queue> q_[2];
  int slots_[2] = {-1, -1};
  Endpoint ep_;
};

class BoostMqTransport final : public Transport {
 public:
  const TransportInfo& info() const override { return info_; }
  std::unique_ptr<Listener> listen(RunDir&, std::size_t max_message) const override {
    return std::make_unique<BoostMqListener>(max_message);
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep) const override {
    if (ep.addresses.size() != 2) throw ProtocolError("boost-mq: expected two queue names");
    try {
      auto rd = std::make_unique<Queue>(bip::open_only, ep.addresses[0].c_str());
      auto wr = std::make_unique<Queue>(bip::open_only, ep.addresses[1].c_str());
      char hello[sizeof kHello + sizeof(pid_t)];
      pid_t self = ::getpid();
      std::memcpy(hello, kHello, sizeof kHello);
      std::memcpy(hello + sizeof kHello, &self, sizeof self);
      wr->send(hello, sizeof hello, 0);
      return std::make_unique<RecordChannel>(
          std::make_unique<BoostMqIo>(std::move(rd), std::move(wr), ::getppid()));
    } catch (const bip::interprocess_exception& e) {
      throw ProtocolError("boost-mq " + ep.addresses[0] + ": " + e.what());
    }
  }

 private:
  TransportInfo info_{"boost-mq",
                      "message queue",
                      true,
                      "same host (any process, by queue name)",
                      "by queue name; decoupled: a sender need not wait for a reader until "
                      "the queue is full",
                      kMaxFrameBytes,
                      "Boost.Interprocess message_queue in POSIX shared memory, one per "
                      "direction, preallocated depth x the run's largest message (min 64 KiB, "
                      "depth 2-8 within 64 MiB); interprocess mutex + condition variables"};
};

}  // namespace

std::unique_ptr<Transport> make_boost_mq_transport() {
  return std::make_unique<BoostMqTransport>();
}

}  // namespace ipcbench
