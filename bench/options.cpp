#include "bench/options.h"

#include <arpa/inet.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "bench/protocol.h"
#include "bench/split.h"
#include "transports/endpoint_reader.h"
#include "transports/registry.h"

namespace ipcbench {
namespace {

std::string human(std::size_t n) {
  if (n >= (1u << 20) && n % (1u << 20) == 0) return std::to_string(n >> 20) + " MiB";
  if (n >= (1u << 20)) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(n) / (1u << 20));
    return buf;
  }
  if (n >= 1024 && n % 1024 == 0) return std::to_string(n >> 10) + " KiB";
  return std::to_string(n) + " B";
}

// An offered rate: requests per second, "50000", "50k" or "1.5M" (decimal multiples),
// from 1 to 10 million.
double parse_rate(std::string_view text) {
  double v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  const std::string_view unit = ec == std::errc() ? text.substr(p - text.data()) : "";
  const double mult = unit.empty() ? 1 : unit == "k" ? 1e3 : unit == "M" ? 1e6 : 0;
  if (text.empty() || ec != std::errc() || mult == 0 || !(v * mult >= 1) || v * mult > 1e7)
    throw UsageError("--rates: '" + std::string(text) +
                     "' is not a rate from 1 to 10M requests per second (e.g. 50000, 50k, 1.5M)");
  return v * mult;
}

}  // namespace

std::vector<std::string_view> split_at(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string_view::npos ? p : p - start));
    if (p == std::string_view::npos) return out;
    start = p + 1;
  }
}

const char* workload_name(Workload w) {
  switch (w) {
    case Workload::kPingpong:
      return "pingpong";
    case Workload::kThroughput:
      return "throughput";
    case Workload::kClients:
      return "clients";
    case Workload::kFanout:
      return "fanout";
    case Workload::kRate:
      return "rate";
  }
  return "";
}

std::vector<double> default_loads() { return {10, 50, 80, 95}; }

std::int64_t parse_duration_ns(std::string_view text, std::string_view option) {
  double v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  const std::string_view unit = ec == std::errc() ? text.substr(p - text.data()) : "";
  const double mult = unit == "ns"   ? 1
                      : unit == "us" ? 1e3
                      : unit == "ms" ? 1e6
                      : unit == "s"  ? 1e9
                                     : 0;
  if (ec != std::errc() || mult == 0 || !(v > 0) || v * mult > 3600e9 || v * mult < 1)
    throw UsageError(std::string(option) + ": '" + std::string(text) +
                     "' is not a duration such as 100us, 2ms, 50000ns or 1s (at most 1 hour)");
  return static_cast<std::int64_t>(std::llround(v * mult));
}

std::size_t parse_size(std::string_view text) {
  std::string_view s = text;
  std::uint64_t mult = 1;
  auto ends = [&s](std::string_view suf) {
    if (s.size() > suf.size()) {
      std::string_view tail = s.substr(s.size() - suf.size());
      if (std::equal(tail.begin(), tail.end(), suf.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) == b;
          })) {
        s.remove_suffix(suf.size());
        return true;
      }
    }
    return false;
  };
  if (ends("kib") || ends("k"))
    mult = 1ull << 10;
  else if (ends("mib") || ends("m"))
    mult = 1ull << 20;
  else if (ends("gib") || ends("g"))
    mult = 1ull << 30;
  else
    ends("b");
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size())
    throw UsageError("--sizes: '" + std::string(text) + "' is not a size (examples: 64, 4K, 1M)");
  if (v > std::numeric_limits<std::uint64_t>::max() / mult)
    throw UsageError("--sizes: '" + std::string(text) + "' is too large");
  return static_cast<std::size_t>(v * mult);
}

TransportSettings transport_settings(const SuiteOptions& o) {
  TransportSettings s;
  s.bind_address = o.bind;
  if (const char* url = std::getenv("IPCBENCH_AMQP_URL"); url && *url) s.broker_url = url;
  return s;
}

std::vector<std::size_t> default_many_sizes(bool quick) {
  if (quick) return {64};
  return {64, 65536};
}

std::vector<std::size_t> default_clients(bool quick) {
  if (quick) return {1, 4};
  return {1, 4, 8};
}

std::vector<std::size_t> default_subscribers(bool quick) {
  if (quick) return {1, 4};
  return {1, 4, 8};
}

