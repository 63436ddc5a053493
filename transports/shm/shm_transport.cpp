// POSIX shared memory through Boost.Interprocess (shared_memory_object + mapped_region),
// holding two rings. The object is named <stamp>-shm-<n> (base/ipc_name.h), created 0600, and
// removed as soon as the peer has mapped it (and on every exit path before that).
#include <sys/statvfs.h>
#include <unistd.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/permissions.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <utility>

#include "base/cleanup.h"
#include "base/error.h"
#include "base/fd.h"
#include "base/ipc_name.h"
#include "transports/endpoint_reader.h"
#include "transports/ring.h"

namespace ipcbench {
namespace {

namespace bip = boost::interprocess;

class RegionMapping final : public Mapping {
 public:
  explicit RegionMapping(bip::mapped_region r) : region_(std::move(r)) {}
  void* base() override { return region_.get_address(); }

 private:
  bip::mapped_region region_;
};

void check_dev_shm(std::size_t need) {
  struct statvfs sv {};
  if (::statvfs("/dev/shm", &sv) != 0) return;  // not mounted there: let shm_open say why
  std::size_t free = sv.f_bavail * sv.f_frsize;
  if (free < need)
    throw ProtocolError("/dev/shm has " + std::to_string(free >> 20) +
                        " MiB free; a shm link needs " +
                        std::to_string((need + (1 << 20) - 1) >> 20) + " MiB");
}

struct ShmOptions {
  WaitMode mode;
  bool zero_copy;
  std::size_t ring_bytes;
};

class ShmListener final : public Listener {
 public:
  explicit ShmListener(ShmOptions o) : o_(o), name_(ipc_name::Kind::kShm, {""}) {
    const std::size_t size = link_bytes(o_.ring_bytes);
    check_dev_shm(size);
    try {
      bip::permissions perm(0600);
      bip::shared_memory_object shm(bip::create_only, name_[0].c_str(), bip::read_write, perm);
      size_file(shm.get_mapping_handle().handle, size, "shm " + name_[0]);
      map_ = std::make_unique<RegionMapping>(bip::mapped_region(shm, bip::read_write, 0, size));
    } catch (const bip::interprocess_exception& e) {
      name_.remove();
      throw ProtocolError("shm " + name_[0] + ": " + e.what());
    }
    init_link(map_->base(), o_.ring_bytes);
    ep_.addresses = {name_[0]};
  }
  const Endpoint& endpoint() const override { return ep_; }
  std::unique_ptr<Channel> accept(const SetupWait& wait) override {
    pid_t peer = wait_for_peer(*static_cast<LinkControl*>(map_->base()), wait);
    name_.remove();  // both sides have it mapped: the name is no longer needed
    return make_ring_channel(std::move(map_), true, o_.mode, o_.zero_copy, peer);
  }

 private:
  ShmOptions o_;
  ipc_name::OwnedNames name_;
  std::unique_ptr<Mapping> map_;
  Endpoint ep_;
};

class ShmTransport final : public TransportBase {
 public:
  ShmTransport(ShmOptions o, TransportInfo info) : TransportBase(std::move(info)), o_(o) {}
  std::unique_ptr<Listener> listen(RunDir&, std::size_t, const TransportSettings&) const override {
    return std::make_unique<ShmListener>(o_);
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep, const SetupWait& /*wait*/) const override {
    EndpointReader(ep, name(), {"object name"});
    try {
      bip::shared_memory_object shm(bip::open_only, ep.addresses[0].c_str(), bip::read_write);
      auto map = std::make_unique<RegionMapping>(bip::mapped_region(shm, bip::read_write));
      pid_t client = static_cast<LinkControl*>(map->base())->client_pid.load();
      return make_ring_channel(std::move(map), false, o_.mode, o_.zero_copy, client);
    } catch (const bip::interprocess_exception& e) {
      throw ProtocolError("shm " + ep.addresses[0] + ": " + e.what());
    }
  }

 private:
  ShmOptions o_;
};

TransportInfo shm_info(const char* name, const char* wait, std::size_t ring_bytes,
                       std::size_t max_message, const std::string& how) {
  return {.name = name,
          .family = TransportFamily::kSharedMemory,
          .paradigm = "shared memory",
          .kernel_boundaries = true,
          .reach = "same host (any process, by name)",
          .coupling = "by shared-memory object name; both sides map the same object",
          .max_message = max_message,
          .summary = "POSIX shared memory via Boost.Interprocess, two SPSC rings; " + how,
          .wait = wait,
          .dev_shm_bytes = link_bytes(ring_bytes),
          .fan_in = "one ring pair (one shared-memory object) per client",
          .server_models = {"thread-per-client", "spin-poll"},
          .pipelining = "two threads"};
}

}  // namespace

std::unique_ptr<Transport> make_shm_spin_transport() {
  return std::make_unique<ShmTransport>(
      ShmOptions{WaitMode::kSpin, false, kRingBytes},
      shm_info("shm-spin", "spin", kRingBytes, kMaxRingMessage,
               "4 MiB rings; both sides busy-poll (a core each); messages copied in and out"));
}

std::unique_ptr<Transport> make_shm_futex_transport() {
  return std::make_unique<ShmTransport>(
      ShmOptions{WaitMode::kFutex, false, kRingBytes},
      shm_info("shm-futex", "spin-then-futex", kRingBytes, kMaxRingMessage,
               "4 MiB rings; spin up to twice the measured wake-up latency, then sleep on a futex; "
               "messages copied in and out"));
}

std::unique_ptr<Transport> make_shm_spin_zerocopy_transport() {
  constexpr std::size_t kZeroCopyRing = std::size_t{8} << 20;
  return std::make_unique<ShmTransport>(
      ShmOptions{WaitMode::kSpin, true, kZeroCopyRing},
      shm_info("shm-spin-zerocopy", "spin", kZeroCopyRing, kZeroCopyRing - 64,
               "8 MiB rings; both sides busy-poll; the sender writes each message in place "
               "in the ring (loan/commit) and the receiver reads it there (view/release)"));
}

}  // namespace ipcbench
