// Split mode: the peer side of the network transports on another host.
//
//   ipcbench --serve[=ADDR:PORT] [--token-file=F]      on the far host (the server)
//   ipcbench --connect=IPV4:PORT --token-file=F …      on this host (the client: the matrix)
//
// The client runs the matrix as usual. For most transports (tcp, zmq-tcp, jsonrpc-tcp)
// it listens for each cell's link on the address its control connection to the server
// has, and asks the server to start the cell's peer there, which connects back. Where the
// peer serves and the client calls (grpc-tcp, grpc-stream-tcp, http-tcp: PeerServerLink),
// the peer's server listens on the server's address on the control connection, on a port
// of its choosing, and the client calls it there. The control connection is one TCP
// connection of text lines (each at most kMaxLine bytes, newline-terminated):
//   client: HELLO ipcbench-split 2 <token>     server: OK <its machine context, JSON>
//   client: SPAWN <JSON: transport, addresses, pipes, replies, max_size, verify,
//                  setup_timeout_ms>            server: SPAWNED
//   client: READY <ms>                          server: READY <port> | - | timeout | bad
//   client: ALIVE                               server: YES | NO
//   client: FINISH <grace ms>                   server: ENDED <how the peer ended>
// and for a clients cell's fan-in clients or a fanout cell's subscribers (the parties,
// bench/party.h), started in order 0..N-1:
//   client: PARTY <JSON: as SPAWN, and role "client" | "subscriber", client_id>
//                                               server: PARTY <i>
//   client: GO <i,j,…> <verify> <size> <start in ns> <window ns> <give up in ns> <start ns>
//                                               server: SENT | LOST (a party had ended)
//   client: PUBLISHED <i,j,…> <count>           server: SENT | LOST
//   client: NEXT <ms>                           server: FROM <i> <message> | GONE <i> <how>
//                                                       | NONE (nothing within ms)
//   client: END <i|*> <grace ms>                server: ENDED <how> | ENDED <count>
// Any failure but a closed connection is answered "ERR <one line>", and the server then
// closes that connection. The server accepts nothing before the token (the HELLO line
// within 3 s), and builds the peer's command line itself from the request's fields (a
// transport of split_transports(), addresses, sizes): a client never names a program
// or an option; a peer connects only to the client's own address, and a serving peer
// listens only on the server's. One client at a time; a client that goes away ends its
// peer, and the server waits for the next: closed or killed at once, a host that
// vanished within about 30 s (TCP keep-alive and TCP_USER_TIMEOUT). The token and the
// traffic travel in clear text: trusted networks.
//
// A transport hands its peer secrets in inherited pipes (the token: PeerToken); "pipes"
// carries their contents by address index, and the server puts them in pipes of its own
// for the peer it starts. A pipe the peer writes into (a serving peer's ready pipe, where
// it writes its port) is named in "replies"; the server gives the peer a pipe of its own
// there, and READY, sent right after SPAWN, waits (60 s at most) for the peer's line and
// relays it, which the client writes into its own end, where the listener reads it as
// from a local peer ("-": the peer closed the pipe first, i.e. exited; "timeout": asked
// again until the cell's set-up time is up; then, or for "bad", the client ends the peer
// with FINISH 0 and the cell fails).
//
// The parties (PARTY) connect back as a connecting peer does; each has a control link
// (SOCK_SEQPACKET) to the server, and the client's split_parties() gives the workload
// local links of its own, relayed by a thread. What the workload sends goes as GO (kGo)
// or PUBLISHED (a subscriber's kEnd). GO's times are made relative to the moment it is
// sent: a client's window starts that long after the server's now (the one-way delay of
// the control connection is the error; a start already past moves the window later,
// whole); a subscriber keeps the window as sent (<start ns>: it compares it only with
// publish times, on the same clock) and is told two clocks are in play (PartyGo::
// two_clocks: it records no one-way latency), and its give-up time is the server's now
// plus <give up in ns>. What the parties send comes back through NEXT, polled every 5 ms,
// as FROM (the bytes in hex, zero runs as z<count>.); a party whose link closed comes back
// as GONE, how it ended, and its local link is closed. END * ends them all and the server
// forgets them: the next cell starts afresh, and SPAWN is refused while any is listed. A
// party's endpoint must fit its transport's and role's layout (where the listener's host
// is: the client's own address; every other address a number or the form's word).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/fd.h"
#include "bench/party.h"
#include "bench/peer.h"

namespace ipcbench {

constexpr std::size_t kMaxLine = 64 * 1024;

// The transports split mode can run (those built in), in the order given.
const std::vector<std::string>& split_transports();

// The client's side: connects, authenticates and keeps the control connection. Its
// requests may come from two threads (a clients cell's relay, bench/split.cpp): one at
// a time.
class SplitClient {
 public:
  // Throws std::runtime_error with one line saying why (unreachable, refused, bad token).
  SplitClient(const std::string& host_port, const std::string& token);
  // This host's IPv4 address on the control connection: where the links listen.
  const std::string& local_address() const { return local_; }
  const std::string& server() const { return server_; }
  // The server's IPv4 address (server() without its port): where serving peers listen.
  std::string server_address() const { return server_.substr(0, server_.rfind(':')); }
  // The interface (and its driver) of local_address(): this host's end of the link.
  const std::string& nic() const { return nic_; }
  const nlohmann::json& server_context() const { return context_; }

  // Starts the peer `args` describes on the server; inherit_fds are pipes whose current
  // contents go with the request (an address naming one is replaced by the server's).
  void spawn(const PeerArgs& args, const std::vector<int>& inherit_fds);
  bool alive();
  std::string finish(std::chrono::milliseconds grace);
  // How long the HELLO request took: a round trip of the control connection (and the
  // server's reading of its machine context).
  std::chrono::nanoseconds hello_round_trip() const { return hello_rtt_; }

 private:
  friend class SplitParties;
  // The SPAWN or PARTY request's JSON for `args`; *reply_fd: a pipe the peer writes into.
  nlohmann::json peer_request(const PeerArgs& args, const std::vector<int>& inherit_fds,
                              int* reply_fd);
  std::string request(const std::string& line);
  std::mutex mu_;  // one request at a time
  std::chrono::nanoseconds hello_rtt_{};
  UniqueFd fd_;
  std::string buffered_, local_, server_, nic_;
  nlohmann::json context_;
};

// The clients of a clients cell or the subscribers of a fanout cell, started on the
// server (PARTY), and their control links relayed by a thread of this process (GO,
// PUBLISHED, NEXT, END).
std::unique_ptr<Parties> split_parties(SplitClient& client);

// The server: serves clients one after another until a signal ends it. Returns the
// process exit status (2: bad arguments, with one line on stderr).
int serve_main(const std::string& where, const std::string& token_file);

// Reads a token from a file the user alone can read (mode 0600 or stricter, owned by
// this user). Throws std::runtime_error saying why not.
std::string read_token_file(const std::string& path);

}  // namespace ipcbench
