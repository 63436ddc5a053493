#include "harness/sweep.h"

#include <dirent.h>
#include <mqueue.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <set>

#include "harness/cleanup.h"

namespace ipcbench {
namespace {

// The pid in "ipcbench-<pid>-…", or -1.
pid_t creator_pid(const std::string& name) {
  static const std::string kPrefix = "ipcbench-";
  if (name.rfind(kPrefix, 0) != 0) return -1;
  const char* b = name.data() + kPrefix.size();
  const char* e = name.data() + name.size();
  pid_t pid = -1;
  auto [p, ec] = std::from_chars(b, e, pid);
  if (ec != std::errc() || p == b || p == e || *p != '-' || pid <= 0) return -1;
  return pid;
}

bool gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

bool ours(const struct stat& st) { return st.st_uid == ::geteuid(); }

// POSIX message queues cannot be listed unless /dev/mqueue is mounted, but their names
// are known: /ipcbench-<pid>-mq-<n>-{down,up}, n counting the run's links from 0. A
// leaked queue keeps charging RLIMIT_MSGQUEUE, so every later run's posix-mq would fail.
void sweep_mqueues(pid_t pid, std::vector<std::string>& removed) {
  for (int n = 0; n < 4096; ++n) {
    for (const char* dir : {"-down", "-up"}) {
      std::string name = "/ipcbench-" + std::to_string(pid) + "-mq-" + std::to_string(n) + dir;
      if (::mq_unlink(name.c_str()) == 0) removed.push_back(name);
    }
  }
}

void sweep_dir(const std::string& base, bool directories, std::vector<std::string>& removed) {
  DIR* d = ::opendir(base.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    pid_t pid = creator_pid(name);
    if (pid < 0 || pid == ::getpid() || !gone(pid)) continue;
    std::string path = base + "/" + name;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !ours(st)) continue;
    if (directories && S_ISDIR(st.st_mode)) {
      cleanup::remove_dir(path.c_str());
      removed.push_back(path);
      sweep_mqueues(pid, removed);  // a run that made queues made its directory first
    } else if (!directories && S_ISREG(st.st_mode) && ::unlink(path.c_str()) == 0) {
      removed.push_back(path);
    }
  }
  ::closedir(d);
}

}  // namespace

std::vector<std::string> sweep_stale_objects() {
  std::vector<std::string> removed;
  std::set<std::string> bases;
  for (const char* env : {"XDG_RUNTIME_DIR", "TMPDIR"})
    if (const char* v = std::getenv(env); v && *v) bases.insert(v);
  bases.insert("/tmp");
  for (const auto& b : bases) sweep_dir(b, true, removed);
  sweep_dir("/dev/shm", false, removed);
  return removed;
}

}  // namespace ipcbench
