// TransportSettings reach the listeners that use them, and nothing else does: a network
// listener listens on the bind address it is given, a bad one is one clear error, and
// the amqp listener uses the broker it is given without reading IPCBENCH_AMQP_URL.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <cerrno>
#include <optional>
#include <string>

#include "base/error.h"
#include "base/fd.h"
#include "base/run_dir.h"
#include "transports/registry.h"
#include "transports/transport.h"

namespace ipcbench {
namespace {

// Whether a TCP connection to host:port is accepted by the kernel (a listening socket).
bool accepts(const std::string& host, const std::string& port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(port)));
  if (!fd.valid() || ::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) return false;
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

// The message of what listen throws ("" when it throws nothing).
std::string listen_error(const Transport& t, const TransportSettings& s) {
  RunDir dir;
  try {
    t.listen(dir, 64, s);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// 127.0.0.2 is a loopback address too, but not the default: a listener that ignored
// the setting would be found on 127.0.0.1 instead.
TEST(ListenerSettings, NetworkListenersListenOnTheGivenAddress) {
  TransportSettings s;
  s.bind_address = "127.0.0.2";
  for (const char* name : {"tcp", "zmq-tcp", "jsonrpc-tcp"}) {
    const Transport* t = find_transport(name);
    if (!t) continue;  // not built
    SCOPED_TRACE(name);
    RunDir dir;
    auto l = t->listen(dir, 64, s);
    const auto& a = l->endpoint().addresses;
    ASSERT_GE(a.size(), 2u);
    EXPECT_EQ(a[0], "127.0.0.2");
    EXPECT_TRUE(accepts("127.0.0.2", a[1]));
    EXPECT_FALSE(accepts("127.0.0.1", a[1]));
  }
  // grpc-tcp's and http-tcp's servers are the peer's; the listener hands it the address
  // to bind.
  for (const char* name : {"grpc-tcp", "http-tcp"}) {
    const Transport* t = find_transport(name);
    if (!t) continue;
    SCOPED_TRACE(name);
    RunDir dir;
    EXPECT_EQ(t->listen(dir, 64, s)->endpoint().addresses.at(0), "127.0.0.2");
  }
  RunDir dir;
  EXPECT_EQ(find_transport("tcp")->listen(dir, 64, TransportSettings{})->endpoint().addresses.at(0),
            "127.0.0.1");
}

TEST(ListenerSettings, ABindAddressThatIsNotIpv4IsOneClearError) {
  TransportSettings s;
  s.bind_address = "localhost";
  for (const char* name :
       {"tcp", "zmq-tcp", "grpc-tcp", "grpc-stream-tcp", "http-tcp", "jsonrpc-tcp"}) {
    const Transport* t = find_transport(name);
    if (!t) continue;
    EXPECT_EQ(listen_error(*t, s),
              std::string(name) + ": bind address 'localhost' is not an IPv4 address");
  }
}

// Sets an environment variable for one scope, then restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* v = ::getenv(name)) before_ = v;
    ::setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (before_)
      ::setenv(name_, before_->c_str(), 1);
    else
      ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> before_;
};

TEST(ListenerSettings, AmqpUsesTheGivenBrokerNotTheEnvironment) {
  const Transport* t = find_transport("amqp");
  if (!t) GTEST_SKIP() << "amqp not built";
  // A port on 127.0.0.1 that is bound but not listening: connecting is refused at once.
  UniqueFd held(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(held.valid());
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(held.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(::getsockname(held.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
  const std::string port = std::to_string(ntohs(a.sin_port));

  // Were the variable read, listen would fail on it instead ("not an amqp:// URL").
  ScopedEnv env("IPCBENCH_AMQP_URL", "not a URL");
  TransportSettings s;
  s.broker_url = "amqp://someone:secret@127.0.0.1:" + port;
  std::string what = listen_error(*t, s);
  EXPECT_EQ(what.rfind("amqp: cannot reach the broker at amqp://127.0.0.1:" + port + "/ (", 0), 0u)
      << what;
  EXPECT_NE(what.find("start one with ./scripts/broker.sh start or set IPCBENCH_AMQP_URL)"),
            std::string::npos)
      << what;
  EXPECT_EQ(what.find("secret"), std::string::npos) << "the password leaked: " << what;
}

}  // namespace
}  // namespace ipcbench
