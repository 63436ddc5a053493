// D-Bus, through sd-bus (libsystemd): "dbus" routes every message through a bus daemon
// the link starts for itself; "dbus-p2p" makes the same calls over a direct peer-to-peer
// D-Bus connection (no daemon), so the two side by side show what the bus costs.
//
// Messages. Every message is a method call org.ipcbench.Link.Deliver(ay) or the method
// return of one, the payload being the byte array. The benchmark side calls and the peer
// answers: a call from the benchmark side expects a reply when none of its calls is still
// waiting for one (otherwise it goes with NO_REPLY_EXPECTED), and the peer sends the
// method return of the oldest call that waits for a reply, or else a no-reply call. So a
// ping-pong round trip is one method call and its return; a throughput stream is one call
// that expects a reply followed by no-reply calls, the acknowledgement at the end being
// the return of the first.
//
// The bus. Each "dbus" link runs its own dbus-daemon (DbusDaemon below), never the
// machine's system or session bus: it listens on a socket file the link makes in the run
// directory (0600, handed over as systemd's socket activation does), and a configuration
// written there makes it authenticate with EXTERNAL only (the daemon admits only its own
// uid, its default with no <allow user> rule), drop a connection that has not
// authenticated within kAuthTimeoutMs, and take messages up to the D-Bus protocol's limit. The
// daemon dies with the runner (PR_SET_PDEATHSIG: ChildProcess), is killed when the link ends and on
// SIGINT/SIGTERM (cleanup's pid table); its socket goes with the run directory. A daemon that dies
// mid-run closes both connections: the next send or recv throws.
//
// Strangers. A process of our uid can reach the bus socket, so the peer proves itself: its
// first call (Hello(s)) carries the run's token (PeerToken), and the benchmark side takes
// the bus's unique name that sent it as the peer's; from then on each side takes messages
// only from the other's unique name (the bus sets senders; nobody can forge one) and drops
// the rest. Each side also asks the bus for NameOwnerChanged of the other's name, so a
// partner that goes away ends the link as a closed pipe does. dbus-p2p uses the uds
// transport's socket file and token (its listener refuses another uid: SO_PEERCRED), then
// speaks D-Bus on the connected socket.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-id128.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>

#include "base/error.h"
#include "base/process.h"
#include "base/run_dir.h"
#include "transports/endpoint_reader.h"
#include "transports/socket_util.h"
#include "transports/stream_link.h"
#include "transports/transport.h"

