// The run's private directory: every socket file, FIFO and mapped file lives here.
//
// Created 0700 as <base>/<stamp>-XXXXXX (base/ipc_name.h), where <base> is
// $XDG_RUNTIME_DIR when it is a writable directory, else $TMPDIR, else /tmp. The destructor removes
// whatever is in it and the directory itself; the directory is registered with cleanup so a signal
// does the same, however many paths a long run handed out.
#pragma once

#include <string>
#include <string_view>

namespace ipcbench {

// <base>: where every run's directory is made.
std::string run_dir_base();

class RunDir {
 public:
  RunDir();
  ~RunDir();
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;

  const std::string& path() const { return path_; }

  // A fresh, unique path "<dir>/<stem>-<n>" (nothing is created). It is removed when the
  // RunDir goes away, whatever the owner did with it.
  std::string make_path(std::string_view stem);

 private:
  std::string path_;
  int slot_ = -1;
  unsigned next_ = 0;
};

}  // namespace ipcbench
