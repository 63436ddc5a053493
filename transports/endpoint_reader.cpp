#include "transports/endpoint_reader.h"

#include <arpa/inet.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

#include "base/error.h"
#include "transports/socket_util.h"

namespace ipcbench {

namespace {
// The whole of `text` as a decimal number in [lo, hi], or nullopt.
std::optional<unsigned> decimal(const std::string& text, unsigned lo, unsigned hi) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi)
    return std::nullopt;
  return v;
}
}  // namespace

std::optional<in_addr> parse_ipv4(const std::string& text) {
  in_addr a{};
  if (::inet_pton(AF_INET, text.c_str(), &a) != 1) return std::nullopt;
  return a;
}

EndpointReader::EndpointReader(const Endpoint& ep, std::string transport,
                               std::initializer_list<const char*> fields)
    : ep_(ep), transport_(std::move(transport)), fields_(fields) {
  if (ep_.addresses.size() == fields_.size()) return;
  std::string names;
  for (const char* f : fields_) names += (names.empty() ? "" : ", ") + std::string(f);
  throw ProtocolError(transport_ + ": expected " + std::to_string(fields_.size()) + " addresses (" +
                      names + "), got " + std::to_string(ep_.addresses.size()));
}

void EndpointReader::fail(std::size_t i, const std::string& why) const {
  throw ProtocolError(transport_ + ": " + fields_.at(i) + ": '" + ep_.addresses.at(i) + "' " + why);
}

const std::string& EndpointReader::text(std::size_t i) const { return ep_.addresses.at(i); }

std::uint16_t EndpointReader::port(std::size_t i) const {
  auto v = decimal(text(i), 1, 65535);
  if (!v) fail(i, "is not a port (1-65535)");
  return static_cast<std::uint16_t>(*v);
}

unsigned EndpointReader::count(std::size_t i) const {
  auto v = decimal(text(i), 1, 1u << 30);
  if (!v) fail(i, "is not a count");
  return *v;
}

unsigned EndpointReader::index(std::size_t i) const {
  auto v = decimal(text(i), 0, 1u << 30);
  if (!v) fail(i, "is not an index");
  return *v;
}

in_addr EndpointReader::ipv4(std::size_t i) const {
  auto a = parse_ipv4(text(i));
  if (!a) fail(i, "is not an IPv4 address");
  return *a;
}

UniqueFd EndpointReader::inherited_fd(std::size_t i) const {
  if (!decimal(text(i), 0, 1u << 30)) fail(i, "is not a descriptor number");
  try {
    return adopt_inherited_fd(text(i), transport_);
  } catch (const SysError&) {
    fail(i, "is not an open inherited descriptor");
  }
}

std::string EndpointReader::pipe_text(std::size_t i) const {
  UniqueFd fd = inherited_fd(i);
  // The text was whole in the pipe and its writer gone before this process started:
  // reading never waits (poll, not O_NONBLOCK, which would change a shared descriptor).
  std::string text;
  for (;;) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 0) != 1) fail(i, "holds no ended text");
    char buf[512];
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(i, "cannot be read");
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  if (text.empty()) fail(i, "holds no text");
  return text;
}

std::string EndpointReader::token(std::size_t i) const {
  inherited_fd(i).release();  // checks the number and that it is open, before reading
  return take_peer_token(text(i), transport_);
}

}  // namespace ipcbench
