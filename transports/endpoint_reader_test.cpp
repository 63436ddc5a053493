#include "transports/endpoint_reader.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <climits>
#include <string>

#include "base/error.h"
#include "tests/test_support.h"

namespace ipcbench {
namespace {

using testing_support::error_of;

TEST(EndpointReader, AWrongCountNamesTheTransportAndTheFieldsItExpected) {
  Endpoint ep{{"127.0.0.1", "80"}, {}};
  EXPECT_EQ(error_of([&] {
              EndpointReader(ep, "tcp", {"host", "port", "token pipe"});
            }),
            "tcp: expected 3 addresses (host, port, token pipe), got 2");
  EXPECT_EQ(error_of([&] { EndpointReader(ep, "tcp", {"host", "port"}); }), "");
}

TEST(EndpointReader, ABadPortIsOneClearError) {
  for (const char* bad : {"0", "65536", "80x", "", "-1"}) {
    Endpoint ep{{bad}, {}};
    EndpointReader r(ep, "tcp", {"port"});
    EXPECT_EQ(error_of([&] { r.port(0); }),
              "tcp: port: '" + std::string(bad) + "' is not a port (1-65535)");
  }
  Endpoint ok{{"65535"}, {}};
  EXPECT_EQ(EndpointReader(ok, "tcp", {"port"}).port(0), 65535);
}

TEST(EndpointReader, ABadIpv4AddressIsOneClearError) {
  for (const char* bad : {"1.2.3", "localhost", "::1", "256.0.0.1"}) {
    Endpoint ep{{bad}, {}};
    EndpointReader r(ep, "zmq-tcp", {"host"});
    EXPECT_EQ(error_of([&] { r.ipv4(0); }),
              "zmq-tcp: host: '" + std::string(bad) + "' is not an IPv4 address");
  }
  Endpoint ok{{"127.0.0.1"}, {}};
  EXPECT_EQ(ntohl(EndpointReader(ok, "tcp", {"host"}).ipv4(0).s_addr), 0x7f000001u);
}

TEST(EndpointReader, ABadDescriptorIsOneClearError) {
  Endpoint garbage{{"seven"}, {}};
  EXPECT_EQ(error_of([&] { EndpointReader(garbage, "pipe", {"read end"}).inherited_fd(0); }),
            "pipe: read end: 'seven' is not a descriptor number");
  // A number no descriptor has: one past the highest this test could have open.
  int probe = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(probe, 0);
  std::string closed = std::to_string(probe);
  ::close(probe);
  Endpoint gone{{closed}, {}};
  EXPECT_EQ(error_of([&] { EndpointReader(gone, "pipe", {"read end"}).inherited_fd(0); }),
            "pipe: read end: '" + closed + "' is not an open inherited descriptor");
  EXPECT_EQ(error_of([&] { EndpointReader(gone, "uds", {"token pipe"}).token(0); }),
            "uds: token pipe: '" + closed + "' is not an open inherited descriptor");
}

TEST(EndpointReader, AnOpenDescriptorIsAdoptedCloseOnExec) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);  // without O_CLOEXEC, as a peer inherits it
  ::close(p[1]);
  Endpoint ep{{std::to_string(p[0])}, {}};
  UniqueFd fd = EndpointReader(ep, "pipe", {"read end"}).inherited_fd(0);
  EXPECT_EQ(fd.get(), p[0]);
  EXPECT_EQ(::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
}

TEST(EndpointReader, APipeHoldingTextGivesItAllBackAndIsClosed) {
  const std::string url = "amqp://user:secret@127.0.0.1:5673/vhost";
  UniqueFd held = pipe_holding(url, "broker URL");
  const std::string number = std::to_string(held.get());
  Endpoint ep{{number}, {}};
  EXPECT_EQ(EndpointReader(ep, "amqp", {"broker URL pipe"}).pipe_text(0), url);
  held.release();  // the reader took it over and closed it
  EXPECT_EQ(::fcntl(std::stoi(number), F_GETFD), -1);
}

TEST(EndpointReader, APipeWithoutEndedTextIsOneClearError) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd w(p[1]);
  // The writer is still open and nothing was written: reading would wait for ever.
  Endpoint open_writer{{std::to_string(p[0])}, {}};
  EXPECT_EQ(
      error_of([&] { EndpointReader(open_writer, "amqp", {"broker URL pipe"}).pipe_text(0); }),
      "amqp: broker URL pipe: '" + std::to_string(p[0]) + "' holds no ended text");
  // Empty and ended: no text at all.
  UniqueFd empty = pipe_holding("", "nothing");
  std::string number = std::to_string(empty.release());
  Endpoint ended{{number}, {}};
  EXPECT_EQ(error_of([&] { EndpointReader(ended, "amqp", {"broker URL pipe"}).pipe_text(0); }),
            "amqp: broker URL pipe: '" + number + "' holds no text");
  EXPECT_EQ(error_of([] { pipe_holding(std::string(PIPE_BUF + 1, 'x'), "broker URL"); }),
            "broker URL: " + std::to_string(PIPE_BUF + 1) + " bytes do not fit a pipe");
}

}  // namespace
}  // namespace ipcbench
