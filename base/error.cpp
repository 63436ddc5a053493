#include "base/error.h"

#include <cstring>

namespace ipcbench {

SysError::SysError(const std::string& what, int err)
    : std::runtime_error(what + ": " + std::strerror(err)), err_(err) {}

long check_sys(long rc, const std::string& what) {
  if (rc == -1) throw SysError(what, errno);
  return rc;
}

}  // namespace ipcbench
