// Boost.Interprocess message_queue (boost-mq): one queue per direction in POSIX shared
// memory, named <stamp>-bmq-<n>-{down,up} (base/ipc_name.h), created 0600 and removed as soon as
// the peer has opened both (and on every exit path before that).
//
// Sizing: Boost preallocates depth x message size. Each queue holds kBoostMqDepth
// records big enough for the run's largest message (RecordChannel::whole_record_bytes),
// at most kMaxRecord: a larger message is split into records of that size, never
// truncated.
//
// Liveness: Boost 1.74 copies every message in and out while holding the queue's
// process-shared mutex, a plain (not robust) one, and takes it without a timeout,
// also when a timed wait wakes up. A peer killed mid-copy would leave it locked for
// good and this side blocked for ever. So each side keeps a guard thread, asleep in
// poll() on the partner's pidfd: when the partner has exited, it releases any queue lock
// that a thread outside this process still holds. The blocked call then goes on and
// fails with "the peer died holding a queue's lock" (what the peer was copying may be
// torn; it is never handed on). (Making the
// mutex robust instead does not work: after EOWNERDEAD inside a timed wait, Boost loops
// for ever on the unrecoverable lock.) Waits are timed, 10 ms slices, so that a partner
// that died elsewhere is noticed too, as with posix-mq.
//
// Fan-in (the clients workload): the classic queue server, one shared request queue and
// one reply queue per client (listen_boost_fan_in below, transports/queue_fan_in.h).
#include <linux/futex.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/interprocess/permissions.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <charconv>
#include <fstream>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "base/cleanup.h"
#include "base/error.h"
#include "base/fd.h"
#include "base/ipc_name.h"
#include "base/liveness.h"
#include "transports/boost_mq/boost_mq.h"
#include "transports/endpoint_reader.h"
#include "transports/framing.h"
#include "transports/queue_fan_in.h"

