// iceoryx 2.0 (Debian's libiceoryx-posh): zero-copy publish/subscribe through shared memory
// that iceoryx's daemon, RouDi, manages. "iceoryx-waitset" sleeps in a WaitSet until a
// sample arrives; "iceoryx-spin" polls take() and never sleeps.
//
// A link is two topics, ipcbench/<link>/down (benchmark side to peer) and …/up, each one
// UntypedPublisher and one UntypedSubscriber. A message is one sample: the writer loans a
// chunk of the message's size from RouDi's pools, fills it in place and publishes it; the
// reader takes it and reads it in place (Channel::loan/commit and view/release; send and
// recv copy in and out of the same chunks). The publisher waits for a full subscriber queue
// (WAIT_FOR_CONSUMER and BLOCK_PRODUCER, kQueue samples): nothing is dropped.
//
// RouDi. iceoryx 2.0 fixes RouDi's names when it is built (/tmp/roudi, /dev/shm/iceoryx_mgmt,
// a lock in /tmp): one RouDi per machine, and a process registers with it once for its life.
// So the suite starts one RouDi per runner process, at the first iceoryx link, with pools
// sized for the larger of that link's largest message and 4 MiB; it is stopped when the
// process exits, after the process's own iceoryx runtime has signed off (RouDi would
// otherwise send it SIGTERM). It dies with the runner (PR_SET_PDEATHSIG) and is killed on
// SIGINT/SIGTERM (cleanup's pid table). What a killed RouDi leaves in /dev/shm and /tmp is
// named by iceoryx, not stamped as ours: once RouDi is ready, the runner writes a proof of
// which files those are (base/roudi_files.h), and removes them by it when RouDi did not
// stop in order; after a SIGKILL of the runner, the next run's sweep does. Where another
// RouDi already runs (another run, or the user's), ours cannot
// start and the link fails saying so. Each process's runtime is named by its stamp
// (base/ipc_name.h): iceoryx makes /tmp/<stamp> and /tmp/<stamp>.lock for it.
//
// Strangers. Any process of our uid can register with RouDi and publish on our topics. The
// peer's first sample carries the run's token (PeerToken) and its pid; the benchmark side
// takes the publisher that sent it (the chunk header's origin id, set by iceoryx) as the
// peer's, and the peer takes only samples from the benchmark side's publisher, whose id is
// in the endpoint. Samples from any other publisher are released unread.
//
// A killed process can deadlock RouDi. iceoryx 2.0's locks in shared memory are not robust:
// a process killed while it holds one (a publisher's, while it publishes or tears its ports
// down) leaves it locked, and RouDi's discovery thread, which takes it to connect or
// disconnect that publisher, waits forever, its message thread behind it (upstream issues
// #779, #1711; seen here in gdb: the lock's owner, a peer SIGKILLed as its link ended). From
// then on whatever asks RouDi something waits forever: a new peer registering, this process
// asking for a port or signing off at exit. So a thread of the runner (the keeper) looks at
// RouDi every 100 ms (roudi_deadlocked()). A deadlocked RouDi is killed and its names
// removed; the link being made fails saying why, and so do the run's later iceoryx links
// (a process registers with one RouDi for life). A sign-off under way at exit is woken and
// the process exits. A port request under way cannot be ended without iceoryx aborting the
// process, so then the process ends as at SIGHUP (cleanup's handler removes what the run
// made), after saying why.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "base/cleanup.h"
#include "base/error.h"
#include "base/ipc_name.h"
#include "base/process.h"
#include "base/roudi_files.h"
#include "base/run_dir.h"
#include "base/wait.h"
#include "iceoryx_hoofs/log/logmanager.hpp"
#include "iceoryx_posh/mepoo/chunk_header.hpp"
#include "iceoryx_posh/popo/untyped_publisher.hpp"
#include "iceoryx_posh/popo/untyped_subscriber.hpp"
#include "iceoryx_posh/popo/wait_set.hpp"
#include "iceoryx_posh/runtime/posh_runtime.hpp"
#include "transports/endpoint_reader.h"
#include "transports/socket_util.h"
#include "transports/transport.h"

