// shm-bcast: POSIX shared memory holding broadcast rings (bcast_ring.h), waiting
// spin-then-futex.
//
// Fan-out form: one ring, one writer (the publisher) and one read cursor per subscriber;
// the publisher writes each message once and every subscriber reads it from the same
// memory; the writer waits for the slowest subscriber (nothing is dropped). Plain form
// (ping-pong, throughput): two rings with one reader each, one per direction.
//
// The object is named <stamp>-shm-<n> (base/ipc_name.h, OwnedNames: registered for
// cleanup before it exists), created 0600, and unlinked as soon as every reader has
// mapped it and announced its pid, or on any failure before that. A reader's endpoint
// names the object and its slot; like the other shm transports, any process of our uid
// could open the object while it has a name.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <thread>

#include "base/error.h"
#include "base/fd.h"
#include "base/ipc_name.h"
#include "transports/endpoint_reader.h"
#include "transports/many.h"
#include "transports/shm_bcast/bcast_ring.h"

namespace ipcbench {
namespace {

// Every record is whole in the ring: the largest message is half of it.
constexpr std::size_t kRing = std::size_t{8} << 20;
constexpr std::size_t kMaxMessage = kRing / 2;

// A shared mapping of a whole object, unmapped on destruction.
class Map {
 public:
  Map(int fd, std::size_t size) : size_(size) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw SysError("mmap (shm-bcast)", errno);
    base_ = p;
  }
  ~Map() { ::munmap(base_, size_); }
  Map(const Map&) = delete;
  Map& operator=(const Map&) = delete;
  std::byte* at(std::size_t off) const { return static_cast<std::byte*>(base_) + off; }
  std::size_t size() const { return size_; }

