#include "harness/context.h"

#include <gnu/libc-version.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>

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

}  // namespace

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
  c.emplace_back("libc", std::string("glibc ") + gnu_get_libc_version());
  c.emplace_back("pipe_max_size", first_line("/proc/sys/fs/pipe-max-size"));
  c.emplace_back("net_core_wmem_default", first_line("/proc/sys/net/core/wmem_default"));
  return c;
}

}  // namespace ipcbench
