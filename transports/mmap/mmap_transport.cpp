// A memory-mapped file (MAP_SHARED) in the run's private directory, holding two rings.
// mmap-spin busy-polls; mmap-futex spins for a bounded time, then sleeps on a futex in the file.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fd.h"
#include "base/run_dir.h"
#include "transports/endpoint_reader.h"
#include "transports/ring.h"

namespace ipcbench {
namespace {

class FileMapping final : public Mapping {
 public:
  FileMapping(int fd, std::size_t size) : size_(size) {
    base_ = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base_ == MAP_FAILED) throw SysError("mmap", errno);
  }
  ~FileMapping() override { ::munmap(base_, size_); }
  void* base() override { return base_; }

 private:
  void* base_;
  std::size_t size_;
};

class MmapListener final : public Listener {
 public:
  MmapListener(RunDir& dir, WaitMode mode) : mode_(mode) {
    path_ = dir.make_path("mmap");
    UniqueFd fd(static_cast<int>(check_sys(
        ::open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600), "open " + path_)));
    const std::size_t size = link_bytes(kRingBytes);
    size_file(fd.get(), size, path_);
    map_ = std::make_unique<FileMapping>(fd.get(), size);
    init_link(map_->base(), kRingBytes);
    ep_.addresses = {path_};
  }
  const Endpoint& endpoint() const override { return ep_; }
  std::unique_ptr<Channel> accept(const SetupWait& wait) override {
    pid_t peer = wait_for_peer(*static_cast<LinkControl*>(map_->base()), wait);
    ::unlink(path_.c_str());  // both sides have it mapped; the name is no longer needed
    return make_ring_channel(std::move(map_), true, mode_, false, peer);
  }

 private:
  WaitMode mode_;
  std::string path_;
  std::unique_ptr<Mapping> map_;
  Endpoint ep_;
};

class MmapTransport final : public TransportBase {
 public:
  MmapTransport(WaitMode mode, TransportInfo info) : TransportBase(std::move(info)), mode_(mode) {}
  std::unique_ptr<Listener> listen(RunDir& dir, std::size_t,
                                   const TransportSettings&) const override {
    return std::make_unique<MmapListener>(dir, mode_);
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep, const SetupWait& /*wait*/) const override {
    const std::string& path = EndpointReader(ep, name(), {"file path"}).text(0);
    UniqueFd fd(
        static_cast<int>(check_sys(::open(path.c_str(), O_RDWR | O_CLOEXEC), "open " + path)));
    auto map = std::make_unique<FileMapping>(fd.get(), link_bytes(kRingBytes));
    pid_t client = static_cast<LinkControl*>(map->base())->client_pid.load();
    return make_ring_channel(std::move(map), false, mode_, false, client);
  }

 private:
  WaitMode mode_;
};

TransportInfo mmap_info(const char* name, const char* wait, const char* how) {
  return {.name = name,
          .family = TransportFamily::kSharedMemory,
          .paradigm = "shared memory",
          .kernel_boundaries = true,
          .reach = "same host (any process, by path)",
          .coupling = "by file path; both sides map the same file (MAP_SHARED)",
          .max_message = kMaxRingMessage,
          .summary =
              std::string("memory-mapped file in the run directory, two 4 MiB SPSC rings; ") + how,
          .wait = wait,
          .fan_in = "one ring pair (one mapped file) per client",
          .server_models = {"thread-per-client", "spin-poll"},
          .pipelining = "two threads"};
}

}  // namespace

std::unique_ptr<Transport> make_mmap_spin_transport() {
  return std::make_unique<MmapTransport>(
      WaitMode::kSpin, mmap_info("mmap-spin", "spin", "both sides busy-poll (a core each)"));
}

std::unique_ptr<Transport> make_mmap_futex_transport() {
  return std::make_unique<MmapTransport>(
      WaitMode::kFutex,
      mmap_info("mmap-futex", "spin-then-futex",
                "spin up to twice the measured wake-up latency, then sleep on a futex"));
}

}  // namespace ipcbench
