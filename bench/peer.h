// The peer process: the far end of every cell, the same binary run as
//   ipcbench --peer --transport=NAME --address=A [--address=B] --max-size=N
//            [--verify] [--role=bench|echo] [--setup-timeout-ms=N]
//            [--client-id=N --control-fd=FD]   (roles client and subscriber)
// role bench (default) speaks the workload protocol (bench/protocol.h): it sends
// kReady once connected, echoes kPing, consumes kData, answers kSync with kAck, and
// exits on kStop or when the link closes. Any check that fails is sent back as kError
// and the peer exits with status 3. role echo returns every message unchanged, whatever
// its content (the conformance tests use it). Role client runs the clients workload's
// closed loop (bench/clients.h) as client N, told when over the control link FD; role
// subscriber receives the fanout workload's stream (bench/fanout.h) as subscriber N.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace ipcbench {

struct PeerArgs {
  std::string transport;
  std::vector<std::string> addresses;
  std::size_t max_size = 0;
  bool verify = false;
  std::string role = "bench";
  std::string program;  // the executable to run; empty: this one
  // How long connecting may take, counted from the peer's start (--setup-timeout-ms).
  std::chrono::milliseconds setup_timeout{60000};
  // Many-party roles (client, subscriber; bench/party.h): this peer's number among its
  // kind, and the inherited control link's descriptor.
  int client_id = -1;
  int control_fd = -1;
};

// Returns the process exit status; never throws.
int run_peer(const PeerArgs& args);

// The command line that starts a peer (argv[0] = args.program, or this executable).
std::vector<std::string> peer_command(const PeerArgs& args);

}  // namespace ipcbench