namespace ipcbench {
namespace {

constexpr const char* kPath = "/org/ipcbench/Link";
constexpr const char* kInterface = "org.ipcbench.Link";
constexpr const char* kDaemonName = "org.freedesktop.DBus";
// The D-Bus specification's limits: an array of at most 2^26 bytes, a message of at most
// 2^27. The payload is one array, so a message carries 64 MiB at most; the daemon is told
// to take whole messages up to the protocol's limit, so it never refuses one that fits.
constexpr std::size_t kMaxPayload = std::size_t{1} << 26;
constexpr std::size_t kMaxBusMessage = std::size_t{1} << 27;
// How long the daemon keeps a connection that has not authenticated: a same-uid stranger
// that connects and says nothing is dropped after this (the peer authenticates at once).
constexpr int kAuthTimeoutMs = 2000;

[[noreturn]] void fail(int r, const std::string& what) { throw SysError(what, -r); }
int check(int r, const std::string& what) {
  if (r < 0) fail(r, what);
  return r;
}

struct BusUnref {
  void operator()(sd_bus* b) const { sd_bus_flush_close_unref(b); }
};
using BusPtr = std::unique_ptr<sd_bus, BusUnref>;
struct MsgUnref {
  void operator()(sd_bus_message* m) const { sd_bus_message_unref(m); }
};
using MsgPtr = std::unique_ptr<sd_bus_message, MsgUnref>;

struct ErrorFree {
  sd_bus_error e = SD_BUS_ERROR_NULL;
  ~ErrorFree() { sd_bus_error_free(&e); }
  std::string text() const {
    return std::string(e.name ? e.name : "?") + ": " + (e.message ? e.message : "");
  }
};

// A private dbus-daemon for one link. Its configuration and socket live in the run
// directory; it prints its address on a pipe once it accepts connections.
class DbusDaemon {
 public:
  DbusDaemon(RunDir& dir, std::chrono::steady_clock::time_point deadline) {
    socket_ = dir.make_path("dbus-bus");
    const std::string config = dir.make_path("dbus-bus.conf");
    {
      std::ofstream f(config);
      f << "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN\"\n"
           " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
           "<busconfig>\n"
           "  <type>ipcbench</type>\n"
           "  <listen>systemd:</listen>\n"
           "  <auth>EXTERNAL</auth>\n"
           "  <policy context=\"default\">\n"
           "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
           "    <allow eavesdrop=\"true\"/>\n"
           "    <allow own=\"*\"/>\n"
           "  </policy>\n"
           "  <limit name=\"max_message_size\">"
        << kMaxBusMessage
        << "</limit>\n"
           "  <limit name=\"max_incoming_bytes\">"
        << 4 * kMaxBusMessage
        << "</limit>\n"
           "  <limit name=\"max_outgoing_bytes\">"
        << 4 * kMaxBusMessage
        << "</limit>\n"
           "  <limit name=\"reply_timeout\">3600000</limit>\n"
           "  <limit name=\"auth_timeout\">"
        << kAuthTimeoutMs
        << "</limit>\n"
           "</busconfig>\n";
      if (!f.flush()) throw SysError("write " + config, errno ? errno : EIO);
    }
    int p[2];
    check_sys(::pipe2(p, O_CLOEXEC), "pipe");
    UniqueFd r(p[0]), w(above_3(UniqueFd(p[1])));
    const std::string program = find_program("dbus-daemon");
    // What the daemon says goes to a log in the run directory, quoted when it fails to
    // start (as root it also warns, harmlessly, when it cannot raise its descriptor limit).
    log_ = dir.make_path("dbus-bus.log");
    UniqueFd log(::open(log_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!log.valid()) throw SysError("open " + log_, errno);
    // We make the socket (0600 from the start, as every socket file of the suite; the
    // daemon would make its own 0777) and hand it over as systemd's socket activation
    // does: descriptor 3, LISTEN_FDS=1, LISTEN_PID the daemon's pid, which a shell that
    // execs the daemon knows as $$. bash, for the redirection of a descriptor above 9
    // (dash takes one digit); neither inherited descriptor is 3 (above_3).
    UniqueFd listening = above_3(listen_unix_private(socket_, SOCK_STREAM, 16));
    const std::string fd = std::to_string(listening.get());
    daemon_ = ChildProcess::spawn(SpawnOptions{
        .argv = {"/bin/bash", "-c",
                 "export LISTEN_PID=$$ LISTEN_FDS=1; unset LISTEN_FDNAMES; exec \"$0\" \"$@\" 3<&" +
                     fd + " " + fd + "<&-",
                 program, "--config-file=" + config, "--nofork", "--nopidfile", "--nosyslog",
                 "--print-address=" + std::to_string(w.get())},
        .inherit_fds = {w.get(), listening.get()},
        .output_fd = log.get()});
    w.reset();
    // One line: the address, once the daemon listens. EOF first: it exited.
    std::string line;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) throw ProtocolError("dbus: the bus daemon did not start in time");
      pollfd pf{r.get(), POLLIN, 0};
      int n = ::poll(&pf, 1, static_cast<int>(std::min<long long>(left.count(), 100)));
      if (n < 0 && errno != EINTR) throw SysError("poll (dbus-daemon address)", errno);
      if (n <= 0) continue;
      char buf[512];
      ssize_t got = ::read(r.get(), buf, sizeof buf);
      if (got < 0 && errno != EINTR) throw SysError("read (dbus-daemon address)", errno);
      if (got == 0)
        throw ProtocolError("dbus: the bus daemon exited at start (" + daemon_.finish({}) +
                            "): " + last_log_line());
      if (got > 0) line.append(buf, static_cast<std::size_t>(got));
      if (line.find('\n') != std::string::npos) break;
    }
    address_ = line.substr(0, line.find('\n'));
  }
  const std::string& address() const { return address_; }
  const std::string& socket() const { return socket_; }
  pid_t pid() const { return daemon_.pid(); }
  // The daemon's CPU time so far (every thread), ns; -1 when it cannot be read.
  std::int64_t cpu_ns() const {
    clockid_t c;
    timespec ts{};
    if (::clock_getcpuclockid(daemon_.pid(), &c) != 0 || ::clock_gettime(c, &ts) != 0) return -1;
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
  }

