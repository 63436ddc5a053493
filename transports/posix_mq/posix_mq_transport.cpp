// POSIX message queues (mq_open): one queue per direction, named
// /<stamp>-mq-<n>-{down,up} (base/ipc_name.h), created 0600 and unlinked as soon as the peer has
// opened both. Queue depth and message size honour the system limits
// (/proc/sys/fs/mqueue/msg_max, msgsize_max) and RLIMIT_MSGQUEUE; a message larger than
// one queue message is split into several, never truncated (RecordChannel).
// Fan-in (the clients workload): the classic queue server, one shared request queue and
// one reply queue per client (listen_mq_fan_in below, transports/queue_fan_in.h).
#include <fcntl.h>
#include <mqueue.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "base/cleanup.h"
#include "base/error.h"
#include "base/ipc_name.h"
#include "base/liveness.h"
#include "transports/endpoint_reader.h"
#include "transports/framing.h"
#include "transports/queue_fan_in.h"

namespace ipcbench {
namespace {

long read_limit(const char* path, long fallback) {
  std::ifstream f(path);
  long v = 0;
  return (f >> v) && v > 0 ? v : fallback;
}

struct MqLimits {
  long depth, msgsize;
};

// Depth up to 10 and the largest message size the system allows, shrunk until `queues`
// queues fit in RLIMIT_MSGQUEUE.
MqLimits choose_limits(std::size_t queues = 2) {
  MqLimits l{std::min(10L, read_limit("/proc/sys/fs/mqueue/msg_max", 10)),
             read_limit("/proc/sys/fs/mqueue/msgsize_max", 8192)};
  rlimit rl{};
  if (::getrlimit(RLIMIT_MSGQUEUE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    // The kernel charges each queue depth * (msgsize + a pointer's worth of overhead).
    while (l.msgsize > 1024 && static_cast<rlim_t>(queues) * static_cast<rlim_t>(l.depth) *
                                       (static_cast<rlim_t>(l.msgsize) + 64) >
                                   rl.rlim_cur)
      l.msgsize /= 2;
  }
  return l;
}

// Why creating a queue of `lim`'s shape failed. EMFILE from mq_open(O_CREAT) is mostly the
// per-user queue memory (RLIMIT_MSGQUEUE), which every queue of this user draws on, not
// only this run's: the message says so rather than leaving "Too many open files".
SysError create_error(const std::string& name, std::size_t queues, const MqLimits& lim, int err) {
  std::string why = "mq_open " + name + " (" + std::to_string(queues) + " queues, depth " +
                    std::to_string(lim.depth) + ", message " + std::to_string(lim.msgsize) +
                    " bytes; see msg_max, msgsize_max, queues_max and RLIMIT_MSGQUEUE";
  rlimit rl{};
  if (err == EMFILE && ::getrlimit(RLIMIT_MSGQUEUE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    why += "; RLIMIT_MSGQUEUE is " + std::to_string(rl.rlim_cur) +
           " bytes for all of this user's queues, so another program's may hold it (or "
           "RLIMIT_NOFILE, the open descriptors, is reached)";
  return SysError(why + ")", err);
}

timespec deadline_in(long ms) {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);  // mq_timed* take CLOCK_REALTIME deadlines
  ts.tv_nsec += ms * 1'000'000;
  ts.tv_sec += ts.tv_nsec / 1'000'000'000;
  ts.tv_nsec %= 1'000'000'000;
  return ts;
}

std::size_t queue_msgsize(mqd_t q) {
  mq_attr a{};
  check_sys(::mq_getattr(q, &a), "mq_getattr");
  return static_cast<std::size_t>(a.mq_msgsize);
}

class MqIo final : public RecordIo {
 public:
  MqIo(mqd_t rd, mqd_t wr, pid_t partner)
      : rd_(rd),
        wr_(wr),
        watch_(partner),
        max_(queue_msgsize(wr)),
        stage_out_(max_),
        stage_in_(max_) {}
  ~MqIo() override {
    timespec ts = deadline_in(50);
    ::mq_timedsend(wr_, "", 0, 0, &ts);  // the end marker: the partner's recv returns 0
    ::mq_close(rd_);
    ::mq_close(wr_);
  }
  std::size_t max_record() const override { return max_; }
  int wait_fd() const override { return rd_; }  // a queue descriptor polls on Linux

  void send_record(std::span<const std::byte> a, std::span<const std::byte> b) override {
    std::span<const std::byte> rec = stage_out_.join(a, b);  // mq_send takes one buffer
    for (;;) {
      timespec ts = deadline_in(10);
      if (::mq_timedsend(wr_, reinterpret_cast<const char*>(rec.data()), rec.size(), 0, &ts) == 0)
        return;
      if (errno == EINTR) continue;
      if (errno != ETIMEDOUT) throw SysError("mq_send", errno);
      if (watch_.gone()) throw SysError("mq_send: the peer process is gone", EPIPE);
    }
  }

  std::size_t recv_record(std::span<std::byte> a, std::span<std::byte> b) override {
    std::byte* p = stage_in_.landing(a, b);
    for (;;) {
      timespec ts = deadline_in(10);
      ssize_t n = ::mq_timedreceive(rd_, reinterpret_cast<char*>(p), max_, nullptr, &ts);
      if (n >= 0) return stage_in_.split(p, static_cast<std::size_t>(n), a, b, "posix-mq");
      if (errno == EINTR) continue;
      if (errno != ETIMEDOUT) throw SysError("mq_receive", errno);
      if (watch_.gone()) return 0;
    }
  }

 private:
  mqd_t rd_, wr_;
  PeerWatch watch_;
  std::size_t max_;
  // One stage per direction: a sending and a receiving thread may run at once (duplex).
  StagedRecords stage_out_, stage_in_;
};

constexpr char kHello[] = "posix-mq";

class MqListener final : public Listener {
 public:
  MqListener() {
    MqLimits lim = choose_limits();
    mq_attr attr{};
    attr.mq_maxmsg = lim.depth;
    attr.mq_msgsize = lim.msgsize;
    for (int i = 0; i < 2; ++i) {
      mqd_t q = ::mq_open(names_[i].c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, &attr);
      if (q == static_cast<mqd_t>(-1)) {
        int err = errno;
        names_.remove();
        throw create_error(names_[i], 2, lim, err);
      }
      q_[i] = q;
    }
    ep_.addresses = names_.all();
  }
  ~MqListener() override {
    for (mqd_t q : q_)
      if (q != static_cast<mqd_t>(-1)) ::mq_close(q);
  }
  const Endpoint& endpoint() const override { return ep_; }

  std::unique_ptr<Channel> accept(const SetupWait& wait) override {
    // The peer announces itself (and its pid) on the up queue.
    std::vector<char> buf(65536);
    for (;;) {
      timespec ts = deadline_in(20);
      mq_attr a{};
      ::mq_getattr(q_[1], &a);
      buf.resize(static_cast<std::size_t>(a.mq_msgsize));
      ssize_t n = ::mq_timedreceive(q_[1], buf.data(), buf.size(), nullptr, &ts);
      if (n > 0) {
        pid_t peer = read_queue_hello(
            std::as_bytes(std::span(buf).first(static_cast<std::size_t>(n))), kHello);
        names_.remove();  // both ends are open: the names are no longer needed
        auto io = std::make_unique<MqIo>(std::exchange(q_[1], -1), std::exchange(q_[0], -1), peer);
        return std::make_unique<RecordChannel>(std::move(io));
      }
      if (n < 0 && errno != ETIMEDOUT && errno != EINTR)
        throw SysError("mq_receive (hello)", errno);
      wait.check("posix-mq");
    }
  }

 private:
  ipc_name::OwnedNames names_{ipc_name::Kind::kMqueue, {"-down", "-up"}};
  mqd_t q_[2] = {static_cast<mqd_t>(-1), static_cast<mqd_t>(-1)};
  Endpoint ep_;
};

// One queue descriptor as the fan-in uses it (queue_fan_in.h); closed with the port.
class MqPort final : public QueuePort {
 public:
  explicit MqPort(mqd_t q) : q_(q), max_(queue_msgsize(q)) {}
  ~MqPort() override { ::mq_close(q_); }
  MqPort(const MqPort&) = delete;
  MqPort& operator=(const MqPort&) = delete;
  std::size_t max_record() const override { return max_; }
  bool try_send(std::span<const std::byte> rec, int ms) override {
    timespec ts = deadline_in(ms);
    if (::mq_timedsend(q_, reinterpret_cast<const char*>(rec.data()), rec.size(), 0, &ts) == 0)
      return true;
    if (errno == EINTR || errno == ETIMEDOUT) return false;
    throw SysError("mq_send", errno);
  }
  std::optional<std::size_t> try_recv(std::span<std::byte> buf, int ms) override {
    timespec ts = deadline_in(ms);
    ssize_t n = ::mq_timedreceive(q_, reinterpret_cast<char*>(buf.data()), max_, nullptr, &ts);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno == EINTR || errno == ETIMEDOUT) return std::nullopt;
    throw SysError("mq_receive", errno);
  }

 private:
  mqd_t q_;
  std::size_t max_;
};

// The fan-in: ONE request queue /<stamp>-mq-<n>-req that every client sends to, and one
// reply queue /<stamp>-mq-<m>-rep per client (names from ipc_name, as for one link),
// all 0600, sized together (choose_limits for clients + 1 queues), unlinked once every
// client said hello (and on every other path, with the listener). The client index
// travels in an envelope in front of every request record (queue_fan_in.h). Client i's
// endpoint: {its reply queue, the request queue, i}.
std::unique_ptr<FanInListener> listen_mq_fan_in(std::size_t clients) {
  using ipc_name::OwnedNames;
  auto names = std::make_shared<std::vector<std::unique_ptr<OwnedNames>>>();
  auto remove = [names] {
    for (auto& n : *names) n->remove();
  };
  const MqLimits lim = choose_limits(clients + 1);
  mq_attr attr{};
  attr.mq_maxmsg = lim.depth;
  attr.mq_msgsize = lim.msgsize;
  QueueFanInPorts ports;
  std::vector<Endpoint> eps(clients);
  try {
    for (std::size_t k = 0; k <= clients; ++k) {
      names->push_back(std::make_unique<OwnedNames>(
          ipc_name::Kind::kMqueue, std::initializer_list<const char*>{k == 0 ? "-req" : "-rep"}));
      const std::string& name = (*names->back())[0];
      mqd_t q = ::mq_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, &attr);
      if (q == static_cast<mqd_t>(-1)) throw create_error(name, clients + 1, lim, errno);
      auto port = std::make_unique<MqPort>(q);
      if (k == 0) {
        ports.requests = std::move(port);
      } else {
        ports.replies.push_back(std::move(port));
        eps[k - 1].addresses = {name, (*names->front())[0], std::to_string(k - 1)};
      }
    }
  } catch (...) {
    remove();
    throw;
  }
  return std::make_unique<QueueFanIn>("posix-mq", std::move(ports), std::move(eps), remove,
                                      nullptr);
}

// A client of the fan-in: endpoint {reply queue, request queue, client index}.
std::unique_ptr<Channel> connect_mq_fan_in(const Endpoint& ep, const SetupWait& wait) {
  EndpointReader r(ep, "posix-mq", {"reply queue", "request queue", "client index"});
  std::uint32_t client = 0;
  const std::string& c = r.text(2);
  auto [end, ec] = std::from_chars(c.data(), c.data() + c.size(), client);
  if (ec != std::errc() || end != c.data() + c.size())
    throw ProtocolError("posix-mq: client index: '" + c + "' is not a number");
  mqd_t rd = ::mq_open(r.text(0).c_str(), O_RDONLY | O_CLOEXEC);
  if (rd == static_cast<mqd_t>(-1)) throw SysError("mq_open " + r.text(0), errno);
  auto replies = std::make_unique<MqPort>(rd);
  mqd_t wr = ::mq_open(r.text(1).c_str(), O_WRONLY | O_CLOEXEC);
  if (wr == static_cast<mqd_t>(-1)) throw SysError("mq_open " + r.text(1), errno);
  return connect_queue_fan_in("posix-mq", std::make_unique<MqPort>(wr), std::move(replies), client,
                              ::getppid(), wait);
}

// The limits in force, and the queue shape chosen from them, for the record.
std::string describe_limits() {
  MqLimits l = choose_limits();
  rlimit rl{};
  std::string rlim = ::getrlimit(RLIMIT_MSGQUEUE, &rl) != 0 ? "unknown"
                     : rl.rlim_cur == RLIM_INFINITY         ? "unlimited"
                                                            : std::to_string(rl.rlim_cur);
  return "depth " + std::to_string(l.depth) + " x " + std::to_string(l.msgsize) +
         " bytes per queue (msg_max " +
         std::to_string(read_limit("/proc/sys/fs/mqueue/msg_max", 10)) + ", msgsize_max " +
         std::to_string(read_limit("/proc/sys/fs/mqueue/msgsize_max", 8192)) +
         ", RLIMIT_MSGQUEUE " + rlim + ")";
}

class MqTransport final : public TransportBase {
 public:
  MqTransport()
      : TransportBase({.name = "posix-mq",
                       .family = TransportFamily::kMessageQueues,
                       .paradigm = "message queue",
                       .kernel_boundaries = true,
                       .reach = "same host (any process, by queue name)",
                       .coupling = "by queue name; decoupled: a sender need not wait for a "
                                   "reader until the queue is full",
                       .max_message = kMaxFrameBytes,
                       .summary = "POSIX message queues (mq_open), one per direction: " +
                                  describe_limits() + "; larger messages split",
                       .fan_in = "one shared request queue, one reply queue per client; the "
                                 "client index in an envelope in front of every request",
                       .server_models = {"shared-queue"},
                       .pipelining = "two threads"}) {}
  std::unique_ptr<Listener> listen(RunDir&, std::size_t, const TransportSettings&) const override {
    return std::make_unique<MqListener>();
  }
  std::unique_ptr<FanInListener> listen_fan_in(RunDir&, std::size_t, const TransportSettings&,
                                               std::size_t clients,
                                               const std::string& /*model*/) const override {
    return listen_mq_fan_in(clients);
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep, const SetupWait& wait) const override {
    // Three addresses: a client of the fan-in; two: the single link.
    if (ep.addresses.size() == 3) return connect_mq_fan_in(ep, wait);
    EndpointReader(ep, "posix-mq", {"down queue", "up queue"});
    mqd_t rd = ::mq_open(ep.addresses[0].c_str(), O_RDONLY | O_CLOEXEC);
    if (rd == static_cast<mqd_t>(-1)) throw SysError("mq_open " + ep.addresses[0], errno);
    mqd_t wr = ::mq_open(ep.addresses[1].c_str(), O_WRONLY | O_CLOEXEC);
    if (wr == static_cast<mqd_t>(-1)) {
      int err = errno;
      ::mq_close(rd);
      throw SysError("mq_open " + ep.addresses[1], err);
    }
    std::vector<std::byte> hello = queue_hello(kHello);
    if (::mq_send(wr, reinterpret_cast<const char*>(hello.data()), hello.size(), 0) != 0) {
      int err = errno;
      ::mq_close(rd);
      ::mq_close(wr);
      throw SysError("mq_send (hello)", err);
    }
    return std::make_unique<RecordChannel>(std::make_unique<MqIo>(rd, wr, ::getppid()));
  }
};

}  // namespace

std::unique_ptr<Transport> make_posix_mq_transport() { return std::make_unique<MqTransport>(); }

}  // namespace ipcbench