namespace ipcbench {
namespace {

constexpr std::uint32_t kQueue = 8;         // samples a subscriber queues
constexpr std::uint32_t kAlignment = 8;     // of every payload: the chunk header is 40 bytes
constexpr std::size_t kLeastTop = 4 << 20;  // the largest pool holds at least this much
constexpr std::size_t kMaxMessage = std::size_t{16} << 20;
// Chunks per pool: both directions' queues, a sample being read and one being written on
// each side, and room for the samples of a peer killed mid-run until RouDi reclaims them.
constexpr std::uint32_t kChunksPerPool = 4 * (kQueue + 2);
// RouDi's management segment, fixed when iceoryx was built (63 MiB seen), and each chunk's
// header (40 bytes; 64 for the room estimate).
constexpr std::size_t kManagementBytes = std::size_t{66} << 20;
constexpr std::size_t kChunkHeaderBytes = 64;

std::size_t round8(std::size_t n) { return (n + 7) / 8 * 8; }

// The pools: 128 B, then ×16 up to the largest, which holds `top` bytes.
std::vector<std::size_t> pool_sizes(std::size_t top) {
  std::vector<std::size_t> out;
  for (std::size_t s = 128; s < top; s *= 16) out.push_back(s);
  out.push_back(round8(top));
  return out;
}

// When a peer's process was last seen gone without having ended its link (killed), in
// steady-clock ns; 0: never. RouDi's monitoring drops such a process
// (PROCESS_KEEP_ALIVE_TIMEOUT, 1.5 s, in iceoryx_posh_types.hpp) within kMonitoringDrops.
std::atomic<std::int64_t> last_unsigned_exit_ns{0};
constexpr std::chrono::milliseconds kMonitoringDrops(2500);

// RouDi's discovery thread ("Mon+Discover", as iceoryx 2.0 names it) sleeps between rounds
// and its message thread ("IPC-msg-process") waits in its socket's receive; either waits on
// a futex only briefly, while the other holds RouDi's own locks, unless a dead process
// holds the lock that discovery waits for: then discovery waits forever, and the message
// thread behind it from the next message on (a keep-alive, 300 ms at most). Deadlocked:
// one of them on a futex at every look for 1 s (11 looks, 100 ms apart) without once
// being switched in (its voluntary context switches unchanged), so a thread that waited
// behind a lock holder that was merely slow is not taken for one. False when they cannot
// be read (no such threads, RouDi gone).
bool roudi_deadlocked(pid_t roudi) {
  auto first_line = [](const std::filesystem::path& p) {
    std::ifstream f(p);
    std::string line;
    std::getline(f, line);
    return line;
  };
  auto switches = [](const std::filesystem::path& thread) {
    std::ifstream f(thread / "status");
    for (std::string line; std::getline(f, line);)
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0) return line;
    return std::string();
  };
  std::vector<std::filesystem::path> threads;
  std::error_code ec;
  std::filesystem::directory_iterator it("/proc/" + std::to_string(roudi) + "/task", ec);
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = first_line(it->path() / "comm");
    if (name == "IPC-msg-process" || name == "Mon+Discover") threads.push_back(it->path());
  }
  for (const auto& thread : threads) {
    const std::string before = switches(thread);
    bool waits = !before.empty();
    for (int look = 0; waits && look < 11; ++look) {
      if (look) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      waits = first_line(thread / "wchan").rfind("futex", 0) == 0 && switches(thread) == before;
    }
    if (waits) return true;
  }
  return false;
}

constexpr const char* kDeadlocked =
    "iceoryx: RouDi deadlocked (a process was killed while it held one of the locks in "
    "RouDi's shared memory; iceoryx 2.0 issues #779/#1711) and was stopped; the run's "
    "iceoryx links after this point cannot be made";

// What the keeper and the thread that makes links tell each other.
std::atomic<bool> roudi_down{false};             // the keeper found RouDi deadlocked and killed it
std::atomic<int> asking_for_ports{0};            // port requests to RouDi under way
std::atomic<bool> signing_off{false};            // the process exits: its runtime signs off now
std::atomic<bool> keeper_stops{false};           // RouDi is being stopped in order (~Roudi)
std::atomic<bool> roudi_slots_forgotten{false};  // the keeper forgot RouDi's names in cleanup
std::mutex keeper_mu;            // orders "is RouDi down?" before a port request against the keeper
std::atomic<int> publishing{0};  // publishes under way (one may wait for room)
std::atomic<std::uint64_t> published{0};  // publishes done

// Every publish goes through here, so the keeper sees one that waits for good.
void publish(iox::popo::UntypedPublisher& pub, void* chunk) {
  publishing.fetch_add(1, std::memory_order_relaxed);
  pub.publish(chunk);
  published.fetch_add(1, std::memory_order_relaxed);
  publishing.fetch_sub(1, std::memory_order_relaxed);
}

