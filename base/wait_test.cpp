#include "base/wait.h"

#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

namespace ipcbench {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// The scheduler state letter of one of our threads ('S': asleep), from /proc.
char thread_state(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() ? '?' : stat[paren + 2];
}

// Starts a thread that sleeps in `wait` and returns once the kernel has it asleep.
template <class Wait>
std::thread sleeper(Wait wait, std::atomic<bool>& woken) {
  std::atomic<pid_t> tid{0};
  std::thread th([&tid, &woken, wait] {
    tid = static_cast<pid_t>(::syscall(SYS_gettid));
    woken = wait();
  });
  while (tid == 0) std::this_thread::yield();
  const auto give_up = Clock::now() + std::chrono::seconds(10);
  while (thread_state(tid) != 'S' && Clock::now() < give_up)
    std::this_thread::sleep_for(milliseconds(1));
  return th;
}

TEST(Wait, FutexWaitReturnsAtOnceWhenTheWordAlreadyChanged) {
  std::atomic<std::uint32_t> word{1};
  const auto t0 = Clock::now();
  EXPECT_FALSE(futex_wait(word, 0));
  EXPECT_FALSE(futex_wait(word, 0, std::chrono::seconds(5)));
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(1));
}

TEST(Wait, FutexWaitEndsAtItsTimeout) {
  std::atomic<std::uint32_t> word{0};
  const auto t0 = Clock::now();
  EXPECT_FALSE(futex_wait(word, 0, milliseconds(30)));
  const auto took = Clock::now() - t0;
  EXPECT_GE(took, milliseconds(30));
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST(Wait, FutexWakeEndsASleep) {
  for (bool bounded : {false, true}) {
    std::atomic<std::uint32_t> word{0};
    std::atomic<bool> woken{false};
    std::thread th = sleeper(
        [&word, bounded] {
          return bounded ? futex_wait(word, 0, std::chrono::seconds(30)) : futex_wait(word, 0);
        },
        woken);
    const auto t0 = Clock::now();
    futex_wake(word);  // the word stays 0: only the wake can end this sleep
    th.join();
    EXPECT_TRUE(woken) << "bounded=" << bounded;
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(10)) << "bounded=" << bounded;
  }
}

TEST(Wait, CpuRelaxReturns) {
  for (int i = 0; i < 1000; ++i) cpu_relax();
}

}  // namespace
}  // namespace ipcbench
