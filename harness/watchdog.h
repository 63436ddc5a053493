// A per-cell watchdog: if the armed deadline passes, the peer is killed (SIGKILL).
//
// Killing the peer is what unblocks the benchmark side, whatever it is blocked in: the
// kernel closes the peer's descriptors, so a read sees EOF and a write sees EPIPE, and
// the cell ends with an error instead of hanging the matrix.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace ipcbench {

class Watchdog {
 public:
  Watchdog();
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void arm(pid_t pid, std::chrono::steady_clock::duration timeout);
  void disarm();
  // True when the last armed deadline passed and the peer was killed.
  bool fired() const { return fired_.load(); }

 private:
  void loop();
  std::mutex mu_;
  std::condition_variable cv_;
  pid_t pid_ = -1;
  std::chrono::steady_clock::time_point deadline_;
  bool armed_ = false;
  bool quit_ = false;
  std::atomic<bool> fired_{false};
  std::thread thread_;
};

}  // namespace ipcbench