// While one lives, a port request to RouDi is under way. Throws when RouDi is down: a
// request to a RouDi that is gone fails inside iceoryx with an assertion (it aborts).
struct AskingForPorts {
  AskingForPorts() {
    std::lock_guard lock(keeper_mu);
    if (roudi_down.load()) throw ProtocolError(kDeadlocked);
    asking_for_ports.fetch_add(1);
  }
  ~AskingForPorts() { asking_for_ports.fetch_sub(1); }
  AskingForPorts(const AskingForPorts&) = delete;
  AskingForPorts& operator=(const AskingForPorts&) = delete;
};

// This process's RouDi (the runner's) and its iceoryx runtime, made once.
class Roudi {
 public:
  // Starts RouDi (first call) and registers this process, or says why it cannot.
  static std::size_t ensure(RunDir& dir, std::size_t max_message) {
    Roudi& roudi = instance();
    std::lock_guard lock(roudi.mu_);
    if (!roudi.error_.empty()) throw ProtocolError(roudi.error_);
    if (roudi_down.load()) throw ProtocolError(kDeadlocked);
    if (!roudi.daemon_.alive() && roudi.top_ != 0)
      throw ProtocolError("iceoryx: RouDi, started for this run, is gone (" +
                          roudi.daemon_.finish({}) + ")");
    if (roudi.top_ == 0) {
      try {
        roudi.start(dir, std::max(max_message, kLeastTop));
      } catch (const std::exception& e) {
        roudi.error_ = e.what();
        throw;
      }
    }
    if (max_message > roudi.top_)
      throw ProtocolError("iceoryx: RouDi's pools were sized for " + std::to_string(roudi.top_) +
                          "-byte messages when it started; " + std::to_string(max_message) +
                          " do not fit");
    return roudi.top_;
  }
  // RouDi's CPU time so far (every thread), ns; -1 when there is none or it cannot be
  // read. RouDi carries no message: what it spends is discovery, monitoring, keep-alives.
  static std::int64_t cpu_ns() {
    Roudi& roudi = instance();
    std::lock_guard lock(roudi.mu_);
    clockid_t c;
    timespec ts{};
    if (roudi.top_ == 0 || !roudi.daemon_.alive() ||
        ::clock_getcpuclockid(roudi.daemon_.pid(), &c) != 0 || ::clock_gettime(c, &ts) != 0)
      return -1;
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
  }
  ~Roudi() {
    keeper_stops.store(true);
    if (keeper_.joinable()) keeper_.join();
    // The runtime has signed off by now (it was made after us). SIGTERM: RouDi removes
    // its shared memory and socket. But a RouDi that still lists a process that is gone
    // fails its assertion as it stops (iceoryx 2.0.3: it cannot send that process
    // SIGTERM) and leaves everything: so after a peer was killed, wait until RouDi's
    // monitoring has dropped it (no keep-alive for 1.5 s).
    if (daemon_.alive() && last_unsigned_exit_ns.load() != 0) {
      const auto dropped = std::chrono::steady_clock::time_point(
                               std::chrono::nanoseconds(last_unsigned_exit_ns.load())) +
                           kMonitoringDrops;
      std::this_thread::sleep_until(dropped);
    }
    std::string how = "gone";
    if (daemon_.alive()) {
      ::kill(daemon_.pid(), SIGTERM);
      how = daemon_.finish(std::chrono::seconds(5));
    }
    // A RouDi that failed as it stopped (a peer killed too late for the wait above, one
    // that died while it connected), or was killed, left its shared memory and sockets:
    // removed as the proof allows (the files it made, while no RouDi runs).
    if (!roudi_slots_forgotten.load())  // RouDi is gone now (the keeper has been joined)
      for (int slot : roudi_slots_) cleanup::forget_path(slot);
    if (how != "exit 0" && proof_) roudi_files::remove_as_proven(*proof_);
    if (!proof_path_.empty()) ::unlink(proof_path_.c_str());
    for (int slot : slots_) cleanup::forget_path(slot);
  }

