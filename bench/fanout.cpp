#include "bench/fanout.h"

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "base/error.h"
#include "base/run_dir.h"
#include "bench/hgrm_files.h"
#include "bench/mailbox.h"
#include "bench/protocol.h"
#include "bench/split.h"
#include "harness/aligned_buffer.h"
#include "transports/many.h"

namespace ipcbench {
namespace {

using Clock = std::chrono::steady_clock;

// Warm-up before the window (plus a little per subscriber, as for clients).
constexpr auto kWarmup = std::chrono::milliseconds(30);
// A publisher that drops by design repeats the end marker this often until every
// subscriber has reported.
constexpr auto kStopRepeat = std::chrono::milliseconds(1);

std::span<std::byte> body_of(std::span<std::byte> msg) { return msg.subspan(kFanoutMinBytes); }
std::span<const std::byte> body_of(std::span<const std::byte> msg) {
  return msg.subspan(kFanoutMinBytes);
}

std::int64_t publish_time_of(std::span<const std::byte> msg) {
  std::int64_t t;
  std::memcpy(&t, msg.data() + kHeaderBytes, sizeof t);
  return t;
}

// What the publisher thread and the main thread share.
class PublisherState {
 public:
  void fail(const std::string& why) {
    std::lock_guard lock(mu_);
    if (error_.empty()) error_ = why;
    failed_.store(true);
  }
  bool failed() const { return failed_.load(); }
  std::string error() const {
    std::lock_guard lock(mu_);
    return error_;
  }
  std::atomic<bool> quit{false};     // main -> publisher: stop repeating the end marker
  std::atomic<bool> stopped{false};  // publisher -> main: published and counts below set
  std::atomic<bool> done{false};     // the publisher thread has returned
  std::uint64_t published = 0, in_window = 0;
  CpuUse cpu;

 private:
  mutable std::mutex mu_;
  std::string error_;
  std::atomic<bool> failed_{false};
};

void publish_stream(FanOutPublisher& pub, std::size_t size, const PartyGo& go, bool drops,
                    const Parties& peers, PublisherState& st) {
  try {
    AlignedBuffer pattern(size), buf(size);
    fill_payload(std::span<std::byte>(pattern.data(), size), size);
    std::memcpy(buf.data(), pattern.data(), size);
    const std::span<std::byte> msg(buf.data(), size);
    const std::span<const std::byte> pat_body =
        body_of(std::span<const std::byte>(pattern.data(), size));
    const std::uint32_t digest = payload_digest(pat_body);
    std::uint32_t seq = 0, first_in_window = 0;
    CpuUse before;
    for (;;) {
      if (st.quit.load(std::memory_order_relaxed)) break;  // the cell failed: torn down
      mark_payload(body_of(msg), pat_body, seq + 1);
      // One clock read per message: its publish time, which also places it in the
      // window, as the subscribers place it.
      const std::int64_t t = mono_ns();
      if (t >= go.end_ns) break;
      ++seq;
      if (first_in_window == 0 && t >= go.start_ns) {
        before = cpu_use_self_but(peers);
        first_in_window = seq;
      }
      std::memcpy(msg.data() + kHeaderBytes, &t, sizeof t);
      stamp(msg, seq, Kind::kData, digest);
      pub.publish(msg);
    }
    const CpuUse after = cpu_use_self_but(peers);
    if (first_in_window != 0) {
      st.in_window = seq - first_in_window + 1;
      st.cpu.cpu_ns = after.cpu_ns - before.cpu_ns;
      st.cpu.voluntary_switches = after.voluntary_switches - before.voluntary_switches;
      st.cpu.involuntary_switches = after.involuntary_switches - before.involuntary_switches;
    }
    st.published = seq;
    std::byte stop[kHeaderBytes];
    stamp(stop, seq, Kind::kStop, payload_digest({}));
    pub.publish(stop);
    st.stopped.store(true);
    while (drops && !st.quit.load()) {
      std::this_thread::sleep_for(kStopRepeat);
      pub.publish(stop);
    }
  } catch (const std::exception& e) {
    if (!st.quit.load()) st.fail(std::string("publisher: ") + e.what());
  }
  st.done.store(true);
}

// Everything one repetition owns, torn down in a safe order on every path: the
// subscribers are killed before the publisher's links are aborted, the publisher thread
// joined before its links and the listener (and with them every IPC object) go.
struct Cell {
  std::unique_ptr<FanOutListener> listener;
  std::unique_ptr<FanOutPublisher> publisher;
  std::unique_ptr<Parties> subscribers;
  std::unique_ptr<PublisherState> state;
  std::thread thread;