 private:
  // The same descriptor moved to a number above 3 (close-on-exec, as it was).
  static UniqueFd above_3(UniqueFd fd) {
    if (fd.get() > 3) return fd;
    UniqueFd moved(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 4));
    if (!moved.valid()) throw SysError("fcntl F_DUPFD_CLOEXEC", errno);
    return moved;
  }

  static std::string find_program(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/bin:/bin";
    dirs += ":/usr/bin:/bin";
    std::size_t at = 0;
    while (at <= dirs.size()) {
      std::size_t end = dirs.find(':', at);
      if (end == std::string::npos) end = dirs.size();
      std::string candidate = dirs.substr(at, end - at) + "/" + name;
      if (end > at && ::access(candidate.c_str(), X_OK) == 0) return candidate;
      at = end + 1;
    }
    throw ProtocolError("dbus: " + name +
                        " not found (Debian package dbus-daemon; ./scripts/deps.sh installs it)");
  }

  std::string last_log_line() const {
    std::ifstream f(log_);
    std::string line, last = "(nothing in its log)";
    while (std::getline(f, line))
      if (!line.empty()) last = line;
    return last;
  }

  std::string socket_, address_, log_;
  ChildProcess daemon_;
};

BusPtr new_bus() {
  sd_bus* b = nullptr;
  check(sd_bus_new(&b), "sd_bus_new");
  return BusPtr(b);
}

// A connection to the link's bus daemon, registered (Hello) with the bus.
BusPtr open_bus_client(const std::string& address) {
  BusPtr b = new_bus();
  check(sd_bus_set_address(b.get(), address.c_str()), "sd_bus_set_address " + address);
  check(sd_bus_set_bus_client(b.get(), 1), "sd_bus_set_bus_client");
  check(sd_bus_negotiate_fds(b.get(), 0), "sd_bus_negotiate_fds");
  check(sd_bus_start(b.get()), "connect to the bus at " + address);
  return b;
}

// Asks the bus for NameOwnerChanged of `name`, then makes sure it is still there (it may
// have gone before the match took effect). Throws ProtocolError when it is gone.
void watch_partner(sd_bus* bus, const std::string& name, const std::string& who) {
  const std::string rule = "type='signal',sender='org.freedesktop.DBus',interface='" +
                           std::string(kDaemonName) + "',member='NameOwnerChanged',arg0='" + name +
                           "'";
  ErrorFree err;
  if (sd_bus_call_method(bus, kDaemonName, "/org/freedesktop/DBus", kDaemonName, "AddMatch", &err.e,
                         nullptr, "s", rule.c_str()) < 0)
    throw ProtocolError("dbus: AddMatch: " + err.text());
  ErrorFree err2;
  sd_bus_message* reply = nullptr;
  if (sd_bus_call_method(bus, kDaemonName, "/org/freedesktop/DBus", kDaemonName, "GetNameOwner",
                         &err2.e, &reply, "s", name.c_str()) < 0)
    throw ProtocolError("dbus: the " + who + " left the bus (" + err2.text() + ")");
  sd_bus_message_unref(reply);
}

// One side of a D-Bus link. `partner`: the other side's unique name on the bus; empty on a
// peer-to-peer connection (no names, no senders).
class DbusChannel final : public Channel {
 public:
  DbusChannel(BusPtr bus, std::string partner, bool caller, std::shared_ptr<DbusDaemon> daemon)
      : daemon_(std::move(daemon)),
        bus_(std::move(bus)),
        partner_(std::move(partner)),
        caller_(caller),
        fd_(sd_bus_get_fd(bus_.get())) {}
  ~DbusChannel() override {
    for (sd_bus_message* m : to_answer_) sd_bus_message_unref(m);
  }

