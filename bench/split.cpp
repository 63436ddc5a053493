#include "bench/split.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "base/cleanup.h"
#include "base/error.h"
#include "base/process.h"
#include "bench/clients.h"
#include "bench/options.h"
#include "bench/party.h"
#include "harness/context.h"
#include "transports/endpoint_reader.h"
#include "transports/registry.h"
#include "transports/socket_util.h"

namespace ipcbench {
namespace {

using Failure = std::runtime_error;
// The other side closed the control connection (or it broke): not answered with ERR.
struct Closed : Failure {
  using Failure::Failure;
};
constexpr const char* kHello = "HELLO ipcbench-split 2 ";
constexpr std::size_t kMaxAddresses = 8, kMaxAddress = 256, kMaxPipeBytes = 4096;

struct HostPort {
  in_addr addr{};
  std::uint16_t port = 0;
};

// "A.B.C.D:PORT" (PORT 0 allowed only where `any_port`); throws Failure naming `what`.
HostPort parse_host_port(const std::string& text, const std::string& what, bool any_port) {
  const auto colon = text.rfind(':');
  const auto ip = parse_ipv4(text.substr(0, colon == std::string::npos ? text.size() : colon));
  unsigned port = 0;
  const char* end = text.data() + text.size();
  bool ok = ip && colon != std::string::npos;
  if (ok) {
    auto [p, ec] = std::from_chars(text.data() + colon + 1, end, port);
    ok = ec == std::errc() && p == end && port <= 65535 && (any_port || port > 0);
  }
  if (!ok) throw Failure(what + ": '" + text + "' is not IPV4:PORT");
  return {*ip, static_cast<std::uint16_t>(port)};
}

std::string describe(const sockaddr_in& a) {
  char ip[INET_ADDRSTRLEN] = "?";
  ::inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
  return std::string(ip) + ":" + std::to_string(ntohs(a.sin_port));
}

void write_line(int fd, const std::string& line) {
  std::string out = line + "\n";
  write_all(fd, std::as_bytes(std::span(out.data(), out.size())), "control connection");
}

// The next line (without its newline); waits timeout_ms at most (-1: for ever). Throws
// Failure when the connection closes, a line is longer than `max` or time runs out.
std::string read_line(int fd, std::string& buffered, int timeout_ms, std::size_t max = kMaxLine) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (auto nl = buffered.find('\n'); nl != std::string::npos) {
      std::string line = buffered.substr(0, nl);
      buffered.erase(0, nl + 1);
      return line;
    }
    if (buffered.size() > max)
      throw Failure("a control line longer than " + std::to_string(max) + " bytes");
    int wait = -1;
    if (timeout_ms >= 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) throw Failure("no answer on the control connection in time");
      wait = static_cast<int>(left.count());
    }
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, wait);
    if (r < 0 && errno == EINTR) continue;
    check_sys(r, "poll (control connection)");
    if (r == 0) continue;  // the deadline is looked at above
    char chunk[4096];
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Closed("the control connection closed");
    buffered.append(chunk, static_cast<std::size_t>(n));
  }
}

// A control connection whose other host vanished (no FIN, no RST) fails within about
// 30 s instead of TCP's default two hours: keep-alive probes after 10 s idle, 5 s apart,
// 3 unanswered ones end it; unacknowledged data ends it after 30 s.
void watch_connection(int fd) {
  int one = 1, idle = 10, interval = 5, count = 3;
  unsigned timeout_ms = 30000;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms, sizeof timeout_ms);
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

bool same_token(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;  // every byte looked at: the time says nothing of where they differ
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// The network interface holding `addr`, and its driver where the kernel names one
// ("eth0 (virtio_net)"; a veth or the loopback has none: "veth0", "lo").
std::string nic_of(in_addr addr) {
  ifaddrs* all = nullptr;
  if (::getifaddrs(&all) != 0) return "unavailable";
  std::string name = "unavailable";
  for (ifaddrs* i = all; i; i = i->ifa_next)
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
        reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr == addr.s_addr)
      name = i->ifa_name;
  ::freeifaddrs(all);
  std::error_code ec;
  const auto driver =
      std::filesystem::read_symlink("/sys/class/net/" + name + "/device/driver", ec);
  return ec ? name : name + " (" + driver.filename().string() + ")";
}

nlohmann::json this_machine(in_addr local) {
  nlohmann::json c = nlohmann::json::object();
  c["nic"] = nic_of(local);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  c["host_name"] = host;
  for (const auto& [k, v] : machine_context()) c[k] = v;
  return c;
}

// The peer a SPAWN request asks for, checked field by field; its pipes made and filled.
struct PeerRequest {
  PeerArgs args;
  std::vector<UniqueFd> pipes;  // what the peer inherits
  UniqueFd ready;               // a serving peer's ready pipe, our end
};

// How a split transport's link is made (bench/split.h): the peer connects to the client,
// its endpoint {host, port, token pipe, …}; or the peer serves and the client calls it
// (PeerServerLink), its endpoint {where, ready pipe, token pipe}.
enum class Shape { kPeerConnects, kPeerServes };
struct SplitTransport {
  const char* name;
  Shape shape;
};
constexpr SplitTransport kSplitTransports[] = {
    {"tcp", Shape::kPeerConnects},         {"zmq-tcp", Shape::kPeerConnects},
    {"jsonrpc-tcp", Shape::kPeerConnects}, {"http-tcp", Shape::kPeerServes},
    {"grpc-tcp", Shape::kPeerServes},      {"grpc-stream-tcp", Shape::kPeerServes}};

Shape shape_of(const std::string& transport) {
  for (const SplitTransport& t : kSplitTransports)
    if (transport == t.name) return t.shape;
  return Shape::kPeerConnects;
}

// Where each split transport's endpoint has its token pipe, and a serving peer's endpoint
// its ready pipe (the peer writes its port there: relayed by READY).
constexpr std::size_t kTokenPipe = 2, kReadyPipe = 1;