std::vector<std::size_t> default_sizes(bool quick) {
  if (quick) return {64, 4096, 65536, 1u << 20};
  std::vector<std::size_t> v;
  for (std::size_t s = 64; s <= (1u << 20); s *= 4) v.push_back(s);
  return v;
}

SuiteOptions parse_suite_options(const std::vector<std::string>& args) {
  SuiteOptions o;
  bool sizes_given = false, workloads_given = false, transports_given = false;
  bool all_given = false;
  bool clients_given = false, subscribers_given = false;
  bool arrivals_given = false, slo_given = false;
  for (const std::string& arg : args) {
    std::string_view a = arg;
    std::string_view key = a.substr(0, a.find('='));
    bool has_value = a.find('=') != std::string_view::npos;
    std::string_view value = has_value ? a.substr(a.find('=') + 1) : std::string_view{};
    auto need_value = [&] {
      if (!has_value || value.empty())
        throw UsageError(std::string(key) + " needs a value (" + std::string(key) + "=…)");
    };
    if (key == "--transports") {
      need_value();
      transports_given = true;
      for (auto name : split_at(value, ',')) {
        if (name == "all") {
          all_given = true;
          o.transports = all_transports();
          continue;
        }
        const std::vector<const Transport*> named = transports_named(name);
        if (named.empty()) {
          std::string known;
          for (const Transport* k : all_transports())
            known += (known.empty() ? "" : ", ") + k->info().name;
          throw UsageError("unknown transport '" + std::string(name) + "' (known: " + known +
                           "; a name's stem, e.g. iceoryx, names its variants)");
        }
        for (const Transport* t : named)  // each once, however often it is named
          if (std::find(o.transports.begin(), o.transports.end(), t) == o.transports.end())
            o.transports.push_back(t);
      }
    } else if (key == "--sizes") {
      need_value();
      sizes_given = true;
      for (auto s : split_at(value, ',')) o.sizes.push_back(parse_size(s));
    } else if (key == "--workloads") {
      need_value();
      workloads_given = true;
      for (auto w : split_at(value, ',')) {
        if (w == "pingpong")
          o.workloads.push_back(Workload::kPingpong);
        else if (w == "throughput")
          o.workloads.push_back(Workload::kThroughput);
        else if (w == "clients")
          o.workloads.push_back(Workload::kClients);
        else if (w == "fanout")
          o.workloads.push_back(Workload::kFanout);
        else if (w == "rate")
          o.workloads.push_back(Workload::kRate);
        else
          throw UsageError("unknown workload '" + std::string(w) +
                           "' (known: pingpong, throughput, clients, fanout, rate)");
      }
    } else if (key == "--clients") {
      need_value();
      clients_given = true;
      for (auto n : split_at(value, ',')) {
        std::size_t v = 0;
        auto [p, ec] = std::from_chars(n.data(), n.data() + n.size(), v);
        if (n.empty() || ec != std::errc() || p != n.data() + n.size() || v < 1 || v > 64)
          throw UsageError("--clients: '" + std::string(n) + "' is not a number from 1 to 64");
        o.clients.push_back(v);
      }
    } else if (key == "--subscribers") {
      need_value();
      subscribers_given = true;
      for (auto n : split_at(value, ',')) {
        std::size_t v = 0;
        auto [p, ec] = std::from_chars(n.data(), n.data() + n.size(), v);
        if (n.empty() || ec != std::errc() || p != n.data() + n.size() || v < 1 || v > 64)
          throw UsageError("--subscribers: '" + std::string(n) + "' is not a number from 1 to 64");
        o.subscribers.push_back(v);
      }
    } else if (key == "--rates") {
      need_value();
      for (auto r : split_at(value, ',')) o.rates.push_back(parse_rate(r));
    } else if (key == "--load") {
      need_value();
      for (auto l : split_at(value, ',')) {
        double v = 0;
        auto [p, ec] = std::from_chars(l.data(), l.data() + l.size(), v);
        if (l.empty() || ec != std::errc() || p != l.data() + l.size() || !(v > 0) || v > 200)
          throw UsageError("--load: '" + std::string(l) +
                           "' is not a percentage in (0, 200] of the unpaced maximum");
        o.loads.push_back(v);
      }
    } else if (key == "--arrivals") {
      need_value();
      if (value != "uniform" && value != "poisson")
        throw UsageError("--arrivals: '" + std::string(value) + "' is not uniform or poisson");
      o.poisson = value == "poisson";
      arrivals_given = true;
    } else if (key == "--slo-p99") {
      need_value();
      o.slo_p99_ns = parse_duration_ns(value, "--slo-p99");
      slo_given = true;
    } else if (key == "--bind") {
      need_value();
      if (!parse_ipv4(std::string(value)))
        throw UsageError("--bind: '" + std::string(value) + "' is not an IPv4 address");
      o.bind = value;
      o.bind_given = true;
    } else if (key == "--connect") {
      need_value();
      o.connect = value;
    } else if (key == "--token-file") {
      need_value();
      o.token_file = value;
    } else if (key == "--pin") {
      need_value();
      o.pin_spec = value;
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--verify") {
      o.verify = true;
    } else if (a == "--floors") {
      o.floors = true;
    } else if (key == "--hgrm-dir") {
      need_value();
      o.hgrm_dir = value;
    } else if (key == "--cell-timeout") {
      need_value();
      double sec = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), sec);
      if (ec != std::errc() || p != value.data() + value.size() || !(sec > 0) || sec > 86400)
        throw UsageError("--cell-timeout: '" + std::string(value) +
                         "' is not a number of seconds in (0, 86400]");
      o.cell_timeout = std::chrono::milliseconds(static_cast<long>(sec * 1000));
    } else if (a == "--list-transports" || a == "--list-transports=text") {
      o.list = SuiteOptions::List::kText;
    } else if (a == "--list-transports=json") {
      o.list = SuiteOptions::List::kJson;
    } else {
      throw UsageError("unknown option '" + arg + "' (see --help)");
    }
  }
  if (!o.connect.empty()) {  // split mode: its transports and workloads only
    if (o.token_file.empty())
      throw UsageError("--connect needs --token-file=F (the token the server printed)");
    if (o.floors) throw UsageError("--floors measures this machine alone: not with --connect");
    if (o.cell_timeout > std::chrono::seconds(600))
      throw UsageError("--cell-timeout: at most 600 seconds with --connect (the server's limit)");
    const std::string server_host = o.connect.substr(0, o.connect.rfind(':'));
    if (o.bind_given && (o.bind == "0.0.0.0" ||
                         (o.bind.rfind("127.", 0) == 0 && server_host.rfind("127.", 0) != 0)))
      throw UsageError("--bind=" + o.bind +
                       ": the far peer connects to it, so it must be this host's address on "
                       "the way to the server");
    const auto& names = split_transports();
    std::string known;
    for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
    auto runs_split = [&names](const Transport* t) {
      return std::find(names.begin(), names.end(), t->info().name) != names.end();
    };
    if (!transports_given)
      for (const auto& n : names) o.transports.push_back(find_transport(n));
    if (all_given)  // "all": every transport split mode runs
      std::erase_if(o.transports, [&](const Transport* t) { return !runs_split(t); });
    for (const Transport* t : o.transports)
      if (!runs_split(t))
        throw UsageError("--connect: " + t->info().name + " cannot run split (split mode runs " +
                         known + ")");
    if (!workloads_given) o.workloads = {Workload::kPingpong, Workload::kThroughput};
  } else if (!o.token_file.empty()) {
    throw UsageError("--token-file goes with --connect");
  }
  if (!transports_given && o.connect.empty())  // those that need a broker only when asked
    for (const Transport* t : all_transports())
      if (t->info().needs.empty() && !t->info().one_per_machine) o.transports.push_back(t);
  if (!workloads_given && o.connect.empty())
    o.workloads = {Workload::kPingpong, Workload::kThroughput, Workload::kClients,
                   Workload::kFanout};
  const bool rate_asked =
      std::find(o.workloads.begin(), o.workloads.end(), Workload::kRate) != o.workloads.end();
  if ((!o.rates.empty() || !o.loads.empty() || arrivals_given || slo_given) && !rate_asked)
    throw UsageError(
        "--rates, --load, --arrivals and --slo-p99 are the rate workload's: add "
        "--workloads=rate");
  if (rate_asked && o.rates.empty() && o.loads.empty()) o.loads = default_loads();
  if (!sizes_given) o.sizes = default_sizes(o.quick);
  o.many_sizes = sizes_given ? o.sizes : default_many_sizes(o.quick);
  o.many_sizes_given = sizes_given;
  if (!clients_given) o.clients = default_clients(o.quick);
  o.clients_given = clients_given;
  if (!subscribers_given) o.subscribers = default_subscribers(o.quick);
  // Each name once, in the order first given.
  auto dedup = [](auto& v) {
    for (std::size_t i = 0; i < v.size(); ++i)
      v.erase(std::remove(v.begin() + static_cast<long>(i) + 1, v.end(), v[i]), v.end());
  };
  dedup(o.transports);
  dedup(o.workloads);
  dedup(o.sizes);
  dedup(o.many_sizes);
  dedup(o.clients);
  dedup(o.subscribers);
  dedup(o.rates);
  dedup(o.loads);
  for (std::size_t s : o.sizes) {
    if (s == 0) throw UsageError("--sizes: size 0 is not a message");
    if (s < kHeaderBytes)
      throw UsageError("--sizes: " + std::to_string(s) + " B is below the " +
                       std::to_string(kHeaderBytes) +
                       "-byte message header (sequence, length, checksum)");
    for (const Transport* t : o.transports)
      if (s > t->info().max_message)
        throw UsageError("--sizes: " + human(s) + " exceeds " + t->info().name + "'s limit of " +
                         human(t->info().max_message));
  }
  // A run holds one link at a time; refuse up front what /dev/shm cannot hold.
  std::size_t need = 0;
  const Transport* biggest = nullptr;
  for (const Transport* t : o.transports)
    if (t->info().dev_shm_bytes > need) need = t->info().dev_shm_bytes, biggest = t;
  struct statvfs sv {};
  if (biggest && ::statvfs("/dev/shm", &sv) == 0 && sv.f_bavail * sv.f_frsize < need)
    throw UsageError("/dev/shm has " + human(sv.f_bavail * sv.f_frsize) + " free; " +
                     biggest->info().name + " needs " + human(need) +
                     " (enlarge it, e.g. docker run --shm-size=64m, or leave that transport out)");
  return o;
}

