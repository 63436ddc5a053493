// Peer processes: spawn with fork+exec, pin, die-with-parent, and always reap.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace ipcbench {

// Path of the running executable (read from /proc/self/exe), used to exec peers.
const std::string& self_exe();

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is the program to exec
  std::vector<int> inherit_fds;   // descriptors the child keeps, at the same numbers
  int cpu = -1;                   // pin the child to this CPU before exec; -1 = no pinning
  int output_fd = -1;             // the child's stdout and stderr (a log); -1 = ours
  bool daemon = false;            // a daemon its owner stops in order (cleanup::add_pid)
};

// One child process. The child gets PR_SET_PDEATHSIG(SIGKILL), so it dies with the
// spawning thread; every other descriptor is closed on exec. The destructor kills
// (SIGKILL) and reaps a child that is still running: no orphan, no zombie.
class ChildProcess {
 public:
  // Throws SysError when fork fails or when exec fails in the child.
  static ChildProcess spawn(const SpawnOptions& opts);
  // Forks a child that runs body() without exec (it works on memory shared before the
  // fork), pinned to cpu (-1: not pinned), with SIGINT/SIGTERM at their defaults, and
  // exits 0 when body returns. Throws SysError when fork fails.
  static ChildProcess fork_run(int cpu, const std::function<void()>& body);

  ChildProcess() = default;
  ChildProcess(ChildProcess&& o) noexcept;
  ChildProcess& operator=(ChildProcess&& o) noexcept;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  // True while the child runs; reaps it (non-blocking) once it has exited.
  bool alive();
  // Waits up to `grace` for a normal exit, then SIGKILLs. Returns a description of how
  // the child ended: "exit 0", "exit 3", "killed by signal 9".
  std::string finish(std::chrono::milliseconds grace);
  void kill_now();

 private:
  explicit ChildProcess(pid_t pid, bool daemon = false);  // a child just forked: ours to reap
  void reap(bool block);
  pid_t pid_ = -1;
  int status_ = 0;
  bool exited_ = true;
};

std::string describe_wait_status(int status);

// Stops a process (SIGSTOP) for the lifetime of this object and continues it (SIGCONT)
// at its end: while it lives, the process takes no CPU (a busy-polling peer leaves its CPU
// to a probe). The constructor waits up to 100 ms until the kernel shows the process
// stopped (or gone); a pid <= 0, and a process already stopped (by someone else, who
// would not want it continued), is left alone. One stopped by someone else while this
// object lives is continued at its end.
class StoppedProcess {
 public:
  explicit StoppedProcess(pid_t pid);
  ~StoppedProcess();
  StoppedProcess(const StoppedProcess&) = delete;
  StoppedProcess& operator=(const StoppedProcess&) = delete;

 private:
  pid_t pid_;
};

}  // namespace ipcbench
