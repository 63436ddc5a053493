#include "base/fd.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <climits>
#include <string>

#include "base/error.h"

namespace ipcbench {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

UniqueFd adopt_inherited_fd(const std::string& number, const std::string& what) {
  int fd = -1;
  auto [p, ec] = std::from_chars(number.data(), number.data() + number.size(), fd);
  if (ec != std::errc() || p != number.data() + number.size() || fd < 0)
    throw ProtocolError(what + ": bad descriptor number '" + number + "'");
  if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) throw SysError(what + ": descriptor " + number, errno);
  return UniqueFd(fd);
}

void size_file(int fd, std::size_t size, const std::string& what) {
  // A signal whose handler returns can interrupt a large allocation, and more than once.
  int err;
  do err = ::posix_fallocate(fd, 0, static_cast<off_t>(size));
  while (err == EINTR);
  if (err == EOPNOTSUPP || err == EINVAL)
    err = ::ftruncate(fd, static_cast<off_t>(size)) == 0 ? 0 : errno;
  if (err != 0)
    throw SysError(
        what + ": cannot allocate " + std::to_string((size + (1 << 20) - 1) >> 20) + " MiB", err);
}

UniqueFd pipe_holding(const std::string& text, const std::string& what) {
  // Up to PIPE_BUF bytes go into an empty pipe at once: the write never waits for a reader.
  if (text.size() > PIPE_BUF)
    throw ProtocolError(what + ": " + std::to_string(text.size()) + " bytes do not fit a pipe");
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw SysError("pipe2 (" + what + ")", errno);
  UniqueFd r(p[0]), w(p[1]);
  write_all(w.get(), std::as_bytes(std::span(text.data(), text.size())), what.c_str());
  return r;
}

void write_all(int fd, std::span<const std::byte> buf, const char* what) {
  const std::byte* p = buf.data();
  std::size_t left = buf.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw SysError(what, errno);
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

std::size_t read_full(int fd, std::span<std::byte> buf, const char* what) {
  std::size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw SysError(what, errno);
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  return got;
}

void SetupWait::check(const std::string& what) const {
  if (peer_alive && !peer_alive())
    throw ProtocolError(what + ": peer process exited before connecting");
  if (std::chrono::steady_clock::now() >= deadline)
    throw ProtocolError(what + ": timed out waiting for the peer");
}

void wait_fd(int fd, short events, const SetupWait& wait, const char* what) {
  using clock = std::chrono::steady_clock;
  for (;;) {
    wait.check(what);
    auto now = clock::now();
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(wait.deadline - now);
    int slice = static_cast<int>(std::min<long>(left.count() + 1, 50));
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, slice);
    if (rc < 0) {
      if (errno == EINTR) continue;
      throw SysError(what, errno);
    }
    if (rc > 0) return;
  }
}

}  // namespace ipcbench