// A fan-in client's endpoint (role client) or a fan-out subscriber's (role subscriber),
// started by PARTY, by transport: how many addresses it has, the word its first one must
// be (none: nullptr), where the listener's host is (alone, or as "host:port"), and where
// the token pipe is. Every other address is a number (a port, a queue limit, the party's
// own number).
struct PartyLayout {
  const char* transport;
  const char* role;
  std::size_t count;
  const char* word;
  std::size_t host;
  bool host_with_port;
  std::size_t token;
};
constexpr PartyLayout kPartyLayouts[] = {{"tcp", "client", 3, nullptr, 0, false, 2},
                                         {"zmq-tcp", "client", 6, "fan-in", 1, false, 3},
                                         {"grpc-tcp", "client", 4, "fan-in", 1, true, 2},
                                         {"grpc-stream-tcp", "client", 4, "fan-in", 1, true, 2},
                                         {"tcp", "subscriber", 3, nullptr, 0, false, 2},
                                         {"zmq-tcp", "subscriber", 6, "fan-out", 1, false, 3}};

const PartyLayout* party_layout(const std::string& transport, const nlohmann::json& role) {
  for (const PartyLayout& l : kPartyLayouts)
    if (transport == l.transport && role == l.role) return &l;
  return nullptr;
}

bool all_digits(const std::string& s) {
  return !s.empty() && s.size() <= 10 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A SPAWN request's peer, or (party_index set) a PARTY request's: party (a fan-in client
// or a fan-out subscriber) number *party_index, whose endpoint must fit its transport's
// and role's PartyLayout.
PeerRequest parse_spawn(const std::string& text, const std::string& client_ip,
                        const std::string& server_ip,
                        std::optional<std::size_t> party_index = std::nullopt) {
  const std::string verb = party_index ? "PARTY" : "SPAWN";
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Failure(verb + ": not a JSON object");
  auto field = [&j, &verb](const char* name) -> const nlohmann::json& {
    if (!j.contains(name)) throw Failure(verb + ": no '" + name + "'");
    return j.at(name);
  };
  PeerRequest r;
  const auto& transport = field("transport");
  const auto& allowed = split_transports();
  if (!transport.is_string() ||
      std::find(allowed.begin(), allowed.end(), transport.get<std::string>()) == allowed.end())
    throw Failure(verb + ": 'transport' is not one split mode runs");
  r.args.transport = transport.get<std::string>();
  const PartyLayout* layout = nullptr;
  if (party_index) {
    const auto& role = field("role");
    const auto& id = field("client_id");
    layout = party_layout(r.args.transport, role);
    if (!layout)
      throw Failure(
          "PARTY: 'role' is not \"client\" or \"subscriber\" of a fan-in or fan-out "
          "form of " +
          r.args.transport + " that split mode runs");
    if (!id.is_number_unsigned() || id.get<std::uint64_t>() != *party_index)
      throw Failure("PARTY: 'client_id' is not " + std::to_string(*party_index) +
                    " (a cell's parties are started in order)");
    r.args.role = layout->role;
    r.args.client_id = static_cast<int>(*party_index);
  }
  const auto& addresses = field("addresses");
  if (!addresses.is_array() || addresses.empty() || addresses.size() > kMaxAddresses)
    throw Failure(verb + ": 'addresses' is not an array of 1 to 8 strings");
  for (const auto& a : addresses) {
    if (!a.is_string() || a.get<std::string>().size() > kMaxAddress ||
        a.get<std::string>().find('\0') != std::string::npos)
      throw Failure(verb + ": an address is not a string of at most 256 bytes");
    r.args.addresses.push_back(a.get<std::string>());
  }
  const Shape shape = layout ? Shape::kPeerConnects : shape_of(r.args.transport);
  const std::size_t token_pipe = layout ? layout->token : kTokenPipe;
  if (layout) {
    // A client connects to the client's own address (where the listener is), nowhere else.
    const auto& a = r.args.addresses;
    bool ok = a.size() == layout->count && (!layout->word || a[0] == layout->word);
    for (std::size_t i = layout->word ? 1 : 0; ok && i < a.size(); ++i) {
      if (i == layout->host)
        ok = layout->host_with_port ? a[i].rfind(client_ip + ":", 0) == 0 &&
                                          all_digits(a[i].substr(client_ip.size() + 1))
                                    : a[i] == client_ip;
      else
        ok = all_digits(a[i]);
    }
    if (!ok)
      throw Failure("PARTY: not a " + r.args.transport + " " + layout->role +
                    "'s endpoint that connects to the client's own address (" + client_ip + ")");
  } else if (shape == Shape::kPeerConnects) {
    // The peer connects to the client that asked, nowhere else.
    if (r.args.addresses.size() <= kTokenPipe || r.args.addresses[0] != client_ip)
      throw Failure("SPAWN: the peer may connect only to the client's own address (" + client_ip +
                    ")");
  } else if (r.args.addresses.size() != 3 || r.args.addresses[0] != server_ip) {
    // The peer's server listens on this host's address on the control connection only.
    throw Failure("SPAWN: the peer's server may listen only on this host's address (" + server_ip +
                  ")");
  }
  const auto& max_size = field("max_size");
  const Transport* t = find_transport(r.args.transport);
  if (!max_size.is_number_unsigned() || max_size.get<std::uint64_t>() == 0 ||
      max_size.get<std::uint64_t>() > t->info().max_message)
    throw Failure(verb + ": 'max_size' is not a size the transport carries");
  r.args.max_size = max_size.get<std::size_t>();
  const auto& verify = field("verify");
  if (!verify.is_boolean()) throw Failure(verb + ": 'verify' is not true or false");
  r.args.verify = verify.get<bool>();
  const auto& timeout = field("setup_timeout_ms");
  if (!timeout.is_number_unsigned() || timeout.get<std::uint64_t>() == 0 ||
      timeout.get<std::uint64_t>() > 600000)
    throw Failure(verb + ": 'setup_timeout_ms' is not in 1..600000");
  r.args.setup_timeout = std::chrono::milliseconds(timeout.get<std::uint64_t>());
  const auto& pipes = field("pipes");
  if (!pipes.is_object() || pipes.size() != 1 || !pipes.contains(std::to_string(token_pipe)))
    throw Failure(verb + ": 'pipes' is not one object member, the token pipe's (\"" +
                  std::to_string(token_pipe) + "\")");
  for (const auto& item : pipes.items()) {
    const std::string& index = item.key();
    const nlohmann::json& content = item.value();
    std::size_t i = kMaxAddresses;
    std::from_chars(index.data(), index.data() + index.size(), i);
    if (i >= r.args.addresses.size() || std::to_string(i) != index || !content.is_string() ||
        content.get<std::string>().size() > kMaxPipeBytes)
      throw Failure(verb + ": 'pipes' names no address, or holds more than 4096 bytes");
    int p[2];
    check_sys(::pipe2(p, O_CLOEXEC), "pipe");
    UniqueFd read_end(p[0]), write_end(p[1]);
    const std::string& bytes = content.get_ref<const std::string&>();
    write_all(write_end.get(), std::as_bytes(std::span(bytes.data(), bytes.size())), "pipe");
    r.args.addresses[i] = std::to_string(read_end.get());
    r.pipes.push_back(std::move(read_end));
  }
  // Pipes the peer writes into, whose line READY relays: a serving peer's ready pipe.
  const bool serves = shape == Shape::kPeerServes;
  const nlohmann::json replies = j.contains("replies") ? j.at("replies") : nlohmann::json::array();
  if (!replies.is_array() ||
      replies != (serves ? nlohmann::json::array({kReadyPipe}) : nlohmann::json::array()))
    throw Failure(serves ? "SPAWN: 'replies' is not [1], the ready pipe"
                         : verb + ": 'replies' names a pipe this transport has none of");
  if (serves) {
    int p[2];
    check_sys(::pipe2(p, O_CLOEXEC), "pipe");
    r.ready.reset(p[0]);
    UniqueFd write_end(p[1]);
    r.args.addresses[kReadyPipe] = std::to_string(write_end.get());
    r.pipes.push_back(std::move(write_end));
  }
  return r;
}

// READY: the line a serving peer writes into its ready pipe (its port), waited for
// `ms` at most: "READY <port>", "READY -" when the peer closed the pipe first (it
// exited), "READY timeout", or "READY bad" for anything but a port number.
std::string ready_answer(int ready, unsigned ms) {
  std::string line;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (line.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    pollfd p{ready, POLLIN, 0};
    const int r = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return "READY timeout";
    char buf[32];
    const ssize_t n = ::read(ready, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "READY -";
    line.append(buf, static_cast<std::size_t>(n));
    if (line.size() > 16) return "READY bad";
  }
  line.resize(line.find('\n'));
  const std::optional<int> port = ready_port(line);
  return port ? "READY " + std::to_string(*port) : "READY bad";
}

// A party's control message as text: hex bytes, a run of zero bytes (a histogram is
// mostly zeros) as z<count>. (A PartyResult of ~59 KiB takes a few hundred bytes.)
std::string encode_bytes(const std::byte* p, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j < n && p[j] == std::byte{0}) ++j;
    if (j - i >= 3) {
      out += 'z' + std::to_string(j - i) + '.';
      i = j;
      continue;
    }
    const auto b = std::to_integer<unsigned>(p[i++]);
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

// The bytes encode_bytes wrote; throws Failure when `text` is not its output or would
// be longer than `max` bytes.
std::vector<std::byte> decode_bytes(const std::string& text, std::size_t max) {
  std::vector<std::byte> out;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < text.size();) {
    if (text[i] == 'z') {
      const auto dot = text.find('.', i);
      std::size_t run = 0;
      auto [p, ec] = std::from_chars(text.data() + i + 1,
                                     text.data() + (dot == std::string::npos ? i + 1 : dot), run);
      if (dot == std::string::npos || ec != std::errc() || p != text.data() + dot ||
          run > max - std::min(max, out.size()))
        throw Failure("a relayed control message is garbled");
      out.insert(out.end(), run, std::byte{0});
      i = dot + 1;
      continue;
    }
    const int hi = nibble(text[i]), lo = i + 1 < text.size() ? nibble(text[i + 1]) : -1;
    if (hi < 0 || lo < 0 || out.size() >= max)
      throw Failure("a relayed control message is garbled");
    out.push_back(static_cast<std::byte>(hi << 4 | lo));
    i += 2;
  }
  return out;
}

// Field `k` of a request split at single spaces (split_at) as a number; throws Failure
// `what` unless it is a whole number in [lo, hi].
std::int64_t field_number(const std::vector<std::string_view>& f, std::size_t k, std::int64_t lo,
                          std::int64_t hi, const std::string& what) {
  std::int64_t v = 0;
  if (k >= f.size()) throw Failure(what);
  auto [p, ec] = std::from_chars(f[k].data(), f[k].data() + f[k].size(), v);
  if (ec != std::errc() || p != f[k].data() + f[k].size() || v < lo || v > hi) throw Failure(what);
  return v;
}

// The clients or subscribers of one cell that a client started with PARTY, and their
// control links (this server's ends), which GO, PUBLISHED, NEXT and END relay.
class ServedParties {
 public:
  bool empty() const { return parties_.empty(); }
  std::size_t size() const { return parties_.size(); }
  void add(ChildProcess child, UniqueFd control, bool subscriber) {
    parties_.push_back({std::move(child), std::move(control), subscriber, false, ""});
  }
  // GO <i> <verify> <size> <start in ns> <window ns> <give up in ns> <start ns>: the kGo
  // message. A client's window starts <start in ns> from now on this host's clock; a
  // subscriber's window is <start ns> on the client's clock (compared only with the
  // publish times it receives), and it gives up <give up in ns> from now here. "SENT",
  // or "LOST" when the party has ended (NEXT says how).
  std::string go(const std::string& line) {
    const auto f = split_at(line, ' ');
    const std::vector<std::size_t> who = parties_named(f, "GO");
    const std::string bad =
        "GO: not <parties> <verify 0|1> <size> <start in ns> <window ns> "
        "<give up in ns> <start ns>";
    constexpr std::int64_t kDay = 86'400'000'000'000;  // ns
    if (f.size() != 8) throw Failure(bad);
    PartyGo go;
    go.verify = static_cast<std::uint32_t>(field_number(f, 2, 0, 1, bad));
    go.size = static_cast<std::uint64_t>(field_number(f, 3, 1, 1LL << 32, bad));
    const std::int64_t start_in = field_number(f, 4, -kDay, kDay, bad);
    const std::int64_t window = field_number(f, 5, 1, kDay, bad);
    const std::int64_t give_up_in = field_number(f, 6, 0, 2 * kDay, bad);
    const std::int64_t start_there =
        field_number(f, 7, 0, std::numeric_limits<std::int64_t>::max() - kDay, bad);
    const std::int64_t now = mono_ns();
    std::string answer = "SENT";
    for (std::size_t i : who) {
      const Party& p = parties_[i];
      if (p.subscriber) {
        go.start_ns = start_there;
        go.two_clocks = 1;
      } else {
        go.start_ns = now + std::max<std::int64_t>(start_in, 0);  // late: moves later, whole
        go.two_clocks = 0;
      }
      go.end_ns = go.start_ns + window;
      go.give_up_ns = give_up_in > 0 ? now + give_up_in : 0;
      if (send_to(p, &go, sizeof go) != "SENT") answer = "LOST";
    }
    return answer;
  }
  // PUBLISHED <i> <count>: the kEnd message (the publisher has stopped after `count`).
  std::string published(const std::string& line) {
    const auto f = split_at(line, ' ');
    const std::vector<std::size_t> who = parties_named(f, "PUBLISHED");
    const std::string bad = "PUBLISHED: not <subscribers> <count>";
    if (f.size() != 3) throw Failure(bad);
    PartyEnd end;
    end.published = static_cast<std::uint64_t>(
        field_number(f, 2, 0, std::numeric_limits<std::int64_t>::max(), bad));
    std::string answer = "SENT";
    for (std::size_t i : who) {
      if (!parties_[i].subscriber)
        throw Failure("PUBLISHED: party " + std::to_string(i) + " is not a subscriber");
      if (send_to(parties_[i], &end, sizeof end) != "SENT") answer = "LOST";
    }
    return answer;
  }
  // The parties a request's first field names ("0,2,5"): listed, each once. Throws.
  std::vector<std::size_t> parties_named(const std::vector<std::string_view>& f,
                                         const std::string& verb) const {
    const std::string bad = verb + ": not a list of listed parties (0,1,…)";
    if (f.size() < 2) throw Failure(bad);
    std::vector<std::size_t> out;
    std::vector<bool> seen(parties_.size());
    for (std::string_view item : split_at(f[1], ',')) {
      const auto i = static_cast<std::size_t>(
          field_number({item}, 0, 0, static_cast<std::int64_t>(parties_.size()) - 1, bad));
      if (seen[i]) throw Failure(bad);
      seen[i] = true;
      out.push_back(i);
    }
    return out;
  }
  // NEXT <ms>: the next message of any party still running, in turn ("FROM <i> <bytes>"),
  // a party whose link closed ("GONE <i> <how it ended>"), or "NONE" after ms.
  std::string next(unsigned ms) {
    std::vector<pollfd> fds;
    std::vector<std::size_t> which;
    for (std::size_t k = 0; k < parties_.size(); ++k) {
      const std::size_t i = (turn_ + k) % parties_.size();
      if (parties_[i].ended) continue;
      fds.push_back({parties_[i].control.get(), POLLIN, 0});
      which.push_back(i);
    }
    const int r = ::poll(fds.data(), fds.size(), static_cast<int>(ms));
    if (r <= 0) return "NONE";  // EINTR too: the client asks again
    for (std::size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      const std::size_t i = which[k];
      Party& p = parties_[i];
      turn_ = i + 1;
      std::vector<std::byte> buf(sizeof(PartyResult) + 1);
      const ssize_t n = ::recv(p.control.get(), buf.data(), buf.size(), MSG_TRUNC | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) return "GONE " + std::to_string(i) + " " + end(i, 200);
      if (static_cast<std::size_t>(n) > buf.size()) {
        const std::string why =
            "a control message of " + std::to_string(n) + " bytes, larger than any (not relayed)";
        const PartyKind k = PartyKind::kFailed;
        buf.assign(sizeof k + why.size(), std::byte{0});
        std::memcpy(buf.data(), &k, sizeof k);
        std::memcpy(buf.data() + sizeof k, why.data(), why.size());
        return "FROM " + std::to_string(i) + " " + encode_bytes(buf.data(), buf.size());
      }
      return "FROM " + std::to_string(i) + " " +
             encode_bytes(buf.data(), static_cast<std::size_t>(n));
    }
    return "NONE";
  }
  // Ends party i (a grace of `ms` to end by itself first); how it ended, on one line.
  std::string end(std::size_t i, unsigned ms) {
    Party& p = parties_.at(i);
    if (!p.ended) {
      p.how = p.child.finish(std::chrono::milliseconds(ms));
      std::replace(p.how.begin(), p.how.end(), '\n', ' ');
      p.control.reset();
      p.ended = true;
    }
    return p.how;
  }
  // Ends them all at once and forgets them: the next cell starts its own.
  std::size_t end_all() {
    for (Party& p : parties_) p.child.kill_now();
    const std::size_t n = parties_.size();
    parties_.clear();  // reaps them
    turn_ = 0;
    return n;
  }

 private:
  struct Party {
    ChildProcess child;
    UniqueFd control;
    bool subscriber = false;
    bool ended = false;
    std::string how;
  };
  static std::string send_to(const Party& p, const void* msg, std::size_t len) {
    if (p.ended) return "LOST";
    const ssize_t n = ::send(p.control.get(), msg, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    return n == static_cast<ssize_t>(len) ? "SENT" : "LOST";
  }
  std::vector<Party> parties_;
  std::size_t turn_ = 0;
};

// One client, from its HELLO to its going away. Throws Failure (answered as ERR).
void serve_client(int fd, const std::string& token, std::string& buffered) {
  sockaddr_in self{};
  socklen_t len = sizeof self;
  check_sys(::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &len), "getsockname");
  sockaddr_in client{};
  len = sizeof client;
  check_sys(::getpeername(fd, reinterpret_cast<sockaddr*>(&client), &len), "getpeername");
  char client_ip[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &client.sin_addr, client_ip, sizeof client_ip);
  const std::string hello = read_line(fd, buffered, 3000);
  if (hello.rfind(kHello, 0) != 0 || !same_token(hello.substr(std::strlen(kHello)), token))
    throw Failure("not authenticated (HELLO ipcbench-split 2 <token> expected)");
  write_line(fd, "OK " + this_machine(self.sin_addr).dump());
  ChildProcess peer;
  UniqueFd ready;         // a serving peer's ready pipe until READY relayed its port
  ServedParties parties;  // a clients or fanout cell's: they go when the client goes
  char server_ip[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &self.sin_addr, server_ip, sizeof server_ip);
  for (;;) {
    std::string line;
    try {
      line = read_line(fd, buffered, -1);
    } catch (const Closed&) {
      return;  // the client went away: its peer goes with `peer`
    }
    if (line.rfind("SPAWN ", 0) == 0) {
      if (peer.alive()) throw Failure("SPAWN: a peer of this client still runs");
      if (!parties.empty()) throw Failure("SPAWN: parties of this client's cell still run");
      PeerRequest r = parse_spawn(line.substr(6), client_ip, server_ip);
      std::vector<int> fds;
      for (const auto& p : r.pipes) fds.push_back(p.get());
      peer = ChildProcess::spawn({peer_command(r.args), fds, -1});
      ready = std::move(r.ready);  // the peer's end closes with r: its exit shows as EOF
      write_line(fd, "SPAWNED");
    } else if (line.rfind("READY ", 0) == 0) {
      unsigned ms = 0;
      const std::string v = line.substr(6);
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), ms);
      if (ec != std::errc() || p != v.data() + v.size() || ms == 0 || ms > 60000)
        throw Failure("READY: not a wait in ms from 1 to 60000");
      if (!ready.valid()) throw Failure("READY: no peer of this client is starting a server");
      const std::string answer = ready_answer(ready.get(), ms);
      if (answer != "READY timeout") ready.reset();  // asked again while the peer starts
      write_line(fd, answer);
    } else if (line.rfind("PARTY ", 0) == 0) {
      if (peer.alive()) throw Failure("PARTY: a peer of this client still runs");
      if (parties.size() >= kMaxClients)
        throw Failure("PARTY: more than " + std::to_string(kMaxClients) + " parties in a cell");
      const std::size_t i = parties.size();
      PeerRequest r = parse_spawn(line.substr(6), client_ip, server_ip, i);
      int sv[2];
      check_sys(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv),
                "socketpair (control)");
      UniqueFd mine(sv[0]), theirs(sv[1]);
      r.args.control_fd = theirs.get();
      std::vector<int> fds;
      for (const auto& p : r.pipes) fds.push_back(p.get());
      fds.push_back(theirs.get());
      parties.add(ChildProcess::spawn({peer_command(r.args), fds, -1}), std::move(mine),
                  r.args.role == "subscriber");
      write_line(fd, "PARTY " + std::to_string(i));
    } else if (line.rfind("GO ", 0) == 0) {
      write_line(fd, parties.go(line));
    } else if (line.rfind("PUBLISHED ", 0) == 0) {
      write_line(fd, parties.published(line));
    } else if (line.rfind("NEXT ", 0) == 0) {
      const auto f = split_at(line, ' ');
      const auto ms = field_number(f, 1, 0, 1000, "NEXT: not a wait in ms up to 1000");
      if (f.size() != 2) throw Failure("NEXT: not a wait in ms up to 1000");
      write_line(fd, parties.next(static_cast<unsigned>(ms)));
    } else if (line.rfind("END ", 0) == 0) {
      const auto f = split_at(line, ' ');
      const std::string bad = "END: not <party or *> <grace in ms up to 60000>";
      const auto ms = static_cast<unsigned>(field_number(f, 2, 0, 60000, bad));
      if (f.size() != 3) throw Failure(bad);
      if (f[1] == "*") {
        write_line(fd, "ENDED " + std::to_string(parties.end_all()));
      } else {
        const auto i = field_number(f, 1, 0, static_cast<std::int64_t>(parties.size()) - 1, bad);
        write_line(fd, "ENDED " + parties.end(static_cast<std::size_t>(i), ms));
      }
    } else if (line == "ALIVE") {
      write_line(fd, peer.alive() ? "YES" : "NO");
    } else if (line.rfind("FINISH ", 0) == 0) {
      unsigned ms = 0;
      const std::string v = line.substr(7);
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), ms);
      if (ec != std::errc() || p != v.data() + v.size() || ms > 60000)
        throw Failure("FINISH: not a grace in ms up to 60000");
      write_line(fd, "ENDED " + peer.finish(std::chrono::milliseconds(ms)));
    } else {
      throw Failure("unknown request");
    }
  }
}

}  // namespace

