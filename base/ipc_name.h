// The one definition of every name the suite gives an IPC object, and the proof a
// crashed run's leftovers carry.
//
// Every name starts with the creating process's stamp,
//   ipcbench-<pid>.<start>.<scope>   (each field in base 36: 0-9, a-z)
// pid: the process; start: its start time in clock ticks since boot (/proc/<pid>/stat,
// field 22); scope: 32 bits of a hash of the kernel's boot id and the inodes of the
// process's PID and time namespaces (/proc/<pid>/ns/pid, …/time: start times read through
// /proc are shifted by the reader's time namespace). A pid alone proves nothing: the kernel
// reuses pids, and a run in another PID namespace that shares /tmp or /dev/shm has pids of
// its own. With the stamp, a name's creator is provably gone only when it was made in this
// boot and these namespaces (the same scope) and /proc holds no process with that pid and
// start time. Where /proc is not this PID namespace's own, the scope is 0: nothing made
// there is ever swept. (Base 36 and a hashed scope keep the stamp short, 30 characters at most
// for any pid and ten years of uptime: a socket path in a run directory must fit in 108
// bytes. Two scopes collide with odds of 1 in 2^32.)
//
// What carries the stamp:
//   run directory   <base>/<stamp>-XXXXXX, 0700, with a marker file (kMarker)
//                   written first that holds the stamp again; the sweep removes a
//                   directory only when both agree (so a user's look-alike directory, or
//                   one whose marker is missing, is never touched);
//   test scratch    <base>/<stamp>-XXXXXX, made and marked the same way;
//   shm objects     /dev/shm/<stamp>-shm-<n> (shm-*), <stamp>-bmq-<n>-{down,up} (boost-mq);
//   POSIX queues    /<stamp>-mq-<n>-{down,up};
//   broker queues   <stamp>-amqp-<n>-{req,rep} (the broker expires them on its own);
//   iceoryx runtime /tmp/<stamp> (socket) and /tmp/<stamp>.lock, which iceoryx makes for
//                   the process's runtime, named by its stamp (transports/iceoryx);
//   RouDi's proof   /tmp/<stamp>.roudi: which files the RouDi this process started made
//                   (base/roudi_files.h), so that a sweep may remove them.
// Files inside a run directory (sockets, FIFOs, mapped files) need no stamp: the
// directory is removed whole.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ipcbench {

struct RunStamp {
  pid_t pid = 0;
  std::uint64_t start = 0;  // 0: unknown (no /proc)
  std::uint32_t scope = 0;  // 0: unknown (no boot id or PID namespace to read)

  std::string text() const;  // "ipcbench-<pid>.<start>.<scope>"
  bool operator==(const RunStamp&) const = default;

  // The stamp a name begins with ("<stamp>-…" or the stamp alone), or nullopt when the
  // name is not one of the suite's. A leading '/' (queue names) is skipped.
  static std::optional<RunStamp> parse(std::string_view name);
  // Process pid's stamp as /proc shows it now, or nullopt when there is no such process.
  static std::optional<RunStamp> of(pid_t pid);
  // This process's stamp.
  static RunStamp self();
};

// Whether the process that made a name with this stamp is gone.
//   kAlive:   it runs (same pid and start time);
//   kGone:    made in this boot and PID namespace (scope), and no process has that pid
//             with that start time (exited, or its pid now belongs to another);
//   kUnknown: another scope, or this process cannot read its own facts:
//             nothing can be proven, so nothing is removed.
enum class Fate { kAlive, kGone, kUnknown };
Fate fate_of(const RunStamp& s);

namespace ipc_name {

inline constexpr const char* kMarker = ".ipcbench-run";

// The kinds of object named outside a run directory; each counts its names from 0.
enum class Kind { kShm, kBoostMq, kMqueue, kAmqp };
// "<stamp>-<kind>-<n>" for the next n of that kind; a POSIX queue's name starts with '/'.
std::string next(Kind kind);
// The name of kind's n-th object made by the process with this stamp (what next() gave).
std::string nth(const RunStamp& s, Kind kind, unsigned n);

// Owns the names of one object outside the run directory (a shm object: suffix "";
// a queue pair: "-down", "-up"): all of them "<next(kind)><suffix>". The names are
// registered with cleanup (base/cleanup.h) before the caller creates anything, so a
// signal at any point removes what exists; remove() (or the destructor) unlinks every
// name, registered or not (a full table must not turn into a leak; unlinking a name that
// was never created does no harm), and unregisters it. Only shm, boost-mq and POSIX
// queue names: a broker's queues are deleted through the broker, which also expires them.
class OwnedNames {
 public:
  OwnedNames(Kind kind, std::initializer_list<const char*> suffixes);
  ~OwnedNames() { remove(); }
  OwnedNames(const OwnedNames&) = delete;
  OwnedNames& operator=(const OwnedNames&) = delete;
  const std::string& operator[](std::size_t i) const { return names_.at(i); }
  const std::vector<std::string>& all() const { return names_; }
  // Unlinks and unregisters every name; later calls do nothing. Never throws.
  void remove() noexcept;

 private:
  Kind kind_;
  std::vector<std::string> names_;
  std::vector<int> slots_;
  bool removed_ = false;
};

// Makes "<base>/<stamp>-XXXXXX" 0700 with its marker inside, and returns the path.
// Throws SysError.
std::string make_private_dir(const std::string& base);
// True when path is a directory (not a link) of this user whose name and marker carry
// the same stamp.
bool is_marked_dir(const std::string& path, const RunStamp& s);

}  // namespace ipc_name
}  // namespace ipcbench
