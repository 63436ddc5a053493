// Noticing that the process on the other end of a shared-memory link has died.
//
// A pidfd becomes readable when its process exits (even before it is reaped), so a
// spinning or sleeping side can ask "is my partner still there?" with one non-blocking
// poll, without races on pid reuse.
#pragma once

#include <sys/types.h>

#include "base/fd.h"

namespace ipcbench {

class PeerWatch {
 public:
  PeerWatch() = default;
  explicit PeerWatch(pid_t pid);  // throws SysError if the process does not exist
  bool watching() const { return fd_.valid(); }
  // True once the watched process has exited. One poll() system call.
  bool gone() const;
  pid_t pid() const { return pid_; }
  // Readable (POLLIN) once the process has exited: for a thread that blocks in poll().
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  pid_t pid_ = -1;
};

}  // namespace ipcbench
