// The run's private directory: every socket file, FIFO and mapped file lives here.
//
// Created 0700 as <base>/ipcbench-<pid>-XXXXXX, where <base> is $XDG_RUNTIME_DIR when it
// is a writable directory, else $TMPDIR, else /tmp. The destructor removes every path
// handed out and the directory itself; the same paths are registered with cleanup so a
// signal removes them too.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ipcbench {

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
  struct Entry {
    std::string path;
    int slot;
  };
  std::vector<Entry> entries_;
  unsigned next_ = 0;
};

}  // namespace ipcbench
