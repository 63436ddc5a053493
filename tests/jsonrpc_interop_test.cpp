// The jsonrpc-* transports against an independent JSON-RPC 2.0 implementation,
// tests/jsonrpc_interop.py (Python's standard library only): its client calls our peer
// process, and its server, run as the peer, serves our client, correctly or with one
// fault at a time that our client must refuse with a ProtocolError naming it.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>

#include "base/cleanup.h"
#include "base/error.h"
#include "base/process.h"
#include "base/run_dir.h"
#include "tests/test_support.h"
#include "transports/registry.h"

namespace ipcbench {
namespace {

using namespace std::chrono_literals;
using testing_support::pattern;

const std::string kScript = std::string(IPCBENCH_SOURCE_DIR) + "/tests/jsonrpc_interop.py";
constexpr const char* kPython = "/usr/bin/python3";  // Debian's (GUIDE.md, environment traps)
constexpr std::size_t kMaxBytes = (1u << 20) + 64;
const char* const kTransports[] = {"jsonrpc-pipe", "jsonrpc-uds", "jsonrpc-tcp"};

std::string as_name(std::string s) { return testing_support::test_suffix(std::move(s)); }

// Our client, linked to the Python server in `mode` run as the peer process.
struct PythonServer {
  RunDir dir;
  std::unique_ptr<Listener> listener;
  ChildProcess peer;
  std::unique_ptr<Channel> ch;
  PythonServer(const std::string& transport, const std::string& mode,
               std::vector<std::string> options = {}) {
    const Transport* t = find_transport(transport);
    if (!t) throw ProtocolError(transport + " is not registered");
    listener = t->listen(dir, kMaxBytes, testing_support::settings());
    std::vector<std::string> argv = {kPython,   kScript,  "server", "--transport",
                                     transport, "--mode", mode};
    argv.insert(argv.end(), options.begin(), options.end());
    for (const std::string& a : listener->endpoint().addresses) argv.push_back(a);
    peer = ChildProcess::spawn({argv, listener->endpoint().inherit_fds, -1});
    ch =
        listener->accept({std::chrono::steady_clock::now() + 20s, [this] { return peer.alive(); }});
  }
};

std::string text(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

class JsonRpcInterop : public ::testing::TestWithParam<const char*> {
 protected:
  static void SetUpTestSuite() { cleanup::install_signal_handlers(); }
};

TEST_P(JsonRpcInterop, APythonClientCallsOurPeer) {
  testing_support::Scratch s;
  const pid_t pid = testing_support::spawn_captured(
      {kPython, kScript, "client", "--binary", IPCBENCH_BINARY, "--transport", GetParam()}, s);
  ASSERT_GT(pid, 0);
  EXPECT_EQ(testing_support::wait_exit(pid), 0) << testing_support::slurp(s.dir / "stderr");
}

TEST_P(JsonRpcInterop, OurClientCallsAPythonServer) {
  // Its last message must be a 3-byte notification (see the end).
  PythonServer py(GetParam(), "echo", {"--final-push-size=3"});
  std::vector<std::byte> buf(kMaxBytes);
  // The server speaks first: a next request fetches its greeting.
  const std::size_t n = py.ch->recv(buf);
  EXPECT_EQ(text(std::span(buf).first(n)), "hello from python");
  unsigned seed = 0;
  for (std::size_t size : {1u, 2u, 3u, 4096u, 65537u, 1u << 20}) {
    const auto msg = pattern(size, ++seed);
    py.ch->send(msg);
    ASSERT_EQ(py.ch->recv(buf), size);
    EXPECT_EQ(0, std::memcmp(buf.data(), msg.data(), size)) << size;
  }
  // A one-way run: two notifications, then the request; every message comes back in order.
  const auto a = pattern(10, 11), b = pattern(70000, 12), c = pattern(3, 13);
  for (const auto* m : {&a, &b, &c}) py.ch->send(*m);
  for (const auto* m : {&a, &b, &c}) {
    ASSERT_EQ(py.ch->recv(buf), m->size());
    EXPECT_EQ(0, std::memcmp(buf.data(), m->data(), m->size()));
  }
  py.ch->send(c);  // held, then delivered by the destructor as a notification
  py.ch.reset();
  // The server checked every request (version, ids counting up, base64) as it came.
  EXPECT_EQ(py.peer.finish(10s), "exit 0");
}

INSTANTIATE_TEST_SUITE_P(Jsonrpc, JsonRpcInterop, ::testing::ValuesIn(kTransports),
                         [](const auto& info) { return as_name(info.param); });

// A server that answers the first request wrongly; what our client's error must say.
struct Fault {
  const char* mode;
  const char* says;  // "" : the link ended (recv returns 0)
};
const Fault kFaults[] = {
    {"error", "answered request 1 with error -32000: 'server says no'"},
    {"badjson", "bad response: invalid JSON"},
    {"wrongid", "id 2 does not answer request 1"},
    {"badversion", "jsonrpc is not \"2.0\""},
    {"noresult", "no base64 string result"},
    {"badbase64", "result is not base64"},
    {"badheader", "unknown header 'Content-Lenght'"},
    {"hugelength", "Content-Length 999999999999 exceeds the limit"},
    {"longheader", "no end of the header block in its first 1024 bytes"},
    {"midframe", "the link ended in the middle of a body"},
    {"midheader", "the link ended in the middle of a header"},
    {"eof", ""},
};

class JsonRpcFaultyServer : public ::testing::TestWithParam<std::tuple<const char*, Fault>> {
 protected:
  static void SetUpTestSuite() { cleanup::install_signal_handlers(); }
};

TEST_P(JsonRpcFaultyServer, IsRefusedWithAClearError) {
  const auto [transport, fault] = GetParam();
  PythonServer py(transport, fault.mode);
  std::vector<std::byte> buf(4096);
  py.ch->send(pattern(1000, 1));
  std::string error;
  std::size_t n = 1;
  try {
    n = py.ch->recv(buf);
  } catch (const ProtocolError& e) {
    error = e.what();
  }
  if (*fault.says == '\0') {
    EXPECT_EQ(n, 0u) << error;
  } else {
    EXPECT_NE(error.find(fault.says), std::string::npos) << "got: '" << error << "'";
  }
  py.ch.reset();
  EXPECT_EQ(py.peer.finish(10s), "exit 0");
}

INSTANTIATE_TEST_SUITE_P(Jsonrpc, JsonRpcFaultyServer,
                         ::testing::Combine(::testing::ValuesIn(kTransports),
                                            ::testing::ValuesIn(kFaults)),
                         [](const auto& info) {
                           return as_name(std::string(std::get<0>(info.param)) + "_" +
                                          std::get<1>(info.param).mode);
                         });

}  // namespace
}  // namespace ipcbench
