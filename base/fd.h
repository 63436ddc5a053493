// RAII file descriptor and whole-buffer I/O helpers.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <utility>

namespace ipcbench {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Writes all of buf (retrying short writes and EINTR). Throws SysError on failure,
// including EPIPE when the reader is gone (SIGPIPE is ignored by the suite).
void write_all(int fd, std::span<const std::byte> buf, const char* what);

// Takes over a descriptor this process inherited, named by its number on the command
// line, and closes it on any further exec. Throws ProtocolError "<what>: bad descriptor
// number '<number>'" when `number` is not one, SysError when no such descriptor is open.
UniqueFd adopt_inherited_fd(const std::string& number, const std::string& what);

// The read end (close-on-exec) of a new pipe that already holds all of `text`, its write
// end closed: how a listener hands the peer a secret (its token, a broker's password)
// through an inherited descriptor instead of the peer's command line, which other local
// users can usually read (ps). `text` must fit the pipe at once (PIPE_BUF bytes), else
// ProtocolError "<what>: <n> bytes do not fit a pipe".
UniqueFd pipe_holding(const std::string& text, const std::string& what);

// Makes the file `fd` (a shared-memory object or a mapped file) `size` bytes long with
// its storage allocated now (posix_fallocate), so a file system too small for it (a small
// /dev/shm, a container's tmpfs) fails here with SysError "<what>: …" (ENOSPC) instead of
// killing a process with SIGBUS when it first touches a page that has no room. Where the
// file system cannot allocate ahead (EOPNOTSUPP), the file is only sized (ftruncate).
void size_file(int fd, std::size_t size, const std::string& what);

// Reads exactly buf.size() bytes. Returns the number read, which is less than
// buf.size() only when the peer closed (EOF). Throws SysError on failure.
std::size_t read_full(int fd, std::span<std::byte> buf, const char* what);

// What to wait for while a connection is being set up: a deadline, and a test that the
// peer process still lives (so a peer that died before connecting fails fast).
struct SetupWait {
  std::chrono::steady_clock::time_point deadline;
  std::function<bool()> peer_alive;
  // For a wait loop: throws ProtocolError "<what>: peer process exited before connecting"
  // or "<what>: timed out waiting for the peer" when it is time to give up.
  void check(const std::string& what) const;
};

// Polls fd for `events` until ready. Throws ProtocolError on timeout or peer death.
void wait_fd(int fd, short events, const SetupWait& wait, const char* what);

}  // namespace ipcbench
