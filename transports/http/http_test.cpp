// The http transports speak real HTTP/1.1: curl talks to the peer's server (started by
// the test with pipes of its own, so that the test knows the token), the chunked upload
// keeps each message whole, a client given malformed answers fails cleanly, and the
// encoding round trip the floor times is the transport's own.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>

#include "base/cleanup.h"
#include "base/error.h"
#include "base/fd.h"
#include "base/process.h"
#include "base/run_dir.h"
#include "bench/peer.h"
#include "tests/test_support.h"
#include "transports/endpoint_reader.h"
#include "transports/framing.h"
#include "transports/http/http_codec.h"
#include "transports/registry.h"
#include "transports/socket_util.h"

namespace ipcbench {
namespace {

using namespace std::chrono_literals;
using testing_support::pattern;
using testing_support::slurp;

const std::string kToken = "0123456789abcdef0123456789abcdef";

// The peer's server (echo role) with the test's own ready and token pipes.
struct ServedPeer {
  RunDir dir;
  bool uds;
  std::string address, port;
  ChildProcess peer;

  explicit ServedPeer(const std::string& transport) : uds(transport == "http-uds") {
    address = uds ? dir.make_path("http") : "127.0.0.1";
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw SysError("pipe2", errno);
    UniqueFd r(p[0]), w(p[1]);
    UniqueFd token = pipe_holding(kToken, "test token");
    PeerArgs args{transport, {address, std::to_string(w.get()), std::to_string(token.get())},
                  1u << 20,  false,
                  "echo",    IPCBENCH_BINARY};
    peer = ChildProcess::spawn({peer_command(args), {w.get(), token.get()}, -1});
    w.reset();
    std::string line;
    pollfd pf{r.get(), POLLIN, 0};
    char buf[32];
    ssize_t n;
    while (line.find('\n') == std::string::npos && ::poll(&pf, 1, 20000) == 1 &&
           (n = ::read(r.get(), buf, sizeof buf)) > 0)
      line.append(buf, static_cast<std::size_t>(n));
    if (line.find('\n') == std::string::npos) throw ProtocolError("the server did not come up");
    port = line.substr(0, line.find('\n'));
  }
  // curl's arguments that name the server, ending with the URL of `path`.
  std::vector<std::string> where(const std::string& path) const {
    if (uds) return {"--unix-socket", address, "http://x" + path};
    return {"http://" + address + ":" + port + path};
  }
  // Connects a raw socket to the server.
  UniqueFd dial() const {
    if (uds) {
      UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_un a = unix_address(address);
      if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
        throw SysError("connect", errno);
      return fd;
    }
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr = *parse_ipv4(address);
    a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(port)));
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw SysError("connect", errno);
    return fd;
  }
};

// Sends `bytes` on a fresh connection and reads until the server closes (or 5 s pass):
// what it answered, then "|closed" or "|open".
std::string raw_exchange(const ServedPeer& s, const std::string& bytes) {
  UniqueFd fd = s.dial();
  write_all(fd.get(), std::as_bytes(std::span(bytes)), "send (raw)");
  std::string got;
  const auto end = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    pollfd p{fd.get(), POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1)
      return got + "|open";
    char buf[4096];
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n <= 0) return got + "|closed";
    got.append(buf, static_cast<std::size_t>(n));
  }
}

struct Curl {
  int status = -1;  // curl's exit status
  std::string code, headers, body, err;
};

Curl curl(const ServedPeer& s, std::vector<std::string> args, const std::string& path) {
  testing_support::Scratch scratch;
  std::vector<std::string> argv = {"/usr/bin/curl",
                                   "-sS",
                                   "-H",
                                   "Expect:",
                                   "-D",
                                   (scratch.dir / "headers").string(),
                                   "-o",
                                   (scratch.dir / "body").string(),
                                   "-w",
                                   "%{http_code}"};
  argv.insert(argv.end(), args.begin(), args.end());
  for (const std::string& w : s.where(path)) argv.push_back(w);
  Curl c;
  const pid_t pid = testing_support::spawn_captured(argv, scratch);
  if (pid < 0) return c;
  c.status = testing_support::wait_exit(pid);
  c.code = slurp(scratch.dir / "stdout");
  c.err = slurp(scratch.dir / "stderr");
  c.headers = slurp(scratch.dir / "headers");
  c.body = slurp(scratch.dir / "body");
  return c;
}

