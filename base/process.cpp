#include "base/process.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>

#include "base/cleanup.h"
#include "base/error.h"
#include "base/fd.h"

namespace ipcbench {

const std::string& self_exe() {
  static const std::string path = [] {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n < 0) throw SysError("readlink /proc/self/exe", errno);
    return std::string(buf, static_cast<std::size_t>(n));
  }();
  return path;
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

namespace {

// Pins the calling process to cpu (-1: leaves it); 0 or errno.
int pin_self(int cpu) {
  if (cpu < 0) return 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : errno;
}

// Runs in the child between fork and exec: only async-signal-safe calls.
[[noreturn]] void child_exec(const SpawnOptions& opts, char* const* argv, pid_t parent,
                             int err_fd) {
  auto fail = [err_fd](int err) {
    ssize_t ignored = ::write(err_fd, &err, sizeof err);
    (void)ignored;
    ::_exit(127);
  };
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(errno);
  if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
  // Everything not inherited on purpose is closed at exec.
  ::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
  for (int fd : opts.inherit_fds) {
    if (::fcntl(fd, F_SETFD, 0) != 0) fail(errno);
  }
  if (::fcntl(err_fd, F_SETFD, FD_CLOEXEC) != 0) fail(errno);
  if (opts.output_fd >= 0 &&
      (::dup2(opts.output_fd, STDOUT_FILENO) < 0 || ::dup2(opts.output_fd, STDERR_FILENO) < 0))
    fail(errno);
  if (int err = pin_self(opts.cpu)) fail(err);
  ::signal(SIGPIPE, SIG_DFL);
  ::execv(argv[0], argv);
  fail(errno);
  ::_exit(127);
}

}  // namespace

ChildProcess ChildProcess::spawn(const SpawnOptions& opts) {
  std::vector<char*> argv;
  for (const auto& a : opts.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  int errpipe[2];
  check_sys(::pipe2(errpipe, O_CLOEXEC), "pipe2 (spawn)");
  UniqueFd err_r(errpipe[0]), err_w(errpipe[1]);

  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw SysError("fork", errno);
  if (pid == 0) child_exec(opts, argv.data(), parent, err_w.get());

  ChildProcess child(pid, opts.daemon);
  err_w.reset();
  int child_errno = 0;
  std::size_t n =
      read_full(err_r.get(), std::as_writable_bytes(std::span<int>(&child_errno, 1)), "spawn");
  if (n == sizeof child_errno) {
    child.reap(true);
    throw SysError("exec " + opts.argv[0], child_errno);
  }
  return child;
}

ChildProcess ChildProcess::fork_run(int cpu, const std::function<void()>& body) {
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw SysError("fork", errno);
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
    ::signal(SIGINT, SIG_DFL);                // not the parent's graceful handlers: just go
    ::signal(SIGTERM, SIG_DFL);
    pin_self(cpu);
    body();
    ::_exit(0);
  }
  return ChildProcess(pid);
}

ChildProcess::ChildProcess(pid_t pid, bool daemon) : pid_(pid), exited_(false) {
  cleanup::add_pid(pid, daemon);
}

ChildProcess::ChildProcess(ChildProcess&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      status_(o.status_),
      exited_(std::exchange(o.exited_, true)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& o) noexcept {
  if (this != &o) {
    kill_now();
    pid_ = std::exchange(o.pid_, -1);
    status_ = o.status_;
    exited_ = std::exchange(o.exited_, true);
  }
  return *this;
}

ChildProcess::~ChildProcess() { kill_now(); }

void ChildProcess::reap(bool block) {
  if (exited_ || pid_ <= 0) return;
  for (;;) {
    pid_t r = ::waitpid(pid_, &status_, block ? 0 : WNOHANG);
    if (r == pid_) {
      exited_ = true;
      cleanup::forget_pid(pid_);
      return;
    }
    if (r == 0) return;
    if (errno == EINTR) continue;
    exited_ = true;  // ECHILD: someone else reaped it; nothing left to wait for
    cleanup::forget_pid(pid_);
    return;
  }
}

bool ChildProcess::alive() {
  reap(false);
  return !exited_;
}

void ChildProcess::kill_now() {
  if (exited_ || pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  reap(true);
}

std::string ChildProcess::finish(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return "not started";
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (alive() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!exited_) kill_now();
  return describe_wait_status(status_);
}

}  // namespace ipcbench

namespace ipcbench {
namespace {

// The state letter of a /proc/.../stat file ('R', 'S', 'T', …), or 0 when it is gone.
char state_in(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return 0;
  char buf[512];
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char* close = std::strrchr(buf, ')');  // the command name may hold anything
  return close && close[1] == ' ' ? close[2] : 0;
}

// Whether every thread of pid is stopped (or exiting), or the process is gone.
bool all_stopped(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator(dir, ec)) {
    const char st = state_in(task.path().string() + "/stat");
    if (st != 0 && st != 'T' && st != 't' && st != 'Z' && st != 'X') return false;
  }
  return true;  // also when the directory is gone
}

}  // namespace

StoppedProcess::StoppedProcess(pid_t pid) : pid_(pid) {
  // A process someone else stopped stays stopped: it is left alone, never continued.
  if (pid_ <= 0 || all_stopped(pid_) || ::kill(pid_, SIGSTOP) != 0) {
    pid_ = -1;
    return;
  }
  for (int i = 0; i < 1000 && !all_stopped(pid_); ++i)
    std::this_thread::sleep_for(std::chrono::microseconds(100));
}

StoppedProcess::~StoppedProcess() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

}  // namespace ipcbench
