#include "harness/placement.h"

#include <sched.h>

#include <charconv>
#include <stdexcept>
#include <vector>

#include "base/error.h"

namespace ipcbench {
namespace {

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  check_sys(::sched_getaffinity(0, sizeof set, &set), "sched_getaffinity");
  std::vector<int> cpus;
  for (int i = 0; i < CPU_SETSIZE; ++i)
    if (CPU_ISSET(i, &set)) cpus.push_back(i);
  return cpus;
}

int parse_cpu(std::string_view s, const std::vector<int>& allowed) {
  int v = -1;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 0)
    throw std::invalid_argument("--pin: '" + std::string(s) + "' is not a CPU number");
  for (int c : allowed)
    if (c == v) return v;
  throw std::invalid_argument("--pin: CPU " + std::to_string(v) +
                              " is not available to this process");
}

}  // namespace

std::string Placement::spinning_refused() const {
  bool one_cpu = client_cpu >= 0 && client_cpu == peer_cpu;
  bool unpinned_one = client_cpu < 0 && peer_cpu < 0 && cpus_allowed == 1;
  if (!one_cpu && !unpinned_one) return {};
  std::string where = one_cpu ? "CPU " + std::to_string(client_cpu) + " (--pin=" + mode + ")"
                              : "the one CPU this process may use";
  return "not run: both sides busy-poll and would share " + where +
         ", so the figure would be the scheduler's time slice, not the transport; "
         "give them two CPUs (--pin=cross)";
}

std::string Placement::describe() const {
  return mode + " client_cpu=" + std::to_string(client_cpu) +
         " peer_cpu=" + std::to_string(peer_cpu);
}

Placement resolve_placement(std::string_view spec) {
  std::vector<int> cpus = allowed_cpus();
  Placement p;
  p.cpus_allowed = static_cast<int>(cpus.size());
  if (spec == "none") {
    p.mode = "none";
  } else if (spec == "same") {
    p.mode = "same";
    p.client_cpu = p.peer_cpu = cpus.at(0);
  } else if (spec == "cross") {
    p.mode = "cross";
    p.client_cpu = cpus.at(0);
    if (cpus.size() >= 2) {
      p.peer_cpu = cpus.at(1);
    } else {
      p.peer_cpu = cpus.at(0);
      p.mode = "same";
      p.note = "only one CPU is available: --pin=cross fell back to same";
    }
  } else if (auto comma = spec.find(','); comma != std::string_view::npos) {
    p.mode = "custom";
    p.client_cpu = parse_cpu(spec.substr(0, comma), cpus);
    p.peer_cpu = parse_cpu(spec.substr(comma + 1), cpus);
  } else {
    throw std::invalid_argument("--pin: expected cross, same, none or CLIENT,PEER, got '" +
                                std::string(spec) + "'");
  }
  return p;
}

void pin_this_thread(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  check_sys(::sched_setaffinity(0, sizeof set, &set), "sched_setaffinity");
}

}  // namespace ipcbench
