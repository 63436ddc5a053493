// The suite's own command-line options (Google Benchmark's flags are handled by the
// library and never reach this parser).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "harness/placement.h"
#include "transports/transport.h"

namespace ipcbench {

// Bad input: main prints "ipcbench: <what()>" on one line and exits 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Workload { kPingpong, kThroughput, kClients, kFanout, kRate };
const char* workload_name(Workload w);

struct SuiteOptions {
  std::vector<const Transport*> transports;
  std::vector<Workload> workloads;
  std::vector<std::size_t> sizes;
  // The clients workload (fan-in): how many clients, and its own sizes (--sizes when
  // given, else default_many_sizes).
  std::vector<std::size_t> clients;
  bool clients_given = false;  // --clients was given (else the defaults)
  std::vector<std::size_t> many_sizes;
  bool many_sizes_given = false;  // --sizes was given (else the defaults)
  // The fanout workload (one publisher, N subscribers): how many subscribers; its sizes
  // are many_sizes too.
  std::vector<std::size_t> subscribers;
  // The rate workload (latency under load): offered rates in requests per second
  // (--rates) and loads in percent of the transport's unpaced maximum (--load); with
  // neither given, the loads default_loads() names. Its sizes are many_sizes.
  std::vector<double> rates;
  std::vector<double> loads;
  bool poisson = false;               // --arrivals=poisson (else uniform)
  std::int64_t slo_p99_ns = 100'000;  // --slo-p99: the p99 budget of the sustainable rate
  std::string pin_spec = "cross";
  std::string bind = "127.0.0.1";  // where network transports listen
  bool bind_given = false;
  // Split mode (bench/split.h): the server's IPV4:PORT and the file with its token.
  std::string connect;
  std::string token_file;
  bool quick = false;
  bool verify = false;
  bool floors = false;
  std::string hgrm_dir;  // --hgrm-dir: where each cell's latency histogram goes
  std::chrono::milliseconds cell_timeout{60000};
  enum class List { kNone, kText, kJson } list = List::kNone;
};

// "64", "4K"/"4k"/"4KiB", "1M", "1G" (binary multiples). Throws UsageError.
std::size_t parse_size(std::string_view text);

// The pieces of `s` between each `sep` ("a,,b" -> "a", "", "b"; "" -> ""): views into s.
std::vector<std::string_view> split_at(std::string_view s, char sep);

// Parses everything after argv[0] that Google Benchmark left. Throws UsageError naming
// the offending option or value; checks each size against each chosen transport.
SuiteOptions parse_suite_options(const std::vector<std::string>& args);

// The settings every transport listens with, read here and nowhere else: --bind
// (o.bind), and the broker IPCBENCH_AMQP_URL names when it is set and not empty (else
// TransportSettings' default broker, the one scripts/broker.sh starts).
TransportSettings transport_settings(const SuiteOptions& o);

// Default sizes: 64 B to 1 MiB in steps of x4; --quick: 64 B, 4 KiB, 64 KiB, 1 MiB.
std::vector<std::size_t> default_sizes(bool quick);
// The clients workload's defaults: 64 B and 64 KiB (--quick: 64 B); clients 1,4,8
// (--quick: 1,4).
std::vector<std::size_t> default_many_sizes(bool quick);
std::vector<std::size_t> default_clients(bool quick);
// The rate workload's loads when neither --rates nor --load is given: 10,50,80,95 %.
std::vector<double> default_loads();
// "100us", "2ms", "50000ns", "1s" (a number and a unit) in nanoseconds. Throws UsageError.
std::int64_t parse_duration_ns(std::string_view text, std::string_view option);
// The fanout workload's subscriber counts: 1,4,8 (--quick: 1,4).
std::vector<std::size_t> default_subscribers(bool quick);

const char* usage_text();

}  // namespace ipcbench