 private:
  static Roudi& instance() {
    static Roudi roudi;  // made before the runtime (start): gone after it at exit
    return roudi;
  }
  void start(RunDir& dir, std::size_t top) {
    if (roudi_files::answers())
      throw ProtocolError(
          "iceoryx: another RouDi runs on this machine (iceoryx 2.0 allows one; its names "
          "are fixed: /tmp/roudi, /dev/shm/iceoryx_mgmt); stop it to run the iceoryx "
          "transports");
    // RouDi maps its segments sparse: without the room, a process would die of SIGBUS
    // when it first touches a page, so refuse here.
    std::size_t need = kManagementBytes;
    for (std::size_t s : pool_sizes(top)) need += kChunksPerPool * (s + kChunkHeaderBytes);
    struct statvfs sv {};
    if (::statvfs("/dev/shm", &sv) == 0 && sv.f_bavail * sv.f_frsize < need)
      throw ProtocolError("iceoryx: /dev/shm has " +
                          std::to_string(sv.f_bavail * sv.f_frsize >> 20) +
                          " MiB free; RouDi needs " + std::to_string(need >> 20) +
                          " MiB for messages up to " + std::to_string(top >> 10) + " KiB");
    const std::string config = dir.make_path("iceoryx-roudi.toml");
    {
      std::ofstream f(config);
      f << "[general]\nversion = 1\n\n[[segment]]\n";
      for (std::size_t s : pool_sizes(top))
        f << "\n[[segment.mempool]]\nsize = " << s << "\ncount = " << kChunksPerPool << "\n";
      if (!f.flush()) throw SysError("write " + config, errno ? errno : EIO);
    }
    const std::string log = dir.make_path("iceoryx-roudi.log");
    UniqueFd log_fd(::open(log.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!log_fd.valid()) throw SysError("open " + log, errno);
    const char* program = "/usr/bin/iox-roudi";
    if (::access(program, X_OK) != 0)
      throw ProtocolError(std::string("iceoryx: ") + program +
                          " not found (Debian package iceoryx; ./scripts/deps.sh installs it)");
    daemon_ =
        ChildProcess::spawn(SpawnOptions{.argv = {program, "-c", config, "-l", "info", "-m", "on"},
                                         .inherit_fds = {},
                                         .cpu = -1,
                                         .output_fd = log_fd.get(),
                                         .daemon = true});
    // Ready once it says so in its log (its socket exists a little earlier).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
      std::ifstream f(log);
      std::stringstream text;
      text << f.rdbuf();
      if (text.str().find("RouDi is ready for clients") != std::string::npos) break;
      if (!daemon_.alive())
        throw ProtocolError("iceoryx: RouDi exited at start (" + daemon_.finish({}) +
                            "): " + last_line(text.str()));
      if (std::chrono::steady_clock::now() > deadline)
        throw ProtocolError("iceoryx: RouDi did not become ready within 20 s: " +
                            last_line(text.str()));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    // The proof of which files are this RouDi's, for this process and, should it be
    // SIGKILLed, for the next run's sweep.
    const auto roudi_stamp = RunStamp::of(daemon_.pid());
    if (!roudi_stamp) throw ProtocolError("iceoryx: RouDi exited as it became ready");
    const std::string proof = roudi_files::write_proof(*roudi_stamp);
    slots_.push_back(cleanup::add_path(proof.c_str()));
    proof_path_ = proof;
    proof_ = roudi_files::read_proof(proof);
    if (!proof_) throw ProtocolError("iceoryx: cannot read back " + proof);
    init_runtime();
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, daemon_.pid(), 0)));
    if (!pidfd.valid()) throw SysError("pidfd_open (RouDi)", errno);
    // A hard exit (a second signal) kills RouDi: while it lives, its names are its own
    // (it holds the unique lock), so cleanup's table may remove them by name then.
    for (const std::string& n : roudi_files::names())
      roudi_slots_.push_back(cleanup::add_path(n.c_str()));
    keeper_ = std::thread(&Roudi::keep, std::move(pidfd), daemon_.pid(), *proof_, roudi_slots_);
    // Runs before the runtime's own end (registered after it). A RouDi the keeper killed
    // before would not answer the sign-off: its wait is ended before it starts.
    std::atexit([] {
      signing_off.store(true);
      if (roudi_down.load()) end_sign_off_wait();
    });
    top_ = top;
    // This process's runtime files go with cleanup's table at a hard exit (base/cleanup.h).
    const std::string self = "/tmp/" + RunStamp::self().text();
    for (const std::string& n : {self, self + ".lock"})
      slots_.push_back(cleanup::add_path(n.c_str()));
  }
  // The keeper (see the top of this file). It touches only what it was given and the
  // atomics above, never daemon_: the thread that makes links reaps RouDi. It knows RouDi
  // by a pidfd, so it never signals a process that merely took RouDi's pid, and it stops
  // watching once RouDi has exited by itself.
  static void keep(UniqueFd roudi, pid_t pid, roudi_files::Proof proof,
                   std::vector<int> roudi_slots) noexcept {
    // RouDi is gone: its names may be another RouDi's from now on.
    auto forget_names = [&roudi_slots] {
      for (int slot : roudi_slots) cleanup::forget_path(slot);
      roudi_slots_forgotten.store(true);
    };
    try {
      auto exited = [&roudi] {
        pollfd pf{roudi.get(), POLLIN, 0};
        return ::poll(&pf, 1, 0) == 1;
      };
      while (!keeper_stops.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (keeper_stops.load()) return;
        if (exited()) {  // it died by itself: what it left goes by the proof
          forget_names();
          roudi_files::remove_as_proven(proof);
          return;
        }
        if (!roudi_deadlocked(pid)) continue;
        bool waiting;  // the thread that makes links waits for a port: it cannot go on
        {
          std::lock_guard lock(keeper_mu);
          waiting = asking_for_ports.load() > 0 && !signing_off.load();
          roudi_down.store(true);
        }
        std::fprintf(stderr, "ipcbench: %s%s\n", kDeadlocked,
                     waiting ? "; this process was waiting for it and ends" : "");
        if (::syscall(SYS_pidfd_send_signal, roudi.get(), SIGKILL, nullptr, 0) == 0) {
          pollfd pf{roudi.get(), POLLIN, 0};  // gone: its socket no longer answers
          ::poll(&pf, 1, 2000);
          forget_names();
          roudi_files::remove_as_proven(proof);
        }
        if (waiting) return end_process();
        if (signing_off.load()) end_sign_off_wait();
        break;
      }
      // RouDi is gone. A publish that waits for room in the queue of a subscriber whose
      // process is gone now waits forever: only RouDi removed such subscribers. No
      // publish done for 3 s while one is under way: the process cannot go on.
      std::uint64_t last = published.load();
      for (int still = 0; !keeper_stops.load();) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        const std::uint64_t now = published.load();
        still = publishing.load() > 0 && now == last && !signing_off.load() ? still + 1 : 0;
        last = now;
        if (still == 30) {
          std::fprintf(stderr,
                       "ipcbench: iceoryx: a publish has waited 3 s for a subscriber that "
                       "only RouDi, which is gone, could remove; this process ends\n");
          return end_process();
        }
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ipcbench: iceoryx: RouDi's keeper stopped: %s\n", e.what());
    }
  }
  // Ends this process as at SIGHUP: cleanup's handler (installed here if it was not)
  // kills the peers and RouDi, removes the run's files and directories, then the process
  // dies of the signal.
  static void end_process() {
    cleanup::install_signal_handlers();
    ::kill(::getpid(), SIGHUP);
  }
  // The sign-off waits for RouDi's answer on the runtime's own socket (/tmp/<stamp>,
  // iceoryx's, for this process): a one-byte message there ends the wait (iceoryx logs it as
  // a wrong answer and goes on). A send of the sign-off that still waits fails by itself:
  // nobody reads RouDi's socket any more.
  static void end_sign_off_wait() {
    UniqueFd s(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un a = unix_address("/tmp/" + RunStamp::self().text());
    const char nothing = 0;
    if (s.valid())
      ::sendto(s.get(), &nothing, 1, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  static std::string last_line(const std::string& text) {
    std::istringstream in(text);
    std::string line, last = "(nothing in its log)";
    while (std::getline(in, line))
      if (!line.empty()) last = line;
    return last;
  }

 public:
  // Registers this process with the running RouDi, named by its stamp.
  static void init_runtime() {
    iox::log::LogManager::GetLogManager().SetDefaultLogLevel(
        iox::log::LogLevel::kWarn, iox::log::LogLevelOutput::kHideLogLevel);
    const std::string name = RunStamp::self().text();
    iox::runtime::PoshRuntime::initRuntime(
        iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name.c_str()));
  }

 private:
  std::mutex mu_;
  std::thread keeper_;
  std::vector<int> slots_;  // cleanup's entries for the proof and our runtime's files
  // cleanup's entries for RouDi's own names, while RouDi lives: the keeper forgets them
  // once RouDi is gone (a hard exit must never remove another RouDi's files by name).
  std::vector<int> roudi_slots_;
  std::string proof_path_;  // the proof (base/roudi_files.h), once written
  std::optional<roudi_files::Proof> proof_;
  ChildProcess daemon_;
  std::size_t top_ = 0;
  std::string error_;
};

iox::capro::ServiceDescription topic(const std::string& link, const char* direction) {
  return {"ipcbench", iox::capro::IdString_t(iox::cxx::TruncateToCapacity, link.c_str()),
          iox::capro::IdString_t(iox::cxx::TruncateToCapacity, direction)};
}

iox::popo::PublisherOptions publisher_options() {
  iox::popo::PublisherOptions o;
  o.subscriberTooSlowPolicy = iox::popo::ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER;
  return o;
}

iox::popo::SubscriberOptions subscriber_options() {
  iox::popo::SubscriberOptions o;
  o.queueCapacity = kQueue;
  o.historyRequest = 0;
  o.queueFullPolicy = iox::popo::QueueFullPolicy::BLOCK_PRODUCER;
  return o;
}

std::uint64_t port_id(const iox::popo::UniquePortId& id) { return static_cast<std::uint64_t>(id); }

// One side's two ports and its waitset.
struct Ports {
  iox::popo::UntypedPublisher pub;
  iox::popo::UntypedSubscriber sub;
  iox::popo::WaitSet<1> ws;
  // A waitset is attached for a reader that sleeps only: once attached, every publish
  // also signals the waitset's condition variable (a futex wake), which a reader that
  // polls never waits on.
  Ports(const std::string& link, bool bench, bool sleeps)
      : pub(topic(link, bench ? "down" : "up"), publisher_options()),
        sub(topic(link, bench ? "up" : "down"), subscriber_options()) {
    if (sleeps && ws.attachState(sub, iox::popo::SubscriberState::HAS_DATA).has_error())
      throw ProtocolError("iceoryx: cannot attach the subscriber to a waitset");
  }
};

class IoxChannel final : public Channel {
 public:
  IoxChannel(std::unique_ptr<Ports> ports, bool spin, std::size_t top, std::uint64_t partner,
             int partner_pid)
      : ports_(std::move(ports)), spin_(spin), top_(top), partner_(partner) {
    if (partner_pid > 0) {
      pidfd_ = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, partner_pid, 0)));
      if (auto st = RunStamp::of(partner_pid)) {
        partner_runtime_ = "/tmp/" + st->text();
        // The peer is killed on any exit by signal (cleanup's pid table): its files go
        // then too, also when this process ends without this destructor (a SIGHUP end).
        runtime_slots_[0] = cleanup::add_path(partner_runtime_.c_str());
        runtime_slots_[1] = cleanup::add_path((partner_runtime_ + ".lock").c_str());
      }
    }
  }
  ~IoxChannel() override {
    if (held_) ports_->sub.release(held_);
    if (loaned_) ports_->pub.release(loaned_);
    // The end of the link: an empty sample (every message has a byte at least). A partner
    // that is gone, or has left its topic, is not waited for.
    if (partner_exited()) {
      last_unsigned_exit_ns.store(std::chrono::steady_clock::now().time_since_epoch().count());
      // A peer killed before it ended its runtime left iceoryx's files for it, named by its
      // stamp; it is gone (its pidfd says so), so they go now.
      if (!partner_runtime_.empty()) {
        ::unlink(partner_runtime_.c_str());
        ::unlink((partner_runtime_ + ".lock").c_str());
      }
    }
    if (!ended() && ports_->pub.hasSubscribers()) {
      auto r = ports_->pub.loan(0, kAlignment);
      if (!r.has_error()) publish(ports_->pub, r.value());
    }
    for (int slot : runtime_slots_) cleanup::forget_path(slot);
  }

  void send(std::span<const std::byte> msg) override {
    // A partner process that is gone makes a send fail, as a socket's write does; looked
    // at once a millisecond at most (a clock read), so a send costs no system call more.
    if (pidfd_.valid()) {
      const auto now = std::chrono::steady_clock::now();
      if (now - last_look_ > std::chrono::milliseconds(1)) {
        last_look_ = now;
        if (partner_exited()) throw SysError("iceoryx: send: the peer process is gone", EPIPE);
      }
    }
    std::span<std::byte> to = loan(msg.size());
    std::memcpy(to.data(), msg.data(), msg.size());
    commit();
  }
  std::size_t recv(std::span<std::byte> buf) override {
    std::span<const std::byte> in;
    view(&in);
    const std::size_t n = in.size();
    if (n > buf.size()) {
      release();
      throw ProtocolError("iceoryx: message of " + std::to_string(n) + " bytes does not fit in " +
                          std::to_string(buf.size()));
    }
    if (n) std::memcpy(buf.data(), in.data(), n);
    if (n) release();
    return n;
  }

  std::span<std::byte> loan(std::size_t n) override {
    if (n == 0 || n > top_)
      throw ProtocolError("iceoryx: a message of " + std::to_string(n) +
                          " bytes does not fit RouDi's pools (up to " + std::to_string(top_) + ")");
    auto r = ports_->pub.loan(static_cast<std::uint32_t>(n), kAlignment);
    if (r.has_error())
      throw ProtocolError("iceoryx: loan of " + std::to_string(n) + " bytes failed (error " +
                          std::to_string(static_cast<int>(r.get_error())) + ")");
    loaned_ = r.value();
    return {static_cast<std::byte*>(loaned_), n};
  }
  void commit() override {
    void* p = std::exchange(loaned_, nullptr);
    publish(ports_->pub, p);
  }
  bool view(std::span<const std::byte>* out) override {
    const void* p = take();
    if (!p) {
      *out = {};
      return true;
    }
    held_ = p;
    *out = {static_cast<const std::byte*>(p),
            iox::mepoo::ChunkHeader::fromUserPayload(p)->userPayloadSize()};
    return true;
  }
  void release() override {
    if (const void* p = std::exchange(held_, nullptr)) ports_->sub.release(p);
  }

  void abort() noexcept override { aborted_.store(true, std::memory_order_relaxed); }

  // The benchmark side's RouDi (the peer's side does not own it).
  std::int64_t service_cpu_ns() const override { return pidfd_.valid() ? Roudi::cpu_ns() : -1; }

 private:
  // The partner's next sample, or nullptr when the link ended (the partner's process is
  // gone, or it stopped offering its topic).
  const void* take() {
    for (std::uint32_t round = 0;; ++round) {
      auto r = ports_->sub.take();
      if (!r.has_error()) {
        const void* p = r.value();
        const auto* h = iox::mepoo::ChunkHeader::fromUserPayload(p);
        if (port_id(h->originId()) != partner_) {
          ports_->sub.release(p);  // a stranger's sample
          continue;
        }
        if (h->userPayloadSize() == 0) {  // the partner ended the link
          ports_->sub.release(p);
          return nullptr;
        }
        return p;
      }
      if (spin_) {
        cpu_relax();
        if ((round & 0xffff) != 0) continue;
      } else if (!ports_->ws.timedWait(iox::units::Duration::fromMilliseconds(10)).empty()) {
        continue;
      }
      // Idle for a while (10 ms asleep, or 65536 polls): is the link still there?
      if (aborted_.load(std::memory_order_relaxed)) throw ProtocolError("iceoryx: link aborted");
      if (ended()) return nullptr;
    }
  }
  bool partner_exited() const {
    pollfd pf{pidfd_.get(), POLLIN, 0};
    return pidfd_.valid() && ::poll(&pf, 1, 0) == 1;
  }
  bool ended() const {
    return partner_exited() ||
           ports_->sub.getSubscriptionState() != iox::SubscribeState::SUBSCRIBED;
  }

  std::unique_ptr<Ports> ports_;
  bool spin_;
  std::size_t top_;
  std::uint64_t partner_;
  UniqueFd pidfd_;  // the partner's process (the benchmark side knows it from the hello)
  std::string partner_runtime_;      // /tmp/<its stamp>: iceoryx's files for its runtime
  int runtime_slots_[2] = {-1, -1};  // cleanup's entries for them
  std::chrono::steady_clock::time_point last_look_{};
  void* loaned_ = nullptr;
  const void* held_ = nullptr;
  std::atomic<bool> aborted_{false};
};

