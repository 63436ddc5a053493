#include "bench/options.h"

#include <arpa/inet.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <limits>

#include "bench/protocol.h"
#include "transports/endpoint_reader.h"
#include "transports/registry.h"

namespace ipcbench {
namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string_view::npos ? p : p - start));
    if (p == std::string_view::npos) return out;
    start = p + 1;
  }
}

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

}  // namespace

const char* workload_name(Workload w) {
  return w == Workload::kPingpong ? "pingpong" : "throughput";
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

std::vector<std::size_t> default_sizes(bool quick) {
  if (quick) return {64, 4096, 65536, 1u << 20};
  std::vector<std::size_t> v;
  for (std::size_t s = 64; s <= (1u << 20); s *= 4) v.push_back(s);
  return v;
}

SuiteOptions parse_suite_options(const std::vector<std::string>& args) {
  SuiteOptions o;
  bool sizes_given = false, workloads_given = false, transports_given = false;
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
      for (auto name : split(value, ',')) {
        if (name == "all") {
          for (const Transport* t : all_transports()) o.transports.push_back(t);
          continue;
        }
        const Transport* t = find_transport(name);
        if (!t) {
          std::string known;
          for (const Transport* k : all_transports())
            known += (known.empty() ? "" : ", ") + k->info().name;
          throw UsageError("unknown transport '" + std::string(name) + "' (known: " + known + ")");
        }
        o.transports.push_back(t);
      }
    } else if (key == "--sizes") {
      need_value();
      sizes_given = true;
      for (auto s : split(value, ',')) o.sizes.push_back(parse_size(s));
    } else if (key == "--workloads") {
      need_value();
      workloads_given = true;
      for (auto w : split(value, ',')) {
        if (w == "pingpong")
          o.workloads.push_back(Workload::kPingpong);
        else if (w == "throughput")
          o.workloads.push_back(Workload::kThroughput);
        else
          throw UsageError("unknown workload '" + std::string(w) +
                           "' (known: pingpong, throughput)");
      }
    } else if (key == "--bind") {
      need_value();
      if (!parse_ipv4(std::string(value)))
        throw UsageError("--bind: '" + std::string(value) + "' is not an IPv4 address");
      o.bind = value;
    } else if (key == "--pin") {
      need_value();
      o.pin_spec = value;
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--verify") {
      o.verify = true;
    } else if (a == "--floors") {
      o.floors = true;
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
  if (!transports_given)  // those that need a service (a broker) only when asked for
    for (const Transport* t : all_transports())
      if (t->info().needs.empty()) o.transports.push_back(t);
  if (!workloads_given) o.workloads = {Workload::kPingpong, Workload::kThroughput};
  if (!sizes_given) o.sizes = default_sizes(o.quick);
  // Each name once, in the order first given.
  auto dedup = [](auto& v) {
    for (std::size_t i = 0; i < v.size(); ++i)
      v.erase(std::remove(v.begin() + static_cast<long>(i) + 1, v.end(), v[i]), v.end());
  };
  dedup(o.transports);
  dedup(o.workloads);
  dedup(o.sizes);
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
  return R"(usage: ipcbench [suite options] [Google Benchmark flags]

Runs the matrix workload x transport x size; every peer is a separate process.
Benchmarks are named <workload>/<transport>/<bytes>.

suite options:
  --transports=a,b     transports to run (default: all that need no broker; "all": every
                       one; see --list-transports)
  --workloads=a,b      pingpong (round-trip latency), throughput (one-way stream)
  --sizes=64,4K,1M     message sizes in bytes, header included (min 16; K/M/G = 2^10/20/30)
                       default 64 B .. 1 MiB in steps of x4; --quick: 64, 4K, 64K, 1M
  --pin=MODE           cross (default): client and peer on two different CPUs
                       same: both on one CPU;  none: not pinned;  A,B: client CPU A, peer CPU B
  --quick              short runs (min time 0.05 s) and fewer sizes, for CI
  --verify             check every payload byte (checksum) on receipt, not only header
  --floors             also measure the machine's floors first (floor/...: cache-line and
                       futex round trips, null syscall, memcpy at each size)
  --bind=IPV4          address tcp, zmq-tcp and grpc-tcp listen on (default 127.0.0.1;
                       e.g. a NIC's address to include its driver path; 0.0.0.0 exposes
                       the benchmark's ports to the network)
  --cell-timeout=SEC   a cell that makes no progress for SEC seconds fails (default 60);
                       starting a peer may take max(SEC, 10) seconds
  --list-transports[=json]  describe every transport and exit
  --help, -h           this text, then Google Benchmark's own flags

useful Google Benchmark flags (checked before anything runs):
  --benchmark_out=FILE --benchmark_out_format=json   write the results as JSON; FILE
                       appears only once the run has produced results (written beside it
                       under a temporary name, then renamed)
  --benchmark_filter=REGEX   cells to run; one that matches no cell is an error
  --benchmark_repetitions=N  (1..100000)
  --benchmark_min_time=SECONDS   a bare number, e.g. 0.5
  --benchmark_enable_random_interleaving=BOOL   on by default with repetitions > 1: the
                       repetitions of all cells run in random order, so each cell's spread
                       covers the whole run's noise (report.sh compare relies on that)
  --benchmark_list_tests

exit status: 0 every cell measured; 1 some cells failed (each is an error row in the
results); 2 bad input (one line on stderr, no results file); 3 internal error (no
results file); 128+N interrupted by signal N (after a first SIGINT or SIGTERM the
finished cells are in the results; after SIGHUP or a second signal there is no file).
Google Benchmark also reads its flags from BENCHMARK_<FLAG> environment variables;
they are checked like the flags.
)";
}

}  // namespace ipcbench
