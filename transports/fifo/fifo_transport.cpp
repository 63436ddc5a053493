// Two named pipes (FIFOs) in the run directory; the peer is an unrelated process that
// opens them by path. Fan-in: a FIFO pair per client, or (server model "shared-queue")
// one request FIFO that every client writes to and one reply FIFO per client.
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "base/error.h"
#include "base/run_dir.h"
#include "transports/endpoint_reader.h"
#include "transports/framing.h"
#include "transports/many.h"
#include "transports/queue_fan_in.h"

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

// The shared form. Requests are queue_fan_in records ([client | length] envelope, then
// the message; transports/queue_fan_in.h); on a FIFO each record goes as
// [record length: u32 little-endian][record] in ONE write(). POSIX makes a write to a
// FIFO atomic (never interleaved with another writer's) only up to PIPE_BUF bytes, so a
// record may take at most PIPE_BUF bytes with its length: the form carries messages up
// to kSharedFifoMaxMessage and refuses larger ones when it is made, rather than let two
// clients' requests interleave (or cut them into records of its own, which would no
// longer be the classic form).
constexpr std::size_t kFifoRecordPrefix = 4;
constexpr std::size_t kSharedFifoMaxMessage = PIPE_BUF - kFifoRecordPrefix - kQueueEnvelopeBytes;

void set_nonblock(int fd, bool on) {
  int fl = static_cast<int>(check_sys(::fcntl(fd, F_GETFL), "fcntl"));
  check_sys(::fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK), "fcntl");
}

// Polls fd for `events` for up to ms; the revents (0: time is up).
short poll_for(int fd, short events, int ms) {
  pollfd p{fd, events, 0};
  int k = ::poll(&p, 1, ms);
  if (k < 0 && errno != EINTR) throw SysError("poll (fifo)", errno);
  return k > 0 ? p.revents : 0;
}

// One end of one FIFO as the queue fan-in uses it: whole records, each one write().
class FifoPort final : public QueuePort {
 public:
  // The read end (blocking: poll says when a record is there, and a record, written at
  // once, is then all there), and for the request FIFO a write end of our own, so that
  // the FIFO never reads EOF while clients come and go.
  FifoPort(UniqueFd rd, UniqueFd keep_open)
      : fd_(std::make_shared<UniqueFd>(std::move(rd))), keep_(std::move(keep_open)) {
    set_nonblock(fd_->get(), false);
  }
  // A write end (non-blocking), shared with whoever opens it: the server's end of a
  // reply FIFO is opened once the client said hello (see listen_shared_fifo).
  explicit FifoPort(std::shared_ptr<UniqueFd> wr) : fd_(std::move(wr)) {}
  std::size_t max_record() const override { return PIPE_BUF - kFifoRecordPrefix; }

  bool try_send(std::span<const std::byte> rec, int ms) override {
    if (rec.size() > max_record())
      throw ProtocolError("fifo: a record of " + std::to_string(rec.size()) +
                          " bytes exceeds PIPE_BUF (" + std::to_string(PIPE_BUF) +
                          " bytes with its length), the most one FIFO write carries atomically");
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    if (!fd_->valid())
      throw ProtocolError("fifo: the reply FIFO's reader was not open at its hello");
    const auto n = static_cast<std::uint32_t>(rec.size());
    for (std::size_t i = 0; i < kFifoRecordPrefix; ++i)
      out_[i] = static_cast<std::byte>(n >> (8 * i));
    std::memcpy(out_ + kFifoRecordPrefix, rec.data(), rec.size());
    const std::size_t total = kFifoRecordPrefix + rec.size();
    for (;;) {
      // O_NONBLOCK and at most PIPE_BUF bytes: all of it, or EAGAIN and nothing.
      ssize_t w = ::write(fd_->get(), out_, total);
      if (w == static_cast<ssize_t>(total)) return true;
      if (w >= 0) throw ProtocolError("fifo: a write of at most PIPE_BUF bytes was cut short");
      if (errno != EAGAIN && errno != EINTR) throw SysError("write (fifo)", errno);
      const int left = remaining_ms(until);
      if (left <= 0) return false;
      poll_for(fd_->get(), POLLOUT, left);
    }
  }

  std::optional<std::size_t> try_recv(std::span<std::byte> buf, int ms) override {
    const short ev = poll_for(fd_->get(), POLLIN, ms);
    if (ev == 0) return std::nullopt;
    if (!(ev & POLLIN)) return 0;  // every writer closed: as an empty record, the end
    std::byte len[kFifoRecordPrefix];
    if (read_full(fd_->get(), len, "read (fifo)") != sizeof len) return 0;
    std::uint32_t n = 0;
    for (std::size_t i = 0; i < kFifoRecordPrefix; ++i)
      n |= std::to_integer<std::uint32_t>(len[i]) << (8 * i);
    if (n > max_record() || n > buf.size())
      throw ProtocolError("fifo: a record of " + std::to_string(n) + " bytes (at most " +
                          std::to_string(std::min(max_record(), buf.size())) + ")");
    if (read_full(fd_->get(), buf.first(n), "read (fifo)") != n)
      throw ProtocolError("fifo: a record ended early");
    return n;
  }