  ~Cell() { stop(true); }
  // Ends the publisher thread. Not `force`d: it ends on its own once told (quit), within
  // a grace period. `force` (the cell failed): the subscribers are killed first, so that
  // a publisher blocked on one of them fails. Either way, a thread still running after
  // that has its links aborted (a link that can no longer be used to remove what the
  // transport made, such as a broker's queues: hence the grace first).
  void stop(bool force) {
    if (!thread.joinable()) return;
    state->quit.store(true);
    if (force && subscribers) subscribers->kill_all();
    auto until = Clock::now() + (force ? std::chrono::milliseconds(500) : std::chrono::seconds(2));
    while (!state->done.load() && Clock::now() < until)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    if (!state->done.load()) {
      if (subscribers) subscribers->kill_all();
      if (publisher) publisher->abort();
    }
    thread.join();
  }
};

struct Crowd {
  int cpus = 0;
  bool oversubscribed = false;
  std::string note;
};

Crowd crowd_of(const Placement& p, std::size_t subscribers, bool split = false) {
  Crowd c;
  const int n = static_cast<int>(subscribers);
  if (split) {  // the subscribers run on the far host: here only the publisher's thread
    c.cpus = p.client_cpu >= 0 ? 1 : p.cpus_allowed;
    return c;
  }
  if (p.client_cpu >= 0 && p.peer_cpu >= 0) {
    const bool one = p.client_cpu == p.peer_cpu;
    c.cpus = one ? 1 : 2;
    c.oversubscribed = one || n > 1;
    if (c.oversubscribed)
      c.note = one ? "the publisher and " + std::to_string(n) + " subscriber(s) on CPU " +
                         std::to_string(p.client_cpu)
                   : std::to_string(n) + " subscribers on CPU " + std::to_string(p.peer_cpu);
  } else {
    c.cpus = p.cpus_allowed;
    c.oversubscribed = n + 1 > p.cpus_allowed;
    if (c.oversubscribed)
      c.note = "the publisher and " + std::to_string(n) + " subscriber(s) on " +
               std::to_string(p.cpus_allowed) + " CPU(s)";
  }
  return c;
}

}  // namespace

std::string fanout_refused(const Placement& p, const Transport& t, std::size_t subscribers) {
  Crowd c = crowd_of(p, subscribers);
  if (t.info().wait == "spin" && c.oversubscribed)
    return "not run: every side busy-polls, and " + c.note +
           " would take turns by the scheduler's time slice, so the figure would be the "
           "scheduler's, not the transport's (give each a CPU of its own)";
  return {};
}

FanoutOutcome measure_fanout(RunDir& dir, const ManyConfig& cfg, const Transport& t,
                             std::size_t size, std::size_t subscribers,
                             const FanoutHook& after_go) {
  if (size < kFanoutMinBytes)
    throw ProtocolError(
        "a fanout message carries the 16-byte header and the 8-byte publish "
        "time: " +
        std::to_string(size) + " B is below its minimum of " + std::to_string(kFanoutMinBytes) +
        " B");
  if (subscribers < 1 || subscribers > kMaxSubscribers)
    throw ProtocolError("fanout: " + std::to_string(subscribers) + " subscribers (1.." +
                        std::to_string(kMaxSubscribers) + ")");
  Cell cell;
  const auto setup_deadline = Clock::now() + cfg.setup_timeout;
  cell.listener = t.listen_fan_out(dir, size, cfg.settings, subscribers);
  if (!cell.listener) throw ProtocolError(t.info().name + " does not take part in fan-out");
  cell.subscribers = cfg.split ? split_parties(*cfg.split) : local_parties();
  Parties& peers = *cell.subscribers;
  for (std::size_t i = 0; i < subscribers; ++i) {
    const Endpoint& ep = cell.listener->endpoint(i);
    PeerArgs a{t.info().name,    ep.addresses,     size, cfg.verify, "subscriber",
               cfg.peer_program, cfg.setup_timeout};
    a.client_id = static_cast<int>(i);
    peers.start(a, ep.inherit_fds, cfg.placement.peer_cpu);
  }
  auto all_alive = [&peers] {
    for (std::size_t i = 0; i < peers.size(); ++i)
      if (!peers.alive(i)) return false;
    return true;
  };
  try {
    cell.publisher = cell.listener->accept(SetupWait{setup_deadline, all_alive});
  } catch (const std::exception& e) {
    std::string why = std::string("set-up: ") + e.what();
    for (std::size_t i = 0; i < subscribers; ++i)
      if (!peers.alive(i)) why += "; subscriber " + std::to_string(i) + " " + peers.finish(i, {});
    throw ProtocolError(why);
  }
  std::vector<std::byte> ctl(sizeof(PartyResult) + 1);
  for (std::size_t i = 0; i < subscribers; ++i)
    party_expect(peers, i, ctl, PartyKind::kReady, "subscriber " + std::to_string(i),
                 setup_deadline);

  FanoutOutcome out;
  out.drops_by_design = cell.publisher->drops_by_design();
  out.window_s = static_cast<double>(cfg.window.count()) * 1e-9;
  PartyGo go;
  go.verify = cfg.verify ? 1 : 0;
  go.size = size;
  go.start_ns = mono_ns() + std::chrono::nanoseconds(kWarmup + peers.start_lead()).count() +
                static_cast<std::int64_t>(subscribers) * 1'000'000;
  go.end_ns = go.start_ns + cfg.window.count();
  go.give_up_ns = go.end_ns + std::chrono::nanoseconds(cfg.cell_timeout).count();
  for (std::size_t i = 0; i < subscribers; ++i) try {
      party_send(peers.control(i), &go, sizeof go);
    } catch (const SysError& e) {
      throw ProtocolError("subscriber " + std::to_string(i) + ": " + e.what() + " (" +
                          peers.finish(i, std::chrono::milliseconds(200)) + ")");
    }
  cell.state = std::make_unique<PublisherState>();
  PublisherState& st = *cell.state;
  // go by value: the thread may outlive this frame's locals until the Cell joins it.
  cell.thread = std::thread([pub = cell.publisher.get(), size, go, drops = out.drops_by_design,
                             subs = cell.subscribers.get(),
                             &st] { publish_stream(*pub, size, go, drops, *subs, st); });
  if (after_go) after_go(peers.pids());

  // Results: every subscriber reports once it has the end marker (or gave up on it) and
  // kEnd. All control links are watched at once, with the publisher's own failure.
  const auto result_deadline = Clock::now() + std::chrono::nanoseconds(go.end_ns - mono_ns()) +
                               cfg.cell_timeout + std::chrono::seconds(5);
  bool end_sent = false;
  out.results = collect_party_results(
      peers, PartyWatch{.role = "subscriber",
                        .deadline = result_deadline,
                        .own_error = [&st] { return st.failed() ? st.error() : std::string(); },
                        .tick =
                            [&] {
                              if (end_sent || !st.stopped.load()) return;
                              PartyEnd end;
                              end.published = st.published;
                              for (std::size_t i = 0; i < subscribers; ++i) try {
                                  party_send(peers.control(i), &end, sizeof end);
                                } catch (const SysError&) {
                                  // A subscriber that is gone: its closed control link says so.
                                }
                              end_sent = true;
                            },
                        .late_note =
                            [&st] {
                              return st.stopped.load() ? std::string()
                                                       : " (the publisher is still publishing)";
                            }});
  cell.stop(false);
  if (st.failed()) throw ProtocolError(st.error());
  for (std::size_t i = 0; i < subscribers; ++i) peers.finish(i, std::chrono::milliseconds(2000));
  out.published = st.published;
  out.published_in_window = st.in_window;
  out.publisher_cpu = st.cpu;

  std::uint64_t lost = 0;
  std::string first_loss;
  for (std::size_t i = 0; i < subscribers; ++i) {
    lost += out.results[i].lost;
    if (out.results[i].lost > 0 && first_loss.empty())
      first_loss = "subscriber " + std::to_string(i) + " missed " +
                   std::to_string(out.results[i].lost) + " of " + std::to_string(out.published);
  }
  if (lost > 0 && !out.drops_by_design)
    throw ProtocolError(std::to_string(lost) + " message(s) lost on " + t.info().name +
                        ", which does not drop by design (" + first_loss + ")");
  return out;
}

void run_fanout(benchmark::State& state, RunDir& dir, const ManyConfig& cfg, const Transport& t,
                std::size_t size, std::size_t subscribers) {
  const FanoutOutcome o = measure_fanout(dir, cfg, t, size, subscribers);
  Histogram all;
  double delivered = 0, worst_p99 = 0;
  std::uint64_t min_done = UINT64_MAX, lost = 0;
  CpuUse subs_cpu;
  const PartyResult* slowest = nullptr;  // the subscriber with the highest p99
  for (const PartyResult& r : o.results) {
    all.merge(r.hist);
    delivered += static_cast<double>(r.done);
    min_done = std::min(min_done, r.done);
    if (r.hist.percentile(99) >= worst_p99) {
      worst_p99 = r.hist.percentile(99);
      slowest = &r;
    }
    lost += r.lost;
    subs_cpu.cpu_ns += r.cpu.cpu_ns;
  }
  if (o.published_in_window == 0)
    throw ProtocolError(
        "no message was published in the window: the publisher did not get to publish during "
        "it (one publish waiting on a subscriber that did not read, or a loaded machine's "
        "scheduler not running the publisher)");
  if (delivered <= 0) throw ProtocolError("no subscriber received a message in the window");
  const bool split = cfg.split != nullptr;  // no one-way latency across two clocks
  const Crowd crowd = crowd_of(cfg.placement, subscribers, split);

  for (auto _ : state) state.SetIterationTime(o.window_s);
  auto& c = state.counters;
  c["msg_bytes"] = static_cast<double>(size);
  c["subscribers"] = static_cast<double>(subscribers);
  c["busy_processes"] = static_cast<double>(split ? 1 : subscribers + 1);  // on this host
  c["cpus"] = crowd.cpus;
  c["oversubscribed"] = crowd.oversubscribed ? 1 : 0;
  c["published_per_s"] = static_cast<double>(o.published_in_window) / o.window_s;
  c["delivered_per_s"] = delivered / o.window_s;
  c["delivered_per_s_min"] = static_cast<double>(min_done) / o.window_s;
  if (!split) {
    hgrm_files::save("oneway", all);
    c["oneway_p50_ns"] = all.percentile(50);
    c["oneway_p90_ns"] = all.percentile(90);
    c["oneway_p99_ns"] = all.percentile(99);
    c["oneway_p999_ns"] = all.percentile(99.9);
    c["oneway_max_ns"] = static_cast<double>(all.max());
    c["oneway_mean_ns"] = all.mean();
    c["slowest_subscriber_p50_ns"] = slowest->hist.percentile(50);
    c["slowest_subscriber_p99_ns"] = worst_p99;
    c["slowest_subscriber_max_ns"] = static_cast<double>(slowest->hist.max());
  }
  c["lost_msgs"] = static_cast<double>(lost);
  c["drops_by_design"] = o.drops_by_design ? 1 : 0;
  if (o.published_in_window > 0)
    c["cpu_publisher_ns_per_msg"] =
        static_cast<double>(o.publisher_cpu.cpu_ns) / static_cast<double>(o.published_in_window);
  c["cpu_subscriber_ns_per_msg"] = static_cast<double>(subs_cpu.cpu_ns) / delivered;
  state.SetItemsProcessed(static_cast<std::int64_t>(delivered));
  state.SetLabel("subscribers=" + std::to_string(subscribers) + " pin=" + cfg.placement.describe() +
                 " wait=" + t.info().wait +
                 (split ? " link=cross-host one-way=not measured (two hosts, two clocks)"
                        : " one-way=receipt-publish (CLOCK_MONOTONIC, one host)") +
                 (o.drops_by_design ? " drops by design: lost_msgs counted" : "") +
                 (crowd.oversubscribed ? " oversubscribed: " + crowd.note : ""));
}

int run_subscriber(Channel& link, const PeerArgs& a) {
  const int ctl = a.control_fd;
  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  std::atomic<bool> gave_up{false};
  std::thread timer;
  auto stop_timer = [&] {
    {
      std::lock_guard lock(mu);
      finished = true;
    }
    cv.notify_all();
    if (timer.joinable()) timer.join();
  };
  try {
    PartyKind ready = PartyKind::kReady;
    party_send(ctl, &ready, sizeof ready);
    PartyGo go;
    std::size_t n = party_recv(ctl, &go, sizeof go, Clock::now() + a.setup_timeout, "go");
    if (n == 0) return 0;  // the benchmark side gave up before the start
    if (n != sizeof go || go.kind != PartyKind::kGo || go.size < kFanoutMinBytes ||
        go.size > a.max_size)
      throw ProtocolError("bad go message");
    const std::size_t size = go.size;
    const bool verify = go.verify != 0;
    // A transport that drops may lose the end marker: stop waiting for it at give_up_ns
    // (CLOCK_MONOTONIC, which steady_clock reads on Linux).
    timer = std::thread([&] {
      std::unique_lock lock(mu);
      const Clock::time_point until{std::chrono::nanoseconds(go.give_up_ns)};
      if (!cv.wait_until(lock, until, [&] { return finished; })) {
        gave_up.store(true);
        link.abort();
      }
    });

    Inbox in(link, size);
    PartyResult res;
    std::uint64_t expected = 1, received = 0, lost = 0;
    std::int64_t stop_count = -1;
    // CPU from the first message published in the window to the end marker, which
    // follows the window's last message: the cost of taking in what the window published
    // (a backlog drained after the window included).
    bool cpu_started = false;
    CpuUse cpu0, cpu1;
    for (;;) {
      std::span<const std::byte> msg;
      try {
        msg = in.next();
      } catch (const std::exception&) {
        if (gave_up.load()) break;
        throw;
      }
      const std::int64_t t = mono_ns();
      if (msg.empty()) {
        if (gave_up.load()) break;
        throw ProtocolError("the publisher closed the link before the end marker");
      }
      if (msg.size() < kHeaderBytes)
        throw ProtocolError("short message of " + std::to_string(msg.size()) + " bytes");
      const MsgHeader h = read_header(msg);
      if (h.kind == Kind::kStop) {
        if (msg.size() != kHeaderBytes || h.len != kHeaderBytes)
          throw ProtocolError("malformed end marker");
        stop_count = h.seq;
        in.done();
        break;
      }
      if (h.kind != Kind::kData)
        throw ProtocolError("unexpected message kind " + describe_kind(h.kind));
      if (msg.size() != size || h.len != size)
        throw ProtocolError("message " + std::to_string(h.seq) + " has " +
                            std::to_string(msg.size()) + " bytes (header says " +
                            std::to_string(h.len) + "), not " + std::to_string(size));
      if (h.seq < expected)
        throw ProtocolError("message " + std::to_string(h.seq) + " arrived after message " +
                            std::to_string(expected - 1) + " (duplicate or out of order)");
      lost += h.seq - expected;
      expected = std::uint64_t{h.seq} + 1;
      ++received;
      if (verify &&
          marked_digest(body_of(msg), h.seq) != (h.check ^ header_mix(h.seq, h.len, h.kind)))
        throw ProtocolError("payload checksum mismatch in message " + std::to_string(h.seq));
      const std::int64_t sent = publish_time_of(msg);
      if (!cpu_started && sent >= go.start_ns) {
        cpu_started = true;
        cpu0 = cpu_use_self();
      }
      if (sent >= go.start_ns && sent < go.end_ns) {
        if (go.two_clocks == 0)
          res.hist.record(t > sent ? static_cast<std::uint64_t>(t - sent) : 0);
        if (res.done == 0) res.first_ns = t;
        res.last_ns = t;
        ++res.done;
      }
      in.done();
    }
    stop_timer();
    if (cpu_started) {
      cpu1 = cpu_use_self();
      res.cpu.cpu_ns = cpu1.cpu_ns - cpu0.cpu_ns;
      res.cpu.voluntary_switches = cpu1.voluntary_switches - cpu0.voluntary_switches;
      res.cpu.involuntary_switches = cpu1.involuntary_switches - cpu0.involuntary_switches;
    }
    // How many were published: the benchmark side says so once the publisher stopped.
    PartyEnd end;
    n = party_recv(ctl, &end, sizeof end, Clock::now() + std::chrono::seconds(30), "end");
    if (n == 0) return 0;  // the benchmark side gave up
    if (n != sizeof end || end.kind != PartyKind::kEnd) throw ProtocolError("bad end message");
    if (stop_count >= 0 && static_cast<std::uint64_t>(stop_count) != end.published)
      throw ProtocolError("the end marker says " + std::to_string(stop_count) +
                          " messages, the publisher " + std::to_string(end.published));
    if (expected - 1 > end.published)
      throw ProtocolError("received message " + std::to_string(expected - 1) + " of " +
                          std::to_string(end.published) + " published");
    lost += end.published - (expected - 1);  // never came after the last one received
    res.received = received;
    res.lost = lost;
    party_send(ctl, &res, sizeof res);
    return 0;
  } catch (const std::exception& e) {
    stop_timer();
    party_send_failed(ctl, e.what());
    throw;
  }
}

}  // namespace ipcbench