const char* usage_text() {
  return R"(usage: ipcbench [options]

Measures inter-process communication on this machine: every cell of the matrix
workload x transport x size runs against a peer in a separate process. Cells are
named <workload>/<transport>/<bytes>.

What to run:
  --transports=a,b     transports; "all": every one (see --list-transports); a
                       name's stem names its variants (iceoryx: iceoryx-waitset and
                       iceoryx-spin); each runs once however often it is named
                       default: every transport that needs no broker and whose
                       daemon may run more than once per machine (not iceoryx)
  --workloads=a,b      pingpong (round-trip latency), throughput (one-way stream),
                       clients (N clients at once against one server: fan-in),
                       fanout (one publisher, N subscribers), rate (latency at a
                       fixed offered rate, open loop)
                       default: all but rate
  --clients=1,4        the clients workload's client counts (1..64); its cells are
                       clients/<transport>/<bytes>/clients:<N>/server:<model>, for
                       each server model the transport offers (--list-transports);
                       sizes: --sizes, else 64 B and 64 KiB (--quick: 64 B)
                       default: 1,4,8 (--quick: 1,4)
  --subscribers=1,4    the fanout workload's subscriber counts (1..64); its cells are
                       fanout/<transport>/<bytes>/subscribers:<N>, for each transport
                       with a fan-out form; sizes as for clients (at least 24 B: the
                       header and the publish time)
                       default: 1,4,8 (--quick: 1,4)
  --rates=10k,50k      the rate workload's offered rates in requests per second
                       (k, M: x1000, x1000000); its cells are
                       rate/<transport>/<bytes>/rate:<N>, for each transport whose
                       link can keep requests in flight (pipelining in
                       --list-transports=json); sizes as for clients
  --load=10,50,80,95   the rate workload's offered rates as percentages (up to 200)
                       of the unpaced maximum of the same transport and size,
                       measured in this run before its first load cell; cells
                       rate/<transport>/<bytes>/load:<P>; default when neither
                       --rates nor --load is given: 10,50,80,95
  --arrivals=uniform|poisson   the rate workload's send times: every 1/rate, or a
                       Poisson process of that rate; default: uniform
  --slo-p99=100us      the corrected p99 budget the report's sustainable rate is
                       found under (ns, us, ms, s); kept in the results' context;
                       default: 100us
  --sizes=64,4K,1M     message sizes, 16-byte header included; K/M/G = 2^10/20/30
                       default: 64 B to 1 MiB in steps of x4 (--quick: 64,4K,64K,1M)
  --floors             also measure the machine's floors (cache-line and futex round
                       trips, null syscall, memcpy and a shared-memory stream at each
                       size); default: off. Without it too, every pingpong and
                       throughput repetition is bracketed by a few-ms probe of its
                       own floor (floor_ratio, host_changed; results/SCHEMA.md)
  --benchmark_filter=REGEX  only the cells whose name matches (one that matches
                       none is an error); default: all

