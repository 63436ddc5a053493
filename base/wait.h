// Waiting on a word in memory that another process (or thread) changes: the one
// definition of the spin pause and the futex calls, for the rings (transports/ring.cpp)
// and the machine floors (bench/floors.cpp), so both pay the same for a hand-off.
//
// The futex calls are the shared (not FUTEX_PRIVATE) kind: the word may live in memory
// mapped by several processes. None of these throw; a failed FUTEX_WAIT is reported as
// "not woken" and the caller re-reads its word, as it must after any wait.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>

namespace ipcbench {

// One pass of a spin loop: tells the CPU that this core is busy-waiting. x86 `pause` lets
// a sibling hyperthread run and spares the pipeline flush when the awaited line changes;
// aarch64 `yield` is a hint of the same kind; elsewhere only a compiler barrier.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#else
  asm volatile("" ::: "memory");
#endif
}

// Sleeps while `word` holds `expected`, until futex_wake on it or a signal. True when a
// wake ended the sleep; false when the word had already changed or a signal came.
inline bool futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected) {
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT, expected,
                   nullptr, nullptr, 0) == 0;
}

// The same, for at most `timeout` (relative); false also when the timeout ended it.
inline bool futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                       std::chrono::nanoseconds timeout) {
  const timespec ts{static_cast<std::time_t>(timeout.count() / 1'000'000'000),
                    static_cast<long>(timeout.count() % 1'000'000'000)};
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT, expected, &ts,
                   nullptr, 0) == 0;
}

// Wakes one side sleeping in futex_wait on `word` (none sleeping: a system call that does
// nothing, so callers that can tell nobody sleeps skip it).
inline void futex_wake(std::atomic<std::uint32_t>& word) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

}  // namespace ipcbench
