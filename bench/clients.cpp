#include "bench/clients.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/run_dir.h"
#include "base/wait.h"
#include "bench/mailbox.h"
#include "bench/party.h"
#include "bench/protocol.h"
#include "bench/split.h"
#include "bench/workloads.h"
#include "harness/aligned_buffer.h"
#include "transports/many.h"

namespace ipcbench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kTagShift = 24;
constexpr std::uint32_t kCountMask = (1u << kTagShift) - 1;
std::uint32_t tag_of(std::uint32_t seq) { return seq >> kTagShift; }

// Warm-up before the window: every client runs its loop untimed for this long (plus a
// little per client, so the last one to hear "go" still warms up).
constexpr auto kWarmup = std::chrono::milliseconds(30);

// How the processes of a cell share the CPUs: where the server's threads and the
// clients run, and whether more of them are busy than there are CPUs for them.
struct Crowd {
  int cpus = 0;  // CPUs the cell's processes run on
  bool oversubscribed = false;
  std::string note;  // "5 busy processes on 2 CPUs" when oversubscribed
};

Crowd crowd_of(const Placement& p, std::size_t clients, std::size_t server_threads,
               bool split = false) {
  Crowd c;
  auto n = static_cast<int>(clients), st = static_cast<int>(server_threads);
  if (split) {  // the clients run on the far host: here only the server's threads
    c.cpus = p.client_cpu >= 0 ? 1 : p.cpus_allowed;
    c.oversubscribed = st > c.cpus;
    if (c.oversubscribed)
      c.note = std::to_string(st) + " server thread(s) on " +
               (p.client_cpu >= 0 ? "CPU " + std::to_string(p.client_cpu)
                                  : std::to_string(p.cpus_allowed) + " CPU(s)");
    return c;
  }
  if (p.client_cpu >= 0 && p.peer_cpu >= 0) {
    const bool one = p.client_cpu == p.peer_cpu;
    c.cpus = one ? 1 : 2;
    c.oversubscribed = one ? n + st > 1 : (n > 1 || st > 1);
    if (c.oversubscribed)
      c.note = one ? std::to_string(n) + " client(s) and " + std::to_string(st) +
                         " server thread(s) on CPU " + std::to_string(p.client_cpu)
                   : std::to_string(n) + " client(s) on CPU " + std::to_string(p.peer_cpu) + ", " +
                         std::to_string(st) + " server thread(s) on CPU " +
                         std::to_string(p.client_cpu);
  } else {
    c.cpus = p.cpus_allowed;
    c.oversubscribed = n + st > p.cpus_allowed;
    if (c.oversubscribed)
      c.note = std::to_string(n) + " client(s) and " + std::to_string(st) +
               " server thread(s) on " + std::to_string(p.cpus_allowed) + " CPU(s)";
  }
  return c;
}

std::size_t server_threads(const std::string& model, std::size_t clients) {
  return model == "thread-per-client" ? clients : 1;
}

// Returns msg to the sender: written in place when the channel lends its memory.
void echo(Channel& ch, std::span<const std::byte> msg) {
  std::span<std::byte> l = ch.loan(msg.size());
  if (l.empty()) return ch.send(msg);
  std::memcpy(l.data(), msg.data(), msg.size());
  ch.commit();
}

// What the server threads share: the count of requests served, the first error, and
// how many links have ended (their client sent kStop).
class ServerState {
 public:
  explicit ServerState(std::size_t clients) : clients_(clients) {}
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
  std::atomic<std::uint64_t> served{0};
  std::atomic<std::size_t> threads_done{0};
  std::atomic<bool> quit{false};
  const std::size_t clients_;

 private:
  mutable std::mutex mu_;
  std::string error_;
  std::atomic<bool> failed_{false};
};

