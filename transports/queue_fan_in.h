// The classic queue server of fan-in, shared by the message-queue transports (posix-mq,
// boost-mq): ONE request queue that every client sends to, and one reply queue per
// client. The server takes every request from the one queue (server model
// "shared-queue": FanInServer::recv_any / reply).
//
// The client index travels in the records of the request queue: every record there
// begins with an 8-byte envelope
//   [client index: u32 little-endian | message length: u32 little-endian]
// followed by up to max_record - 8 bytes of the message. A message too large for one
// record goes as several records with the same envelope, in order (each client is one
// sender, the queue is FIFO and every record has the same priority); as the records of
// different clients interleave, the server reassembles each client's message apart.
// Length 0 marks a control record: with a body, the client's hello (queue_hello: its
// pid), sent once by connect(); without one, its goodbye. A record whose index names no
// client of this server, a second hello for one client, or records that do not add up to
// their message are refused with ProtocolError. (Who may send at all is the queues'
// business: they are 0600, our own uid only, as for one link; the names are removed as
// soon as every client has said hello.)
//
// Replies go on the client's own queue as RecordChannel records (framing.h); an empty
// record is the server's goodbye (the client's recv returns 0).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/liveness.h"
#include "transports/many.h"
#include "transports/transport.h"

namespace ipcbench {

// One end of one queue, as the fan-in uses it: whole records of up to max_record()
// bytes, every wait bounded. Throws on failure (SysError, ProtocolError).
class QueuePort {
 public:
  virtual ~QueuePort() = default;
  virtual std::size_t max_record() const = 0;
  // Sends one record; false when the queue stayed full for `ms` milliseconds.
  virtual bool try_send(std::span<const std::byte> rec, int ms) = 0;
  // Receives one record into buf (max_record() bytes at least); nullopt when none came
  // within `ms` milliseconds.
  virtual std::optional<std::size_t> try_recv(std::span<std::byte> buf, int ms) = 0;
};

inline constexpr std::size_t kQueueEnvelopeBytes = 8;

// The queues the listener made: its receive end of the request queue and its send end
// of each client's reply queue (in client order).
struct QueueFanInPorts {
  std::unique_ptr<QueuePort> requests;
  std::vector<std::unique_ptr<QueuePort>> replies;
};

// The listener of the queue fan-in. `endpoints[i]` is what client i is spawned with;
// `remove_names` unlinks every queue name (called once every client said hello, and by
// the owner on every other path); `on_clients(pids)` is told the clients' pids once they
// are all known (boost-mq's guard watches them), and may be empty.
class QueueFanIn final : public FanInListener {
 public:
  QueueFanIn(std::string transport, QueueFanInPorts ports, std::vector<Endpoint> endpoints,
             std::function<void()> remove_names,
             std::function<void(std::vector<pid_t>)> on_clients);
  ~QueueFanIn() override {
    if (remove_names_) remove_names_();
  }
  std::size_t clients() const override { return eps_.size(); }
  const Endpoint& endpoint(std::size_t client) const override { return eps_.at(client); }
  std::unique_ptr<FanInServer> accept(const SetupWait& wait) override;

 private:
  std::string transport_;
  QueueFanInPorts ports_;
  std::vector<Endpoint> eps_;
  std::function<void()> remove_names_;
  std::function<void(std::vector<pid_t>)> on_clients_;
};

// The client's side: sends its hello (retrying while the request queue is full, until
// wait's deadline) and returns a Channel whose send goes to the request queue, enveloped
// with `client`, and whose recv reads the client's reply queue. `server` is the
// benchmark process (its exit ends the link).
std::unique_ptr<Channel> connect_queue_fan_in(const std::string& transport,
                                              std::unique_ptr<QueuePort> requests,
                                              std::unique_ptr<QueuePort> replies,
                                              std::uint32_t client, pid_t server,
                                              const SetupWait& wait);

}  // namespace ipcbench
