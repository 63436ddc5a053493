#include "harness/watchdog.h"

#include <signal.h>

namespace ipcbench {

Watchdog::Watchdog() : thread_([this] { loop(); }) {}

Watchdog::~Watchdog() {
  {
    std::lock_guard lk(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Watchdog::arm(pid_t pid, std::chrono::steady_clock::duration timeout) {
  {
    std::lock_guard lk(mu_);
    pid_ = pid;
    deadline_ = std::chrono::steady_clock::now() + timeout;
    armed_ = true;
    fired_ = false;
  }
  cv_.notify_all();
}

void Watchdog::disarm() {
  std::lock_guard lk(mu_);
  armed_ = false;
}

void Watchdog::loop() {
  std::unique_lock lk(mu_);
  while (!quit_) {
    if (!armed_) {
      cv_.wait(lk);
      continue;
    }
    if (cv_.wait_until(lk, deadline_) == std::cv_status::timeout && armed_ &&
        std::chrono::steady_clock::now() >= deadline_) {
      armed_ = false;
      fired_ = true;
      if (pid_ > 0) ::kill(pid_, SIGKILL);
    }
  }
}

}  // namespace ipcbench