 private:
  static int remaining_ms(std::chrono::steady_clock::time_point until) {
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<std::int64_t>(0, left.count()));
  }

  std::shared_ptr<UniqueFd> fd_;
  UniqueFd keep_;
  std::byte out_[PIPE_BUF];
};

// The shared form's FIFOs, all made by the run directory's naming (RunDir::make_path),
// 0600: "fifo-req" that every client writes to, and one "fifo-rep" per client. Client
// i's endpoint: {request FIFO, its reply FIFO, i}. The names are removed once every
// client said hello (each has its ends open), and on every other path with the listener;
// just before, the server opens its end of each reply FIFO (a non-blocking open for
// writing fails until a reader is there: the client opens its end before its hello).
std::unique_ptr<FanInListener> listen_shared_fifo(RunDir& dir, std::size_t max_message,
                                                  std::size_t clients) {
  if (max_message > kSharedFifoMaxMessage)
    throw ProtocolError(
        "fifo shared-queue: a request of " + std::to_string(max_message) + " bytes takes " +
        std::to_string(max_message + kFifoRecordPrefix + kQueueEnvelopeBytes) +
        " bytes with its framing, more than PIPE_BUF (" + std::to_string(PIPE_BUF) +
        " bytes), the most one write to a FIFO carries atomically; several clients' requests "
        "could interleave in the one request FIFO, so this form carries at most " +
        std::to_string(kSharedFifoMaxMessage) + "-byte messages (not run)");
  auto paths = std::make_shared<std::vector<std::string>>();
  auto writers = std::make_shared<std::vector<std::shared_ptr<UniqueFd>>>();
  auto remove = [paths, writers] {
    for (std::size_t k = 0; k < writers->size(); ++k)
      if (!(*writers)[k]->valid())
        (*writers)[k]->reset(::open((*paths)[k + 1].c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    for (const std::string& p : *paths) ::unlink(p.c_str());
  };
  QueueFanInPorts ports;
  std::vector<Endpoint> eps(clients);
  try {
    for (std::size_t k = 0; k <= clients; ++k) {
      paths->push_back(dir.make_path(k == 0 ? "fifo-req" : "fifo-rep"));
      const std::string& p = paths->back();
      check_sys(::mkfifo(p.c_str(), 0600), "mkfifo " + p);
      if (k == 0) {
        UniqueFd rd(static_cast<int>(
            check_sys(::open(p.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC), "open " + p)));
        UniqueFd wr(static_cast<int>(
            check_sys(::open(p.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC), "open " + p)));
        ports.requests = std::make_unique<FifoPort>(std::move(rd), std::move(wr));
      } else {
        writers->push_back(std::make_shared<UniqueFd>());
        ports.replies.push_back(std::make_unique<FifoPort>(writers->back()));
        eps[k - 1].addresses = {paths->front(), p, std::to_string(k - 1)};
      }
    }
  } catch (...) {
    remove();
    throw;
  }
  return std::make_unique<QueueFanIn>("fifo", std::move(ports), std::move(eps), remove, nullptr);
}

// A client of the shared form: endpoint {request FIFO, reply FIFO, client index}. Its
// reply FIFO's read end opens first (the server opens the write end after the hello).
std::unique_ptr<Channel> connect_shared_fifo(const Endpoint& ep, const SetupWait& wait) {
  EndpointReader r(ep, "fifo", {"request path", "reply path", "client index"});
  const std::uint32_t client = r.index(2);
  UniqueFd rd(static_cast<int>(check_sys(
      ::open(r.text(1).c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC), "open " + r.text(1))));
  // The server holds the request FIFO open for reading: this open does not wait.
  UniqueFd wr(static_cast<int>(check_sys(
      ::open(r.text(0).c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC), "open " + r.text(0))));
  return connect_queue_fan_in(
      "fifo", std::make_unique<FifoPort>(std::make_shared<UniqueFd>(std::move(wr))),
      std::make_unique<FifoPort>(std::move(rd), UniqueFd()), client, ::getppid(), wait);
}

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
                                 "instance-per-client model of named-pipe servers); for "
                                 "shared-queue, one request FIFO that every client writes "
                                 "to and one reply FIFO per client (a request is one write, "
                                 "atomic up to PIPE_BUF with its framing: messages up to " +
                                 std::to_string(kSharedFifoMaxMessage) + " bytes)",
                       .server_models = {"event-loop", "thread-per-client", "shared-queue"},
                       .fan_out = "one FIFO per subscriber; the publisher writes one copy "
                                  "to each",
                       .shared_queue_max_message = kSharedFifoMaxMessage,
                       .pipelining = "two threads"}) {}
  std::unique_ptr<Listener> listen(RunDir& dir, std::size_t,
                                   const TransportSettings&) const override {
    return std::make_unique<FifoListener>(dir);
  }
  std::unique_ptr<FanInListener> listen_fan_in(RunDir& dir, std::size_t max_message,
                                               const TransportSettings& settings,
                                               std::size_t clients,
                                               const std::string& model) const override {
    if (model == "shared-queue") return listen_shared_fifo(dir, max_message, clients);
    return listen_fan_in_each(*this, dir, max_message, settings, clients);
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep, const SetupWait& wait) const override {
    // Three addresses: a client of the shared form; two: one FIFO pair.
    if (ep.addresses.size() == 3) return connect_shared_fifo(ep, wait);
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