// One request of client `client`, or its kStop: checks the tag and kind. Returns false
// on kStop.
bool check_request(std::span<const std::byte> msg, std::size_t client) {
  if (msg.size() < kHeaderBytes)
    throw ProtocolError("client " + std::to_string(client) + ": short message of " +
                        std::to_string(msg.size()) + " bytes");
  MsgHeader h = read_header(msg);
  if (h.kind != Kind::kPing && h.kind != Kind::kStop)
    throw ProtocolError("client " + std::to_string(client) + ": unexpected message kind " +
                        describe_kind(h.kind));
  // A stop carries its client's number too: one in the wrong place would end another
  // client's service.
  if (tag_of(h.seq) != client)
    throw ProtocolError(std::string(h.kind == Kind::kStop ? "stop" : "request") + " of client " +
                        std::to_string(tag_of(h.seq)) + " arrived on client " +
                        std::to_string(client) + "'s link");
  return h.kind == Kind::kPing;
}

// One request waiting on link i (recv returns without waiting): echoes it. Returns false
// on the client's kStop. For the one-thread models.
bool serve_one(Channel& link, std::size_t i, AlignedBuffer& buf, ServerState& st) {
  std::size_t n = link.recv(buf);
  if (n == 0) throw ProtocolError("client " + std::to_string(i) + " closed its link mid-run");
  std::span<const std::byte> msg(buf.data(), n);
  if (!check_request(msg, i)) return false;
  echo(link, msg);
  st.served.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// Serves one link until its client's kStop (thread-per-client).
void serve_link(Channel& link, std::size_t client, std::size_t max_size, ServerState& st) {
  try {
    AlignedBuffer buf(std::max(max_size, kHeaderBytes));
    for (;;) {
      std::size_t n = link.recv(buf);
      if (n == 0) {
        if (!st.quit.load())
          throw ProtocolError("client " + std::to_string(client) + " closed its link mid-run");
        break;
      }
      std::span<const std::byte> msg(buf.data(), n);
      if (!check_request(msg, client)) break;
      echo(link, msg);
      st.served.fetch_add(1, std::memory_order_relaxed);
    }
  } catch (const std::exception& e) {
    if (!st.quit.load()) st.fail(std::string("server: ") + e.what());
  }
  st.threads_done.fetch_add(1);
}

// Serves every link from one thread: epoll over their descriptors.
void serve_event_loop(const std::vector<Channel*>& links, std::size_t max_size, ServerState& st) {
  try {
    UniqueFd ep(static_cast<int>(check_sys(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1")));
    for (std::size_t i = 0; i < links.size(); ++i) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = i;
      check_sys(::epoll_ctl(ep.get(), EPOLL_CTL_ADD, links[i]->wait_fd(), &ev), "epoll_ctl");
    }
    AlignedBuffer buf(std::max(max_size, kHeaderBytes));
    std::size_t open = links.size();
    std::vector<bool> ended(links.size());
    epoll_event evs[64];
    while (open > 0 && !st.quit.load()) {
      int k = ::epoll_wait(ep.get(), evs, 64, 50);
      if (k < 0 && errno == EINTR) continue;
      check_sys(k, "epoll_wait");
      for (int j = 0; j < k; ++j) {
        std::size_t i = evs[j].data.u64;
        if (ended[i] || serve_one(*links[i], i, buf, st)) continue;
        ended[i] = true;
        --open;
        check_sys(::epoll_ctl(ep.get(), EPOLL_CTL_DEL, links[i]->wait_fd(), nullptr), "epoll_ctl");
      }
    }
  } catch (const std::exception& e) {
    if (!st.quit.load()) st.fail(std::string("server: ") + e.what());
  }
  st.threads_done.fetch_add(1);
}

// Serves every link from one thread that polls them in turn (Channel::poll_ready) and
// never sleeps: a busy-polling server, whatever the links' own wait.
void serve_spin_poll(const std::vector<Channel*>& links, std::size_t max_size, ServerState& st) {
  try {
    AlignedBuffer buf(std::max(max_size, kHeaderBytes));
    std::size_t open = links.size();
    std::vector<bool> ended(links.size());
    while (open > 0 && !st.quit.load(std::memory_order_relaxed)) {
      bool any = false;
      for (std::size_t i = 0; i < links.size(); ++i) {
        if (ended[i] || !links[i]->poll_ready()) continue;
        any = true;
        if (!serve_one(*links[i], i, buf, st)) ended[i] = true, --open;
      }
      if (!any) cpu_relax();
    }
  } catch (const std::exception& e) {
    if (!st.quit.load()) st.fail(std::string("server: ") + e.what());
  }
  st.threads_done.fetch_add(1);
}

// Serves one shared request queue from one thread.
void serve_shared(FanInServer& server, std::size_t clients, std::size_t max_size, ServerState& st) {
  try {
    AlignedBuffer buf(std::max(max_size, kHeaderBytes));
    std::vector<bool> ended(clients);
    std::size_t open = clients;
    while (open > 0) {
      auto [client, n] = server.recv_any(buf);
      if (n == 0) {
        if (!st.quit.load()) throw ProtocolError("the request queue ended mid-run");
        break;
      }
      if (client >= clients)
        throw ProtocolError("a request names client " + std::to_string(client) + " of " +
                            std::to_string(clients));
      std::span<const std::byte> msg(buf.data(), n);
      if (!check_request(msg, client)) {
        if (!ended[client]) ended[client] = true, --open;
        continue;
      }
      server.reply(client, msg);
      st.served.fetch_add(1, std::memory_order_relaxed);
    }
  } catch (const std::exception& e) {
    if (!st.quit.load()) st.fail(std::string("server: ") + e.what());
  }
  st.threads_done.fetch_add(1);
}

// Everything one repetition owns, torn down in a safe order on every path: the clients
// are killed before the links are aborted, the server threads joined before the links
// and the listener (and with them every IPC object) go.
struct Cell {
  std::unique_ptr<FanInListener> listener;
  std::unique_ptr<FanInServer> server;
  std::unique_ptr<Parties> clients;
  std::unique_ptr<ServerState> state;
  std::vector<std::thread> threads;

  // After the threads: the members go in reverse order, the clients (killed and reaped
  // by Parties) before the server's links and the listener's objects.
  ~Cell() { stop(true); }
  // Ends the server threads: at once (kill the clients, abort the links) when `force`,
  // else after they have seen every client's kStop, up to a grace period. Returns false
  // when they had to be stopped.
  bool stop(bool force) {
    bool on_their_own = true;
    if (!threads.empty()) {
      auto until = Clock::now() + std::chrono::seconds(2);
      while (!force && state->threads_done.load() < threads.size() && Clock::now() < until)
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      if (state->threads_done.load() < threads.size()) {
        on_their_own = false;
        state->quit.store(true);
        if (clients) clients->kill_all();
        if (server) server->abort();
      }
      for (std::thread& t : threads) t.join();
      threads.clear();
    }
    return on_their_own;
  }
};

}  // namespace

std::string clients_refused(const Placement& p, const Transport& t, std::size_t clients,
                            const std::string& model) {
  Crowd c = crowd_of(p, clients, server_threads(model, clients));
  if (t.info().wait == "spin" && c.oversubscribed)
    return "not run: every side busy-polls, and " + c.note +
           " would take turns by the scheduler's time slice, so the figure would be the "
           "scheduler's, not the transport's (give each a CPU of its own)";
  // The spin-poll server busy-polls whatever the clients do: it needs a CPU the clients
  // are not pinned to (unpinned: at least one CPU besides the one it takes).
  const bool server_alone =
      p.client_cpu >= 0 && p.peer_cpu >= 0 ? p.client_cpu != p.peer_cpu : p.cpus_allowed >= 2;
  if (model == "spin-poll" && !server_alone)
    return "not run: the spin-poll server busy-polls, and with " + std::to_string(clients) +
           " client(s) on " +
           (p.client_cpu >= 0 && p.client_cpu == p.peer_cpu
                ? "its own CPU " + std::to_string(p.client_cpu)
                : std::string("the one CPU allowed")) +
           " they would take turns by the scheduler's time slice (give the server a CPU of "
           "its own)";
  return {};
}

void run_clients(benchmark::State& state, RunDir& dir, const ManyConfig& cfg, const Transport& t,
                 std::size_t size, std::size_t clients, const std::string& model) {
  Cell cell;
  const auto setup_deadline = Clock::now() + cfg.setup_timeout;
  cell.listener = t.listen_fan_in(dir, size, cfg.settings, clients, model);
  if (!cell.listener) throw ProtocolError(t.info().name + " does not take part in fan-in");
  cell.clients = cfg.split ? split_parties(*cfg.split) : local_parties();
  Parties& peers = *cell.clients;
  for (std::size_t i = 0; i < clients; ++i) {
    const Endpoint& ep = cell.listener->endpoint(i);
    PeerArgs a{t.info().name,    ep.addresses,     size, cfg.verify, "client",
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
    cell.server = cell.listener->accept(SetupWait{setup_deadline, all_alive});
  } catch (const std::exception& e) {
    std::string why = std::string("set-up: ") + e.what();
    for (std::size_t i = 0; i < clients; ++i)
      if (!peers.alive(i)) why += "; client " + std::to_string(i) + " " + peers.finish(i, {});
    throw ProtocolError(why);
  }
  // The model: the form's own (a shared queue), or the one asked for.
  std::vector<Channel*> links = cell.server->links();
  std::string used = cell.server->model().empty() ? model : cell.server->model();
  if (used != model)
    throw ProtocolError(t.info().name + "'s fan-in form is " + used + ", not " + model);
  if (links.empty() != (used == "shared-queue"))
    throw ProtocolError(t.info().name + ": server model " + used + " does not fit its links");
  if (used == "event-loop")
    for (Channel* l : links)
      if (l->wait_fd() < 0)
        throw ProtocolError(t.info().name + "'s links offer no descriptor to wait on");
  if (used == "spin-poll")
    for (Channel* l : links)
      if (!l->polls())
        throw ProtocolError(t.info().name + "'s links cannot be polled without waiting");

  cell.state = std::make_unique<ServerState>(clients);
  ServerState& st = *cell.state;
  const CpuUse server_before = cpu_use_self_but(peers);
  if (used == "thread-per-client") {
    for (std::size_t i = 0; i < clients; ++i)
      cell.threads.emplace_back([i, l = links[i], size, &st] { serve_link(*l, i, size, st); });
  } else if (used == "event-loop") {
    // By value: on an error the locals go before `cell` joins this thread.
    cell.threads.emplace_back([links, size, &st] { serve_event_loop(links, size, st); });
  } else if (used == "spin-poll") {
    cell.threads.emplace_back([links, size, &st] { serve_spin_poll(links, size, st); });
  } else if (used == "shared-queue") {
    cell.threads.emplace_back([&] { serve_shared(*cell.server, clients, size, st); });
  } else {
    throw ProtocolError("unknown server model '" + used + "'");
  }

  // Each client makes one round trip before it reports ready (a lazy connection, such as
  // gRPC's, is then set up before the window, not inside it): the server serves from here.
  std::vector<std::byte> ctl(sizeof(PartyResult) + 1);
  try {
    for (std::size_t i = 0; i < clients; ++i)
      party_expect(peers, i, ctl, PartyKind::kReady, "client " + std::to_string(i), setup_deadline);
  } catch (const ProtocolError& e) {
    // The server may know why (a misrouted first request): say both.
    if (st.failed()) throw ProtocolError(st.error() + "; " + e.what());
    throw;
  }
  if (st.failed()) throw ProtocolError(st.error());

  // The barrier: everyone is connected and ready; the window is the same instant for all.
  PartyGo go;
  go.verify = cfg.verify ? 1 : 0;
  go.size = size;
  go.start_ns = mono_ns() + std::chrono::nanoseconds(kWarmup + peers.start_lead()).count() +
                static_cast<std::int64_t>(clients) * 1'000'000;
  go.end_ns = go.start_ns + cfg.window.count();
  for (std::size_t i = 0; i < clients; ++i) {
    try {
      party_send(peers.control(i), &go, sizeof go);
    } catch (const std::exception& e) {
      throw ProtocolError("client " + std::to_string(i) + " is gone before the start (" +
                          peers.finish(i, std::chrono::milliseconds(200)) + "): " + e.what());
    }
  }

  // Results: every client reports once its window is over and its link is stopped.
  const auto result_deadline =
      Clock::now() + std::chrono::nanoseconds(go.end_ns - mono_ns()) + cfg.cell_timeout;
  // All control links are watched at once, with the server's own failure: a server that
  // stopped serving (a client died, a misrouted request) ends the wait at once.
  std::vector<PartyResult> results = collect_party_results(
      peers, PartyWatch{.role = "client",
                        .deadline = result_deadline,
                        .own_error = [&st] { return st.failed() ? st.error() : std::string(); },
                        .tick = {},
                        .late_note = {}});
  const bool ended = cell.stop(false);
  const CpuUse server_after = cpu_use_self_but(peers);
  // The server may have noticed a client's death first (its link closed): the row says
  // how the client ended too, as when the control links noticed it.
  if (st.failed()) throw ProtocolError(st.error() + dead_parties(peers, "client"));
  // Every client has stopped; a server thread still waiting then has lost a stop message.
  if (!ended)
    throw ProtocolError(
        "server: still waiting for a request 2 s after every client had stopped (a stop "
        "message was lost)");
  const std::uint64_t served = st.served.load();
  for (std::size_t i = 0; i < clients; ++i) peers.finish(i, std::chrono::milliseconds(2000));

  // Figures.
  Histogram all;
  double total = 0, sum_sq = 0, worst_p99 = 0;
  std::uint64_t min_done = UINT64_MAX, max_done = 0;
  CpuUse clients_cpu;
  for (const PartyResult& r : results) {
    all.merge(r.hist);
    total += static_cast<double>(r.done);
    sum_sq += static_cast<double>(r.done) * static_cast<double>(r.done);
    min_done = std::min(min_done, r.done);
    max_done = std::max(max_done, r.done);
    worst_p99 = std::max(worst_p99, r.hist.percentile(99));
    clients_cpu.cpu_ns += r.cpu.cpu_ns;
    clients_cpu.voluntary_switches += r.cpu.voluntary_switches;
    clients_cpu.involuntary_switches += r.cpu.involuntary_switches;
  }
  if (total <= 0) throw ProtocolError("no client completed a round trip in the window");
  const double window_s = static_cast<double>(cfg.window.count()) * 1e-9;
  const double mean_done = total / static_cast<double>(clients);
  const Crowd crowd =
      crowd_of(cfg.placement, clients, server_threads(used, clients), cfg.split != nullptr);

  for (auto _ : state) state.SetIterationTime(window_s);
  auto& c = state.counters;
  c["msg_bytes"] = static_cast<double>(size);
  c["clients"] = static_cast<double>(clients);
  // In split mode the clients are on the far host: here, only the server's threads.
  c["busy_processes"] =
      static_cast<double>(cfg.split ? server_threads(used, clients) : clients + 1);
  c["cpus"] = crowd.cpus;
  c["oversubscribed"] = crowd.oversubscribed ? 1 : 0;
  c["rtt_per_s"] = total / window_s;
  record_rtt(state, all);
  c["worst_client_p99_ns"] = worst_p99;
  c["fairness_jain"] = total * total / (static_cast<double>(clients) * sum_sq);
  c["share_min"] = static_cast<double>(min_done) / mean_done;
  c["share_max"] = static_cast<double>(max_done) / mean_done;
  if (served > 0)
    c["cpu_server_ns_per_msg"] = static_cast<double>(server_after.cpu_ns - server_before.cpu_ns) /
                                 static_cast<double>(served);
  c["cpu_client_ns_per_msg"] = static_cast<double>(clients_cpu.cpu_ns) / total;
  const double server_csw =
      static_cast<double>((server_after.voluntary_switches + server_after.involuntary_switches) -
                          (server_before.voluntary_switches + server_before.involuntary_switches));
  c["ctx_switches_per_msg"] =
      (served > 0 ? server_csw / static_cast<double>(served) : 0) +
      static_cast<double>(clients_cpu.voluntary_switches + clients_cpu.involuntary_switches) /
          total;
  state.SetItemsProcessed(static_cast<std::int64_t>(total));
  state.SetLabel("server=" + used + " clients=" + std::to_string(clients) +
                 " pin=" + cfg.placement.describe() + " wait=" + t.info().wait +
                 (cfg.split ? " link=cross-host" : "") +
                 (crowd.oversubscribed ? " oversubscribed: " + crowd.note : ""));
}

int run_fan_in_client(const Transport& t, Channel& link, const PeerArgs& a) {
  const int ctl = a.control_fd;
  const auto id = static_cast<std::uint32_t>(a.client_id);
  try {
    // Messages of the cell's size (the go message repeats it); the first round trip
    // happens before the client reports ready, with every byte checked.
    const std::size_t size = a.max_size;
    if (size < kHeaderBytes) throw ProtocolError("message size below the header's");
    AlignedBuffer proto(size);
    const std::uint32_t digest = fill_payload(proto, size + id);
    Outbox out(link, proto);
    Inbox in(link, size);
    std::uint32_t count = 0;
    auto round_trip = [&](bool verify) {
      count = (count + 1) & kCountMask;
      const std::uint32_t seq = id << kTagShift | count;
      stamp(out.begin(seq), seq, Kind::kPing, digest);
      out.finish();
      std::span<const std::byte> reply = in.next();
      if (!reply_ok(reply, size, seq, verify)) {
        if (reply.size() >= kHeaderBytes && read_header(reply).kind == Kind::kPing &&
            tag_of(read_header(reply).seq) != id)
          throw ProtocolError("client " + std::to_string(id) + " received client " +
                              std::to_string(tag_of(read_header(reply).seq)) + "'s reply");
        if (reply.empty()) throw ProtocolError("the server closed the link");
        std::string err = check_message(reply, Kind::kPing, seq, verify);
        throw ProtocolError(err.empty() ? "reply differs from the request" : err);
      }
      in.done();
    };
    round_trip(true);
    PartyKind ready = PartyKind::kReady;
    party_send(ctl, &ready, sizeof ready);
    PartyGo go;
    std::size_t n = party_recv(ctl, &go, sizeof go, Clock::now() + a.setup_timeout, "go");
    if (n == 0) return 0;  // the benchmark side gave up before the start
    if (n != sizeof go || go.kind != PartyKind::kGo || go.size != size)
      throw ProtocolError("bad go message");
    const bool verify = go.verify != 0;
    PartyResult res;
    bool in_window = false;
    std::int64_t now = mono_ns();
    while (now < go.end_ns) {
      if (!in_window && now >= go.start_ns) {
        in_window = true;
        res.cpu = cpu_use_self();
        now = mono_ns();
      }
      round_trip(verify);
      const std::int64_t t1 = mono_ns();
      if (in_window) {
        res.hist.record(static_cast<std::uint64_t>(t1 - now));
        ++res.done;
      }
      now = t1;
    }
    CpuUse after = cpu_use_self();
    if (in_window) {
      res.cpu.cpu_ns = after.cpu_ns - res.cpu.cpu_ns;
      res.cpu.voluntary_switches = after.voluntary_switches - res.cpu.voluntary_switches;
      res.cpu.involuntary_switches = after.involuntary_switches - res.cpu.involuntary_switches;
    } else {
      res.cpu = {};
    }
    std::byte stop[kHeaderBytes];
    stamp(stop, id << kTagShift, Kind::kStop, payload_digest({}));
    link.send(stop);
    party_send(ctl, &res, sizeof res);
    (void)t;
    return 0;
  } catch (const std::exception& e) {
    party_send_failed(ctl, e.what());
    throw;
  }
}

}  // namespace ipcbench
