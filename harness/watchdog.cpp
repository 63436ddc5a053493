#include "harness/watchdog.h"

#include <signal.h>

#include <algorithm>

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

void Watchdog::arm(pid_t pid, std::chrono::steady_clock::duration timeout,
                   std::function<void()> on_fire) {
  {
    std::lock_guard lk(mu_);
    pid_ = pid;
    on_fire_ = std::move(on_fire);
    timeout_ = timeout;
    seen_ = progress_.load(std::memory_order_relaxed);
    deadline_ = std::chrono::steady_clock::now() + timeout;
    armed_ = true;
    fired_ = false;
  }
  cv_.notify_all();
}

void Watchdog::disarm() {
  std::lock_guard lk(mu_);
  armed_ = false;
  on_fire_ = nullptr;
}

void Watchdog::loop() {
  std::unique_lock lk(mu_);
  while (!quit_) {
    if (!armed_) {
      cv_.wait(lk);
      continue;
    }
    // Look at least every 100 ms so that progress keeps pushing the deadline out.
    auto now = std::chrono::steady_clock::now();
    auto next = std::min(deadline_, now + std::chrono::milliseconds(100));
    cv_.wait_until(lk, next);
    if (!armed_ || quit_) continue;
    now = std::chrono::steady_clock::now();
    if (std::uint64_t p = progress_.load(std::memory_order_relaxed); p != seen_) {
      seen_ = p;
      deadline_ = now + timeout_;
    } else if (now >= deadline_) {
      armed_ = false;
      fired_ = true;
      if (pid_ > 0) ::kill(pid_, SIGKILL);
      if (on_fire_) on_fire_();
    }
  }
}

}  // namespace ipcbench
