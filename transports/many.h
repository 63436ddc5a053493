// The many-party contracts: one server and N clients (fan-in, the `clients` workload),
// one publisher and N subscribers (fan-out, the `fanout` workload).
//
// As for one link, the benchmark process listens and the peers connect: the benchmark
// process is the server (or the publisher), each client (or subscriber) is a peer
// process that connects with Transport::connect and the Endpoint made for it here, so a
// transport's connect() tells a many-party endpoint from a plain one by its addresses.
//
// A transport takes part in its natural multi-client form, described in one line by
// TransportInfo::fan_in / fan_out (empty: it does not take part; the workload lists it so
// and runs nothing). TransportBase's default for a transport with a description is one
// independent link per client (N listens, N channels): the natural form of anonymous
// pipes, FIFO pairs and shared-memory rings, and the baseline "the publisher writes N
// copies" of fan-out. Transports whose natural form shares one object among the clients
// (one listening socket, one request queue, a ROUTER socket, one gRPC server, a broker
// exchange) override listen_fan_in / listen_fan_out.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "transports/transport.h"

namespace ipcbench {

// The server's side of N client links, once every client has connected.
//
// Either per-client links (links() has one Channel per client, in client order; the
// workload serves them with one thread per client, or with one thread that waits on
// every link's wait_fd) or one shared request queue (links() is empty; recv_any and
// reply serve every client from one thread).
class FanInServer {
 public:
  virtual ~FanInServer() = default;
  virtual std::vector<Channel*> links() = 0;
  // Shared request queue only: waits for the next request from any client, copies it
  // into buf and returns {client index, size}. Size 0: the queue ended (after abort()).
  // Throws ProtocolError when a request does not fit in buf or names no known client.
  virtual std::pair<std::size_t, std::size_t> recv_any(std::span<std::byte> buf);
  // Shared request queue only: sends msg to client `client`.
  virtual void reply(std::size_t client, std::span<const std::byte> msg);
  // Called from another thread when the cell failed or stalled, after the clients were
  // killed: makes every blocked call above (and on the links) fail or return soon. Must
  // not block or throw.
  virtual void abort() noexcept;
  // The server-side model this form imposes, or "" when the workload chooses (per-client
  // links). E.g. "shared-queue": one thread takes every request from one queue.
  virtual std::string model() const { return links_model_; }

 protected:
  std::string links_model_;
};

class FanInListener {
 public:
  virtual ~FanInListener() = default;
  virtual std::size_t clients() const = 0;
  // What client `client` (0-based) is spawned with.
  virtual const Endpoint& endpoint(std::size_t client) const = 0;
  // Called after every client has been spawned: waits (bounded by wait.deadline) for all
  // of them to connect and returns the server's side.
  virtual std::unique_ptr<FanInServer> accept(const SetupWait& wait) = 0;
};

// The publisher's side of N subscriber links.
class FanOutPublisher {
 public:
  virtual ~FanOutPublisher() = default;
  // Hands msg to every subscriber. Blocks while a subscriber cannot take it, unless the
  // transport drops by design (TransportInfo::fan_out says so; the subscribers then
  // count what they missed).
  virtual void publish(std::span<const std::byte> msg) = 0;
  // True when publish() drops a message a subscriber cannot take (ZeroMQ PUB at its
  // high-water mark) rather than wait for it.
  virtual bool drops_by_design() const { return false; }
  // As FanInServer::abort.
  virtual void abort() noexcept {}
};

class FanOutListener {
 public:
  virtual ~FanOutListener() = default;
  virtual std::size_t subscribers() const = 0;
  virtual const Endpoint& endpoint(std::size_t subscriber) const = 0;
  virtual std::unique_ptr<FanOutPublisher> accept(const SetupWait& wait) = 0;
};

// TransportBase's default forms: one independent link per client or subscriber, each
// made by transport.listen() (so each has the transport's own endpoint and security).
std::unique_ptr<FanInListener> listen_fan_in_each(const Transport& transport, RunDir& dir,
                                                  std::size_t max_message,
                                                  const TransportSettings& settings,
                                                  std::size_t clients);
std::unique_ptr<FanOutListener> listen_fan_out_each(const Transport& transport, RunDir& dir,
                                                    std::size_t max_message,
                                                    const TransportSettings& settings,
                                                    std::size_t subscribers);

}  // namespace ipcbench