const std::vector<std::string>& split_transports() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const SplitTransport& t : kSplitTransports)
      if (find_transport(t.name)) out.emplace_back(t.name);
    return out;
  }();
  return names;
}

std::string read_token_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw Failure("--token-file: cannot read " + path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0 || st.st_uid != ::geteuid())
    throw Failure("--token-file: " + path +
                  " must be a file of yours that only you can read (chmod 600)");
  std::ifstream f(path);
  std::string token;
  std::getline(f, token);
  if (token.size() < 16 || token.size() > 256 ||
      token.find_first_of(" \t\r\n") != std::string::npos)
    throw Failure("--token-file: " + path + " holds no token (16 to 256 characters, no blanks)");
  return token;
}

SplitClient::SplitClient(const std::string& host_port, const std::string& token) {
  const HostPort hp = parse_host_port(host_port, "--connect", false);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr = hp.addr;
  a.sin_port = htons(hp.port);
  server_ = describe(a);
  fd_.reset(static_cast<int>(
      check_sys(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), "socket")));
  if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (errno != EINPROGRESS) throw Failure("--connect: " + server_ + ": " + std::strerror(errno));
    pollfd p{fd_.get(), POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    if (::poll(&p, 1, 10000) != 1) throw Failure("--connect: " + server_ + ": no answer in 10 s");
    ::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) throw Failure("--connect: " + server_ + ": " + std::strerror(err));
  }
  const int flags = ::fcntl(fd_.get(), F_GETFL);
  ::fcntl(fd_.get(), F_SETFL, flags & ~O_NONBLOCK);
  watch_connection(fd_.get());
  sockaddr_in self{};
  socklen_t len = sizeof self;
  check_sys(::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&self), &len), "getsockname");
  char ip[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &self.sin_addr, ip, sizeof ip);
  local_ = ip;
  nic_ = nic_of(self.sin_addr);
  const auto hello_sent = std::chrono::steady_clock::now();
  const std::string ok = request(kHello + token);
  hello_rtt_ = std::chrono::steady_clock::now() - hello_sent;
  if (ok.rfind("OK ", 0) != 0) throw Failure("--connect: " + server_ + ": unexpected answer");
  context_ = nlohmann::json::parse(ok.substr(3), nullptr, false);
  if (context_.is_discarded() || !context_.is_object())
    throw Failure("--connect: " + server_ + ": its machine context is not a JSON object");
}

