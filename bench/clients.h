// The clients workload (fan-in): one server, N clients, all at once.
//
// The benchmark process is the server: it listens in the transport's fan-in form
// (Transport::listen_fan_in), spawns N client processes (peers, role "client"), and
// serves their links with the cell's server model:
//   event-loop         one thread waits on every link's descriptor (epoll) and answers
//                      whichever is ready;
//   thread-per-client  one thread per link, blocking on it (or spinning, as the
//                      transport waits);
//   shared-queue       one thread takes every request from the transport's one request
//                      queue and replies to the client it names;
//   spin-poll          one thread polls every link in turn (Channel::poll_ready) and
//                      never sleeps: a busy-polling server, for the shared-memory rings,
//                      which have no descriptor to wait on.
// Each client runs the same closed loop as ping-pong (send, wait for the echo, check
// it) from the moment it is told to go; a warm-up precedes the window, then every client
// measures the same window [start, end) of CLOCK_MONOTONIC (a start barrier: every client
// has connected and reported ready before the instant is chosen). A round trip started
// in the window counts. Every request and reply carries its client's number in the top
// 8 bits of its sequence number: a server that receives a request on another client's
// link, or a client that receives another client's reply, fails the cell.
//
// One repetition = one window, with fresh processes and links. Counters: see
// record_clients() in clients.cpp and docs/many-clients.md.
#pragma once

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <string>

#include "bench/peer.h"
#include "harness/placement.h"
#include "transports/transport.h"

namespace ipcbench {

class RunDir;
class SplitClient;

struct ManyConfig {
  Placement placement;
  TransportSettings settings;
  bool verify = false;
  std::chrono::milliseconds cell_timeout{60000};
  std::chrono::milliseconds setup_timeout{60000};
  std::chrono::nanoseconds window{std::chrono::milliseconds(500)};
  std::string peer_program;  // empty: this executable
  // Split mode (bench/split.h): the clients run on the server this names, not here.
  SplitClient* split = nullptr;
};

// Largest number of clients (the sequence numbers carry the client in 8 bits).
inline constexpr std::size_t kMaxClients = 64;

// Runs one repetition of clients/<transport>/<size>/clients:<n>/server:<model>. Throws on
// any failure (the caller makes it the cell's error); nothing is left behind.
void run_clients(benchmark::State& state, RunDir& dir, const ManyConfig& config, const Transport& t,
                 std::size_t size, std::size_t clients, const std::string& model);

// Why this cell cannot be measured as asked, or "" when it can: a spinning side (a
// client of a `wait: spin` transport, a spin-poll server) that would share a CPU with
// another busy process.
std::string clients_refused(const Placement& p, const Transport& t, std::size_t clients,
                            const std::string& model);

// The peer side (role "client"): connects, reports ready, runs the loop it is told to,
// and sends its result over the control link. Returns the exit status.
int run_fan_in_client(const Transport& t, Channel& link, const PeerArgs& args);

}  // namespace ipcbench
