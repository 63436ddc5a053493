// CPU placement of the benchmark process and its peer (--pin).
#pragma once

#include <string>
#include <string_view>

namespace ipcbench {

struct Placement {
  std::string mode;     // "cross", "same", "none" or "custom"
  int client_cpu = -1;  // -1: not pinned
  int peer_cpu = -1;
  int cpus_allowed = 0;          // CPUs this process may run on
  std::string note;              // why the placement differs from what was asked, if it does
  std::string describe() const;  // "cross client_cpu=0 peer_cpu=1"
  // Why two sides that busy-poll cannot be measured here, or "" when they can: both are
  // pinned to one CPU, or neither is pinned and only one CPU is allowed. Two spinning
  // sides on one CPU take turns by the scheduler's time slice (milliseconds), so such a
  // figure measures the scheduler, not the transport.
  std::string spinning_refused() const;
};

// Resolves a --pin value against the CPUs this process may run on:
//   cross  two different CPUs (the first two allowed); falls back to one CPU, with a
//          note, when only one is allowed;
//   same   both on the first allowed CPU;  none  no pinning;  A,B  CPUs A and B.
// Throws std::invalid_argument with a one-line message on a malformed or unusable value.
Placement resolve_placement(std::string_view spec);

// Pins the calling thread to cpu (no-op for -1). Throws SysError.
void pin_this_thread(int cpu);

}  // namespace ipcbench
