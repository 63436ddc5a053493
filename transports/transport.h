// The transport contract: every IPC mechanism of the suite is one Transport.
//
// A Transport makes connected Channels of one kind. The benchmark process listens (it
// owns every IPC object it creates, inside the run's private directory) and the peer
// process connects, given the Endpoint's addresses on its command line and, for
// anonymous pipes, the inherited descriptors. Workloads see only Channel.
//
// Threading: a Channel is used by one thread at a time. Errors: every call throws
// SysError (system call failed) or ProtocolError (peer closed mid-message, message too
// large, timed out); nothing here prints or exits.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/fd.h"

namespace ipcbench {

class RunDir;
class FanInListener;
class FanOutListener;

// The kind of IPC mechanism a transport is: a short fixed vocabulary, so the report can
// group and rate transports without knowing their names. Names as written in
// --list-transports=json and the results' `ipcbench_transports` context:
//   "pipes"          the kernel carries a byte stream between two ends that share
//                    descriptors or a path (pipe, FIFO)
//   "sockets"        connection-oriented socket endpoints, one connection per client
//                    (Unix domain sockets, TCP)
//   "shared memory"  both processes map the same memory and exchange messages through
//                    rings in it (mmap'ed file, POSIX shared memory)
//   "message queues" messages wait in a queue between sender and receiver: in the kernel,
//                    in shared memory, in a library's I/O thread or in a broker
//                    (POSIX mq, Boost.Interprocess, ZeroMQ, AMQP)
//   "RPC"            the client calls a typed service in the other process (gRPC)
// kUnset is what a description that forgot its family holds; no registered transport
// may keep it (tests/registry checks).
enum class TransportFamily { kUnset, kPipes, kSockets, kSharedMemory, kMessageQueues, kRpc };

// The family's name as listed above; "" for kUnset.
const char* family_name(TransportFamily f);
// Every family of the vocabulary except kUnset, in the order listed above.
std::span<const TransportFamily> transport_families();

// What a transport is, for --list-transports and the report. Plain facts, no figures.
// Written with designated initializers, in this order (see TransportBase).
struct TransportInfo {
  std::string name;  // registry name, e.g. "uds-seqpacket"
  TransportFamily family = TransportFamily::kUnset;
  std::string paradigm;            // "byte stream", "message stream", "shared memory", "RPC", …
  bool kernel_boundaries = false;  // true: the kernel (or the library, for ZeroMQ and the
                                   // queues) keeps message boundaries; false: a byte stream
                                   // framed by the suite or by the protocol (HTTP, gRPC, JSON-RPC)
  std::string reach;               // "same host" or "network"
  std::string coupling;            // how the two sides find and depend on each other
  std::size_t max_message = 0;     // largest message the transport carries, in bytes
  std::string summary;             // one line: what the peers actually do
  std::string wait = "blocking";   // how a side waits: "blocking", "spin", "spin-then-futex"
  std::size_t dev_shm_bytes = 0;   // room one link takes in /dev/shm (0: none)
  std::string built_on = "";       // the registered transport this one is a layer over, if any
  std::string needs = "";          // a service that must be running (a broker); such
                                   // transports run only when named (or with "all")
  // The daemon the link depends on, and who starts it: one every message passes through
  // (a bus, a broker) or one that sets the link up and owns its memory (iceoryx's RouDi);
  // empty: none, the two processes talk directly.
  std::string daemon = "";
  // Its daemon can run only once per machine (iceoryx 2.0's RouDi): two runs, or a run and
  // the user's own, would clash, so such a transport runs only when named (or with "all").
  bool one_per_machine = false;
  // What a peer killed in the middle of a link can leave behind that the suite cannot
  // undo; empty: nothing (the link fails, both sides clean up, the next link works). Such
  // transports are left out of the fault tests that kill or stop peers mid-traffic; the
  // conformance tests kill peers once the link is set up (after a round trip, or 50 ms
  // after it was made), where they wait for a message.
  std::string peer_kill = "";
  // The in-process encoding floor (transports/encodings.h) matching the encode/decode
  // work this transport does per message: "framing" (StreamChannel's length prefix,
  // transports/framing.h), "protobuf" (gRPC); empty when it runs no codec of its own
  // (RecordChannel's is a 4-byte length the kernel's records carry beside the body).
  std::string encoding = "";
  // How one server serves many clients (the clients workload, transports/many.h), in one
  // line, e.g. "one connection per client on one listening socket"; empty: this
  // transport does not take part.
  std::string fan_in = "";
  // The server models that form offers, as named in the clients workload's cells:
  // "event-loop" (one thread waits on every link's Channel::wait_fd, epoll),
  // "thread-per-client" (one blocking thread per link), "shared-queue" (one thread takes
  // every request from one queue: FanInServer::recv_any), "spin-poll" (one thread polls
  // every link's Channel::poll_ready in turn and never sleeps).
  std::vector<std::string> server_models = {};
  // How one publisher reaches many subscribers (the fanout workload); empty: it does not
  // take part.
  std::string fan_out = "";
  // The largest message the "shared-queue" fan-in form carries when it is less than
  // max_message (fifo's one request FIFO: PIPE_BUF, with the framing); 0: max_message.
  // listen_fan_in refuses larger ones; the clients workload leaves them out of its
  // default sizes.
  std::size_t shared_queue_max_message = 0;
  // How the rate workload's client keeps requests in flight on a link, so that a slow
  // reply never delays the next scheduled request:
  //   "two threads"  one thread sends while another receives (Channel::set_duplex);
  //   "one thread"   one thread sends and, between sends, waits for replies with
  //                  Channel::wait_readable, never more than Channel::pipeline_room()
  //                  requests unanswered (ZeroMQ: a socket is not thread-safe);
  //   ""             the rate workload leaves this transport out (a unary RPC or an
  //                  HTTP request blocks until its reply).
  std::string pipelining = "";
};

// One connected, bidirectional link that carries whole messages of 1 byte or more.
class Channel {
 public:
  virtual ~Channel() = default;
  // Sends the whole message or throws. Blocks while the other side is not reading.
  virtual void send(std::span<const std::byte> msg) = 0;
  // Blocks until one whole message has arrived in buf and returns its size; returns 0
  // when the peer closed the link between messages. Throws ProtocolError when the peer
  // closed in the middle of a message or the message does not fit in buf.
  virtual std::size_t recv(std::span<std::byte> buf) = 0;

