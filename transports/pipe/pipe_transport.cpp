// Two anonymous pipes. The benchmark process creates them; the peer, its child, inherits
// its two ends and is told their numbers on its command line.
#include <fcntl.h>
#include <unistd.h>

#include "base/error.h"
#include "transports/endpoint_reader.h"
#include "transports/framing.h"
#include "transports/stream_link.h"

namespace ipcbench {
namespace {

class PipeListener final : public Listener {
 public:
  explicit PipeListener(WrapStream wrap) : wrap_(std::move(wrap)) {
    int down[2], up[2];
    check_sys(::pipe2(down, O_CLOEXEC), "pipe2");
    to_peer_r_.reset(down[0]);
    to_peer_w_.reset(down[1]);
    check_sys(::pipe2(up, O_CLOEXEC), "pipe2");
    from_peer_r_.reset(up[0]);
    from_peer_w_.reset(up[1]);
    ep_.addresses = {std::to_string(to_peer_r_.get()), std::to_string(from_peer_w_.get())};
    ep_.inherit_fds = {to_peer_r_.get(), from_peer_w_.get()};
  }
  const Endpoint& endpoint() const override { return ep_; }
  std::unique_ptr<Channel> accept(const SetupWait&) override {
    // The child holds its ends now; closing ours makes its exit visible as EOF.
    to_peer_r_.reset();
    from_peer_w_.reset();
    return wrap_({std::move(from_peer_r_), std::move(to_peer_w_)});
  }

 private:
  WrapStream wrap_;
  UniqueFd to_peer_r_, to_peer_w_, from_peer_r_, from_peer_w_;
  Endpoint ep_;
};

class PipeTransport final : public TransportBase {
 public:
  PipeTransport()
      : TransportBase({.name = "pipe",
                       .family = TransportFamily::kPipes,
                       .paradigm = "byte stream",
                       .kernel_boundaries = false,
                       .reach = "same host (parent and child)",
                       .coupling = "parent and child only: the descriptors are inherited",
                       .max_message = kMaxFrameBytes,
                       .summary = "two anonymous pipes; the child inherits its ends; "
                                  "length-prefix framing",
                       .encoding = "framing",
                       .fan_in = "one inherited pipe pair per client",
                       .server_models = {"event-loop", "thread-per-client"},
                       .fan_out = "one inherited pipe per subscriber; the publisher writes "
                                  "one copy to each",
                       .pipelining = "two threads"}) {}
  std::unique_ptr<Listener> listen(RunDir&, std::size_t, const TransportSettings&) const override {
    return listen_pipe_link(framed_stream);
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep, const SetupWait& /*wait*/) const override {
    return connect_pipe_link(ep, name(), framed_stream);
  }
};

}  // namespace

std::unique_ptr<Listener> listen_pipe_link(WrapStream wrap) {
  return std::make_unique<PipeListener>(std::move(wrap));
}

std::unique_ptr<Channel> connect_pipe_link(const Endpoint& ep, const std::string& transport,
                                           const WrapStream& wrap) {
  EndpointReader r(ep, transport, {"read end", "write end"});
  if (r.text(0) == r.text(1)) throw ProtocolError(transport + ": the two ends are one descriptor");
  UniqueFd rd = r.inherited_fd(0);
  UniqueFd wr = r.inherited_fd(1);
  return wrap({std::move(rd), std::move(wr)});
}

std::unique_ptr<Transport> make_pipe_transport() { return std::make_unique<PipeTransport>(); }

}  // namespace ipcbench