class HttpPeer : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() { cleanup::install_signal_handlers(); }
  void SetUp() override {
    if (::access("/usr/bin/curl", X_OK) != 0) GTEST_SKIP() << "needs curl (scripts/test.sh)";
  }
};

// curl, as any HTTP client: refused without the token, served with it; bytes that are
// not HTTP and a method the server does not serve get 400 and take nothing from it.
TEST_P(HttpPeer, CurlIsServedOnlyWithTheToken) {
  ServedPeer s(GetParam());
  testing_support::Scratch scratch;
  const auto payload = pattern(65536, 3);
  const std::string in = (scratch.dir / "in.bin").string();
  std::ofstream(in, std::ios::binary)
      .write(reinterpret_cast<const char*>(payload.data()),
             static_cast<std::streamsize>(payload.size()));
  const std::vector<std::string> data = {"--data-binary", "@" + in};
  const std::string auth = "Authorization: Bearer " + kToken;

  Curl none = curl(s, data, "/echo");
  EXPECT_EQ(none.code, "401") << none.err;
  EXPECT_NE(none.headers.find("Connection: close"), std::string::npos) << none.headers;
  std::vector<std::string> wrong = data;
  wrong.insert(wrong.end(), {"-H", "Authorization: Bearer " + std::string(32, 'f')});
  EXPECT_EQ(curl(s, wrong, "/echo").code, "401");

  const std::string garbage = raw_exchange(s, "\x16\x03\x01\x02\x00 hello\r\n\r\n");
  EXPECT_EQ(garbage.substr(0, 12), "HTTP/1.1 400") << garbage;
  EXPECT_EQ(garbage.substr(garbage.size() - 7), "|closed") << garbage;
  // An empty /echo, however its length is written, would read as the end of the link.
  const std::string empty = raw_exchange(
      s, "POST /echo HTTP/1.1\r\nHost: x\r\n" + auth + "\r\nContent-Length: 00\r\n\r\n");
  EXPECT_EQ(empty.substr(0, 12), "HTTP/1.1 400") << empty;
  EXPECT_EQ(empty.substr(empty.size() - 7), "|closed") << empty;
  std::vector<std::string> put = data;
  put.insert(put.end(), {"-H", auth, "-X", "PUT"});
  EXPECT_EQ(curl(s, put, "/echo").code, "400");

  std::vector<std::string> good = data;
  good.insert(good.end(), {"-H", auth});
  Curl ok = curl(s, good, "/echo");
  EXPECT_EQ(ok.status, 0) << ok.err;
  EXPECT_EQ(ok.code, "200") << ok.err;
  EXPECT_NE(ok.headers.find("Content-Type: application/octet-stream\r\n"), std::string::npos)
      << ok.headers;
  EXPECT_NE(ok.headers.find("Content-Length: 65536\r\n"), std::string::npos) << ok.headers;
  ASSERT_EQ(ok.body.size(), payload.size());
  EXPECT_EQ(0, std::memcmp(ok.body.data(), payload.data(), payload.size()));
  // curl has closed its connection, which was the link: the echo peer ends well.
  EXPECT_EQ(s.peer.finish(5s), "exit 0");
}

