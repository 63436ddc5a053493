// A per-cell watchdog: if no progress is reported for `timeout`, the peer is killed
// (SIGKILL). Progress is a counter the measuring loop stores (a plain relaxed store per
// message); while it moves, the deadline moves with it, so a long but live cell is
// never cut short, and a stalled one is within one timeout.
//
// Killing the peer is what unblocks the benchmark side, whatever it is blocked in: the
// kernel closes the peer's descriptors, so a read sees EOF and a write sees EPIPE, and
// the cell ends with an error instead of hanging the matrix. A link that waits on
// something else (a broker, a stranger's connection) is given an extra `on_fire` to
// unblock it.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

namespace ipcbench {

class Watchdog {
 public:
  Watchdog();
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // on_fire runs on the watchdog's thread after killing the peer (if pid > 0), holding
  // the watchdog's lock: it must not block, throw, or call arm/disarm. It never runs
  // after disarm() or the next arm() has returned.
  void arm(pid_t pid, std::chrono::steady_clock::duration timeout,
           std::function<void()> on_fire = {});
  void disarm();
  // Called by the measuring thread as it goes; costs one relaxed store.
  void progress(std::uint64_t n) { progress_.store(n, std::memory_order_relaxed); }
  // True when the last armed deadline passed and the peer was killed.
  bool fired() const { return fired_.load(); }

 private:
  void loop();
  std::mutex mu_;
  std::condition_variable cv_;
  pid_t pid_ = -1;
  std::function<void()> on_fire_;
  std::chrono::steady_clock::time_point deadline_;
  std::chrono::steady_clock::duration timeout_{};
  std::atomic<std::uint64_t> progress_{0};
  std::uint64_t seen_ = 0;
  bool armed_ = false;
  bool quit_ = false;
  std::atomic<bool> fired_{false};
  std::thread thread_;
};

}  // namespace ipcbench
