#include "harness/cleanup.h"

#include <mqueue.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace ipcbench::cleanup {
namespace {

constexpr int kMaxPaths = 256;
constexpr int kMaxPathLen = 512;
constexpr int kMaxPids = 64;

struct PathSlot {
  std::atomic<bool> used{false};
  bool mqueue = false;
  char path[kMaxPathLen];
};
PathSlot g_paths[kMaxPaths];
std::atomic<pid_t> g_pids[kMaxPids];
std::atomic<bool> g_installed{false};

void undo_everything() {
  for (auto& p : g_pids) {
    pid_t pid = p.exchange(0);
    if (pid > 0) ::kill(pid, SIGKILL);
  }
  // Files first, then directories (which are empty by then).
  for (auto& p : g_paths) {
    if (!p.used.load()) continue;
    if (p.mqueue ? ::mq_unlink(p.path) == 0 : ::unlink(p.path) == 0) p.used.store(false);
  }
  for (auto& p : g_paths) {
    if (p.used.exchange(false)) ::rmdir(p.path);
  }
}

std::atomic<int> g_interrupted{0};
std::atomic<bool> g_graceful{false};

void on_signal(int sig) {
  // First SIGINT/SIGTERM of a graceful run: stop the peers (that ends the cell under
  // way with an error) and let the runner skip the rest and write its results. Any
  // other signal, or a second one: remove everything now and die of the signal.
  int expected = 0;
  if (g_graceful.load() && sig != SIGHUP && g_interrupted.compare_exchange_strong(expected, sig)) {
    for (auto& p : g_pids) {
      pid_t pid = p.load();
      if (pid > 0) ::kill(pid, SIGKILL);
    }
    return;
  }
  undo_everything();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

void install_signal_handlers() {
  if (g_installed.exchange(true)) return;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

void enable_graceful_interrupt() { g_graceful.store(true); }
int interrupted() { return g_interrupted.load(std::memory_order_relaxed); }

int add_mqueue(const char* name) {
  int slot = add_path(name);
  if (slot >= 0) g_paths[slot].mqueue = true;
  return slot;
}

int add_path(const char* path) {
  std::size_t len = std::strlen(path);
  if (len >= static_cast<std::size_t>(kMaxPathLen)) return -1;
  for (int i = 0; i < kMaxPaths; ++i) {
    bool expected = false;
    if (g_paths[i].used.load()) continue;
    std::memcpy(g_paths[i].path, path, len + 1);
    g_paths[i].mqueue = false;
    if (g_paths[i].used.compare_exchange_strong(expected, true)) return i;
  }
  return -1;
}

void forget_path(int slot) {
  if (slot >= 0 && slot < kMaxPaths) g_paths[slot].used.store(false);
}

void add_pid(pid_t pid) {
  for (auto& p : g_pids) {
    pid_t expected = 0;
    if (p.compare_exchange_strong(expected, pid)) return;
  }
}

void forget_pid(pid_t pid) {
  for (auto& p : g_pids) {
    pid_t expected = pid;
    if (p.compare_exchange_strong(expected, 0)) return;
  }
}

}  // namespace ipcbench::cleanup