  // Zero-copy, offered by some channels only; the defaults say "not offered".
  // loan(n): writable space for an n-byte message inside the channel's own memory; the
  // message goes out at commit(), which must come before any other call. Empty: use send.
  virtual std::span<std::byte> loan(std::size_t /*n*/) { return {}; }
  virtual void commit() {}
  // view(out): false when not offered for the next message (use recv; nothing was
  // consumed). Otherwise *out is that message in place (empty: the link ended), valid
  // until release().
  virtual bool view(std::span<const std::byte>* /*out*/) { return false; }
  virtual void release() {}

  // Called from another thread (the watchdog) when a cell or the set-up stalled, after
  // the peer was killed: makes a send or recv blocked on something else than the peer
  // (a broker, a stranger's connection) fail soon. Must not block or throw. Killing the
  // peer is enough for a link nobody else can reach, hence the default.
  virtual void abort() noexcept {}

  // The CPU time (ns, every thread) the daemon this link passes through has used so far,
  // where the link knows its process (a bus daemon it started); -1: no such daemon, or
  // not readable. Workloads take the difference over a measured run.
  virtual std::int64_t service_cpu_ns() const { return -1; }

  // Duplex use, offered where the transport's info().pipelining is "two threads": between
  // set_duplex(true) and set_duplex(false) one thread may call send (or loan/commit) while
  // another calls recv (or view/release). Both calls are made while no other thread uses
  // the channel. A channel whose directions share state it keeps for single-thread speed
  // (RingChannel warms the next outgoing record while it waits for a reply) stops using
  // it in between. The default has nothing to share.
  virtual void set_duplex(bool /*on*/) {}

  // Pipelining on one thread, offered where info().pipelining is "one thread": waits
  // until recv would return without waiting on the partner's next send (a message has
  // begun to arrive, or the link ended) or until `deadline`; true in the first case.
  // A send never waits on the partner while at most pipeline_room() requests it echoes
  // are unanswered. The defaults say "not offered" (wait_readable throws ProtocolError).
  virtual bool wait_readable(std::chrono::steady_clock::time_point deadline);
  virtual std::size_t pipeline_room() const { return 0; }

  // For a server that waits on many links in one thread (the clients workload's event
  // loop): a descriptor that polls readable (POLLIN) when a message has begun to arrive
  // and recv would return without waiting on the partner's next send; -1: not offered.
  // The workload keeps at most one message in flight per link, so a message a recv left
  // buffered behind the descriptor is never the question.
  virtual int wait_fd() const { return -1; }

