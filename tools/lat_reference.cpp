// ipcbench-lat-reference: the simplest possible ping-pong, in the style of lmbench's
// lat_pipe / lat_unix / lat_tcp, as a yardstick for the suite's own figures, and the
// simplest one-way TCP stream, in the style of lmbench's bw_tcp.
//
//   ipcbench-lat-reference pipe|unix|tcp SIZE ROUNDTRIPS CLIENT_CPU PEER_CPU
//   ipcbench-lat-reference tcp-bw SIZE MESSAGES CLIENT_CPU PEER_CPU
//
// fork()ed child as the peer, one write + one read per direction, no framing, no
// header, no checks beyond the byte count; every round trip timed with the same clock
// the suite uses. Prints one line: "<mech> size=<n> rtt_p50_ns=<x> rtt_mean_ns=<y>".
// tcp-bw sends MESSAGES writes of SIZE bytes, which the peer reads SIZE bytes at a
// time, and stops the clock when the peer's one-byte acknowledgement of the last one
// arrives, as the suite's throughput workload does. It prints
// "tcp-bw size=<n> bytes_per_second=<x>".
// tools/fidelity.sh runs it beside ipcbench; it is not part of the matrix.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "ipcbench-lat-reference: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

void pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  if (sched_setaffinity(0, sizeof s, &s) != 0) die("sched_setaffinity");
}

// Moves exactly n bytes (a stream may split them); returns false on EOF.
bool xfer(int fd, char* buf, std::size_t n, bool write_side) {
  std::size_t done = 0;
  while (done < n) {
    ssize_t r = write_side ? ::write(fd, buf + done, n - done) : ::read(fd, buf + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    done += static_cast<std::size_t>(r);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s pipe|unix|tcp|tcp-bw SIZE COUNT CLIENT_CPU PEER_CPU\n",
                 argv[0]);
    return 2;
  }
  std::string mech = argv[1];
  std::size_t size = std::strtoul(argv[2], nullptr, 10);
  long rounds = std::strtol(argv[3], nullptr, 10);
  int client_cpu = std::atoi(argv[4]), peer_cpu = std::atoi(argv[5]);
  const bool stream = mech == "tcp-bw";
  if (size == 0 || rounds <= 0 || (mech != "pipe" && mech != "unix" && mech != "tcp" && !stream)) {
    std::fprintf(stderr, "ipcbench-lat-reference: bad arguments\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);

  int c_rd, c_wr, p_rd, p_wr;  // client and peer ends
  int listen_fd = -1;
  sockaddr_in addr{};
  if (mech == "pipe") {
    int a[2], b[2];
    if (pipe(a) || pipe(b)) die("pipe");
    c_wr = a[1], p_rd = a[0], p_wr = b[1], c_rd = b[0];
  } else if (mech == "unix") {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) die("socketpair");
    c_rd = c_wr = sv[0];
    p_rd = p_wr = sv[1];
  } else {
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) || listen(listen_fd, 1) ||
        getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len))
      die("tcp listen");
    c_rd = c_wr = p_rd = p_wr = -1;
  }

  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    pin(peer_cpu);
    if (c_rd >= 0) close(c_rd);  // so the client's close reaches us as EOF
    if (c_wr >= 0 && c_wr != c_rd) close(c_wr);
    if (p_rd < 0) {
      p_rd = p_wr = accept(listen_fd, nullptr, nullptr);
      int one = 1;
      setsockopt(p_rd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    std::vector<char> buf(size);
    if (stream) {  // a run of `rounds` messages, then a one-byte ack; until EOF
      for (bool more = true; more;) {
        for (long i = 0; i < rounds && more; ++i) more = xfer(p_rd, buf.data(), size, false);
        if (more) more = xfer(p_wr, buf.data(), 1, true);
      }
      _exit(0);
    }
    while (xfer(p_rd, buf.data(), size, false) && xfer(p_wr, buf.data(), size, true)) {
    }
    _exit(0);
  }
  pin(client_cpu);
  // The peer's alone: should it die before accepting, our connection is then refused
  // rather than left waiting in the backlog of a socket we keep open.
  if (listen_fd >= 0) close(listen_fd);
  if (p_rd >= 0) close(p_rd);
  if (p_wr >= 0 && p_wr != p_rd) close(p_wr);
  if (c_rd < 0) {
    c_rd = c_wr = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c_rd, reinterpret_cast<sockaddr*>(&addr), sizeof addr)) die("connect");
    int one = 1;
    setsockopt(c_rd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  auto end_peer = [&] {  // EOF for the peer, then wait for it to go
    close(c_wr);
    if (c_rd != c_wr) close(c_rd);
    waitpid(pid, nullptr, 0);
  };
  std::vector<char> buf(size, 'x');
  if (stream) {
    auto run = [&] {  // `rounds` messages and the peer's ack of the last
      for (long i = 0; i < rounds; ++i)
        if (!xfer(c_wr, buf.data(), size, true)) die("peer");
      if (!xfer(c_rd, buf.data(), 1, false)) die("peer");
    };
    run();  // warm-up
    auto t0 = std::chrono::steady_clock::now();
    run();
    std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    end_peer();
    std::printf("tcp-bw size=%zu bytes_per_second=%.0f\n", size,
                static_cast<double>(size) * static_cast<double>(rounds) / dt.count());
    return 0;
  }
  std::vector<std::int64_t> rtt(static_cast<std::size_t>(rounds));
  for (long i = -rounds / 10; i < rounds; ++i) {  // the first tenth warms up
    auto t0 = std::chrono::steady_clock::now();
    if (!xfer(c_wr, buf.data(), size, true) || !xfer(c_rd, buf.data(), size, false)) die("peer");
    auto t1 = std::chrono::steady_clock::now();
    if (i >= 0) rtt[static_cast<std::size_t>(i)] = (t1 - t0).count();
  }
  end_peer();
  double mean = 0;
  for (auto v : rtt) mean += static_cast<double>(v);
  mean /= static_cast<double>(rtt.size());
  std::nth_element(rtt.begin(), rtt.begin() + static_cast<long>(rtt.size() / 2), rtt.end());
  std::printf("%s size=%zu rtt_p50_ns=%lld rtt_mean_ns=%.0f\n", mech.c_str(), size,
              static_cast<long long>(rtt[rtt.size() / 2]), mean);
  return 0;
}