std::string SplitClient::request(const std::string& line) {
  std::lock_guard lock(mu_);
  if (!fd_.valid()) throw Failure("split server " + server_ + ": the control connection was lost");
  std::string reply;
  try {
    write_line(fd_.get(), line);
    // A relayed result (NEXT) may be longer than a request: at most every byte in hex.
    reply = read_line(fd_.get(), buffered_, 70000, 2 * sizeof(PartyResult) + 64);
  } catch (const std::exception& e) {
    fd_.reset();  // a late answer must never be taken for the next request's
    throw Failure("split server " + server_ + ": " + e.what());
  }
  if (reply.rfind("ERR ", 0) == 0) {
    fd_.reset();  // the server closes the connection after an ERR
    throw Failure("split server " + server_ + ": " + reply.substr(4));
  }
  return reply;
}

nlohmann::json SplitClient::peer_request(const PeerArgs& args, const std::vector<int>& inherit_fds,
                                         int* reply_fd_out) {
  nlohmann::json pipes = nlohmann::json::object(), replies = nlohmann::json::array();
  int reply_fd = -1;
  for (int fd : inherit_fds) {
    std::size_t i = 0;
    while (i < args.addresses.size() && args.addresses[i] != std::to_string(fd)) ++i;
    const int mode = ::fcntl(fd, F_GETFL);
    if (i < args.addresses.size() && mode >= 0 && (mode & O_ACCMODE) == O_WRONLY) {
      // A pipe the peer writes into (a serving peer's ready pipe): READY relays its line.
      if (reply_fd >= 0)
        throw Failure(args.transport + ": its link has the peer write into two pipes");
      replies.push_back(i);
      reply_fd = fd;
      continue;
    }
    pollfd p{fd, POLLIN, 0};
    char bytes[kMaxPipeBytes];
    const ssize_t n = ::poll(&p, 1, 0) == 1 ? ::read(fd, bytes, sizeof bytes) : -1;
    if (i == args.addresses.size() || n <= 0)
      throw Failure(args.transport + ": its link hands the peer a pipe split mode cannot forward");
    pipes[std::to_string(i)] = std::string(bytes, static_cast<std::size_t>(n));
  }
  *reply_fd_out = reply_fd;
  return {{"transport", args.transport},
          {"addresses", args.addresses},
          {"pipes", pipes},
          {"replies", replies},
          {"max_size", args.max_size},
          {"verify", args.verify},
          {"setup_timeout_ms", args.setup_timeout.count()}};
}

