// Reading an Endpoint in the peer process: the one place that turns the peer's
// command-line addresses back into what a transport's connect needs.
//
// A reader is made for one transport with the names of the fields it expects, in order
// (e.g. {"host", "port", "token pipe"}); every accessor takes a field's index. Each
// failure throws one ProtocolError that names the transport and the field:
//   "tcp: expected 3 addresses (host, port, token pipe), got 2"
//   "tcp: port: '70000' is not a port (1-65535)"
//   "tcp: host: '1.2.3' is not an IPv4 address"
//   "pipe: read end: '7' is not an open inherited descriptor"
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "base/fd.h"
#include "transports/transport.h"

namespace ipcbench {

// The one IPv4 check of the suite: the address in network order, or nullopt when `text`
// is not a dotted-quad IPv4 address.
std::optional<in_addr> parse_ipv4(const std::string& text);

class EndpointReader {
 public:
  // Throws ProtocolError unless ep holds exactly fields.size() addresses.
  EndpointReader(const Endpoint& ep, std::string transport,
                 std::initializer_list<const char*> fields);

  // Field i as given (a path, a queue name).
  const std::string& text(std::size_t i) const;
  // A TCP port, 1-65535.
  std::uint16_t port(std::size_t i) const;
  // A decimal count, 1 or more.
  unsigned count(std::size_t i) const;
  // A decimal index (a client's number), 0 or more.
  unsigned index(std::size_t i) const;
  // A dotted-quad IPv4 address.
  in_addr ipv4(std::size_t i) const;
  // A descriptor number the peer inherited: owned from now on, close-on-exec.
  UniqueFd inherited_fd(std::size_t i) const;
  // The listener's token, read whole and at once from the inherited pipe field i names
  // (the pipe is closed afterwards).
  std::string token(std::size_t i) const;
  // All the text of the inherited pipe field i names (made by pipe_holding, base/fd.h),
  // read at once without waiting; the pipe is closed afterwards. Fails when the pipe is
  // empty or its write end is still open somewhere.
  std::string pipe_text(std::size_t i) const;

 private:
  [[noreturn]] void fail(std::size_t i, const std::string& why) const;
  const Endpoint& ep_;
  std::string transport_;
  std::vector<const char*> fields_;
};

}  // namespace ipcbench