namespace ipcbench {

namespace bip = boost::interprocess;
using Header = bip::ipcdetail::mq_hdr_t<bip::offset_ptr<void>>;  // public in Boost 1.74

QueueLock::QueueLock(const std::string& name, std::size_t depth, std::size_t msg_size) {
  using Segment =
      bip::ipcdetail::managed_open_or_create_impl<bip::shared_memory_object, 0, true, false>;
  // interprocess_mutex holds a posix_mutex that holds the pthread_mutex_t, nothing else.
  static_assert(std::is_standard_layout_v<bip::interprocess_mutex> &&
                sizeof(bip::interprocess_mutex) == sizeof(pthread_mutex_t));
  try {
    bip::shared_memory_object shm(bip::open_only, name.c_str(), bip::read_write);
    region_ = bip::mapped_region(shm, bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    throw ProtocolError("boost-mq " + name + ": " + e.what());
  }
  auto* hdr = reinterpret_cast<Header*>(static_cast<char*>(region_.get_address()) +
                                        Segment::ManagedOpenOrCreateUserOffset);
  if (region_.get_size() < Segment::ManagedOpenOrCreateUserOffset + sizeof(Header) ||
      hdr->m_max_num_msg != depth || hdr->m_max_msg_size != msg_size)
    throw ProtocolError("boost-mq " + name +
                        ": not a queue laid out as in Boost 1.74 (cannot reach its lock)");
  mutex_ = reinterpret_cast<pthread_mutex_t*>(&hdr->m_mutex);
}

// glibc's plain mutex: __lock is 0 (free), 1 (held) or 2 (held, maybe waiters); __owner
// is the holder's thread id.
bool QueueLock::held_by_the_dead() const {
  const auto& d = mutex_->__data;
  pid_t owner = __atomic_load_n(&d.__owner, __ATOMIC_ACQUIRE);
  if (owner <= 0 || __atomic_load_n(&d.__lock, __ATOMIC_ACQUIRE) == 0) return false;
  auto ours = [](pid_t tid) {
    return ::access(("/proc/self/task/" + std::to_string(tid)).c_str(), F_OK) == 0;
  };
  if (!ours(::gettid())) return false;  // no /proc: a dead holder and ours look alike
  return !ours(owner);
}

bool QueueLock::held_by_a_dead_thread() const {
  const auto& d = mutex_->__data;
  pid_t owner = __atomic_load_n(&d.__owner, __ATOMIC_ACQUIRE);
  if (owner <= 0 || __atomic_load_n(&d.__lock, __ATOMIC_ACQUIRE) == 0) return false;
  if (::access(("/proc/self/task/" + std::to_string(::gettid())).c_str(), F_OK) != 0)
    return false;  // no /proc: nothing can be told
  std::ifstream stat("/proc/" + std::to_string(owner) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;  // no such thread any more
  // "<tid> (<comm>) <state> …": the state follows the last ')'.
  std::size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return false;
  char state = line[close + 2];
  return state == 'Z' || state == 'X';
}

// Released the way pthread_mutex_unlock does it (which would refuse, or under
// ThreadSanitizer report, a lock this thread never took).
void QueueLock::release() {
  auto& d = mutex_->__data;
  d.__owner = 0;
  __atomic_fetch_sub(&d.__nusers, 1u, __ATOMIC_RELAXED);
  if (__atomic_exchange_n(&d.__lock, 0, __ATOMIC_RELEASE) > 1)
    ::syscall(SYS_futex, &d.__lock, FUTEX_WAKE, 1, nullptr, nullptr, 0);  // shared: no PRIVATE
}

namespace {
constexpr std::size_t kDepth = kBoostMqDepth;
constexpr std::size_t kMaxRecord = std::size_t{1} << 20;
}  // namespace

std::size_t boost_mq_record_size(std::size_t max_message) {
  std::size_t r = std::min(RecordChannel::whole_record_bytes(max_message), kMaxRecord);
  return std::max<std::size_t>(r, 256);  // room for the hello and the control messages
}

namespace {

// Boost takes absolute CLOCK_REALTIME deadlines as ptime; built from clock_gettime
// (Boost's own universal_time() goes through gmtime_r on every call).
boost::posix_time::ptime in_ms(long ms) {
  static const boost::posix_time::ptime epoch(boost::gregorian::date(1970, 1, 1));
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return epoch + boost::posix_time::seconds(ts.tv_sec) +
         boost::posix_time::microseconds(ts.tv_nsec / 1000 + ms * 1000);
}

using Queue = bip::message_queue;

// Both queues of a link, and their locks, in the order this side uses them.
struct Queues {
  std::unique_ptr<Queue> in, out;
  std::unique_ptr<QueueLock> locks[2];

  // Opens (or, with create, makes: 0600, kDepth x msg bytes) the two named queues.
  static Queues open(const std::string& in_name, const std::string& out_name, bool create,
                     std::size_t msg) {
    Queues q;
    auto make = [&](const std::string& name) {
      return create ? std::make_unique<Queue>(bip::create_only, name.c_str(), kDepth, msg,
                                              bip::permissions(0600))
                    : std::make_unique<Queue>(bip::open_only, name.c_str());
    };
    q.in = make(in_name);
    q.out = make(out_name);
    q.locks[0] = std::make_unique<QueueLock>(in_name, kDepth, q.in->get_max_msg_size());
    q.locks[1] = std::make_unique<QueueLock>(out_name, kDepth, q.out->get_max_msg_size());
    return q;
  }
};

class BoostMqIo final : public RecordIo {
 public:
  BoostMqIo(Queues q, pid_t partner)
      : q_(std::move(q)),
        watch_(partner),
        stop_(static_cast<int>(check_sys(::eventfd(0, EFD_CLOEXEC), "eventfd"))),
        max_(static_cast<std::size_t>(q_.in->get_max_msg_size())),
        stage_out_(max_),
        stage_in_(max_),
        guard_([this] { guard(); }) {}
  ~BoostMqIo() override {
    try {
      q_.out->timed_send("", 0, 0, in_ms(50));  // the end marker: the partner's recv returns 0
    } catch (const bip::interprocess_exception&) {
    }
    std::uint64_t one = 1;
    (void)!::write(stop_.get(), &one, sizeof one);
    guard_.join();
  }
  std::size_t max_record() const override { return max_; }

  void send_record(std::span<const std::byte> a, std::span<const std::byte> b) override {
    std::span<const std::byte> rec = stage_out_.join(a, b);  // send takes one buffer
    while (!boost_call([&] { return q_.out->timed_send(rec.data(), rec.size(), 0, in_ms(10)); }))
      if (watch_.gone()) throw SysError("boost-mq send: the peer process is gone", EPIPE);
  }

  std::size_t recv_record(std::span<std::byte> a, std::span<std::byte> b) override {
    std::byte* p = stage_in_.landing(a, b);  // Boost receives only into a full-size buffer
    std::size_t got = 0;
    unsigned prio = 0;
    while (!boost_call([&] { return q_.in->timed_receive(p, max_, got, prio, in_ms(10)); }))
      if (watch_.gone()) return 0;
    return stage_in_.split(p, got, a, b, "boost-mq");
  }

 private:
  template <class Op>
  bool boost_call(Op op) {
    bool done = false;
    try {
      done = op();
    } catch (const bip::interprocess_exception& e) {
      throw ProtocolError(std::string("boost-mq: ") + e.what());
    }
    // Whatever the call returned, a record the peer was copying when it died is torn:
    // never hand it on.
    if (freed_.load(std::memory_order_acquire))
      throw SysError("boost-mq: the peer died holding a queue's lock, mid-copy", EOWNERDEAD);
    return done;
  }

  // Sleeps until the partner exits (or we close), then frees what it died holding.
  void guard() {
    pollfd f[2] = {{watch_.fd(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    while (::poll(f, 2, -1) < 0 && errno == EINTR) {
    }
    if (f[0].revents & POLLIN)
      for (auto& l : q_.locks)
        if (l->held_by_the_dead()) {
          freed_.store(true, std::memory_order_release);  // before the lock can be taken
          l->release();
        }
  }

  Queues q_;
  PeerWatch watch_;
  UniqueFd stop_;
  std::size_t max_;
  // One stage per direction: a sending and a receiving thread may run at once (duplex).
  StagedRecords stage_out_, stage_in_;
  std::atomic<bool> freed_{false};  // the guard released a lock the dead peer held
  std::thread guard_;               // last: it uses everything above
};

constexpr char kHello[] = "boost-mq";

class BoostMqListener final : public Listener {
 public:
  explicit BoostMqListener(std::size_t max_message) {
    const std::size_t msg = boost_mq_record_size(max_message);
    try {
      q_ = Queues::open(names_[1], names_[0], true, msg);
    } catch (const std::exception& e) {
      names_.remove();
      throw ProtocolError("boost-mq: creating two queues of " + std::to_string(kDepth) + " x " +
                          std::to_string(msg) + " bytes: " + e.what());
    }
    ep_.addresses = names_.all();
  }
  const Endpoint& endpoint() const override { return ep_; }

  std::unique_ptr<Channel> accept(const SetupWait& wait) override {
    // The peer announces itself (and its pid) on the up queue.
    std::vector<std::byte> buf(q_.in->get_max_msg_size());
    for (;;) {
      std::size_t n = 0;
      unsigned prio = 0;
      bool got = false;
      try {
        got = q_.in->timed_receive(buf.data(), buf.size(), n, prio, in_ms(20));
      } catch (const bip::interprocess_exception& e) {
        throw ProtocolError(std::string("boost-mq: waiting for the peer: ") + e.what());
      }
      if (got) {
        pid_t peer = read_queue_hello(std::span(buf).first(n), kHello);
        names_.remove();  // both ends are open: the names are no longer needed
        return std::make_unique<RecordChannel>(std::make_unique<BoostMqIo>(std::move(q_), peer));
      }
      wait.check("boost-mq");
    }
  }

 private:
  ipc_name::OwnedNames names_{ipc_name::Kind::kBoostMq, {"-down", "-up"}};
  Queues q_;
  Endpoint ep_;
};

// The fan-in's guard: the locks of every queue one side of the fan-in uses, and a thread
// asleep on the pidfds of the processes on the other side (the clients, or the server).
// When one exits, it frees any of these locks a dead thread still holds (the request
// queue is shared by live clients too, so "held outside this process" is not enough:
// held_by_a_dead_thread), and every later call of this side fails, as for one link.
class FanInGuard {
 public:
  explicit FanInGuard(std::vector<std::unique_ptr<QueueLock>> locks)
      : locks_(std::move(locks)),
        stop_(static_cast<int>(check_sys(::eventfd(0, EFD_CLOEXEC), "eventfd"))) {}
  ~FanInGuard() {
    std::uint64_t one = 1;
    (void)!::write(stop_.get(), &one, sizeof one);
    if (thread_.joinable()) thread_.join();
  }
  // Starts watching; call once.
  void watch(const std::vector<pid_t>& pids) {
    for (pid_t p : pids) watches_.emplace_back(p);
    thread_ = std::thread([this] { run(); });
  }
  bool freed() const { return freed_.load(std::memory_order_acquire); }

 private:
  void run() {
    std::vector<pollfd> f{{stop_.get(), POLLIN, 0}};
    for (const PeerWatch& w : watches_) f.push_back({w.fd(), POLLIN, 0});
    for (std::size_t open = watches_.size(); open > 0;) {
      if (::poll(f.data(), f.size(), -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (f[0].revents) return;
      for (std::size_t i = 1; i < f.size(); ++i) {
        if (f[i].fd < 0 || !(f[i].revents & POLLIN)) continue;
        f[i].fd = -1;  // exited: poll no more
        --open;
        for (auto& l : locks_)
          if (l->held_by_a_dead_thread()) {
            freed_.store(true, std::memory_order_release);  // before the lock can be taken
            l->release();
          }
      }
    }
  }

  std::vector<std::unique_ptr<QueueLock>> locks_;
  std::vector<PeerWatch> watches_;
  UniqueFd stop_;
  std::atomic<bool> freed_{false};
  std::thread thread_;  // last: it uses everything above
};

// One queue as the fan-in uses it (queue_fan_in.h), beside its side's guard.
class BoostPort final : public QueuePort {
 public:
  BoostPort(std::unique_ptr<Queue> q, std::shared_ptr<FanInGuard> guard)
      : q_(std::move(q)), guard_(std::move(guard)), max_(q_->get_max_msg_size()) {}
  std::size_t max_record() const override { return max_; }
  bool try_send(std::span<const std::byte> rec, int ms) override {
    return call([&] { return q_->timed_send(rec.data(), rec.size(), 0, in_ms(ms)); });
  }
  std::optional<std::size_t> try_recv(std::span<std::byte> buf, int ms) override {
    std::size_t got = 0;
    unsigned prio = 0;
    if (!call([&] { return q_->timed_receive(buf.data(), max_, got, prio, in_ms(ms)); }))
      return std::nullopt;
    return got;
  }

 private:
  template <class Op>
  bool call(Op op) {
    bool done = false;
    try {
      done = op();
    } catch (const bip::interprocess_exception& e) {
      throw ProtocolError(std::string("boost-mq: ") + e.what());
    }
    if (guard_->freed())
      throw SysError("boost-mq: a process died holding a queue's lock, mid-copy", EOWNERDEAD);
    return done;
  }

  std::unique_ptr<Queue> q_;
  std::shared_ptr<FanInGuard> guard_;
  std::size_t max_;
};

// The fan-in: ONE request queue <stamp>-bmq-<n>-req that every client sends to, one reply
// queue <stamp>-bmq-<m>-rep per client (names from ipc_name, as for one link), 0600,
// removed once every client said hello (and on every other path, with the listener).
// Request records hold the client-index envelope (queue_fan_in.h) and up to the run's
// largest message, reply records RecordChannel's, each at most kMaxRecord. Client i's
// endpoint: {its reply queue, the request queue, i}.
std::unique_ptr<FanInListener> listen_boost_fan_in(std::size_t max_message, std::size_t clients) {
  using ipc_name::OwnedNames;
  auto names = std::make_shared<std::vector<std::unique_ptr<OwnedNames>>>();
  auto remove = [names] {
    for (auto& n : *names) n->remove();
  };
  const std::size_t req_msg =
      std::max<std::size_t>(256, std::min(kQueueEnvelopeBytes + max_message, kMaxRecord));
  const std::size_t rep_msg = boost_mq_record_size(max_message);
  std::vector<std::unique_ptr<Queue>> queues;
  std::vector<std::unique_ptr<QueueLock>> locks;
  std::vector<Endpoint> eps(clients);
  try {
    for (std::size_t k = 0; k <= clients; ++k) {
      names->push_back(std::make_unique<OwnedNames>(
          ipc_name::Kind::kBoostMq, std::initializer_list<const char*>{k == 0 ? "-req" : "-rep"}));
      const std::string& name = (*names->back())[0];
      const std::size_t msg = k == 0 ? req_msg : rep_msg;
      queues.push_back(std::make_unique<Queue>(bip::create_only, name.c_str(), kDepth, msg,
                                               bip::permissions(0600)));
      locks.push_back(std::make_unique<QueueLock>(name, kDepth, msg));
      if (k > 0) eps[k - 1].addresses = {name, (*names->front())[0], std::to_string(k - 1)};
    }
  } catch (const std::exception& e) {
    remove();
    throw ProtocolError("boost-mq: creating " + std::to_string(clients + 1) + " queues of " +
                        std::to_string(kDepth) + " x " + std::to_string(req_msg) +
                        " bytes: " + e.what());
  }
  auto guard = std::make_shared<FanInGuard>(std::move(locks));
  QueueFanInPorts ports;
  ports.requests = std::make_unique<BoostPort>(std::move(queues[0]), guard);
  for (std::size_t k = 1; k <= clients; ++k)
    ports.replies.push_back(std::make_unique<BoostPort>(std::move(queues[k]), guard));
  return std::make_unique<QueueFanIn>("boost-mq", std::move(ports), std::move(eps), remove,
                                      [guard](std::vector<pid_t> pids) { guard->watch(pids); });
}

// A client of the fan-in: endpoint {reply queue, request queue, client index}.
std::unique_ptr<Channel> connect_boost_fan_in(const Endpoint& ep, const SetupWait& wait) {
  EndpointReader r(ep, "boost-mq", {"reply queue", "request queue", "client index"});
  std::uint32_t client = 0;
  const std::string& c = r.text(2);
  auto [end, ec] = std::from_chars(c.data(), c.data() + c.size(), client);
  if (ec != std::errc() || end != c.data() + c.size())
    throw ProtocolError("boost-mq: client index: '" + c + "' is not a number");
  try {
    auto rep = std::make_unique<Queue>(bip::open_only, r.text(0).c_str());
    auto req = std::make_unique<Queue>(bip::open_only, r.text(1).c_str());
    std::vector<std::unique_ptr<QueueLock>> locks;
    locks.push_back(std::make_unique<QueueLock>(r.text(0), kDepth, rep->get_max_msg_size()));
    locks.push_back(std::make_unique<QueueLock>(r.text(1), kDepth, req->get_max_msg_size()));
    auto guard = std::make_shared<FanInGuard>(std::move(locks));
    guard->watch({::getppid()});
    return connect_queue_fan_in("boost-mq", std::make_unique<BoostPort>(std::move(req), guard),
                                std::make_unique<BoostPort>(std::move(rep), guard), client,
                                ::getppid(), wait);
  } catch (const bip::interprocess_exception& e) {
    throw ProtocolError("boost-mq " + r.text(0) + ": " + e.what());
  }
}

class BoostMqTransport final : public TransportBase {
 public:
  BoostMqTransport()
      : TransportBase(
            {.name = "boost-mq",
             .family = TransportFamily::kMessageQueues,
             .paradigm = "message queue",
             .kernel_boundaries = true,
             .reach = "same host (any process, by queue name)",
             .coupling = "by queue name; decoupled: a sender need not wait for a reader until "
                         "the queue is full",
             .max_message = kMaxFrameBytes,
             .summary =
                 "Boost.Interprocess message_queue, one per direction: " + std::to_string(kDepth) +
                 " messages of the run's largest message size (at most 1 MiB; larger "
                 "messages split), preallocated in /dev/shm; a guard frees a lock the "
                 "peer died holding",
             .dev_shm_bytes =
                 2 * static_cast<std::size_t>(Header::get_mem_size(kMaxRecord, kDepth)) + 2 * 4096,
             .fan_in = "one shared request queue, one reply queue per client; the client "
                       "index in an envelope in front of every request",
             .server_models = {"shared-queue"},
             .pipelining = "two threads"}) {}
  std::unique_ptr<Listener> listen(RunDir&, std::size_t max_message,
                                   const TransportSettings&) const override {
    return std::make_unique<BoostMqListener>(max_message);
  }
  std::unique_ptr<FanInListener> listen_fan_in(RunDir&, std::size_t max_message,
                                               const TransportSettings&, std::size_t clients,
                                               const std::string& /*model*/) const override {
    return listen_boost_fan_in(max_message, clients);
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep, const SetupWait& wait) const override {
    // Three addresses: a client of the fan-in; two: the single link.
    if (ep.addresses.size() == 3) return connect_boost_fan_in(ep, wait);
    EndpointReader(ep, "boost-mq", {"down queue", "up queue"});
    try {
      Queues q = Queues::open(ep.addresses[0], ep.addresses[1], false, 0);
      std::vector<std::byte> hello = queue_hello(kHello);
      // A full queue is a listener that is not reading: retry in slices until the
      // set-up deadline, failing fast when the benchmark side is gone.
      while (!q.out->timed_send(hello.data(), hello.size(), 0, in_ms(20)))
        wait.check("boost-mq: sending the hello to " + ep.addresses[1]);
      return std::make_unique<RecordChannel>(
          std::make_unique<BoostMqIo>(std::move(q), ::getppid()));
    } catch (const bip::interprocess_exception& e) {
      throw ProtocolError("boost-mq " + ep.addresses[0] + ": " + e.what());
    }
  }
};

}  // namespace

std::unique_ptr<Transport> make_boost_mq_transport() {
  return std::make_unique<BoostMqTransport>();
}

}  // namespace ipcbench
