// Helpers shared by the test suites (linked into ipcbench_tests only).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "transports/transport.h"

namespace ipcbench::testing_support {

// n pseudo-random bytes, the same for the same seed.
std::vector<std::byte> pattern(std::size_t n, unsigned seed);

std::string slurp(const std::filesystem::path& p);

// A private scratch directory (removed at the end) with a tmp/ inside that child runs
// use as TMPDIR and XDG_RUNTIME_DIR, so whatever a run leaves behind shows up there.
// Named and marked like every directory of the suite (ipc_name::make_private_dir), so
// the sweep removes it when the test process died without its destructors (a ctest
// timeout, a sanitizer abort, SIGTERM); the first Scratch of a process runs that sweep.
struct Scratch {
  std::filesystem::path dir;
  Scratch();
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

// Starts argv (argv[0] a path; no shell) with that environment and stdout/stderr in
// <scratch>/stdout and <scratch>/stderr. Returns the pid, or -1.
pid_t spawn_captured(std::vector<std::string> argv, const Scratch& s);

// Starts the ipcbench binary with args, as spawn_captured does. Returns the pid, or -1.
pid_t start(const std::vector<std::string>& args, const Scratch& s);
// The results file such a run wrote at <scratch>/out.json, parsed (throws when it is not
// whole JSON).
nlohmann::json results(const Scratch& s);

// Waits for pid; its exit status, or 128 + signal.
int wait_exit(pid_t pid);
// Waits up to `limit` for pid, then SIGKILLs and reaps it (a hang fails the test instead
// of never ending): its exit status, 128 + signal, or -1 when it had to be killed.
int wait_exit_within(pid_t pid, std::chrono::seconds limit);

// Live children of `parent` whose command line has `needle`.
std::set<pid_t> children_of(pid_t parent, const std::string& needle);
// Peer processes of a run (started with --peer).
std::set<pid_t> peers_of(pid_t parent);
// Waits up to 20 s for a peer of `parent`; adds what it sees to `seen`. -1: none came.
pid_t wait_for_peer(pid_t parent, std::set<pid_t>& seen);
// Whether every pid has exited (waits up to 3 s).
bool all_gone(const std::set<pid_t>& pids);
// Waits (2 s at most) until every thread of `pid` is past what it was doing when called:
// asleep (state S), or on the CPU for 2 ms more since the call (a busy-polling thread).
// A test kills a peer after this so that the kill never lands inside a send it had not
// finished (a peer killed inside an iceoryx publish leaves a lock held for good:
// TransportInfo::peer_kill). Whether every thread settled.
bool wait_until_settled(pid_t pid);
// The state letter of a process (/proc/<pid>/stat: 'R', 'S', 'T', …); 0 when it is gone.
char process_state(pid_t pid);
// The suite's objects run `run` left: in the scratch's tmp/, in /dev/shm and (where it is
// mounted) in /dev/mqueue.
std::vector<std::string> leftovers(const Scratch& s, pid_t run);

// What the suite would listen with in this environment (bench's transport_settings with
// the default options): the broker of IPCBENCH_AMQP_URL, 127.0.0.1.
TransportSettings settings();

// Why a transport cannot be tested here (it needs a broker and IPCBENCH_AMQP_URL is not
// set; scripts/test.sh starts one and sets it), or "" when it can.
std::string untestable_reason(const std::string& needs);

// A transport's name (or any text) as a test name's suffix: GoogleTest allows letters,
// digits and '_' only, so every other character becomes '_' ("shm-spin": "shm_spin").
std::string test_suffix(std::string name);

// The message of the ProtocolError f() throws ("" when it throws none).
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const ProtocolError& e) {
    return e.what();
  }
  return "";
}

}  // namespace ipcbench::testing_support
