// Errors at the system-call boundary.
//
// Every failing system call becomes one SysError that carries errno and a short context
// ("connect /run/ipcbench-…/uds-1.sock"). Nothing below main() prints or exits: errors
// travel up as exceptions and the runner turns them into one error row per cell.
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>

namespace ipcbench {

class SysError : public std::runtime_error {
 public:
  SysError(const std::string& what, int err);
  int code() const noexcept { return err_; }

 private:
  int err_;
};

// A protocol or integrity failure (bad header, wrong sequence, peer closed mid-message).
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws SysError(what, errno) when rc == -1; returns rc otherwise.
long check_sys(long rc, const std::string& what);

}  // namespace ipcbench
