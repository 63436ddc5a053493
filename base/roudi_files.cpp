#include "base/roudi_files.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "base/fd.h"

namespace ipcbench::roudi_files {
namespace {

constexpr const char* kHeader = "ipcbench roudi proof 1";

}  // namespace

std::vector<std::string> names(const Places& at) {
  std::vector<std::string> n = {at.tmp + "/roudi", at.tmp + "/roudi.lock",
                                at.tmp + "/iox-unique-roudi.lock", at.shm + "/iceoryx_mgmt"};
  // getgrgid_r: the iceoryx keeper thread calls this too. A group with many members
  // needs more room than the first try gives.
  group g{}, *found = nullptr;
  std::vector<char> buf(16384);
  int err;
  while ((err = ::getgrgid_r(::getegid(), &g, buf.data(), buf.size(), &found)) == ERANGE &&
         buf.size() < (std::size_t{1} << 24))
    buf.resize(buf.size() * 4);
  if (err == 0 && found && found->gr_name && *found->gr_name &&
      std::strchr(found->gr_name, '/') == nullptr)
    n.push_back(at.shm + "/" + found->gr_name);
  return n;
}

std::string socket_path(const Places& at) { return names(at)[0]; }
std::string unique_lock_path(const Places& at) { return names(at)[2]; }

std::string proof_path(const RunStamp& runner, const Places& at) {
  return at.tmp + "/" + runner.text() + kProofSuffix;
}

std::string write_proof(const RunStamp& roudi, const Places& at) {
  std::ostringstream text;
  text << kHeader << "\nroudi " << roudi.text() << "\n";
  for (const std::string& n : names(at)) {
    struct stat st {};
    if (::lstat(n.c_str(), &st) == 0)
      text << "file " << st.st_dev << " " << st.st_ino << " " << n << "\n";
  }
  const std::string path = proof_path(RunStamp::self(), at);
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) throw SysError("create " + path, errno);
  const std::string s = text.str();
  errno = 0;
  if (::write(fd.get(), s.data(), s.size()) != static_cast<ssize_t>(s.size())) {
    const int err = errno ? errno : EIO;
    ::unlink(path.c_str());
    throw SysError("write " + path, err);
  }
  return path;
}

std::optional<Proof> read_proof(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  struct stat st {};
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_uid != ::geteuid() || st.st_size > 64 * 1024)
    return std::nullopt;
  std::string text(static_cast<std::size_t>(st.st_size), '\0');
  if (::read(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    return std::nullopt;
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line) || line != kHeader) return std::nullopt;
  Proof p;
  std::string word, stamp;
  if (!std::getline(in, line)) return std::nullopt;
  std::istringstream first(line);
  if (!(first >> word >> stamp) || word != "roudi") return std::nullopt;
  auto s = RunStamp::parse(stamp);
  if (!s || s->text() != stamp) return std::nullopt;
  p.roudi = *s;
  while (std::getline(in, line)) {
    std::istringstream l(line);
    Recorded r;
    unsigned long long dev = 0, ino = 0;
    if (!(l >> word >> dev >> ino >> r.path) || word != "file") return std::nullopt;
    r.dev = static_cast<dev_t>(dev);
    r.ino = static_cast<ino_t>(ino);
    p.files.push_back(std::move(r));
  }
  return p;
}

bool answers(const Places& at) {
  UniqueFd s(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) return false;
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  const std::string path = socket_path(at);
  if (path.size() >= sizeof a.sun_path) return false;
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return ::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

std::vector<std::string> remove_as_proven(const Proof& proof, const Places& at) {
  std::vector<std::string> removed;
  if (answers(at)) return removed;
  // Held while we remove, and the lock file removed last: a RouDi starting meanwhile
  // opens this file, fails to take it and says another RouDi runs, instead of making its
  // names again under us.
  const std::string unique = unique_lock_path(at);
  UniqueFd lock(::open(unique.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (lock.valid() && ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) return removed;
  const std::vector<std::string> known = names(at);
  auto remove = [&](const Recorded& r) {
    struct stat st {};
    if (::lstat(r.path.c_str(), &st) != 0 || st.st_uid != ::geteuid() || st.st_dev != r.dev ||
        st.st_ino != r.ino || S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode))
      return;
    if (::unlink(r.path.c_str()) == 0) removed.push_back(r.path);
  };
  for (const Recorded& r : proof.files)
    if (r.path != unique && std::find(known.begin(), known.end(), r.path) != known.end()) remove(r);
  for (const Recorded& r : proof.files)
    if (r.path == unique) remove(r);
  return removed;
}

}  // namespace ipcbench::roudi_files
