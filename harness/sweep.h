// Removing what crashed runs left behind.
//
// A run killed with SIGKILL cannot clean up; its peers die with it (PR_SET_PDEATHSIG),
// but its private directory and any shared-memory object it had not yet unlinked stay.
// Every such name carries the creating pid ("ipcbench-<pid>-…"), so the next run removes
// the ones whose pid no longer exists and that belong to the same user. A live run's
// objects are never touched. POSIX message queues cannot be listed unless /dev/mqueue is
// mounted; for every dead run whose directory is found, its queue names are tried.
#pragma once

#include <string>
#include <vector>

namespace ipcbench {

// Returns the paths removed.
std::vector<std::string> sweep_stale_objects();

}  // namespace ipcbench
