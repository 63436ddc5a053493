#include "transports/transport.h"

#include <array>

#include "base/error.h"

namespace ipcbench {

bool Channel::poll_ready() {
  throw ProtocolError("this channel cannot be polled without waiting (polls() is false)");
}

bool Channel::wait_readable(std::chrono::steady_clock::time_point) {
  throw ProtocolError(
      "this channel cannot wait for a reply between sends (pipelining is not "
      "\"one thread\")");
}

const char* family_name(TransportFamily f) {
  switch (f) {
    case TransportFamily::kUnset:
      return "";
    case TransportFamily::kPipes:
      return "pipes";
    case TransportFamily::kSockets:
      return "sockets";
    case TransportFamily::kSharedMemory:
      return "shared memory";
    case TransportFamily::kMessageQueues:
      return "message queues";
    case TransportFamily::kRpc:
      return "RPC";
  }
  return "";
}

std::span<const TransportFamily> transport_families() {
  static constexpr std::array kAll{TransportFamily::kPipes, TransportFamily::kSockets,
                                   TransportFamily::kSharedMemory, TransportFamily::kMessageQueues,
                                   TransportFamily::kRpc};
  return kAll;
}

}  // namespace ipcbench