  void send(std::span<const std::byte> msg) override {
    if (closed_) throw ProtocolError("dbus: send after the link ended");
    sd_bus_message* raw = nullptr;
    bool expect = false;
    if (!to_answer_.empty()) {
      check(sd_bus_message_new_method_return(to_answer_.front(), &raw), "dbus: method return");
      sd_bus_message_unref(to_answer_.front());
      to_answer_.pop_front();
    } else {
      check(sd_bus_message_new_method_call(bus_.get(), &raw,
                                           partner_.empty() ? nullptr : partner_.c_str(), kPath,
                                           kInterface, "Deliver"),
            "dbus: method call");
      expect = caller_ && outstanding_ == 0;
      if (!expect) check(sd_bus_message_set_expect_reply(raw, 0), "dbus: no-reply flag");
    }
    MsgPtr m(raw);
    check(sd_bus_message_append_array(m.get(), 'y', msg.data(), msg.size()),
          "dbus: message of " + std::to_string(msg.size()) + " bytes");
    // Through a bus, a partner that left does not make a send fail: the daemon drops what
    // is addressed to nobody. What came in so far says whether it left.
    // Looked at once a millisecond at most (a clock read), so a send in a stream does not
    // pay a read attempt on the bus socket each time.
    if (!partner_.empty()) {
      const auto now = std::chrono::steady_clock::now();
      if (now - last_look_ > std::chrono::milliseconds(1)) {
        last_look_ = now;
        notice_departure();
      }
    }
    std::uint64_t cookie = 0;
    int r = sd_bus_send(bus_.get(), m.get(), &cookie);
    if (r < 0) lost(r, "send");
    if (expect) outstanding_ = cookie;
    // sd-bus queues in memory what the socket does not take at once; wait until it has
    // (a send blocks while the other side is not reading, as the contract says).
    r = sd_bus_flush(bus_.get());
    if (r < 0) lost(r, "send");
  }

  std::size_t recv(std::span<std::byte> buf) override {
    while (!early_.empty()) {
      MsgPtr m = std::move(early_.front());
      early_.pop_front();
      std::size_t n = 0;
      if (take(m.get(), buf, &n)) return n;
    }
    if (closed_) return 0;
    for (;;) {
      sd_bus_message* raw = nullptr;
      int r = sd_bus_process(bus_.get(), &raw);
      if (r < 0) lost(r, "receive");
      if (raw) {
        MsgPtr m(raw);
        std::size_t n = 0;
        if (take(m.get(), buf, &n)) return n;
        continue;
      }
      if (r > 0) continue;
      r = sd_bus_wait(bus_.get(), UINT64_MAX);
      if (r < 0 && r != -EINTR) lost(r, "wait");
    }
  }

  void abort() noexcept override {
    aborted_.store(true, std::memory_order_relaxed);
    // sd-bus is not thread-safe, but a shutdown of its socket is: the blocked call returns.
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  }

  std::int64_t service_cpu_ns() const override { return daemon_ ? daemon_->cpu_ns() : -1; }

