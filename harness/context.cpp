#include "harness/context.h"

#include <gnu/libc-version.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "base/run_dir.h"

namespace ipcbench {
namespace {

std::string first_line(const char* path) {
  std::ifstream f(path);
  std::string line;
  if (f && std::getline(f, line) && !line.empty()) return line;
  return "unavailable";
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto p = line.find(':');
      if (p != std::string::npos) return line.substr(line.find_first_not_of(' ', p + 1));
    }
  }
  return "unavailable";
}

// A mount table field: spaces, tabs, newlines and backslashes come octal-escaped.
std::string unescape_mount_field(const std::string& f) {
  std::string out;
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (f[i] == '\\' && i + 3 < f.size()) {  // \NNN
      out += static_cast<char>(std::strtol(f.substr(i + 1, 3).c_str(), nullptr, 8));
      i += 3;
    } else {
      out += f[i];
    }
  }
  return out;
}

}  // namespace

std::string file_system_of(const std::string& path) {
  char real[PATH_MAX];
  if (::realpath(path.c_str(), real) == nullptr) return "unavailable";
  const std::string target = real;
  std::ifstream mounts("/proc/self/mounts");
  std::string line, best_type = "unavailable";
  std::size_t best_len = 0;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string dev, dir, type;
    if (!(fields >> dev >> dir >> type)) continue;
    dir = unescape_mount_field(dir);
    const bool above =
        dir == "/" || target == dir || (target.starts_with(dir) && target[dir.size()] == '/');
    // >=: a later mount on the same point hides the earlier one.
    if (above && dir.size() >= best_len) best_len = dir.size(), best_type = type;
  }
  return best_type;
}

std::vector<std::pair<std::string, std::string>> machine_context() {
  std::vector<std::pair<std::string, std::string>> c;
  utsname u{};
  if (::uname(&u) == 0)
    c.emplace_back("kernel",
                   std::string(u.sysname) + " " + u.release + " " + u.version + " " + u.machine);
  c.emplace_back("cpu_model", cpu_model());
  c.emplace_back("cpus_online", std::to_string(::sysconf(_SC_NPROCESSORS_ONLN)));
  c.emplace_back("cpu_governor",
                 first_line("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"));
  c.emplace_back("clocksource",
                 first_line("/sys/devices/system/clocksource/clocksource0/current_clocksource"));
  struct statvfs sv {};
  if (::statvfs("/dev/shm", &sv) == 0) {
    c.emplace_back("dev_shm_bytes", std::to_string(sv.f_blocks * sv.f_frsize));
    c.emplace_back("dev_shm_free_bytes", std::to_string(sv.f_bavail * sv.f_frsize));
  } else {
    c.emplace_back("dev_shm_bytes", "unavailable");
  }
  const std::string base = run_dir_base();
  c.emplace_back("run_dir_base", base);
  c.emplace_back("run_dir_fs", file_system_of(base));
  c.emplace_back("libc", std::string("glibc ") + gnu_get_libc_version());
  c.emplace_back("pipe_max_size", first_line("/proc/sys/fs/pipe-max-size"));
  c.emplace_back("net_core_wmem_default", first_line("/proc/sys/net/core/wmem_default"));
  return c;
}

}  // namespace ipcbench
