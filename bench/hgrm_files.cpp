#include "bench/hgrm_files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <vector>

#include "base/error.h"
#include "harness/hgrm.h"

namespace ipcbench::hgrm_files {
namespace {

// The cells run one after another on the main thread.
std::string g_dir;
std::string g_cell;
int g_repetition = 0;              // of the current cell, from 1
std::vector<std::string> g_saved;  // the files of the current call
struct Calls {
  std::int64_t last_iterations = 0;
  int repetitions = 0;
};
std::map<std::string, Calls> g_calls;  // cell name -> its calls so far

std::string file_stem(std::string_view cell, std::string_view metric) {
  std::string s;
  for (char c : cell)
    s +=
        (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') ? c : '_';
  return s + "." + std::string(metric);
}

}  // namespace

void use_directory(const std::string& dir) {
  struct stat st {};
  std::string writable = dir;
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      throw std::invalid_argument("--hgrm-dir: '" + dir + "' is not a directory");
  } else if (errno == ENOENT) {
    const auto slash = dir.find_last_of('/', dir.find_last_not_of('/'));
    writable = slash == std::string::npos ? "." : slash == 0 ? "/" : dir.substr(0, slash);
    if (::stat(writable.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      throw std::invalid_argument("--hgrm-dir: '" + dir + "' cannot be made: '" + writable +
                                  "' is not a directory");
  } else {
    throw std::invalid_argument("--hgrm-dir: '" + dir + "': " + std::strerror(errno));
  }
  if (::access(writable.c_str(), W_OK | X_OK) != 0)
    throw std::invalid_argument("--hgrm-dir: '" + writable + "' is not writable");
  g_dir = dir;
}

void make_directory() {
  if (!g_dir.empty() && ::mkdir(g_dir.c_str(), 0755) != 0 && errno != EEXIST)
    throw SysError("--hgrm-dir: mkdir " + g_dir, errno);
}

Cell::Cell(std::string name, const benchmark::State& state) : state_(state) {
  if (g_dir.empty()) return;  // no --hgrm-dir: nothing to name or number
  const std::int64_t iterations = state.max_iterations;
  Calls& c = g_calls[name];
  if (c.repetitions == 0 || iterations <= c.last_iterations) ++c.repetitions;
  c.last_iterations = iterations;
  g_repetition = c.repetitions;
  g_cell = std::move(name);
  g_saved.clear();
}

Cell::~Cell() {
  // A failed call's repetition has no histogram; an earlier, shorter call of the same
  // repetition may have written one.
  if (state_.error_occurred())
    for (const std::string& p : g_saved) ::unlink(p.c_str());
  g_saved.clear();
  g_cell.clear();
}

void save(std::string_view metric, const Histogram& h) {
  if (g_dir.empty() || g_cell.empty()) return;
  const std::string path = g_dir + "/" + file_stem(g_cell, metric) +
                           (g_repetition > 1 ? ".rep" + std::to_string(g_repetition) : "") +
                           ".hgrm";
  g_saved.push_back(path);
  errno = 0;
  std::ofstream f(path, std::ios::trunc);
  write_hgrm(f, h);
  f.close();
  if (!f) throw SysError("--hgrm-dir: cannot write " + path, errno != 0 ? errno : EIO);
}

}  // namespace ipcbench::hgrm_files
