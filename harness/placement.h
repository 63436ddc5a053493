// CPU placement of the benchmark process and its peer (--pin).
#pragma once

#include <string>
#include <string_view>

namespace ipcbench {

struct Placement {
  std::string mode;     // "cross", "same", "none" or "custom"
  int client_cpu = -1;  // -1: not pinned
  int peer_cpu = -1;
  std::string note;              // why the placement differs from what was asked, if it does
  std::string describe() const;  // "cross client_cpu=0 peer_cpu=1"
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