How to run it:
  --pin=MODE           cross: client and peer on two CPUs; same: both on one CPU;
                       none: not pinned; A,B: client on CPU A, peer on CPU B
                       default: cross
  --quick              short cells (--benchmark_min_time=0.05) and fewer sizes, for CI
  --verify             check every payload byte on receipt, not only the header
  --cell-timeout=SEC   a cell that makes no progress for SEC seconds fails; starting
                       a peer may take max(SEC, 10) seconds; default: 60
  --bind=IPV4          address tcp and the *-tcp transports listen on (a
                       NIC's address includes its driver; 0.0.0.0 exposes the
                       ports to the network); default: 127.0.0.1
  --benchmark_repetitions=N   run every cell N times (1..100000); default: 1
  --benchmark_min_time=SEC    measure each cell at least SEC seconds, a bare number
                       (e.g. 0.5); default: 0.5 (--quick: 0.05); a clients or
                       fanout cell's window, and a rate cell's schedule, is SEC,
                       at least 0.1 (--quick: 0.1)
  --benchmark_enable_random_interleaving=BOOL   run the repetitions of all cells in
                       random order, so each cell's spread covers the whole run's
                       noise (report.sh compare relies on it); default: on when N > 1

Output:
  stdout               one line per finished cell: RTT p50 and p99 (ping-pong),
                       messages/s and GB/s (throughput), CPU per message of both
                       processes, a floor's figure, or a failed cell's error; with
                       N > 1 repetitions, the median of each
  stderr               on a terminal only: cells done / total and the time left
  --benchmark_out=FILE every result and the run's context (machine, placement, the
                       transports' descriptions) as JSON; FILE appears once the run
                       has produced results; default: none
  --benchmark_out_format=json|console|csv   the file's format; default: json
  --hgrm-dir=DIR       also write each cell's latency histogram (round trips; fanout:
                       one-way; rate: corrected, uncorrected and sender lag;
                       throughput has none) as an HdrHistogram percentile
                       distribution, DIR/<cell>.<metric>.hgrm in microseconds,
                       '/' and ':' in <cell> made '_'; DIR is made if missing;
                       default: none
  --benchmark_format=console|json|csv   print Google Benchmark's own output instead
                       of the table (console: its table); default: the table above

