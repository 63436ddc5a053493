// Facts about the machine a run measured, for the results' context block.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace ipcbench {

// Key/value pairs: kernel, cpu_model, cpu_governor, clocksource, dev_shm_bytes, libc, …
// A value that cannot be read is "unavailable", never omitted.
std::vector<std::pair<std::string, std::string>> machine_context();

// The type of the file system holding path ("tmpfs", "ext4", …) from the mount table:
// the longest mount point above it. "unavailable" when it cannot be told.
std::string file_system_of(const std::string& path);

}  // namespace ipcbench
