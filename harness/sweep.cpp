#include "harness/sweep.h"

#include <dirent.h>
#include <mqueue.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <set>

#include "base/cleanup.h"
#include "base/ipc_name.h"

namespace ipcbench {
namespace {

// The queues a run made count from 0; a run makes far fewer links than this.
constexpr unsigned kMaxQueuesTried = 4096;
constexpr long kMqueueMagic = 0x19800202;  // statfs f_type of the mqueue file system

struct Sweep {
  std::vector<std::string> removed;
  std::vector<RunStamp> dead;  // runs found gone, whose queue names to try

  // Whether the run that stamped s is gone (and remembers it).
  bool gone(const RunStamp& s) {
    if (fate_of(s) != Fate::kGone) return false;
    if (std::find(dead.begin(), dead.end(), s) == dead.end()) dead.push_back(s);
    return true;
  }

  void dirs(const std::string& base) {
    DIR* d = ::opendir(base.c_str());
    if (!d) return;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      auto s = RunStamp::parse(name);
      if (!s) continue;  // cheap test first: most entries are not ours
      std::string path = base + "/" + name;
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() ||
          !ipc_name::is_marked_dir(path, *s) || !gone(*s))
        continue;
      if (cleanup::remove_dir(path.c_str(), ipc_name::kMarker)) removed.push_back(path);
    }
    ::closedir(d);
  }

  void files(const std::string& dir, bool queues) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      auto s = RunStamp::parse(name);
      if (!s) continue;
      std::string path = dir + "/" + name;
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid() ||
          !gone(*s))
        continue;
      bool unlinked = queues ? ::mq_unlink(("/" + name).c_str()) == 0 : ::unlink(path.c_str()) == 0;
      if (unlinked) removed.push_back(queues ? "/" + name : path);
    }
    ::closedir(d);
  }

  // iceoryx's files for a process's runtime, named by the process's stamp
  // (transports/iceoryx): the socket /tmp/<stamp> and the lock file /tmp/<stamp>.lock.
  // Nothing else: a name must be a stamp alone, or a stamp and ".lock".
  void iceoryx_runtimes(const std::string& dir) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      const bool lock = name.size() > 5 && name.compare(name.size() - 5, 5, ".lock") == 0;
      const std::string stem = lock ? name.substr(0, name.size() - 5) : name;
      auto s = RunStamp::parse(stem);
      if (!s || s->text() != stem) continue;
      std::string path = dir + "/" + name;
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0 || !(lock ? S_ISREG(st.st_mode) : S_ISSOCK(st.st_mode)) ||
          st.st_uid != ::geteuid() || !gone(*s))
        continue;
      if (::unlink(path.c_str()) == 0) removed.push_back(path);
    }
    ::closedir(d);
  }

  // A leaked queue keeps charging RLIMIT_MSGQUEUE, so every later run's posix-mq would
  // fail: where queues cannot be listed, try each dead run's names.
  void queues_of_dead_runs() {
    for (const RunStamp& s : dead)
      for (unsigned n = 0; n < kMaxQueuesTried; ++n)
        for (const char* dir : {"-down", "-up"}) {
          std::string q = ipc_name::nth(s, ipc_name::Kind::kMqueue, n) + dir;
          if (::mq_unlink(q.c_str()) == 0) removed.push_back(q);
        }
  }
};

}  // namespace

std::vector<std::string> sweep_stale_objects(const std::vector<std::string>& dir_bases,
                                             const std::string& shm_dir,
                                             const std::string& iceoryx_dir) {
  Sweep s;
  for (const auto& b : dir_bases) s.dirs(b);
  s.files(shm_dir, false);
  s.iceoryx_runtimes(iceoryx_dir);
  struct statfs fs {};
  if (::statfs("/dev/mqueue", &fs) == 0 && fs.f_type == kMqueueMagic)
    s.files("/dev/mqueue", true);
  else
    s.queues_of_dead_runs();
  return s.removed;
}

std::vector<std::string> sweep_stale_objects() {
  std::set<std::string> bases;
  for (const char* env : {"XDG_RUNTIME_DIR", "TMPDIR"})
    if (const char* v = std::getenv(env); v && *v) bases.insert(v);
  bases.insert("/tmp");
  return sweep_stale_objects({bases.begin(), bases.end()}, "/dev/shm", "/tmp");
}

}  // namespace ipcbench