// An HTTP/1.0 client (ab is one) may call /echo on a kept-alive connection: answered in
// its own version with "Connection: keep-alive", so that both requests below go over the
// one connection that owns the link (a second connection with the token would get 409).
// Sends `request` on fd and reads until an answer ending in a header block and `body` has
// come: what came, or that plus "|closed" / "|timeout" (5 s).
std::string call(int fd, const std::string& request, const std::string& body) {
  write_all(fd, std::as_bytes(std::span(request)), "send (raw)");
  std::string got;
  const std::string end_of_it = "\r\n\r\n" + body;
  const auto end = std::chrono::steady_clock::now() + 5s;
  while (got.size() < end_of_it.size() ||
         got.compare(got.size() - end_of_it.size(), std::string::npos, end_of_it) != 0) {
    pollfd p{fd, POLLIN, 0};
    if (std::chrono::steady_clock::now() > end || ::poll(&p, 1, 100) < 0) return got + "|timeout";
    if (!p.revents) continue;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return got + "|closed";
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

TEST_P(HttpPeer, AnHttp10ClientIsAnsweredInKindAndKeptAlive) {
  ServedPeer s(GetParam());
  UniqueFd fd = s.dial();
  for (const std::string body : {"abc", "defg"}) {  // two calls, one connection
    const std::string got =
        call(fd.get(),
             "POST /echo HTTP/1.0\r\nConnection: Keep-Alive\r\nAuthorization: Bearer " + kToken +
                 "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body,
             body);
    EXPECT_EQ(got.substr(0, 17), "HTTP/1.0 200 OK\r\n") << got;
    EXPECT_NE(got.find("Connection: keep-alive\r\n"), std::string::npos) << got;
    EXPECT_EQ(got.substr(got.size() - body.size()), body) << got;
  }
  fd.reset();  // that connection was the link: the echo peer ends well
  EXPECT_EQ(s.peer.finish(5s), "exit 0");
}

// What the peer sends keeps its order: the echo peer answers an upload of "a", "b" with
// "a" (the upload's reply) and sends "b" when nobody is asking; a following POST /echo
// of "c" is answered with "b", and "c" waits for GET /next.
TEST_P(HttpPeer, ThePeersMessagesKeepTheirOrder) {
  ServedPeer s(GetParam());
  UniqueFd fd = s.dial();
  const std::string head = "Host: x\r\nAuthorization: Bearer " + kToken + "\r\n";
  std::string got = call(fd.get(),
                         "POST /upload HTTP/1.1\r\n" + head +
                             "Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n1\r\nb\r\n0\r\n\r\n",
                         "a");
  EXPECT_EQ(got.substr(0, 17), "HTTP/1.1 200 OK\r\n") << got;
  got = call(fd.get(), "POST /echo HTTP/1.1\r\n" + head + "Content-Length: 1\r\n\r\nc", "b");
  EXPECT_EQ(got.substr(got.size() - 5), "\r\n\r\nb") << got;
  got = call(fd.get(), "GET /next HTTP/1.1\r\n" + head + "\r\n", "c");
  EXPECT_EQ(got.substr(got.size() - 5), "\r\n\r\nc") << got;
  fd.reset();
  EXPECT_EQ(s.peer.finish(5s), "exit 0");
}

// The client itself (it has the token) sending a chunk larger than any message: 400,
// closed, and the peer fails rather than take it.
TEST_P(HttpPeer, AChunkLargerThanAnyMessageIsRefused) {
  ServedPeer s(GetParam());
  char size[32];
  std::snprintf(size, sizeof size, "%zx", kMaxFrameBytes + 1);
  const std::string got =
      raw_exchange(s, "POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + kToken +
                          "\r\nTransfer-Encoding: chunked\r\n\r\n" + size + "\r\nabc");
  EXPECT_EQ(got.substr(0, 12), "HTTP/1.1 400") << got;
  EXPECT_EQ(got.substr(got.size() - 7), "|closed") << got;
  EXPECT_EQ(s.peer.finish(5s), "exit 3");
}

INSTANTIATE_TEST_SUITE_P(Http, HttpPeer, ::testing::Values("http-uds", "http-tcp"),
                         [](const auto& info) {
                           std::string n = info.param;
                           n[4] = '_';
                           return n;
                         });

// ---------------------------------------------------------------------------------
// Through the transport (the registry's listener and connect, an echo peer).

struct Link {
  std::unique_ptr<RunDir> dir = std::make_unique<RunDir>();
  ChildProcess peer;
  std::unique_ptr<Channel> ch;
};

Link open_link(const std::string& name, std::size_t max_size) {
  Link l;
  const Transport* t = find_transport(name);
  if (!t) throw ProtocolError("no transport " + name);
  auto listener = t->listen(*l.dir, max_size, testing_support::settings());
  PeerArgs args{name, listener->endpoint().addresses, max_size, false, "echo", IPCBENCH_BINARY};
  l.peer = ChildProcess::spawn({peer_command(args), listener->endpoint().inherit_fds, -1});
  l.ch =
      listener->accept({std::chrono::steady_clock::now() + 20s, [&l] { return l.peer.alive(); }});
  return l;
}

class HttpLink : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() { cleanup::install_signal_handlers(); }
};

// Messages sent back to back go up one chunked upload, one chunk each: the echo peer
// gets each whole (its first echo answers the upload, the others wait in the server's
// outbox for GET /next), in order, across the server's 64 KiB reads.
TEST_P(HttpLink, AnUploadKeepsEveryMessageWhole) {
  const std::size_t sizes[] = {1, 100, 65536, 65537, (1u << 20) + 3, 7, 70000};
  Link l = open_link(GetParam(), 2u << 20);
  std::vector<std::vector<std::byte>> sent;
  unsigned seed = 10;
  for (std::size_t n : sizes) {
    sent.push_back(pattern(n, ++seed));
    l.ch->send(sent.back());
  }
  std::vector<std::byte> buf(2u << 20);
  for (const auto& m : sent) {
    const std::size_t n = l.ch->recv(buf);
    ASSERT_EQ(n, m.size());
    EXPECT_EQ(0, std::memcmp(buf.data(), m.data(), n)) << n;
  }
  // And request/reply still works on the same connection afterwards.
  auto ping = pattern(300, 99);
  l.ch->send(ping);
  ASSERT_EQ(l.ch->recv(buf), ping.size());
  EXPECT_EQ(0, std::memcmp(buf.data(), ping.data(), ping.size()));
  l.ch.reset();
  EXPECT_EQ(l.peer.finish(5s), "exit 0");
}

// Silent connections by the hundred, more than the peer may open descriptors: the
// server closes the oldest, the client's connection is still accepted and served.
TEST(HttpFlood, SilentConnectionsDoNotKeepTheClientOut) {
  cleanup::install_signal_handlers();
  RunDir dir;
  const Transport* t = find_transport("http-uds");
  auto listener = t->listen(dir, 4096, testing_support::settings());
  const Endpoint ep = listener->endpoint();
  PeerArgs args{"http-uds", ep.addresses, 4096, false, "echo", IPCBENCH_BINARY};
  ChildProcess peer = ChildProcess::spawn({peer_command(args), ep.inherit_fds, -1});
  const rlimit few{64, 64};
  ASSERT_EQ(::prlimit(peer.pid(), RLIMIT_NOFILE, &few, nullptr), 0) << strerror(errno);
  const sockaddr_un a = unix_address(ep.addresses.at(0));
  std::vector<UniqueFd> silent;
  const auto end = std::chrono::steady_clock::now() + 20s;
  while (silent.size() < 200 && std::chrono::steady_clock::now() < end) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0)
      silent.push_back(std::move(fd));
    else
      std::this_thread::sleep_for(1ms);  // not there yet, or its backlog is full
  }
  ASSERT_EQ(silent.size(), 200u);
  auto ch =
      listener->accept({std::chrono::steady_clock::now() + 20s, [&] { return peer.alive(); }});
  std::atomic<bool> done{false};
  std::thread guard([&] {  // a client kept out would wait for ever: end it
    for (int i = 0; i < 200 && !done.load(); ++i) std::this_thread::sleep_for(50ms);
    if (!done.load()) ::kill(peer.pid(), SIGKILL);
  });
  const auto msg = pattern(100, 5);
  std::vector<std::byte> buf(4096);
  std::size_t n = 0;
  try {
    ch->send(msg);
    n = ch->recv(buf);
  } catch (const std::exception& e) {
    ADD_FAILURE() << e.what();
  }
  done.store(true);
  guard.join();
  ASSERT_EQ(n, msg.size());
  EXPECT_EQ(0, std::memcmp(buf.data(), msg.data(), n));
  ch.reset();
  EXPECT_EQ(peer.finish(5s), "exit 0");
}

