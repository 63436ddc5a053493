// Removing what crashed runs left behind.
//
// A run killed with SIGKILL cannot clean up; its peers die with it (PR_SET_PDEATHSIG),
// but its private directory and any shared-memory object or queue it had not yet
// unlinked stay. Every such object is named by base/ipc_name.h, with the creator's
// stamp, and the sweep removes one only with proof that this suite made it and that its
// maker is gone (Fate::kGone): a name that parses, an owner that is this user, a regular
// file or a directory (never a symbolic link, never followed), and for a directory a
// marker inside that repeats the stamp. Anything else (a user's look-alike directory, a
// live run, a run of another boot or PID namespace) is left alone.
//
// POSIX message queues can be listed only where /dev/mqueue is mounted; elsewhere the
// queue names of every dead run found (by its directory or its /dev/shm objects) are
// tried, as ipc_name::nth gives them. Broker queues expire in the broker (x-expires).
#pragma once

#include <string>
#include <vector>

namespace ipcbench {

// Sweeps the run-directory bases ($XDG_RUNTIME_DIR, $TMPDIR, /tmp), /dev/shm, the
// queues, the files iceoryx made in /tmp for a process's runtime (named by its stamp), and
// the files of a RouDi a dead run started, as that run's proof allows
// (base/roudi_files.h). Returns the names removed. Call it only before a real run.
std::vector<std::string> sweep_stale_objects();

// The same over given places (for tests): RouDi's names are looked for in iceoryx_dir
// and shm_dir, as in /tmp and /dev/shm.
std::vector<std::string> sweep_stale_objects(const std::vector<std::string>& dir_bases,
                                             const std::string& shm_dir,
                                             const std::string& iceoryx_dir = "");

}  // namespace ipcbench