  // For a server that polls many links in turn from one thread and never sleeps (the
  // clients workload's spin-poll model): whether this channel offers poll_ready.
  virtual bool polls() const { return false; }
  // Never blocks: true when recv would return without waiting on the partner's next
  // send (a message has begun to arrive, or the link ended), false when nothing has come
  // yet. As for wait_fd, at most one message is in flight. Only where polls() is true;
  // the default throws ProtocolError.
  virtual bool poll_ready();
};

// How the peer reaches a listener: addresses for its command line (paths, host:port,
// descriptor numbers) and descriptors it must inherit at the same numbers.
struct Endpoint {
  std::vector<std::string> addresses;
  std::vector<int> inherit_fds;
};

// What the user chooses about where transports listen, given to Transport::listen. The
// runner fills it once (bench/options.h, transport_settings) from the command line and
// the environment; no transport reads either itself. Whatever the peer needs of it
// travels in the Endpoint the listener makes.
struct TransportSettings {
  // The IPv4 address network transports (tcp and every *-tcp) listen on (--bind).
  // Checked by the transports that use it: one that is not a dotted IPv4 address makes
  // their listen throw ProtocolError.
  std::string bind_address = "127.0.0.1";
  // Where a link whose server runs in the peer (grpc-tcp, grpc-stream-tcp, http-tcp:
  // PeerServerLink) has the peer's server listen; empty: bind_address, the peer being on
  // this host. Split mode sets the far host's address, where its peer runs.
  std::string peer_server_address = "";
  // The AMQP broker the amqp transports use, as an amqp:// URL with its user and
  // password (IPCBENCH_AMQP_URL). The default is the private node scripts/broker.sh
  // starts.
  std::string broker_url = "amqp://guest:guest@127.0.0.1:5673";
};

// The benchmark side of one link being set up.
class Listener {
 public:
  virtual ~Listener() = default;
  virtual const Endpoint& endpoint() const = 0;
  // Called after the peer process has been spawned. Waits for it to connect (bounded by
  // wait.deadline, failing fast when the peer dies) and returns the connected channel.
  virtual std::unique_ptr<Channel> accept(const SetupWait& wait) = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual const TransportInfo& info() const = 0;
  // Creates the IPC objects (0600, inside run_dir) and starts listening. max_message is
  // the largest message the link will carry (transports that preallocate size by it);
  // settings says where (each transport uses the fields that concern it).
  virtual std::unique_ptr<Listener> listen(RunDir& run_dir, std::size_t max_message,
                                           const TransportSettings& settings) const = 0;
  // In the peer process: connects to an endpoint (inherit_fds are already in place).
  // Bounded by wait.deadline, the same kind of deadline accept() gets (wait.peer_alive
  // asks whether the benchmark side still lives); a connect that cannot complete by then
  // throws ProtocolError naming the transport. Transports whose connect never waits on
  // the other side ignore it.
  virtual std::unique_ptr<Channel> connect(const Endpoint& endpoint,
                                           const SetupWait& wait) const = 0;
  // Many parties (transports/many.h): a server for `clients` clients, a publisher for
  // `subscribers` subscribers, in this transport's natural form; nullptr when the
  // transport does not take part (its info().fan_in / fan_out is empty). `model` is the
  // server model the fan-in will be served with, one of info().server_models: a
  // transport with one form ignores it; one with two (fifo: a FIFO pair per client, or
  // one shared request FIFO for "shared-queue") makes the form that model serves, and
  // throws ProtocolError when that form cannot carry max_message as asked.
  virtual std::unique_ptr<FanInListener> listen_fan_in(RunDir& run_dir, std::size_t max_message,
                                                       const TransportSettings& settings,
                                                       std::size_t clients,
                                                       const std::string& model) const;
  virtual std::unique_ptr<FanOutListener> listen_fan_out(RunDir& run_dir, std::size_t max_message,
                                                         const TransportSettings& settings,
                                                         std::size_t subscribers) const;
};

// What every transport derives from: it owns the description and answers info(), so a
// transport only states its facts, once, e.g.
//   PipeTransport() : TransportBase({.name = "pipe", .family = TransportFamily::kPipes, …}) {}
class TransportBase : public Transport {
 public:
  explicit TransportBase(TransportInfo info) : info_(std::move(info)) {}
  const TransportInfo& info() const final { return info_; }
  // One independent link per party (listen_fan_in_each, transports/many.h) when the
  // description says the transport takes part; nullptr otherwise.
  std::unique_ptr<FanInListener> listen_fan_in(RunDir& run_dir, std::size_t max_message,
                                               const TransportSettings& settings,
                                               std::size_t clients,
                                               const std::string& model) const override;
  std::unique_ptr<FanOutListener> listen_fan_out(RunDir& run_dir, std::size_t max_message,
                                                 const TransportSettings& settings,
                                                 std::size_t subscribers) const override;

 protected:
  const std::string& name() const { return info_.name; }

 private:
  TransportInfo info_;
};

}  // namespace ipcbench
