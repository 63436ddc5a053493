#include "harness/sweep.h"

#include <dirent.h>
#include <mqueue.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string_view>

#include "base/cleanup.h"
#include "base/ipc_name.h"
#include "base/roudi_files.h"

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
  // (transports/iceoryx): the socket /tmp/<stamp> and the lock file /tmp/<stamp>.lock; and
  // the proof /tmp/<stamp>.roudi a runner that started RouDi wrote (base/roudi_files.h).
  // Nothing else: a name must be a stamp alone, or a stamp and ".lock" or ".roudi".
  void iceoryx_runtimes(const std::string& dir, const std::string& shm_dir) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return;
    auto ends = [](const std::string& name, std::string_view suffix) {
      return name.size() > suffix.size() &&
             name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    std::vector<std::string> proofs;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      const bool lock = ends(name, ".lock");
      const bool proof = ends(name, roudi_files::kProofSuffix);
      const std::size_t cut = lock ? 5 : proof ? std::strlen(roudi_files::kProofSuffix) : 0;
      const std::string stem = name.substr(0, name.size() - cut);
      auto s = RunStamp::parse(stem);
      if (!s || s->text() != stem) continue;
      std::string path = dir + "/" + name;
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0 ||
          !(lock || proof ? S_ISREG(st.st_mode) : S_ISSOCK(st.st_mode)) ||
          st.st_uid != ::geteuid() || !gone(*s))
        continue;
      if (proof)
        proofs.push_back(path);  // after the loop: it removes files in this directory
      else if (::unlink(path.c_str()) == 0)
        removed.push_back(path);
    }
    ::closedir(d);
    for (const std::string& path : proofs) roudi_left(path, {.tmp = dir, .shm = shm_dir});
  }

  // A dead runner's proof: RouDi's files go when that RouDi is gone too and they are the
  // files it made; the proof goes with them. It stays while that RouDi lives (or its fate
  // cannot be told); once another RouDi answers, it proves nothing any more and goes.
  void roudi_left(const std::string& proof_path, const roudi_files::Places& at) {
    const auto proof = roudi_files::read_proof(proof_path);
    if (proof) {
      if (fate_of(proof->roudi) != Fate::kGone) return;
      for (std::string& r : roudi_files::remove_as_proven(*proof, at))  // none if one answers
        removed.push_back(std::move(r));
    }
    if (::unlink(proof_path.c_str()) == 0) removed.push_back(proof_path);
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
  s.iceoryx_runtimes(iceoryx_dir, shm_dir);
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