  // For the listener: waits for the peer's Hello carrying `token`, bounded by `wait`; the
  // sender becomes the partner.
  void await_hello(const std::string& token, const SetupWait& wait) {
    for (;;) {
      sd_bus_message* raw = nullptr;
      int r = sd_bus_process(bus_.get(), &raw);
      if (r < 0) lost(r, "accept");
      if (raw) {
        MsgPtr m(raw);
        const char* text = nullptr;
        if (sd_bus_message_is_method_call(m.get(), kInterface, "Hello") > 0 &&
            sd_bus_message_read(m.get(), "s", &text) > 0 && text && token == text &&
            sd_bus_message_get_sender(m.get())) {
          partner_ = sd_bus_message_get_sender(m.get());
          watch_partner(bus_.get(), partner_, "peer");
          return;
        }
        continue;  // a stranger's message, or anything else: dropped
      }
      if (r > 0) continue;
      wait.check("dbus: accept");
      r = sd_bus_wait(bus_.get(), 50'000);
      if (r < 0 && r != -EINTR) lost(r, "accept");
    }
  }

 private:
  // Whether m is the partner's next message (its payload copied into buf, *n its size);
  // false for anything to drop. Sets closed_ (and *n = 0, true) when the link ended.
  bool take(sd_bus_message* m, std::span<std::byte> buf, std::size_t* n) {
    if (sd_bus_message_is_signal(m, "org.freedesktop.DBus.Local", "Disconnected") > 0) {
      // Through a bus, the benchmark side owns the daemon: the bus going away under it is
      // an error (the cell's). The peer takes it as the end of the link, as it is when the
      // benchmark side stops the daemon right after its last message. abort() closes the
      // connection too: that is a failure, not an end.
      if (aborted_.load(std::memory_order_relaxed))
        throw ProtocolError("dbus: the link was aborted");
      if (!partner_.empty() && caller_)
        throw ProtocolError("dbus: the bus daemon closed the connection (did it die?)");
      closed_ = true;
      *n = 0;
      return true;
    }
    const char* sender = sd_bus_message_get_sender(m);
    if (!partner_.empty()) {
      if (departed(m)) {
        closed_ = true;
        *n = 0;
        return true;
      }
      // An error the bus itself sends back (a message it refused, e.g. LimitsExceeded
      // when its queue to the partner is full) fails the link; nothing is lost unseen.
      if (sender && std::strcmp(sender, kDaemonName) == 0 &&
          message_type(m) == SD_BUS_MESSAGE_METHOD_ERROR)
        throw_error(m);
      if (!sender || partner_ != sender) return false;  // not the partner: dropped
    }
    const std::uint8_t type = message_type(m);
    if (type == SD_BUS_MESSAGE_METHOD_ERROR) throw_error(m);
    if (type == SD_BUS_MESSAGE_METHOD_RETURN) {
      std::uint64_t cookie = 0;
      if (sd_bus_message_get_reply_cookie(m, &cookie) < 0 || cookie != outstanding_) return false;
      outstanding_ = 0;
    } else if (type == SD_BUS_MESSAGE_METHOD_CALL) {
      if (sd_bus_message_is_method_call(m, kInterface, "Deliver") <= 0) return false;
    } else {
      return false;
    }
    const void* data = nullptr;
    std::size_t size = 0;
    check(sd_bus_message_read_array(m, 'y', &data, &size), "dbus: read the payload");
    if (size == 0) throw ProtocolError("dbus: empty message");
    if (size > buf.size())
      throw ProtocolError("dbus: message of " + std::to_string(size) + " bytes does not fit in " +
                          std::to_string(buf.size()));
    std::memcpy(buf.data(), data, size);
    if (type == SD_BUS_MESSAGE_METHOD_CALL && sd_bus_message_get_expect_reply(m) > 0)
      to_answer_.push_back(sd_bus_message_ref(m));
    *n = size;
    return true;
  }

  // Takes in, without waiting, whatever has arrived, keeping it for recv; throws SysError
  // (EPIPE) when the partner left the bus or the bus went away.
  void notice_departure() {
    for (;;) {
      sd_bus_message* raw = nullptr;
      int r = sd_bus_process(bus_.get(), &raw);
      if (r < 0) lost(r, "send");
      if (raw) {
        MsgPtr m(raw);
        if (departed(m.get()))
          throw SysError(
              sd_bus_message_is_signal(m.get(), "org.freedesktop.DBus.Local", "Disconnected") > 0
                  ? "dbus: send: the bus connection closed"
                  : "dbus: send: the " + std::string(caller_ ? "peer" : "benchmark side") +
                        " left the bus",
              EPIPE);
        // Kept for recv: the partner's messages and the bus's own (its errors); a
        // stranger's are dropped here, so they cannot pile up during a stream.
        const char* sender = sd_bus_message_get_sender(m.get());
        if (sender && (partner_ == sender || std::strcmp(sender, kDaemonName) == 0))
          early_.push_back(std::move(m));
        continue;
      }
      if (r == 0) return;
    }
  }

  // Whether m says the partner left the bus, or the bus connection closed.
  bool departed(sd_bus_message* m) const {
    if (sd_bus_message_is_signal(m, "org.freedesktop.DBus.Local", "Disconnected") > 0) return true;
    const char* sender = sd_bus_message_get_sender(m);
    if (!sender || std::strcmp(sender, kDaemonName) != 0 ||
        sd_bus_message_is_signal(m, kDaemonName, "NameOwnerChanged") <= 0)
      return false;
    const char *name = nullptr, *old_owner = nullptr, *new_owner = nullptr;
    const bool gone = sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) > 0 && name &&
                      partner_ == name && new_owner && *new_owner == '\0';
    sd_bus_message_rewind(m, 1);
    return gone;
  }

