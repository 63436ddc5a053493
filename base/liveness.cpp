#include "base/liveness.h"

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/error.h"

namespace ipcbench {

PeerWatch::PeerWatch(pid_t pid)
    : fd_(static_cast<int>(check_sys(::syscall(SYS_pidfd_open, pid, 0), "pidfd_open"))),
      pid_(pid) {}

bool PeerWatch::gone() const {
  if (!fd_.valid()) return false;
  pollfd p{fd_.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

}  // namespace ipcbench
