// Unix domain sockets: SOCK_STREAM ("uds", framed by the suite) and SOCK_SEQPACKET
// ("uds-seqpacket", boundaries kept by the kernel). The socket file lives in the run
// directory, mode 0600; the server accepts only a peer of its own uid.
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "harness/error.h"
#include "harness/run_dir.h"
#include "transports/framing.h"
#include "transports/socket_util.h"

namespace ipcbench {
namespace {

sockaddr_un make_addr(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path)
    throw ProtocolError("unix socket path too long (" + std::to_string(path.size()) +
                        " bytes): " + path);
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

std::unique_ptr<Channel> wrap(UniqueFd fd, int type) {
  if (type == SOCK_SEQPACKET)
    return std::make_unique<RecordChannel>(std::make_unique<SeqpacketIo>(std::move(fd)));
  return std::make_unique<StreamChannel>(std::move(fd));
}

class UdsListener final : public Listener {
 public:
  UdsListener(RunDir& dir, int type) : type_(type) {
    std::string path = dir.make_path(type == SOCK_SEQPACKET ? "uds-seqpacket" : "uds");
    sockaddr_un a = make_addr(path);
    fd_.reset(
        static_cast<int>(check_sys(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0), "socket AF_UNIX")));
    check_sys(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), "bind " + path);
    check_sys(::chmod(path.c_str(), 0600), "chmod " + path);
    check_sys(::listen(fd_.get(), 1), "listen " + path);
    ep_.addresses = {path};
  }
  const Endpoint& endpoint() const override { return ep_; }
  std::unique_ptr<Channel> accept(const SetupWait& wait) override {
    UniqueFd c = accept_one(fd_.get(), wait, "accept (unix socket)");
    require_same_uid(c.get());
    fd_.reset();
    return wrap(std::move(c), type_);
  }

 private:
  int type_;
  UniqueFd fd_;
  Endpoint ep_;
};

class UdsTransport final : public Transport {
 public:
  UdsTransport(int type, TransportInfo info) : type_(type), info_(std::move(info)) {}
  const TransportInfo& info() const override { return info_; }
  std::unique_ptr<Listener> listen(RunDir& dir, std::size_t) const override {
    return std::make_unique<UdsListener>(dir, type_);
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep) const override {
    if (ep.addresses.size() != 1) throw ProtocolError("uds: expected one path");
    sockaddr_un a = make_addr(ep.addresses[0]);
    UniqueFd fd(
        static_cast<int>(check_sys(::socket(AF_UNIX, type_ | SOCK_CLOEXEC, 0), "socket AF_UNIX")));
    check_sys(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a),
              "connect " + ep.addresses[0]);
    return wrap(std::move(fd), type_);
  }

 private:
  int type_;
  TransportInfo info_;
};

}  // namespace

std::unique_ptr<Transport> make_uds_transport() {
  return std::make_unique<UdsTransport>(
      SOCK_STREAM,
      TransportInfo{"uds", "byte stream", false, "same host (any process, by path)",
                    "by socket path; connection-oriented, one connection per client",
                    kMaxFrameBytes,
                    "Unix domain socket, SOCK_STREAM, socket file 0600 in the run directory; "
                    "length-prefix framing"});
}

std::unique_ptr<Transport> make_uds_seqpacket_transport() {
  return std::make_unique<UdsTransport>(
      SOCK_SEQPACKET,
      TransportInfo{"uds-seqpacket", "message stream", true, "same host (any process, by path)",
                    "by socket path; connection-oriented, one connection per client",
                    kMaxFrameBytes,
                    "Unix domain socket, SOCK_SEQPACKET: the kernel keeps record boundaries; "
                    "messages over 64 KiB travel as several records"});
}

}  // namespace ipcbench