std::atomic<unsigned> next_link{0};

class IoxListener final : public Listener {
 public:
  IoxListener(RunDir& dir, std::size_t max_message, bool spin) : spin_(spin) {
    top_ = Roudi::ensure(dir, max_message);
    link_ = "link-" + std::to_string(next_link++);
    {
      AskingForPorts asking;
      ports_ = std::make_unique<Ports>(link_, true, !spin);
    }
    ep_.addresses = {link_, std::to_string(port_id(ports_->pub.getUid())), std::to_string(top_),
                     std::to_string(token_.pipe.get())};
    ep_.inherit_fds = {token_.pipe.get()};
  }
  const Endpoint& endpoint() const override { return ep_; }
  std::unique_ptr<Channel> accept(const SetupWait& wait) override {
    token_.handed_over(ep_);
    // The peer's hello: "<token> <pid>", from the publisher that will be the peer's.
    std::uint64_t partner = 0;
    int pid = 0;
    while (partner == 0) {
      auto r = ports_->sub.take();
      if (r.has_error()) {
        wait.check("iceoryx: accept");
        if (roudi_down.load()) throw ProtocolError(kDeadlocked);
        if (spin_)
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        else
          ports_->ws.timedWait(iox::units::Duration::fromMilliseconds(10));
        continue;
      }
      const void* p = r.value();
      const auto* h = iox::mepoo::ChunkHeader::fromUserPayload(p);
      std::string hello(static_cast<const char*>(p), h->userPayloadSize());
      ports_->sub.release(p);
      if (hello.size() > token_.text.size() + 1 &&
          hello.compare(0, token_.text.size(), token_.text) == 0 &&
          hello[token_.text.size()] == ' ') {
        partner = port_id(h->originId());
        pid = std::atoi(hello.c_str() + token_.text.size() + 1);
      }
    }
    // Our first message must find the peer's subscriber connected.
    while (!ports_->pub.hasSubscribers()) {
      wait.check("iceoryx: accept");
      if (roudi_down.load()) throw ProtocolError(kDeadlocked);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return std::make_unique<IoxChannel>(std::move(ports_), spin_, top_, partner, pid);
  }

 private:
  bool spin_;
  std::size_t top_ = 0;
  std::string link_;
  std::unique_ptr<Ports> ports_;
  PeerToken token_ = PeerToken::make();
  Endpoint ep_;
};

class IoxTransport final : public TransportBase {
 public:
  IoxTransport(bool spin, TransportInfo info) : TransportBase(std::move(info)), spin_(spin) {}
  std::unique_ptr<Listener> listen(RunDir& dir, std::size_t max_message,
                                   const TransportSettings&) const override {
    return std::make_unique<IoxListener>(dir, max_message, spin_);
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep, const SetupWait& wait) const override {
    EndpointReader r(ep, name(), {"link", "publisher id", "largest message", "token pipe"});
    const std::string token = r.token(3);
    const std::uint64_t bench_pub = std::stoull(r.text(1));
    const std::size_t top = std::stoull(r.text(2));
    // initRuntime waits a minute for a RouDi that is not there, then aborts the process.
    if (!roudi_files::answers())
      throw ProtocolError("iceoryx: RouDi does not answer on " + roudi_files::socket_path());
    Roudi::init_runtime();
    auto ports = std::make_unique<Ports>(r.text(0), false, !spin_);
    // The hello must find the benchmark side's subscriber, and its first message ours.
    while (!ports->pub.hasSubscribers() ||
           ports->sub.getSubscriptionState() != iox::SubscribeState::SUBSCRIBED) {
      wait.check("iceoryx: connect");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const std::string hello = token + " " + std::to_string(::getpid());
    auto loan = ports->pub.loan(static_cast<std::uint32_t>(hello.size()), kAlignment);
    if (loan.has_error()) throw ProtocolError("iceoryx: cannot loan the hello");
    std::memcpy(loan.value(), hello.data(), hello.size());
    publish(ports->pub, loan.value());
    return std::make_unique<IoxChannel>(std::move(ports), spin_, top, bench_pub, 0);
  }

 private:
  bool spin_;
};

TransportInfo iox_info(std::string name, std::string wait, std::string how) {
  return TransportInfo{
      .name = std::move(name),
      .family = TransportFamily::kSharedMemory,
      .paradigm = "publish/subscribe, zero-copy",
      .kernel_boundaries = true,
      .reach = "same host",
      .coupling =
          "by topic, through RouDi (iceoryx's daemon), which owns the shared memory "
          "and connects publishers to subscribers",
      .max_message = kMaxMessage,
      .summary =
          "iceoryx 2.0 untyped publisher/subscriber, one topic per direction: the writer "
          "fills a chunk loaned from RouDi's pools in place and publishes it, the "
          "reader reads it in place; queues of " +
          std::to_string(kQueue) + " samples, the publisher waits when one is full; " + how,
      .wait = std::move(wait),
      // RouDi's management segment (63 MiB, fixed when iceoryx was built) and the pools
      // for messages up to 4 MiB; more when the run's largest message is larger.
      .dev_shm_bytes = std::size_t{256} << 20,
      .daemon =
          "RouDi (/usr/bin/iox-roudi), started by the run at its first iceoryx link and "
          "stopped when the run ends; one per machine (iceoryx 2.0): the run's own, or the "
          "links fail",
      .one_per_machine = true,
      .peer_kill =
          "a lock in shared memory that stays locked for good when the peer held it as it "
          "died (iceoryx 2.0's locks are not robust: upstream issues #325, #779, #1711): "
          "then RouDi, or this process, waits forever on it",
  };
}

}  // namespace

std::unique_ptr<Transport> make_iceoryx_waitset_transport() {
  return std::make_unique<IoxTransport>(
      false, iox_info("iceoryx-waitset", "blocking",
                      "the reader sleeps in an iceoryx WaitSet until a sample arrives"));
}

std::unique_ptr<Transport> make_iceoryx_spin_transport() {
  return std::make_unique<IoxTransport>(
      true, iox_info("iceoryx-spin", "spin", "the reader polls take() and never sleeps"));
}

}  // namespace ipcbench
