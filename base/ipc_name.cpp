#include "base/ipc_name.h"

#include <fcntl.h>
#include <mqueue.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <utility>
#include <vector>

#include "base/cleanup.h"
#include "base/error.h"
#include "base/fd.h"

namespace ipcbench {
namespace {

constexpr std::string_view kPrefix = "ipcbench-";

std::string read_small(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return {};
  char buf[1024];
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or 0. The command
// name (field 2) may hold spaces and parentheses, so fields are counted after the last ')'.
std::uint64_t start_time(pid_t pid) {
  std::string stat = read_small("/proc/" + std::to_string(pid) + "/stat");
  std::size_t p = stat.rfind(')');
  if (p == std::string::npos) return 0;
  std::size_t field = 2;
  for (std::size_t i = p + 1; i < stat.size(); ++i) {
    if (stat[i] != ' ') continue;
    if (++field == 22) {
      std::uint64_t v = 0;
      auto [end, ec] = std::from_chars(stat.data() + i + 1, stat.data() + stat.size(), v);
      return ec == std::errc() ? v : 0;
    }
  }
  return 0;
}

// The inode of a namespace of pid ("pid", "time"), or 0 when it cannot be read.
std::uint64_t ns_inode(pid_t pid, const std::string& kind) {
  std::string link = "/proc/" + std::to_string(pid) + "/ns/" + kind;
  char buf[64];
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf);
  std::string_view s(buf, n > 0 ? static_cast<std::size_t>(n) : 0);  // "pid:[4026531836]"
  if (!s.starts_with(kind + ":[") || !s.ends_with("]")) return 0;
  std::uint64_t v = 0;
  const char* first = s.data() + kind.size() + 2;
  auto [end, ec] = std::from_chars(first, s.data() + s.size() - 1, v);
  return ec == std::errc() && end == s.data() + s.size() - 1 ? v : 0;
}

// 32 bits of a hash (FNV-1a, then a final mix) of the boot id, the PID namespace and the
// time namespace (start times in /proc are shifted by the reader's time namespace), or 0
// when they cannot be read, or when /proc is not this PID namespace's (then /proc/<pid>
// would name other processes).
std::uint32_t scope_of(pid_t pid) {
  char self[32];
  ssize_t n = ::readlink("/proc/self", self, sizeof self - 1);
  if (n <= 0 || std::string_view(self, static_cast<std::size_t>(n)) != std::to_string(::getpid()))
    return 0;
  std::string id = read_small("/proc/sys/kernel/random/boot_id");
  std::uint64_t ns = ns_inode(pid, "pid"), time_ns = ns_inode(pid, "time");
  if (id.size() < 32 || ns == 0) return 0;  // kernels before 5.6 have no time namespace
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (char c : id + ":" + std::to_string(ns) + ":" + std::to_string(time_ns))
    h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  h ^= h >> 29;
  auto v = static_cast<std::uint32_t>(h ^ (h >> 32));
  return v ? v : 1;
}

// Parses one base-36 field (digits and lower-case letters) ending at `stop` (or, for '-',
// at the end of the name).
template <typename T>
bool b36_field(std::string_view& s, char stop, T* out) {
  std::size_t end = s.find(stop);
  if (end == std::string_view::npos) {
    if (stop != '-') return false;
    end = s.size();
  }
  std::string_view f = s.substr(0, end);
  if (f.empty() || f.size() > 13) return false;
  for (char c : f)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'))) return false;
  auto [p, ec] = std::from_chars(f.data(), f.data() + f.size(), *out, 36);
  if (ec != std::errc() || p != f.data() + f.size()) return false;
  s.remove_prefix(std::min(s.size(), end + 1));
  return true;
}

const char* kind_word(ipc_name::Kind k) {
  switch (k) {
    case ipc_name::Kind::kShm:
      return "shm";
    case ipc_name::Kind::kBoostMq:
      return "bmq";
    case ipc_name::Kind::kMqueue:
      return "mq";
    case ipc_name::Kind::kAmqp:
      return "amqp";
  }
  return "x";
}

}  // namespace

std::string RunStamp::text() const {
  auto b36 = [](std::uint64_t v) {
    char buf[16];  // 2^64 takes 13 digits in base 36
    return std::string(buf, std::to_chars(buf, buf + sizeof buf, v, 36).ptr);
  };
  return std::string(kPrefix) + b36(static_cast<std::uint64_t>(pid)) + "." + b36(start) + "." +
         b36(scope);
}

std::optional<RunStamp> RunStamp::parse(std::string_view name) {
  if (name.starts_with('/')) name.remove_prefix(1);
  if (!name.starts_with(kPrefix)) return std::nullopt;
  name.remove_prefix(kPrefix.size());
  RunStamp s;
  std::uint64_t pid = 0;
  if (!b36_field(name, '.', &pid) || !b36_field(name, '.', &s.start) ||
      !b36_field(name, '-', &s.scope))
    return std::nullopt;
  if (pid == 0 || pid > 0x7fffffff) return std::nullopt;
  s.pid = static_cast<pid_t>(pid);
  return s;
}

std::optional<RunStamp> RunStamp::of(pid_t pid) {
  RunStamp s;
  s.pid = pid;
  s.start = start_time(pid);
  if (s.start == 0) return std::nullopt;
  s.scope = scope_of(pid);
  return s;
}

RunStamp RunStamp::self() {
  // Read anew each time (a few small /proc reads, once per object made): a forked child
  // must not name its objects with its parent's stamp.
  RunStamp r = RunStamp::of(::getpid()).value_or(RunStamp{});
  r.pid = ::getpid();
  return r;
}

Fate fate_of(const RunStamp& s) {
  const RunStamp me = RunStamp::self();
  if (me.start == 0 || me.scope == 0) return Fate::kUnknown;
  if (s.scope != me.scope || s.start == 0) return Fate::kUnknown;
  std::uint64_t now = start_time(s.pid);
  if (now == s.start) return Fate::kAlive;
  if (now != 0) return Fate::kGone;  // the pid belongs to a process started at another time
  // No readable stat: gone only when the kernel says there is no such process.
  struct stat st {};
  if (::stat(("/proc/" + std::to_string(s.pid)).c_str(), &st) != 0 && errno == ENOENT)
    return Fate::kGone;
  return Fate::kUnknown;
}

namespace ipc_name {

std::string nth(const RunStamp& s, Kind kind, unsigned n) {
  std::string name = s.text() + "-" + kind_word(kind) + "-" + std::to_string(n);
  return kind == Kind::kMqueue ? "/" + name : name;
}

std::string next(Kind kind) {
  static std::atomic<unsigned> counters[4];
  return nth(RunStamp::self(), kind, counters[static_cast<int>(kind)]++);
}

std::string make_private_dir(const std::string& base) {
  const std::string stamp = RunStamp::self().text();
  std::string tmpl = base + "/" + stamp + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) throw SysError("mkdtemp " + tmpl, errno);  // 0700
  std::string path = buf.data();
  const std::string mark = stamp + "\n";
  UniqueFd fd(::open((path + "/" + kMarker).c_str(),
                     O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid() ||
      ::write(fd.get(), mark.data(), mark.size()) != static_cast<ssize_t>(mark.size())) {
    int err = errno;
    cleanup::remove_dir(path.c_str());
    throw SysError("writing the marker of " + path, err);
  }
  return path;
}

bool is_marked_dir(const std::string& path, const RunStamp& s) {
  std::string_view leaf(path);
  leaf.remove_prefix(leaf.rfind('/') == std::string_view::npos ? 0 : leaf.rfind('/') + 1);
  if (RunStamp::parse(leaf) != s) return false;
  UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  struct stat st {};
  if (!dir.valid() || ::fstat(dir.get(), &st) != 0 || st.st_uid != ::geteuid()) return false;
  UniqueFd mark(::openat(dir.get(), kMarker, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!mark.valid() || ::fstat(mark.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_uid != ::geteuid())
    return false;
  char buf[128];
  ssize_t n = ::read(mark.get(), buf, sizeof buf);
  return n > 0 && std::string_view(buf, static_cast<std::size_t>(n)) == s.text() + "\n";
}

OwnedNames::OwnedNames(Kind kind, std::initializer_list<const char*> suffixes) : kind_(kind) {
  const std::string base = next(kind);
  for (const char* suffix : suffixes) {
    names_.push_back(base + suffix);
    // shm objects and boost-mq queues (shm objects too) are files in /dev/shm.
    slots_.push_back(kind == Kind::kMqueue
                         ? cleanup::add_mqueue(names_.back().c_str())
                         : cleanup::add_path(("/dev/shm/" + names_.back()).c_str()));
  }
}

void OwnedNames::remove() noexcept {
  if (std::exchange(removed_, true)) return;
  for (std::size_t i = 0; i < names_.size(); ++i) {
    if (kind_ == Kind::kMqueue)
      ::mq_unlink(names_[i].c_str());
    else
      ::shm_unlink(("/" + names_[i]).c_str());
    cleanup::forget_path(std::exchange(slots_[i], -1));
  }
}

}  // namespace ipc_name
}  // namespace ipcbench