void SplitClient::spawn(const PeerArgs& args, const std::vector<int>& inherit_fds) {
  int reply_fd = -1;
  const nlohmann::json j = peer_request(args, inherit_fds, &reply_fd);
  if (request("SPAWN " + j.dump()) != "SPAWNED")
    throw Failure("split server " + server_ + ": unexpected answer to SPAWN");
  if (reply_fd < 0) return;
  // The peer starts its server over there; its port goes into our end of the ready pipe,
  // where the listener reads it as from a local peer. Nothing written ("-": the peer
  // exited first): the listener sees the pipe end and says the server exited. READY
  // waits 60 s at most per request: asked again until the set-up time is up.
  const auto until = std::chrono::steady_clock::now() + args.setup_timeout;
  std::string port = "timeout", r;
  while (port == "timeout") {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    r = request("READY " + std::to_string(std::min<long long>(left.count(), 60000)));
    port = r.rfind("READY ", 0) == 0 ? r.substr(6) : "";
  }
  if (port == "-") return;
  if (!ready_port(port)) {
    // The peer would outlive the cell, and the server would refuse the next SPAWN.
    finish(std::chrono::milliseconds(0));
    throw Failure(args.transport + ": the peer's server on " + server_ +
                  (port == "timeout" ? " did not start within " +
                                           std::to_string(args.setup_timeout.count()) + " ms"
                                     : " reported no port (" + r + ")"));
  }
  const std::string line = port + "\n";
  write_all(reply_fd, std::as_bytes(std::span(line.data(), line.size())), "ready pipe");
}