  [[noreturn]] static void throw_error(sd_bus_message* m) {
    const sd_bus_error* e = sd_bus_message_get_error(m);
    const char* from = sd_bus_message_get_sender(m);
    throw ProtocolError("dbus: error reply" + std::string(from ? " from " : "") +
                        (from ? from : "") + " " + (e && e->name ? e->name : "?") + ": " +
                        (e && e->message ? e->message : ""));
  }

  static std::uint8_t message_type(sd_bus_message* m) {
    std::uint8_t t = 0;
    sd_bus_message_get_type(m, &t);
    return t;
  }

  // A send fails as a socket's write does (SysError); a receive says the link closed.
  [[noreturn]] void lost(int r, const char* what) {
    if (std::strcmp(what, "send") != 0 &&
        (r == -ECONNRESET || r == -ENOTCONN || r == -EPIPE || r == -ESHUTDOWN))
      throw ProtocolError(std::string("dbus: ") + what + ": the connection " +
                          (partner_.empty() ? "" : "to the bus ") + "closed (" + std::strerror(-r) +
                          ")");
    fail(r, std::string("dbus: ") + what);
  }

  std::shared_ptr<DbusDaemon> daemon_;  // destroyed last: after the connection closed
  BusPtr bus_;
  std::string partner_;
  bool caller_;
  int fd_;
  bool closed_ = false;
  std::uint64_t outstanding_ = 0;          // the cookie of our call that awaits a reply
  std::deque<sd_bus_message*> to_answer_;  // calls of the partner's that await ours
  std::deque<MsgPtr> early_;               // taken in by a send, for recv
  std::atomic<bool> aborted_{false};
  std::chrono::steady_clock::time_point last_look_{};  // last notice_departure() in send
};

// "dbus": the benchmark side starts the daemon, connects, and hands the peer the bus's
// address, its own unique name and the token.
class BusListener final : public Listener {
 public:
  explicit BusListener(RunDir& dir) {
    daemon_ = std::make_shared<DbusDaemon>(
        dir, std::chrono::steady_clock::now() + std::chrono::seconds(10));
    bus_ = open_bus_client(daemon_->address());
    const char* unique = nullptr;
    check(sd_bus_get_unique_name(bus_.get(), &unique), "dbus: unique name");
    ep_.addresses = {daemon_->socket(), unique, std::to_string(token_.pipe.get())};
    ep_.inherit_fds = {token_.pipe.get()};
  }
  const Endpoint& endpoint() const override { return ep_; }
  std::unique_ptr<Channel> accept(const SetupWait& wait) override {
    token_.handed_over(ep_);
    auto ch = std::make_unique<DbusChannel>(std::move(bus_), "", true, daemon_);
    ch->await_hello(token_.text, wait);
    return ch;
  }

 private:
  std::shared_ptr<DbusDaemon> daemon_;
  BusPtr bus_;
  PeerToken token_ = PeerToken::make();
  Endpoint ep_;
};

