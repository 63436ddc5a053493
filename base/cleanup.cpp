#include "base/cleanup.h"

#include <dirent.h>
#include <fcntl.h>
#include <mqueue.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace ipcbench::cleanup {
namespace {

constexpr int kMaxPaths = 256;
constexpr int kMaxPathLen = 512;
constexpr int kMaxPids = 64;

enum class Kind : unsigned char { kFile, kMqueue, kDir };

// A slot is free, being filled by add() (invisible to the handler), or live.
enum State : int { kFree, kFilling, kLive };

struct PathSlot {
  std::atomic<int> state{kFree};
  Kind kind = Kind::kFile;
  char path[kMaxPathLen];
};
PathSlot g_paths[kMaxPaths];
std::atomic<pid_t> g_pids[kMaxPids];
std::atomic<pid_t> g_daemons[kMaxPids];  // killed on a hard exit only
std::atomic<bool> g_installed{false};

constexpr int kMaxDepth = 8;

// Removes everything in the directory open as `fd`, subdirectories included (symbolic
// links are removed, never followed). getdents64, not readdir: readdir allocates.
// Entries removed while reading may make the kernel skip others, so each level is read
// again from the start until a pass removes nothing.
void empty_dir(int fd, int depth, const char* keep = nullptr) {
  alignas(dirent64) char buf[4096];
  for (bool removed = true; removed;) {
    removed = false;
    ::lseek(fd, 0, SEEK_SET);
    for (ssize_t n; (n = ::getdents64(fd, buf, sizeof buf)) > 0;) {
      for (ssize_t off = 0; off < n;) {
        const auto* d = reinterpret_cast<const dirent64*>(buf + off);
        off += d->d_reclen;
        const char* name = d->d_name;
        if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) continue;
        if (keep && std::strcmp(name, keep) == 0) continue;
        if (::unlinkat(fd, name, 0) == 0) {
          removed = true;
          continue;
        }
        if (errno != EISDIR || depth >= kMaxDepth) continue;
        int sub = ::openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) continue;
        empty_dir(sub, depth + 1);
        ::close(sub);
        removed |= ::unlinkat(fd, name, AT_REMOVEDIR) == 0;
      }
    }
  }
}

void undo_everything() {
  for (auto* table : {g_pids, g_daemons})
    for (int i = 0; i < kMaxPids; ++i) {
      pid_t pid = table[i].exchange(0);
      if (pid > 0) ::kill(pid, SIGKILL);
    }
  for (auto& p : g_paths) {
    int live = kLive;
    if (!p.state.compare_exchange_strong(live, kFree)) continue;
    switch (p.kind) {
      case Kind::kFile:
        ::unlink(p.path);
        break;
      case Kind::kMqueue:
        ::mq_unlink(p.path);
        break;
      case Kind::kDir:
        remove_dir(p.path);
        break;
    }
  }
}

int add(const char* path, Kind kind) {
  std::size_t len = std::strlen(path);
  if (len >= static_cast<std::size_t>(kMaxPathLen)) return -1;
  for (int i = 0; i < kMaxPaths; ++i) {
    int free = kFree;
    if (!g_paths[i].state.compare_exchange_strong(free, kFilling)) continue;
    std::memcpy(g_paths[i].path, path, len + 1);
    g_paths[i].kind = kind;
    g_paths[i].state.store(kLive);
    return i;
  }
  return -1;
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

int add_path(const char* path) { return add(path, Kind::kFile); }
int add_mqueue(const char* name) { return add(name, Kind::kMqueue); }
int add_dir(const char* path) { return add(path, Kind::kDir); }

void forget_path(int slot) {
  if (slot >= 0 && slot < kMaxPaths) g_paths[slot].state.store(kFree);
}

bool remove_dir(const char* path, const char* last) {
  int fd = ::open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) {
    empty_dir(fd, 0, last);
    if (last) ::unlinkat(fd, last, 0);
    ::close(fd);
  }
  return ::rmdir(path) == 0 || errno == ENOENT;
}

void add_pid(pid_t pid, bool daemon) {
  for (auto& p : daemon ? g_daemons : g_pids) {
    pid_t expected = 0;
    if (p.compare_exchange_strong(expected, pid)) return;
  }
}

void forget_pid(pid_t pid) {
  for (auto* table : {g_pids, g_daemons})
    for (int i = 0; i < kMaxPids; ++i) {
      pid_t expected = pid;
      if (table[i].compare_exchange_strong(expected, 0)) return;
    }
}

}  // namespace ipcbench::cleanup
