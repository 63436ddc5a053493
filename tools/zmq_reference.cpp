// The yardstick for the ZeroMQ transports (tools/fidelity.sh --zmq): the method of
// libzmq's own perf programs (local_lat/remote_lat, local_thr/remote_thr), which Debian
// does not ship, rebuilt on the same public libzmq C API. Not part of the matrix.
//
//   ipcbench-zmq-reference lat-local  ENDPOINT SIZE COUNT   REP, binds, echoes COUNT times
//   ipcbench-zmq-reference lat-remote ENDPOINT SIZE COUNT   REQ, connects, prints the mean
//                                                           half round trip, as remote_lat
//   ipcbench-zmq-reference thr-local  ENDPOINT SIZE COUNT   PULL, binds; clock from the first
//                                                           to the last message, as local_thr
//   ipcbench-zmq-reference thr-remote ENDPOINT SIZE COUNT   PUSH, connects, sends COUNT
//
// Default socket options, one message object per send (zmq_msg_init_size), one I/O
// thread: what those programs do.
#include <zmq.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "ipcbench-zmq-reference: %s: %s\n", what, zmq_strerror(zmq_errno()));
  std::exit(1);
}

double now_us() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void recv_one(void* s, zmq_msg_t* m, std::size_t size) {
  if (zmq_msg_recv(m, s, 0) < 0) die("zmq_msg_recv");
  if (zmq_msg_size(m) != size) {
    std::fprintf(stderr, "ipcbench-zmq-reference: message of %zu bytes, expected %zu\n",
                 zmq_msg_size(m), size);
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr,
                 "usage: ipcbench-zmq-reference lat-local|lat-remote|thr-local|thr-remote "
                 "ENDPOINT SIZE COUNT\n");
    return 2;
  }
  const std::string mode = argv[1];
  const char* endpoint = argv[2];
  const std::size_t size = std::strtoull(argv[3], nullptr, 10);
  const long count = std::strtol(argv[4], nullptr, 10);
  if (size == 0 || count <= 0) {
    std::fprintf(stderr, "ipcbench-zmq-reference: SIZE and COUNT must be positive\n");
    return 2;
  }
  void* ctx = zmq_ctx_new();
  if (!ctx) die("zmq_ctx_new");
  int type = mode == "lat-local"    ? ZMQ_REP
             : mode == "lat-remote" ? ZMQ_REQ
             : mode == "thr-local"  ? ZMQ_PULL
             : mode == "thr-remote" ? ZMQ_PUSH
                                    : -1;
  if (type < 0) {
    std::fprintf(stderr, "ipcbench-zmq-reference: unknown mode '%s'\n", mode.c_str());
    return 2;
  }
  void* s = zmq_socket(ctx, type);
  if (!s) die("zmq_socket");
  const bool local = mode.ends_with("-local");
  if ((local ? zmq_bind(s, endpoint) : zmq_connect(s, endpoint)) != 0)
    die(local ? "zmq_bind" : "zmq_connect");

  zmq_msg_t m;
  if (mode == "lat-local") {
    zmq_msg_init(&m);
    for (long i = 0; i < count; ++i) {
      recv_one(s, &m, size);
      if (zmq_msg_send(&m, s, 0) < 0) die("zmq_msg_send");
    }
  } else if (mode == "lat-remote") {
    zmq_msg_init_size(&m, size);
    std::memset(zmq_msg_data(&m), 0, size);
    double t0 = now_us();
    for (long i = 0; i < count; ++i) {
      if (zmq_msg_send(&m, s, 0) < 0) die("zmq_msg_send");
      recv_one(s, &m, size);
    }
    double us = now_us() - t0;
    std::printf("message size: %zu [B]\nroundtrip count: %ld\naverage latency: %.3f [us]\n", size,
                count, us / (static_cast<double>(count) * 2));
  } else if (mode == "thr-local") {
    zmq_msg_init(&m);
    recv_one(s, &m, size);
    double t0 = now_us();
    for (long i = 1; i < count; ++i) recv_one(s, &m, size);
    double us = now_us() - t0;
    double per_s = static_cast<double>(count) * 1e6 / us;
    std::printf(
        "message size: %zu [B]\nmessage count: %ld\nmean throughput: %.0f [msg/s]\n"
        "mean throughput: %.3f [Mb/s]\n",
        size, count, per_s, per_s * static_cast<double>(size) * 8 / 1e6);
  } else {
    for (long i = 0; i < count; ++i) {
      zmq_msg_init_size(&m, size);  // content left unwritten, as in remote_thr
      if (zmq_msg_send(&m, s, 0) < 0) die("zmq_msg_send");
    }
  }
  zmq_msg_close(&m);
  zmq_close(s);
  zmq_ctx_term(ctx);
  return 0;
}