class DbusTransport final : public TransportBase {
 public:
  using TransportBase::TransportBase;
  std::unique_ptr<Listener> listen(RunDir& dir, std::size_t,
                                   const TransportSettings&) const override {
    return std::make_unique<BusListener>(dir);
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep, const SetupWait& /*wait*/) const override {
    EndpointReader r(ep, name(), {"bus socket", "caller's name", "token pipe"});
    const std::string token = r.token(2);
    BusPtr bus = open_bus_client("unix:path=" + r.text(0));
    const std::string caller = r.text(1);
    watch_partner(bus.get(), caller, "benchmark side");
    sd_bus_message* raw = nullptr;
    check(
        sd_bus_message_new_method_call(bus.get(), &raw, caller.c_str(), kPath, kInterface, "Hello"),
        "dbus: Hello");
    MsgPtr m(raw);
    check(sd_bus_message_set_expect_reply(m.get(), 0), "dbus: no-reply flag");
    check(sd_bus_message_append(m.get(), "s", token.c_str()), "dbus: Hello");
    check(sd_bus_send(bus.get(), m.get(), nullptr), "dbus: send Hello");
    return std::make_unique<DbusChannel>(std::move(bus), caller, false, nullptr);
  }
};

// "dbus-p2p": the uds transport's socket file and token, then D-Bus on the connection;
// the benchmark side is the D-Bus server.
class P2pTransport final : public TransportBase {
 public:
  using TransportBase::TransportBase;
  std::unique_ptr<Listener> listen(RunDir& dir, std::size_t,
                                   const TransportSettings&) const override {
    return listen_uds_link(dir, name(), [](StreamFds fds) -> std::unique_ptr<Channel> {
      return std::make_unique<DbusChannel>(p2p_bus(std::move(fds.rd), true), "", true, nullptr);
    });
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep, const SetupWait& /*wait*/) const override {
    return connect_uds_link(ep, name(), [](StreamFds fds) -> std::unique_ptr<Channel> {
      return std::make_unique<DbusChannel>(p2p_bus(std::move(fds.rd), false), "", false, nullptr);
    });
  }

 private:
  static BusPtr p2p_bus(UniqueFd fd, bool server) {
    BusPtr b = new_bus();
    const int raw = fd.release();
    if (int r = sd_bus_set_fd(b.get(), raw, raw); r < 0) {
      ::close(raw);
      fail(r, "sd_bus_set_fd");
    }
    if (server) {
      sd_id128_t id;
      check(sd_id128_randomize(&id), "sd_id128_randomize");
      check(sd_bus_set_server(b.get(), 1, id), "sd_bus_set_server");
    }
    check(sd_bus_negotiate_fds(b.get(), 0), "sd_bus_negotiate_fds");
    check(sd_bus_start(b.get()), "dbus-p2p: start");
    return b;
  }
};

TransportInfo dbus_info(std::string name, std::string summary, std::string coupling,
                        std::string daemon) {
  return TransportInfo{
      .name = std::move(name),
      .family = TransportFamily::kRpc,
      .paradigm = "method calls",
      .kernel_boundaries = true,
      .reach = "same host",
      .coupling = std::move(coupling),
      .max_message = kMaxPayload,
      .summary = std::move(summary),
      .built_on = "uds",
      .daemon = std::move(daemon),
  };
}

}  // namespace

std::unique_ptr<Transport> make_dbus_transport() {
  return std::make_unique<DbusTransport>(dbus_info(
      "dbus",
      "sd-bus method calls org.ipcbench.Link.Deliver(ay) through a private dbus-daemon the link "
      "starts (socket in the run directory, own uid only); a round trip is one call and its "
      "return; a stream is no-reply calls, acknowledged by the return of its first",
      "by bus address and unique name; every message passes through the bus daemon",
      "dbus-daemon, started by the link itself (a private bus per link, config and socket in "
      "the run directory)"));
}

std::unique_ptr<Transport> make_dbus_p2p_transport() {
  return std::make_unique<P2pTransport>(
      dbus_info("dbus-p2p",
                "sd-bus method calls org.ipcbench.Link.Deliver(ay) on a direct D-Bus connection "
                "(no daemon) over a Unix socket file 0600 in the run directory, own uid only, "
                "the peer presenting a token first; as dbus without the bus",
                "by socket path; one peer-to-peer D-Bus connection", ""));
}

}  // namespace ipcbench