INSTANTIATE_TEST_SUITE_P(Http, HttpLink, ::testing::Values("http-uds", "http-tcp"),
                         [](const auto& info) {
                           std::string n = info.param;
                           n[4] = '_';
                           return n;
                         });

// ---------------------------------------------------------------------------------
// The client facing a server that answers wrongly: a fake peer (a Unix socket the test
// binds where the listener expects the peer's) answers the first request with `answer`.

struct BadAnswer {
  const char* name;
  std::string answer;
  std::string error;  // what the ProtocolError must say
};

class HttpClientFacing : public ::testing::TestWithParam<BadAnswer> {};

TEST_P(HttpClientFacing, AMalformedAnswerIsAProtocolError) {
  RunDir dir;
  auto listener = find_transport("http-uds")->listen(dir, 4096, testing_support::settings());
  const Endpoint ep = listener->endpoint();
  // Play the peer: the socket, then "serving" on (a copy of) the ready pipe.
  UniqueFd server = listen_unix_private(ep.addresses.at(0), SOCK_STREAM, 4);
  UniqueFd ready(::fcntl(std::stoi(ep.addresses.at(1)), F_DUPFD_CLOEXEC, 0));
  ASSERT_TRUE(ready.valid());
  const std::string serving = "0\n";
  write_all(ready.get(), std::as_bytes(std::span(serving)), "write (ready)");
  auto ch = listener->accept({std::chrono::steady_clock::now() + 10s, [] { return true; }});
  std::string request;
  std::thread fake([&] {
    pollfd p{server.get(), POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) return;
    UniqueFd c(::accept4(server.get(), nullptr, nullptr, SOCK_CLOEXEC));
    pollfd q{c.get(), POLLIN, 0};
    char buf[4096];
    ssize_t n;
    if (::poll(&q, 1, 10000) == 1 && (n = ::read(c.get(), buf, sizeof buf)) > 0)
      request.assign(buf, static_cast<std::size_t>(n));
    (void)::send(c.get(), GetParam().answer.data(), GetParam().answer.size(), MSG_NOSIGNAL);
    ::shutdown(c.get(), SHUT_WR);
    ::poll(&q, 1, 2000);  // until the client closes (or fails)
  });
  auto msg = pattern(10, 1);
  std::vector<std::byte> buf(4096);
  std::string err = "no error";
  try {
    ch->send(msg);
    ch->recv(buf);
  } catch (const ProtocolError& e) {
    err = e.what();
  } catch (const std::exception& e) {
    err = std::string("not a ProtocolError: ") + e.what();
  }
  ch.reset();
  fake.join();
  EXPECT_NE(err.find(GetParam().error), std::string::npos) << err;
  // The request was the client's POST /echo, with its token.
  EXPECT_EQ(request.rfind("POST /echo HTTP/1.1\r\n", 0), 0u) << request;
  EXPECT_NE(request.find("Authorization: Bearer "), std::string::npos) << request;
}