Split mode (the peers on another host; bench/split.h):
  ipcbench --serve[=IPV4:PORT] [--token-file=F]   on the far host: serves peers for
                       one client at a time until a signal; prints the address and,
                       without --token-file, a new token; default: 127.0.0.1:0
  --connect=IPV4:PORT  run the matrix here against that server: tcp, zmq-tcp,
                       jsonrpc-tcp, http-tcp, grpc-tcp, grpc-stream-tcp (those built;
                       "all" means these), pingpong and throughput (and rate,
                       clients and fanout, when named in --workloads: the clients
                       or subscribers of a cell all run on the server's host; a
                       fanout cell has no one-way latency there: two clocks);
                       cells get
                       /link:cross-host in their name; the links listen on this
                       host's address on the control connection (--bind overrides
                       it), or, where the peer serves (http-tcp, grpc-tcp,
                       grpc-stream-tcp), the peer listens on the server's; the
                       far peer is not pinned;
                       --cell-timeout at most 600; trusted networks only: the token
                       and the traffic travel in clear text
  --token-file=F       the server's token, in a file only you can read (0600)

Listing:
  --list-transports[=json]   describe every transport and exit
  --benchmark_list_tests     name the cells that would run and exit
  --help, -h           this text
  --help=benchmark     Google Benchmark's own flags (the library's help)

Examples:
  ipcbench --quick                      the quick matrix (no broker needed)
  ipcbench --transports=uds,tcp,shm-spin --workloads=pingpong --sizes=64,64K \
           --benchmark_repetitions=5 --benchmark_out=run.json
  ipcbench --floors --benchmark_filter=^floor/ --benchmark_format=console

Exit status: 0 every cell measured; 1 some cells failed (each is an error row in the
results); 2 bad input (one line on stderr, no results file); 3 internal error (no
results file); 128+N interrupted by signal N (after a first SIGINT or SIGTERM the
finished cells are in the results; after SIGHUP or a second signal there is no file).
Google Benchmark also reads its flags from BENCHMARK_<FLAG> environment variables;
they are checked like the flags.
)";
}

}  // namespace ipcbench
