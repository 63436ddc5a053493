// Two named pipes (FIFOs) in the run directory; the peer is an unrelated process that
// opens them by path.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "base/error.h"
#include "base/run_dir.h"
#include "transports/endpoint_reader.h"
#include "transports/framing.h"

namespace ipcbench {
namespace {

void clear_nonblock(int fd) {
  int fl = static_cast<int>(check_sys(::fcntl(fd, F_GETFL), "fcntl"));
  check_sys(::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK), "fcntl");
}

// Sent by the peer once both FIFOs are open.
constexpr std::byte kHello{0x49};

class FifoListener final : public Listener {
 public:
  explicit FifoListener(RunDir& dir) {
    std::string down = dir.make_path("fifo-down"), up = dir.make_path("fifo-up");
    for (const auto& p : {down, up}) check_sys(::mkfifo(p.c_str(), 0600), "mkfifo " + p);
    ep_.addresses = {down, up};
  }
  const Endpoint& endpoint() const override { return ep_; }

  std::unique_ptr<Channel> accept(const SetupWait& wait) override {
    const std::string &down = ep_.addresses[0], &up = ep_.addresses[1];
    // Opening the read end without O_NONBLOCK would block until the peer opens it.
    UniqueFd rd(static_cast<int>(
        check_sys(::open(up.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC), "open " + up)));
    UniqueFd wr;
    // A non-blocking open for writing fails with ENXIO until the peer opened for reading.
    for (;;) {
      int fd = ::open(down.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (fd >= 0) {
        wr.reset(fd);
        break;
      }
      if (errno != ENXIO) throw SysError("open " + down, errno);
      wait.check("fifo: opening " + down);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    // Until a writer has opened `up`, a read would see EOF; the peer's hello byte tells
    // us it has (poll on a FIFO that never had a writer does not report a hang-up).
    wait_fd(rd.get(), POLLIN, wait, "fifo: waiting for the peer to open its write end");
    clear_nonblock(rd.get());
    std::byte hello{};
    if (read_full(rd.get(), std::span(&hello, 1), "fifo: read hello") != 1 || hello != kHello)
      throw ProtocolError("fifo: the peer did not say hello");
    clear_nonblock(wr.get());
    return std::make_unique<StreamChannel>(std::move(rd), std::move(wr));
  }

 private:
  Endpoint ep_;
};

class FifoTransport final : public TransportBase {
 public:
  FifoTransport()
      : TransportBase({.name = "fifo",
                       .family = TransportFamily::kPipes,
                       .paradigm = "byte stream",
                       .kernel_boundaries = false,
                       .reach = "same host (any process, by path)",
                       .coupling = "by file path; both ends must be open at once, no "
                                   "connection per client",
                       .max_message = kMaxFrameBytes,
                       .summary = "two named pipes (mkfifo, 0600) in the private run "
                                  "directory; length-prefix framing",
                       .encoding = "framing",
                       .fan_in = "one FIFO pair per client in the run directory (the "
                                 "instance-per-client model of named-pipe servers)",
                       .server_models = {"event-loop", "thread-per-client"},
                       .fan_out = "one FIFO per subscriber; the publisher writes one copy "
                                  "to each"}) {}
  std::unique_ptr<Listener> listen(RunDir& dir, std::size_t,
                                   const TransportSettings&) const override {
    return std::make_unique<FifoListener>(dir);
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep, const SetupWait& /*wait*/) const override {
    EndpointReader(ep, "fifo", {"down path", "up path"});
    // Same order as the listener: our read end first, then our write end.
    UniqueFd rd(static_cast<int>(check_sys(::open(ep.addresses[0].c_str(), O_RDONLY | O_CLOEXEC),
                                           "open " + ep.addresses[0])));
    UniqueFd wr(static_cast<int>(check_sys(::open(ep.addresses[1].c_str(), O_WRONLY | O_CLOEXEC),
                                           "open " + ep.addresses[1])));
    write_all(wr.get(), std::span(&kHello, 1), "fifo: write hello");
    return std::make_unique<StreamChannel>(std::move(rd), std::move(wr));
  }
};

}  // namespace

std::unique_ptr<Transport> make_fifo_transport() { return std::make_unique<FifoTransport>(); }

}  // namespace ipcbench