INSTANTIATE_TEST_SUITE_P(
    Http, HttpClientFacing,
    ::testing::Values(
        BadAnswer{"ServerError", "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
                  "POST /echo answered 500 Internal Server Error"},
        BadAnswer{"Unauthorized", "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
                  "POST /echo answered 401 Unauthorized"},
        BadAnswer{"NoContentType", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
                  "POST /echo answered 200 without Content-Type application/octet-stream"},
        BadAnswer{"EmptyBody",
                  "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                  "Content-Length: 0\r\n\r\n",
                  "POST /echo answered 200 with an empty body"},
        BadAnswer{"CutShort",
                  "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                  "Content-Length: 10\r\n\r\nabc",
                  "the server closed in the middle of its answer to POST /echo"},
        BadAnswer{"NotHttp", "SSH-2.0-OpenSSH_9.2\r\n\r\n", "malformed answer to POST /echo"},
        BadAnswer{"TooLong",
                  "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                  "Content-Length: 268435457\r\n\r\nabc",
                  "malformed answer to POST /echo: body limit exceeded"}),
    [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------------

TEST(HttpCodec, TheEncodingRoundTripCarriesThePayload) {
  HttpCodecScratch s;
  for (std::size_t n : {std::size_t{1}, std::size_t{4096}, (std::size_t{1} << 20) + 1}) {
    const auto payload = pattern(n, static_cast<unsigned>(n));
    ASSERT_EQ(http_encoding_round_trip(payload, s), n);
    // The reply's body, parsed as the client does, is the payload.
    ASSERT_EQ(s.spare.size(), n);
    EXPECT_EQ(0, std::memcmp(s.spare.data(), payload.data(), n));
    // The last bytes serialized are the server's 200 reply; the request was the client's.
    const std::string reply(s.wire.begin(), s.wire.end());
    EXPECT_EQ(reply.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
    EXPECT_NE(reply.find("Content-Type: application/octet-stream\r\n"), std::string::npos);
    EXPECT_NE(reply.find("Content-Length: " + std::to_string(n) + "\r\n"), std::string::npos);
    std::vector<char> wire;
    http_codec::serialize(s.req, wire);
    const std::string req(wire.begin(), wire.end());
    EXPECT_EQ(req.rfind("POST /echo HTTP/1.1\r\n", 0), 0u) << req.substr(0, 200);
    EXPECT_NE(req.find("Authorization: Bearer "), std::string::npos);
  }
}

}  // namespace
}  // namespace ipcbench