bool SplitClient::alive() { return request("ALIVE") == "YES"; }

std::string SplitClient::finish(std::chrono::milliseconds grace) {
  const std::string r = request("FINISH " + std::to_string(grace.count()));
  if (r.rfind("ENDED ", 0) != 0)
    throw Failure("split server " + server_ + ": unexpected answer to FINISH");
  return r.substr(6) + " on " + server_;
}

// The clients or subscribers of a cell, on the server. Each has a SOCK_SEQPACKET pair
// here, as a local party would: the workload holds one end (control()), the relay thread
// the other. The relay sends what the workload writes (kGo as GO, its times made relative
// to now; kEnd as PUBLISHED; the same message to several parties as one request) and asks
// the server for what the parties write (NEXT), which it writes into its ends; a party
// whose link closed there (GONE) has its end here closed too, so the workload sees it go
// as it sees a local party go.
class SplitParties final : public Parties {
 public:
  explicit SplitParties(SplitClient& client) : client_(client) {}
  ~SplitParties() override {
    stop_.store(true);
    if (relay_.joinable()) relay_.join();
    if (!asked_) return;
    try {
      client_.request("END * 0");  // the server forgets them: the next cell starts afresh
    } catch (const std::exception&) {
      // The connection is lost: the server ends them as it ends this client.
    }
  }