 private:
  void* base_ = nullptr;
  std::size_t size_;
};

// Creates and maps the object: `rings` rings, ring r for readers[r] readers.
std::shared_ptr<Map> create_object(const std::string& name,
                                   const std::vector<std::size_t>& readers) {
  const std::size_t size = readers.size() * bcast_ring_bytes(kRing);
  UniqueFd fd(::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
  if (!fd.valid()) throw SysError("shm_open " + name, errno);
  size_file(fd.get(), size, "shm-bcast " + name);
  auto map = std::make_shared<Map>(fd.get(), size);
  for (std::size_t r = 0; r < readers.size(); ++r)
    init_bcast_ring(map->at(r * bcast_ring_bytes(kRing)), kRing, readers[r]);
  return map;
}

std::shared_ptr<Map> open_object(const std::string& name) {
  UniqueFd fd(::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0));
  if (!fd.valid()) throw SysError("shm_open " + name, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw SysError("fstat " + name, errno);
  return std::make_shared<Map>(fd.get(), static_cast<std::size_t>(st.st_size));
}

BcastHeader& ring_at(const Map& m, std::size_t r) {
  const std::size_t off = r * bcast_ring_bytes(kRing);
  if (off >= m.size())
    throw ProtocolError("shm-bcast: the object holds no ring " + std::to_string(r));
  return bcast_header(m.at(off), m.size() - off);
}

// Waits until every slot in [0, n) of ring h has a reader's pid.
std::vector<pid_t> wait_for_readers(BcastHeader& h, std::size_t n, const SetupWait& wait) {
  std::vector<pid_t> pids(n);
  for (std::size_t i = 0; i < n; ++i) {
    while ((pids[i] = h.slots[i].pid.load(std::memory_order_acquire)) <= 0) {
      wait.check("shm-bcast: mapping the ring");
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  return pids;
}

// The plain link: writes one ring, reads the other.
class LinkChannel final : public Channel {
 public:
  LinkChannel(std::shared_ptr<Map> map, BcastHeader& out, pid_t reader, BcastHeader& in,
              pid_t writer)
      : map_(std::move(map)), out_(&out, {reader}), in_(&in, 0, writer) {}
  void send(std::span<const std::byte> msg) override { out_.write(msg); }
  std::size_t recv(std::span<std::byte> buf) override { return in_.read(buf); }
  void abort() noexcept override {
    out_.abort();
    in_.abort();
  }

 private:
  std::shared_ptr<Map> map_;  // outlives the rings' users below
  BcastWriter out_;
  BcastReader in_;
};

// A subscriber's end: reads only.
class SubscriberChannel final : public Channel {
 public:
  SubscriberChannel(std::shared_ptr<Map> map, BcastHeader& ring, std::size_t slot, pid_t writer)
      : map_(std::move(map)), in_(&ring, slot, writer) {}
  void send(std::span<const std::byte>) override {
    throw ProtocolError("shm-bcast: a subscriber's link carries nothing back");
  }
  std::size_t recv(std::span<std::byte> buf) override { return in_.read(buf); }
  void abort() noexcept override { in_.abort(); }

 private:
  std::shared_ptr<Map> map_;
  BcastReader in_;
};

class LinkListener final : public Listener {
 public:
  LinkListener() : name_(ipc_name::Kind::kShm, {""}) {
    map_ = create_object(name_[0], {1, 1});
    // Ring 0: we write, the peer reads; ring 1: the peer writes, we read (slot 0).
    ring_at(*map_, 0).writer_pid.store(::getpid());
    ring_at(*map_, 1).slots[0].pid.store(::getpid());
    ep_.addresses = {name_[0], "link"};
  }
  const Endpoint& endpoint() const override { return ep_; }
  std::unique_ptr<Channel> accept(const SetupWait& wait) override {
    BcastHeader& down = ring_at(*map_, 0);
    BcastHeader& up = ring_at(*map_, 1);
    const pid_t peer = wait_for_readers(down, 1, wait)[0];
    name_.remove();  // both sides have it mapped
    return std::make_unique<LinkChannel>(map_, down, peer, up, peer);
  }

 private:
  ipc_name::OwnedNames name_;
  std::shared_ptr<Map> map_;
  Endpoint ep_;
};

class BcastPublisher final : public FanOutPublisher {
 public:
  BcastPublisher(std::shared_ptr<Map> map, BcastHeader& ring, const std::vector<pid_t>& readers)
      : map_(std::move(map)), out_(&ring, readers) {}
  void publish(std::span<const std::byte> msg) override { out_.write(msg); }
  void abort() noexcept override { out_.abort(); }

 private:
  std::shared_ptr<Map> map_;
  BcastWriter out_;
};

class BcastFanOut final : public FanOutListener {
 public:
  explicit BcastFanOut(std::size_t n) : name_(ipc_name::Kind::kShm, {""}) {
    map_ = create_object(name_[0], {n});
    ring_at(*map_, 0).writer_pid.store(::getpid());
    for (std::size_t i = 0; i < n; ++i)
      eps_.push_back(Endpoint{{name_[0], "subscriber", std::to_string(i)}, {}});
  }
  std::size_t subscribers() const override { return eps_.size(); }
  const Endpoint& endpoint(std::size_t i) const override { return eps_.at(i); }
  std::unique_ptr<FanOutPublisher> accept(const SetupWait& wait) override {
    BcastHeader& ring = ring_at(*map_, 0);
    std::vector<pid_t> pids = wait_for_readers(ring, eps_.size(), wait);
    name_.remove();  // every subscriber has it mapped
    return std::make_unique<BcastPublisher>(map_, ring, pids);
  }

 private:
  ipc_name::OwnedNames name_;
  std::shared_ptr<Map> map_;
  std::vector<Endpoint> eps_;
};

class ShmBcastTransport final : public TransportBase {
 public:
  ShmBcastTransport()
      : TransportBase(
            {.name = "shm-bcast",
             .family = TransportFamily::kSharedMemory,
             .paradigm = "shared memory",
             .kernel_boundaries = true,
             .reach = "same host (any process, by name)",
             .coupling = "by shared-memory object name; every side maps the same object",
             .max_message = kMaxMessage,
             .summary = "POSIX shared memory (shm_open, 0600, unlinked once mapped) holding "
                        "broadcast rings of 8 MiB: one writer, one read cursor per reader; "
                        "ping-pong and throughput use two rings with one reader each",
             .wait = "spin-then-futex",
             .dev_shm_bytes = 2 * bcast_ring_bytes(kRing),
             .fan_out = "one ring in one object: the publisher writes each message once, every "
                        "subscriber reads it with its own cursor; the publisher waits for the "
                        "slowest subscriber (nothing dropped)"}) {}
  std::unique_ptr<Listener> listen(RunDir&, std::size_t, const TransportSettings&) const override {
    return std::make_unique<LinkListener>();
  }
  std::unique_ptr<FanOutListener> listen_fan_out(RunDir&, std::size_t, const TransportSettings&,
                                                 std::size_t subscribers) const override {
    if (subscribers < 1 || subscribers > kMaxBcastReaders)
      throw ProtocolError("shm-bcast: " + std::to_string(subscribers) + " subscribers (1.." +
                          std::to_string(kMaxBcastReaders) + ")");
    return std::make_unique<BcastFanOut>(subscribers);
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep, const SetupWait&) const override {
    const bool sub = ep.addresses.size() == 3;
    EndpointReader r = sub ? EndpointReader(ep, name(), {"object name", "role", "slot"})
                           : EndpointReader(ep, name(), {"object name", "role"});
    std::shared_ptr<Map> map = open_object(ep.addresses[0]);
    if (sub) {
      if (ep.addresses[1] != "subscriber")
        throw ProtocolError("shm-bcast: unknown role '" + ep.addresses[1] + "'");
      std::size_t slot = kMaxBcastReaders;
      const std::string& t = r.text(2);
      auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), slot);
      if (ec != std::errc() || end != t.data() + t.size() || t.empty())
        throw ProtocolError("shm-bcast: slot '" + t + "' is not a number");
      BcastHeader& ring = ring_at(*map, 0);
      if (slot >= ring.readers)
        throw ProtocolError("shm-bcast: slot " + std::to_string(slot) + " of " +
                            std::to_string(ring.readers));
      auto ch = std::make_unique<SubscriberChannel>(map, ring, slot, ring.writer_pid.load());
      ring.slots[slot].pid.store(::getpid(), std::memory_order_release);
      return ch;
    }
    if (ep.addresses[1] != "link")
      throw ProtocolError("shm-bcast: unknown role '" + ep.addresses[1] + "'");
    BcastHeader& down = ring_at(*map, 0);
    BcastHeader& up = ring_at(*map, 1);
    up.writer_pid.store(::getpid());
    auto ch = std::make_unique<LinkChannel>(map, up, up.slots[0].pid.load(), down,
                                            down.writer_pid.load());
    down.slots[0].pid.store(::getpid(), std::memory_order_release);
    return ch;
  }
};

}  // namespace

std::unique_ptr<Transport> make_shm_bcast_transport() {
  return std::make_unique<ShmBcastTransport>();
}

}  // namespace ipcbench
