#include "base/run_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "base/cleanup.h"
#include "base/error.h"
#include "base/ipc_name.h"

namespace ipcbench {
namespace {

bool usable_dir(const char* p) {
  struct stat st {};
  return p && *p && ::stat(p, &st) == 0 && S_ISDIR(st.st_mode) && ::access(p, W_OK | X_OK) == 0;
}

}  // namespace

std::string run_dir_base() {
  for (const char* env : {"XDG_RUNTIME_DIR", "TMPDIR"}) {
    const char* v = std::getenv(env);
    if (usable_dir(v)) return v;
  }
  return "/tmp";
}

RunDir::RunDir() {
  path_ = ipc_name::make_private_dir(run_dir_base());
  slot_ = cleanup::add_dir(path_.c_str());
}

RunDir::~RunDir() {
  cleanup::remove_dir(path_.c_str());
  cleanup::forget_path(slot_);
}

std::string RunDir::make_path(std::string_view stem) {
  return path_ + "/" + std::string(stem) + "-" + std::to_string(next_++);
}

}  // namespace ipcbench
