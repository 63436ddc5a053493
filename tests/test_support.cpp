#include "tests/test_support.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cctype>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "base/ipc_name.h"
#include "bench/options.h"
#include "harness/sweep.h"

namespace ipcbench::testing_support {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i < n; i += 8) {
    std::uint64_t w = rng();
    std::memcpy(v.data() + i, &w, std::min<std::size_t>(8, n - i));
  }
  return v;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Scratch::Scratch() {
  static const bool swept = [] {
    sweep_stale_objects();  // scratch of test processes that were killed, among others
    return true;
  }();
  (void)swept;
  dir = ipc_name::make_private_dir(fs::temp_directory_path().string());
  fs::create_directories(dir / "tmp");
}

Scratch::~Scratch() { fs::remove_all(dir); }

pid_t spawn_captured(std::vector<std::string> argv, const Scratch& s) {
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::vector<std::string> env = {"TMPDIR=" + (s.dir / "tmp").string(),
                                  "XDG_RUNTIME_DIR=" + (s.dir / "tmp").string(),
                                  "PATH=/usr/bin:/bin"};
  // Sanitizer settings (suppressions of uninstrumented libraries), the broker and the
  // iceoryx deadlock scenario's switch (iceoryx_test.cpp) reach the child too.
  for (const char* name : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS", "LSAN_OPTIONS",
                           "IPCBENCH_AMQP_URL", "IPCBENCH_ICEORYX_DEADLOCK_SCENARIO"})
    if (const char* v = std::getenv(name)) env.push_back(std::string(name) + "=" + v);
  std::vector<char*> cenv;
  for (auto& e : env) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  std::string out = (s.dir / "stdout").string(), err = (s.dir / "stderr").string();
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  if (posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), cenv.data()) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

std::string untestable_reason(const std::string& needs) {
  if (needs.empty()) return "";
  const char* url = std::getenv("IPCBENCH_AMQP_URL");
  if (url && *url) return "";
  return "needs " + needs + "; IPCBENCH_AMQP_URL is not set (scripts/test.sh sets it)";
}

pid_t start(const std::vector<std::string>& args, const Scratch& s) {
  std::vector<std::string> argv = {IPCBENCH_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return spawn_captured(argv, s);
}

nlohmann::json results(const Scratch& s) {
  std::ifstream f(s.dir / "out.json");
  return nlohmann::json::parse(f);
}

int wait_exit_within(pid_t pid, std::chrono::seconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (std::chrono::steady_clock::now() > until) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(20ms);
  }
}

int wait_exit(pid_t pid) {
  int st = 0;
  if (::waitpid(pid, &st, 0) != pid) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

TransportSettings settings() { return transport_settings(SuiteOptions{}); }

// Live children of `parent` whose command line has `needle`.
std::set<pid_t> children_of(pid_t parent, const std::string& needle) {
  std::set<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    pid_t pid = static_cast<pid_t>(std::strtol(e.path().filename().c_str(), nullptr, 10));
    if (pid <= 0) continue;
    try {  // a process may vanish while we read it
      std::ifstream stat(e.path() / "stat");
      std::string line;
      if (!std::getline(stat, line)) continue;
      auto close = line.rfind(')');
      if (close == std::string::npos) continue;
      std::istringstream rest(line.substr(close + 2));
      char state;
      pid_t ppid = 0;
      rest >> state >> ppid;
      if (ppid != parent || state == 'Z') continue;
      std::ifstream cmd(e.path() / "cmdline");
      std::string c((std::istreambuf_iterator<char>(cmd)), {});
      if (c.find(needle) != std::string::npos) out.insert(pid);
    } catch (const std::exception&) {
    }
  }
  return out;
}

// Peer processes of a run (started with --peer).
std::set<pid_t> peers_of(pid_t parent) { return children_of(parent, "--peer"); }

pid_t wait_for_peer(pid_t parent, std::set<pid_t>& seen) {
  for (auto end = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < end;) {
    auto p = peers_of(parent);
    if (!p.empty()) {
      seen.insert(p.begin(), p.end());
      return *p.begin();
    }
    std::this_thread::sleep_for(1ms);
  }
  return -1;
}

bool all_gone(const std::set<pid_t>& pids) {
  for (auto end = std::chrono::steady_clock::now() + 3s; std::chrono::steady_clock::now() < end;) {
    bool any = false;
    for (pid_t p : pids) any |= ::kill(p, 0) == 0;
    if (!any) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

namespace {

// A thread's state letter and its time on the CPU in ns (/proc/<pid>/task/<tid>/stat and
// schedstat); state 0 when it cannot be read.
std::pair<char, std::uint64_t> thread_state(const fs::path& task) {
  std::ifstream stat(task / "stat");
  std::string text;
  std::getline(stat, text);
  const auto close = text.rfind(')');  // the name may hold spaces and parentheses
  std::uint64_t on_cpu = 0;
  std::ifstream(task / "schedstat") >> on_cpu;
  if (close == std::string::npos || close + 2 >= text.size()) return {0, 0};
  return {text[close + 2], on_cpu};
}

}  // namespace

char process_state(pid_t pid) { return thread_state("/proc/" + std::to_string(pid)).first; }

bool wait_until_settled(pid_t pid) {
  const fs::path tasks = "/proc/" + std::to_string(pid) + "/task";
  std::map<std::string, std::uint64_t> start;
  std::error_code ec;
  for (fs::directory_iterator it(tasks, ec); !ec && it != fs::directory_iterator();
       it.increment(ec))
    start[it->path().filename()] = thread_state(it->path()).second;
  const auto until = std::chrono::steady_clock::now() + 2s;
  while (std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(5ms);
    bool settled = true;
    for (const auto& [tid, was] : start) {
      const auto [state, on_cpu] = thread_state(tasks / tid);
      settled &= state == 0 || state == 'S' || on_cpu >= was + 2'000'000;  // 0: it ended
    }
    if (settled) return true;
  }
  return false;
}

std::string test_suffix(std::string name) {
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
}

std::vector<std::string> leftovers(const Scratch& s, pid_t run) {
  std::vector<std::string> out;
  // Ours only: a sanitizer runtime in a SIGKILLed peer leaves its own temp files.
  for (const auto& e : fs::directory_iterator(s.dir / "tmp"))
    if (e.path().filename().string().rfind("ipcbench-", 0) == 0) out.push_back(e.path());
  // /tmp too, files only: iceoryx's for the run's runtime (/tmp/<stamp>, <stamp>.lock);
  // a directory there is a test's own scratch.
  for (const char* objects : {"/dev/shm", "/dev/mqueue", "/tmp"}) {
    if (!fs::is_directory(objects)) continue;  // mqueue: mounted on some machines only
    for (const auto& e : fs::directory_iterator(objects))
      if (auto st = RunStamp::parse(e.path().filename().string());
          st && st->pid == run && !(objects == std::string("/tmp") && e.is_directory()))
        out.push_back(e.path());
  }
  return out;
}

}  // namespace ipcbench::testing_support