  void start(PeerArgs a, std::vector<int> inherit, int /*cpu: not pinned there*/) override {
    int sv[2];
    check_sys(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), "socketpair (control)");
    UniqueFd mine(sv[0]), theirs(sv[1]);
    int reply_fd = -1;
    nlohmann::json j = client_.peer_request(a, inherit, &reply_fd);
    if (reply_fd >= 0) throw Failure(a.transport + ": a party with a reply pipe cannot run split");
    j["role"] = a.role;
    j["client_id"] = a.client_id;
    std::lock_guard lock(mu_);  // the relay must not hear of party i before it is listed
    const std::string want = "PARTY " + std::to_string(control_.size());
    asked_ = true;  // listed there, whatever the answer: END * at the end
    if (client_.request("PARTY " + j.dump()) != want)
      throw Failure("split server " + client_.server() + ": unexpected answer to PARTY");
    control_.push_back(std::move(mine));
    theirs_.push_back(std::move(theirs));
    how_.emplace_back();
    if (!relay_.joinable()) relay_ = std::thread([this] { relay(); });
  }
  bool alive(std::size_t i) override {
    std::lock_guard lock(mu_);
    return how_.at(i).empty();
  }
  std::string finish(std::size_t i, std::chrono::milliseconds grace) override {
    const auto until = std::chrono::steady_clock::now() + grace;
    for (;;) {
      {
        std::lock_guard lock(mu_);
        if (!how_.at(i).empty()) return how_[i];
      }
      if (std::chrono::steady_clock::now() >= until) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::string how;
    try {
      const std::string r = client_.request("END " + std::to_string(i) + " 0");
      how = r.rfind("ENDED ", 0) == 0 ? r.substr(6) + " on " + client_.server() : r;
    } catch (const std::exception& e) {
      how = e.what();
    }
    std::lock_guard lock(mu_);
    if (how_[i].empty()) gone(i, how);
    return how_[i];
  }
  void kill_all() override {
    {
      // First closed here, so that the relay sends nothing more to parties the server is
      // about to forget (it would refuse an unknown party, and close the connection).
      std::lock_guard lock(mu_);
      for (std::size_t i = 0; i < how_.size(); ++i)
        if (how_[i].empty()) gone(i, "killed on " + client_.server());
    }
    try {
      client_.request("END * 0");
    } catch (const std::exception&) {
      // The connection is lost: the server ends them as it ends this client.
    }
  }
  std::vector<pid_t> pids() override { return {}; }
  CpuUse own_use() const override {
    return {relay_cpu_ns_.load(), relay_voluntary_.load(), relay_involuntary_.load()};
  }
  // The relay hands a go message on within one of its rounds (a NEXT of 5 ms and a round
  // trip) and one more round trip (GO); a few round trips of the control connection, as
  // its HELLO took, and 10 ms leave room for both.
  std::chrono::nanoseconds start_lead() const override {
    return std::chrono::milliseconds(10) + 4 * client_.hello_round_trip();
  }

 private:
  // Under mu_: party i has ended (how); the workload sees its link close.
  void gone(std::size_t i, const std::string& how) {
    how_[i] = how.empty() ? "ended" : how;
    theirs_[i].reset();
  }

  // The relay thread's own CPU time and switches so far (own_use).
  void count_own_use() {
    timespec ts{};
    if (::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
      relay_cpu_ns_.store(static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull +
                          static_cast<std::uint64_t>(ts.tv_nsec));
    rusage ru{};
    if (::getrusage(RUSAGE_THREAD, &ru) == 0) {
      relay_voluntary_.store(static_cast<std::uint64_t>(ru.ru_nvcsw));
      relay_involuntary_.store(static_cast<std::uint64_t>(ru.ru_nivcsw));
    }
  }

  void relay() {
    std::vector<std::byte> buf(sizeof(PartyResult) + 1);
    try {
      while (!stop_.load()) {
        count_own_use();
        {
          // What the workload wrote to the parties, the same message to several as one
          // request (a cell's go messages are alike: one round trip for all of them).
          std::lock_guard lock(mu_);
          std::vector<std::pair<std::vector<std::byte>, std::string>> batches;
          for (std::size_t i = 0; i < theirs_.size(); ++i) {
            if (!theirs_[i].valid()) continue;
            const ssize_t n =
                ::recv(theirs_[i].get(), buf.data(), buf.size(), MSG_TRUNC | MSG_DONTWAIT);
            if (n <= 0) continue;
            const std::vector<std::byte> msg(
                buf.begin(), buf.begin() + std::min(static_cast<std::size_t>(n), buf.size()));
            auto it = std::find_if(batches.begin(), batches.end(),
                                   [&msg](const auto& b) { return b.first == msg; });
            if (it == batches.end()) it = batches.insert(batches.end(), {msg, ""});
            if (!it->second.empty()) it->second += ',';
            it->second += std::to_string(i);
          }
          for (const auto& [msg, who] : batches) forward(who, msg);
        }
        const std::string r = client_.request("NEXT 5");
        if (r == "NONE") continue;
        const auto sp = r.size() > 5 ? r.find(' ', 5) : std::string::npos;
        std::size_t i = SIZE_MAX;
        if (sp != std::string::npos) std::from_chars(r.data() + 5, r.data() + sp, i);
        std::lock_guard lock(mu_);
        if (sp == std::string::npos || i >= theirs_.size())
          throw Failure("split server " + client_.server() + ": unexpected answer to NEXT");
        if (r.rfind("GONE ", 0) == 0) {
          if (how_[i].empty()) gone(i, r.substr(sp + 1) + " on " + client_.server());
        } else if (r.rfind("FROM ", 0) == 0) {
          const std::vector<std::byte> msg = decode_bytes(r.substr(sp + 1), buf.size());
          if (theirs_[i].valid() &&
              ::send(theirs_[i].get(), msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT) !=
                  static_cast<ssize_t>(msg.size()))
            gone(i, std::string("its message could not be handed on here (") +
                        std::strerror(errno) + ")");
        } else {
          throw Failure("split server " + client_.server() + ": unexpected answer to NEXT");
        }
      }
    } catch (const std::exception& e) {
      // The connection is lost (or the server made no sense): every party is, for us.
      std::lock_guard lock(mu_);
      for (std::size_t i = 0; i < how_.size(); ++i)
        if (how_[i].empty()) gone(i, std::string("lost: ") + e.what());
    }
  }

  // Under mu_: the workload's message to the parties `who` ("0,1,2"): a kGo, or a
  // subscriber's kEnd.
  void forward(const std::string& who, const std::vector<std::byte>& msg) {
    PartyKind kind{};
    if (msg.size() >= sizeof kind) std::memcpy(&kind, msg.data(), sizeof kind);
    if (kind == PartyKind::kGo && msg.size() == sizeof(PartyGo)) {
      PartyGo go;
      std::memcpy(&go, msg.data(), sizeof go);
      const std::int64_t now = mono_ns();
      client_.request("GO " + who + " " + std::to_string(go.verify) + " " +
                      std::to_string(go.size) + " " + std::to_string(go.start_ns - now) + " " +
                      std::to_string(go.end_ns - go.start_ns) + " " +
                      std::to_string(go.give_up_ns > 0 ? go.give_up_ns - now : 0) + " " +
                      std::to_string(go.start_ns));
    } else if (kind == PartyKind::kEnd && msg.size() == sizeof(PartyEnd)) {
      PartyEnd end;
      std::memcpy(&end, msg.data(), sizeof end);
      client_.request("PUBLISHED " + who + " " + std::to_string(end.published));
    } else {
      throw Failure("split mode relays no such control message to a party");
    }
  }

  SplitClient& client_;
  std::mutex mu_;                 // theirs_ and how_, and the order of PARTY and NEXT
  std::vector<UniqueFd> theirs_;  // the relay's ends of the control links
  std::vector<std::string> how_;  // how party i ended; "" while it runs
  bool asked_ = false;            // a PARTY was sent: the server may list parties
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> relay_cpu_ns_{0}, relay_voluntary_{0}, relay_involuntary_{0};
  std::thread relay_;
};

std::unique_ptr<Parties> split_parties(SplitClient& client) {
  return std::make_unique<SplitParties>(client);
}

int serve_main(const std::string& where, const std::string& token_file) {
  HostPort hp;
  std::string token;
  UniqueFd listening;
  sockaddr_in a{};
  try {
    hp = parse_host_port(where.empty() ? "127.0.0.1:0" : where, "--serve", true);
    token = token_file.empty() ? PeerToken::make().text : read_token_file(token_file);
    listening.reset(
        static_cast<int>(check_sys(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")));
    int one = 1;
    ::setsockopt(listening.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    a.sin_family = AF_INET;
    a.sin_addr = hp.addr;
    a.sin_port = htons(hp.port);
    check_sys(::bind(listening.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), "bind");
    check_sys(::listen(listening.get(), 4), "listen");
    socklen_t len = sizeof a;
    check_sys(::getsockname(listening.get(), reinterpret_cast<sockaddr*>(&a), &len), "getsockname");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipcbench: %s\n", e.what());
    return 2;
  }
  cleanup::install_signal_handlers();  // a signal ends the server and kills its peer
  std::printf("ipcbench: serving on %s\n", describe(a).c_str());
  if (token_file.empty()) std::printf("ipcbench: token %s\n", token.c_str());
  std::fflush(stdout);
  for (;;) {
    sockaddr_in from{};
    socklen_t len = sizeof from;
    UniqueFd c(::accept4(listening.get(), reinterpret_cast<sockaddr*>(&from), &len, SOCK_CLOEXEC));
    if (!c.valid()) {
      // A connection's own trouble (reset before accept, a network error) or a passing
      // shortage of descriptors or memory: the server goes on (after a pause for the
      // latter). Only a broken listening socket ends it.
      const int e = errno;
      if (e == EBADF || e == EINVAL || e == ENOTSOCK || e == EOPNOTSUPP || e == EFAULT) {
        std::fprintf(stderr, "ipcbench: serve: accept: %s\n", std::strerror(e));
        return 1;
      }
      if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    watch_connection(c.get());
    const std::string who = describe(from);
    std::string buffered;
    try {
      serve_client(c.get(), token, buffered);
      std::fprintf(stderr, "ipcbench: serve: %s: done\n", who.c_str());
    } catch (const Closed& e) {
      std::fprintf(stderr, "ipcbench: serve: %s: %s\n", who.c_str(), e.what());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ipcbench: serve: %s: %s\n", who.c_str(), e.what());
      try {
        write_line(c.get(), std::string("ERR ") + e.what());
        // Closed with unread input, the connection would be reset, and the client might
        // lose the line: what it still sends is read and dropped first, for 1 s at most
        // in all (and 1 MiB at most).
        ::shutdown(c.get(), SHUT_WR);
        char sink[4096];
        std::size_t dropped = 0;
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        for (pollfd p{c.get(), POLLIN, 0}; dropped < (1u << 20);) {
          const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
              until - std::chrono::steady_clock::now());
          if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) break;
          const ssize_t n = ::read(c.get(), sink, sizeof sink);
          if (n <= 0) break;
          dropped += static_cast<std::size_t>(n);
        }
      } catch (const std::exception&) {
      }
    }
  }
}

}  // namespace ipcbench
