// gRPC with protobuf (service in ipcbench.proto), insecure credentials, over TCP on
// 127.0.0.1 or over a Unix socket in the run directory. The peer process is the gRPC
// server; the benchmark process is the client. (In the fan-in form, the clients
// workload's, it is the other way round: see GrpcFanIn below.)
//
// Two ways to carry the suite's messages, each its own transport:
//  - grpc-tcp, grpc-uds: request/response. A message the client sends and then waits on
//    (a ping, a stats request) is one unary Exchange call whose reply is the answer. A
//    run of messages sent back to back (throughput) is one client-streaming Upload call
//    whose single reply is the acknowledgement. To know which, the client holds each
//    message until its next call: send then recv = Exchange, send then send = Upload.
//    The server cannot speak first in this model, so the peer's greeting waits for an
//    empty Exchange that asks for it. A long-lived Attach call tells the server when
//    the client has gone.
//  - grpc-stream-tcp, grpc-stream-uds: one bidirectional Chat stream for the whole link.
//
// The server runs gRPC's asynchronous API on the peer's own thread (no hand-off to a
// gRPC worker thread); the client uses the synchronous API, as most users do.
// Message size limits are raised to the suite's 256 MiB.
//
// Who may call: any local process can connect to a TCP port, and gRPC's insecure
// credentials check nobody. So the benchmark process makes a token (PeerToken), the peer
// inherits it in a pipe (not on its command line), and the client sends it in the
// metadata of every call. The server looks it up as each call arrives, before the call
// counts for anything: a call without it touches no state of the link (it cannot take
// the greeting, the Attach or the Chat slot, nor deliver a message). A call of the
// methods this server serves is answered UNAUTHENTICATED; one of the other mode's methods
// (Chat on a unary server, the unary ones on a streaming server) is never answered and
// waits out its caller's deadline. gRPC has read the call's request message (up to the
// 256 MiB limit) before the check: a stranger can make the peer hold memory, not count.
// Over a Unix socket the server also accepts the connections itself
// and closes, as it accepts it, any from a process of another uid (SO_PEERCRED); the
// others it hands to gRPC (AddInsecureChannelFromFd). The socket file is 0600 from its
// creation, in the 0700 run directory.
#include <fcntl.h>
#include <grpc/grpc.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/server_posix.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <list>
#include <thread>

#include "base/error.h"
#include "base/run_dir.h"
#include "transports/endpoint_reader.h"
#include "transports/framing.h"
#include "transports/grpc/ipcbench.grpc.pb.h"
#include "transports/many.h"
#include "transports/socket_util.h"

namespace ipcbench {
namespace {

using rpc::Bench;
using rpc::Frame;

constexpr int kMaxGrpcBytes = static_cast<int>(kMaxFrameBytes) + 4096;  // message + framing
constexpr auto kCloseGrace = std::chrono::milliseconds(500);
// The call metadata key that carries the run's token (lower case, as HTTP/2 wants).
constexpr const char* kTokenKey = "ipcbench-token";
// Fan-in: the key that carries the number of the client making the call.
constexpr const char* kClientKey = "ipcbench-client";

// gRPC tears itself down when its last server, channel or completion queue goes: that
// joins its executor threads, and one of them can first sit out a poll of up to 10 s.
// Under load, 8 peers in 735 took over 5 s to exit after their link closed, stuck in
// grpc_shutdown. So each process keeps the library initialised until it exits: servers
// and channels still shut down and close their sockets; only the threads' teardown is
// left to the process's exit.
void keep_grpc_until_exit() { [[maybe_unused]] static const bool held = (grpc_init(), true); }

std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::size_t copy_out(const std::string& s, std::span<std::byte> buf) {
  if (s.size() > buf.size())
    throw ProtocolError("grpc: message of " + std::to_string(s.size()) + " bytes does not fit in " +
                        std::to_string(buf.size()));
  std::memcpy(buf.data(), s.data(), s.size());
  return s.size();
}

std::string describe(const grpc::Status& st) {
  return "status " + std::to_string(static_cast<int>(st.error_code())) + " (" + st.error_message() +
         ")";
}

// A call the server process lost its partner on: the link ended rather than failed.
bool partner_gone(const grpc::Status& st) {
  return st.error_code() == grpc::StatusCode::UNAVAILABLE ||
         st.error_code() == grpc::StatusCode::CANCELLED;
}

// Every gRPC channel receives a protobuf Frame: recv copies its bytes out, view lends
// them in place until the next message. next() is the transport's own: the next message,
// or nullptr once the link has ended.
class FrameChannel : public Channel {
 public:
  std::size_t recv(std::span<std::byte> buf) final {
    const std::string* m = next();
    return m ? copy_out(*m, buf) : 0;
  }
  bool view(std::span<const std::byte>* out) final {
    const std::string* m = next();
    *out = m ? bytes_of(*m) : std::span<const std::byte>();
    return true;
  }
  void release() final {}

 protected:
  virtual const std::string* next() = 0;
};

// ----------------------------------------------------------------------------------
// Server side (the peer process).

// One server-side call, from being requested to its last completion. Each completion
// queue tag is a pointer to one of its Tag members.
struct Call;
struct Tag {
  enum Event { kArrived, kIo, kFinished, kDone } event;
  Call* call;
};
struct Call {
  enum Kind { kExchange, kUpload, kAttach, kChat } kind;
  explicit Call(Kind k) : kind(k), unary(&ctx), upload(&ctx), chat(&ctx) {}
  grpc::ServerContext ctx;
  Frame in, out;
  grpc::ServerAsyncResponseWriter<Frame> unary;      // Exchange, Attach
  grpc::ServerAsyncReader<Frame, Frame> upload;      // Upload
  grpc::ServerAsyncReaderWriter<Frame, Frame> chat;  // Chat
  Tag arrived{Tag::kArrived, this}, io{Tag::kIo, this}, finished{Tag::kFinished, this},
      done{Tag::kDone, this};
  int pending = 0;         // completions still to come for this call
  bool refused = false;    // answered with an error as it arrived; no part of the link
  std::size_t client = 0;  // fan-in: the client it came from (once authentic)
};

// Over a Unix socket: accepts connections on listen_fd until stop_fd hangs up, closes
// those from another uid at once, and hands the others to `server`. Runs on a thread of
// its own; touches nothing else.
void accept_own_uid(int listen_fd, int stop_fd, grpc::Server* server) {
  pollfd p[2] = {{listen_fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
  for (;;) {
    if (::poll(p, 2, -1) < 0 && errno != EINTR) return;
    if (p[1].revents) return;
    // gRPC wants a non-blocking descriptor; it takes it over.
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      // Out of descriptors or memory (a flood of connections, say) passes: try again in
      // a while rather than stop accepting for good; the stop pipe still ends the wait.
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) ::poll(&p[1], 1, 100);
      continue;
    }
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != ::geteuid()) {
      ::close(fd);  // another user's process
      continue;
    }
    grpc::AddInsecureChannelFromFd(server, fd);
  }
}

class GrpcServer final : public FrameChannel {
 public:
  GrpcServer(const std::string& address, bool uds, UniqueFd ready, std::string token,
             bool streaming)
      : streaming_(streaming), token_(std::move(token)) {
    // The socket file first: gRPC (initialised next) starts threads of its own, and
    // listen_unix_private sets the process's umask for a moment.
    if (uds) {
      listen_fd_ = listen_unix_private(address, SOCK_STREAM, kMaxCallers);
      int p[2];
      check_sys(::pipe2(p, O_CLOEXEC), "pipe2 (grpc accept stop)");
      stop_r_.reset(p[0]);
      stop_w_.reset(p[1]);
    }
    keep_grpc_until_exit();
    grpc::ServerBuilder b;
    int port = 0;
    if (!uds) b.AddListeningPort(address + ":0", grpc::InsecureServerCredentials(), &port);
    b.SetMaxReceiveMessageSize(kMaxGrpcBytes);
    b.SetMaxSendMessageSize(kMaxGrpcBytes);
    b.RegisterService(&service_);
    cq_ = b.AddCompletionQueue();
    server_ = b.BuildAndStart();
    if (!server_) throw ProtocolError("grpc: the server could not start on " + address);
    if (streaming_) {
      request(Call::kChat);
    } else {
      request(Call::kAttach);
      request(Call::kExchange);
      request(Call::kUpload);
    }
    std::string line = std::to_string(port) + "\n";  // "serving" (and the TCP port)
    try {
      write_all(ready.get(), std::as_bytes(std::span(line)), "write (grpc server ready)");
    } catch (...) {  // the benchmark side gave up: shut down before the members go
      shut_down();
      throw;
    }
    // Last, as nothing can fail after it; connections wait in the backlog until then.
    if (uds) acceptor_ = std::thread([this] { accept_connections(); });
  }

  ~GrpcServer() override { shut_down(); }

  void send(std::span<const std::byte> msg) override {
    if (streaming_) {
      while (!chat_ && !closed_) step();  // the peer may speak first: wait for the stream
      if (closed_) throw SysError("grpc: the client went away", EPIPE);
      chat_->out.set_data(msg.data(), msg.size());
      ++chat_->pending;
      chat_->chat.Write(chat_->out, &chat_->finished);
      if (!wait_for(&chat_->finished)) throw SysError("grpc: the client went away", EPIPE);
      return;
    }
    if (upload_) {
      // The reply to a run of messages, once the client has said it is done sending
      // (msg may lie in the call's request buffer: copy it before reading again).
      Call* c = upload_;
      c->out.set_data(msg.data(), msg.size());
      while (!upload_done_ && !closed_) {
        if (!upload_reading_) read_upload();
        step();
      }
      if (closed_) throw SysError("grpc: the client went away", EPIPE);
      upload_ = nullptr;
      ++c->pending;
      c->upload.Finish(c->out, grpc::Status::OK, &c->finished);
      return;
    }
    if (answering_) {
      Call* c = answering_;
      answering_ = nullptr;
      c->out.set_data(msg.data(), msg.size());
      finish_unary(c);
      return;
    }
    // Nothing asked for it yet (the greeting, an error report): the next empty
    // Exchange collects it.
    outbox_.emplace_back(reinterpret_cast<const char*>(msg.data()), msg.size());
  }

 private:
  // Stops accepting, then shuts the server and its queue down (the calls it still holds
  // refer to calls_, which must outlive this).
  void shut_down() {
    if (acceptor_.joinable()) {
      stop_w_.reset();  // the acceptor sees the hang-up and returns
      acceptor_.join();
    }
    server_->Shutdown(std::chrono::system_clock::now() + kCloseGrace);
    cq_->Shutdown();
    void* tag;
    bool ok;
    while (cq_->Next(&tag, &ok)) {
    }
  }

  void request(Call::Kind kind) {
    calls_.push_back(std::make_unique<Call>(kind));
    Call* c = calls_.back().get();
    ++c->pending;
    switch (kind) {
      case Call::kExchange:
        service_.RequestExchange(&c->ctx, &c->in, &c->unary, cq_.get(), cq_.get(), &c->arrived);
        break;
      case Call::kAttach:
        ++c->pending;  // the done notification
        c->ctx.AsyncNotifyWhenDone(&c->done);
        service_.RequestAttach(&c->ctx, &c->in, &c->unary, cq_.get(), cq_.get(), &c->arrived);
        break;
      case Call::kUpload:
        service_.RequestUpload(&c->ctx, &c->upload, cq_.get(), cq_.get(), &c->arrived);
        break;
      case Call::kChat:
        service_.RequestChat(&c->ctx, &c->chat, cq_.get(), cq_.get(), &c->arrived);
        break;
    }
  }
  // Over a Unix socket: accepts connections until told to stop (accept_own_uid). Runs on
  // a thread of its own (the peer's thread waits on the completion queue).
  void accept_connections() { accept_own_uid(listen_fd_.get(), stop_r_.get(), server_.get()); }

  // Whether the call carries the run's token: one lookup and one compare, no allocation.
  bool authentic(const grpc::ServerContext& ctx) const {
    const auto& md = ctx.client_metadata();
    auto it = md.find(grpc::string_ref(kTokenKey));
    return it != md.end() && it->second == grpc::string_ref(token_);
  }
  // Answers a call that has just arrived with an error; it is then only waited for.
  void refuse(Call* c, grpc::StatusCode code, const char* why) {
    c->refused = true;
    ++c->pending;
    const grpc::Status st(code, why);
    switch (c->kind) {
      case Call::kExchange:
      case Call::kAttach:
        c->unary.FinishWithError(st, &c->finished);
        break;
      case Call::kUpload:
        c->upload.FinishWithError(st, &c->finished);
        break;
      case Call::kChat:
        c->chat.Finish(st, &c->finished);
        break;
    }
  }

  void forget(Call* c) {
    calls_.remove_if([c](const std::unique_ptr<Call>& p) { return p.get() == c; });
  }

  // Takes one completion off the queue and acts on it.
  void step() {
    void* raw;
    bool ok;
    if (!cq_->Next(&raw, &ok)) throw ProtocolError("grpc: completion queue shut down");
    handle(static_cast<Tag*>(raw), ok);
  }
  void handle(Tag* t, bool ok) {
    Call* c = t->call;
    --c->pending;
    switch (t->event) {
      case Tag::kArrived:
        if (ok) on_arrival(c);
        break;
      case Tag::kIo:  // a Read on the upload or chat stream
        if (c->kind == Call::kUpload) {
          upload_reading_ = false;
          if (ok)
            ready_ = &c->in;
          else
            upload_done_ = true;  // the client finished sending
        } else {
          chat_reading_ = false;
          if (ok)
            ready_ = &c->in;
          else
            closed_ = true;  // the client ended the stream or went away
        }
        break;
      case Tag::kFinished:
        break;
      case Tag::kDone:  // an Attach call ended: if the client's, the client is gone
        if (c == attach_) closed_ = true;
        break;
    }
    // Exchange and Upload calls are one per message or run, refused calls one per
    // attempt: free them once nothing of theirs is outstanding. The client's Attach and
    // Chat live as long as the link.
    if (c->pending == 0 && (c->refused || c->kind == Call::kExchange || c->kind == Call::kUpload) &&
        c != answering_ && c != upload_)
      forget(c);
  }
  void on_arrival(Call* c) {
    // A call of each kind stays requested, so that whoever calls is answered.
    request(c->kind);
    if (!authentic(c->ctx))
      return refuse(c, grpc::StatusCode::UNAUTHENTICATED, "not the benchmark's client");
    switch (c->kind) {
      case Call::kAttach:
        if (attach_) return refuse(c, grpc::StatusCode::ALREADY_EXISTS, "already attached");
        attach_ = c;  // held open until the client leaves
        break;
      case Call::kExchange:
        if (!c->in.data().empty()) {
          answering_ = c;
          ready_ = &c->in;
        } else if (!outbox_.empty()) {
          c->out.set_data(std::move(outbox_.front()));
          outbox_.pop_front();
          finish_unary(c);
        } else {
          answering_ = c;  // an empty request: answered by the next send
        }
        break;
      case Call::kUpload:
        if (upload_) return refuse(c, grpc::StatusCode::ALREADY_EXISTS, "an upload is running");
        upload_ = c;
        upload_done_ = false;
        break;
      case Call::kChat:
        if (chat_) return refuse(c, grpc::StatusCode::ALREADY_EXISTS, "already chatting");
        chat_ = c;
        break;
    }
  }
  void finish_unary(Call* c) {
    ++c->pending;
    c->unary.Finish(c->out, grpc::Status::OK, &c->finished);
  }
  void read_upload() {
    ++upload_->pending;
    upload_->upload.Read(&upload_->in, &upload_->io);
    upload_reading_ = true;
  }
  void read_chat() {
    ++chat_->pending;
    chat_->chat.Read(&chat_->in, &chat_->io);
    chat_reading_ = true;
  }

  // Drives the queue until `tag` completes; returns whether it succeeded.
  bool wait_for(Tag* tag) {
    for (;;) {
      void* raw;
      bool ok;
      if (!cq_->Next(&raw, &ok)) return false;
      Tag* t = static_cast<Tag*>(raw);
      handle(t, ok);
      if (t == tag) return ok;
      if (closed_) return false;
    }
  }

  // The next message from the client, or nullptr once it has gone. A message that has
  // arrived is returned before another Read is started: that Read would fill the same
  // buffer while the caller still uses it, and its completion, if it came while send()
  // drives the queue, would be dropped by the next call (a lost message: both sides
  // then wait for each other until the watchdog fires).
  const std::string* next() override {
    ready_ = nullptr;
    for (;;) {
      if (ready_) return &ready_->data();
      if (closed_) return nullptr;
      if (chat_ && !chat_reading_) read_chat();
      if (upload_ && !upload_reading_ && !upload_done_) read_upload();
      step();
    }
  }

  bool streaming_;
  std::string token_;
  UniqueFd listen_fd_, stop_r_, stop_w_;  // Unix socket only
  std::thread acceptor_;
  Bench::AsyncService service_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::unique_ptr<grpc::Server> server_;
  std::list<std::unique_ptr<Call>> calls_;
  std::deque<std::string> outbox_;
  Call* attach_ = nullptr;     // the client's Attach
  Call* answering_ = nullptr;  // an Exchange waiting for its reply
  Call* upload_ = nullptr;     // an Upload in progress
  Call* chat_ = nullptr;       // the Chat stream
  Frame* ready_ = nullptr;     // a message that arrived and is not yet consumed
  bool upload_reading_ = false, upload_done_ = false, chat_reading_ = false;
  bool closed_ = false;
};

// ----------------------------------------------------------------------------------
// Client side (the benchmark process).

std::shared_ptr<grpc::Channel> open_channel(const std::string& target) {
  keep_grpc_until_exit();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxGrpcBytes);
  args.SetMaxSendMessageSize(kMaxGrpcBytes);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

// Every call the client makes carries the run's token. (ClientContext keeps metadata in
// a map of strings: adding it allocates, as making the context itself does; a context
// serves one call only.)
// A fan-in client also names itself (`client`, its number); a link's client does not.
void add_token(grpc::ClientContext& ctx, const std::string& token, const std::string& client) {
  ctx.AddMetadata(kTokenKey, token);
  if (!client.empty()) ctx.AddMetadata(kClientKey, client);
}

class GrpcUnaryClient final : public FrameChannel {
 public:
  GrpcUnaryClient(std::shared_ptr<grpc::Channel> ch, std::string token, std::string client = "")
      : channel_(std::move(ch)),
        stub_(Bench::NewStub(channel_)),
        token_(std::move(token)),
        client_(std::move(client)) {
    add_token(attach_ctx_, token_, client_);
    attach_ = stub_->AsyncAttach(&attach_ctx_, Frame(), &attach_cq_);
    attach_->Finish(&attach_reply_, &attach_status_, this);
  }
  ~GrpcUnaryClient() override {
    try {
      if (upload_) {
        upload_ctx_->TryCancel();
        (void)upload_->Finish();
      } else if (held_) {  // deliver the last message (a stop), briefly
        grpc::ClientContext ctx;
        add_token(ctx, token_, client_);
        ctx.set_deadline(std::chrono::system_clock::now() + kCloseGrace);
        Frame reply;
        (void)stub_->Exchange(&ctx, request_, &reply);
      }
    } catch (...) {
    }
    attach_ctx_.TryCancel();
    void* tag;
    bool ok;
    attach_cq_.Next(&tag, &ok);
    attach_cq_.Shutdown();
    while (attach_cq_.Next(&tag, &ok)) {
    }
  }

  void send(std::span<const std::byte> msg) override {
    if (held_) {  // two sends in a row: a run of messages goes up one Upload stream
      if (!upload_) {
        upload_ctx_ = std::make_unique<grpc::ClientContext>();
        add_token(*upload_ctx_, token_, client_);
        upload_ = stub_->Upload(upload_ctx_.get(), &reply_);
      }
      if (!upload_->Write(request_)) throw SysError("grpc: Upload stream broken", EPIPE);
    }
    request_.set_data(msg.data(), msg.size());
    held_ = true;
  }

 private:
  // Finishes the pending call and returns its reply, or nullptr when the server went.
  const std::string* next() override {
    grpc::Status st;
    if (upload_) {
      if (held_) (void)upload_->Write(request_);  // a failure shows in Finish's status
      held_ = false;
      return finish_upload();
    }
    grpc::ClientContext ctx;
    add_token(ctx, token_, client_);
    if (held_) {
      held_ = false;
      st = stub_->Exchange(&ctx, request_, &reply_);
    } else {
      st = stub_->Exchange(&ctx, Frame(), &reply_);  // asks for the server's next message
    }
    if (st.ok()) return &reply_.data();
    if (partner_gone(st)) return nullptr;
    throw ProtocolError("grpc: Exchange failed: " + describe(st));
  }
  const std::string* finish_upload() {
    upload_->WritesDone();
    grpc::Status st = upload_->Finish();
    upload_.reset();
    upload_ctx_.reset();
    if (st.ok()) return &reply_.data();
    if (partner_gone(st)) return nullptr;
    throw ProtocolError("grpc: Upload failed: " + describe(st));
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Bench::Stub> stub_;
  std::string token_, client_;
  Frame request_, reply_;
  bool held_ = false;
  std::unique_ptr<grpc::ClientContext> upload_ctx_;
  std::unique_ptr<grpc::ClientWriter<Frame>> upload_;
  grpc::ClientContext attach_ctx_;
  grpc::CompletionQueue attach_cq_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<Frame>> attach_;
  Frame attach_reply_;
  grpc::Status attach_status_;
};

class GrpcStreamClient final : public FrameChannel {
 public:
  GrpcStreamClient(std::shared_ptr<grpc::Channel> ch, const std::string& token,
                   const std::string& client = "")
      : channel_(std::move(ch)), stub_(Bench::NewStub(channel_)) {
    add_token(ctx_, token, client);
    stream_ = stub_->Chat(&ctx_);
  }
  ~GrpcStreamClient() override {
    ctx_.TryCancel();
    (void)stream_->Finish();
  }

  void send(std::span<const std::byte> msg) override {
    out_.set_data(msg.data(), msg.size());
    if (!stream_->Write(out_)) throw SysError("grpc: Chat stream broken", EPIPE);
  }

 private:
  const std::string* next() override {
    if (stream_->Read(&in_)) return &in_.data();
    return nullptr;  // the server ended the stream or went away
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Bench::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<Frame, Frame>> stream_;
  Frame in_, out_;
};

// ----------------------------------------------------------------------------------

// Waits for the peer's server to report it is serving (PeerServerLink, with its TCP
// port), then connects.
class GrpcListener final : public Listener {
 public:
  GrpcListener(RunDir& dir, bool uds, bool streaming, const TransportSettings& settings,
               const std::string& name)
      : uds_(uds),
        streaming_(streaming),
        link_(uds ? dir.make_path("grpc") : checked_peer_server_address(settings, name)) {}
  const Endpoint& endpoint() const override { return link_.endpoint(); }
  std::unique_ptr<Channel> accept(const SetupWait& wait) override {
    const int port = link_.await_serving(wait, "grpc");
    if (!uds_ && port == 0) throw ProtocolError("grpc: the server reported no TCP port");
    std::string target =
        uds_ ? "unix:" + link_.where() : link_.where() + ":" + std::to_string(port);
    auto ch = open_channel(target);
    auto deadline =
        std::chrono::system_clock::now() + (wait.deadline - std::chrono::steady_clock::now());
    if (!ch->WaitForConnected(deadline))  // false only once the deadline has passed
      throw ProtocolError("grpc: timed out connecting to " + target);
    if (streaming_) return std::make_unique<GrpcStreamClient>(std::move(ch), link_.token());
    return std::make_unique<GrpcUnaryClient>(std::move(ch), link_.token());
  }

 private:
  bool uds_, streaming_;
  PeerServerLink link_;
};

// ----------------------------------------------------------------------------------
// Fan-in (the clients workload): ONE gRPC server in the benchmark process, one channel
// per client process. The roles are the reverse of a link's (there the peer serves and
// the benchmark process calls): here the benchmark process is the server of N clients,
// which is what a gRPC server is for.
//
// The server is written as gRPC servers that serve many clients from few threads are:
// the asynchronous API, every call of every client requested on and delivered through
// one completion queue, and one thread that drives it. That thread takes each request
// (an Exchange call, or a message read from a client's Chat stream) as it completes on
// the queue, whichever client it is from, and answers that call or writes to that
// client's stream. One thread, one queue, every client: the server model is
// "shared-queue". (The completion queue offers no descriptor to wait on, so this is not
// the workload's "event-loop", and one thread per client would need one queue each,
// which is not how one gRPC server is written.)
//
// Who is who: client i inherits a token of its own (in a pipe, as a link's client gets
// the run's token) and sends it, with its number i, in the metadata of every call. A
// call whose number is not one of the run's clients, or whose token is not that
// client's, is answered UNAUTHENTICATED as it arrives and touches nothing; so is a
// second Attach or Chat of the same client (ALREADY_EXISTS), and a second request
// before the first was answered (FAILED_PRECONDITION). Over a Unix socket the server
// also closes connections from other uids (accept_own_uid); the socket file is 0600 in
// the 0700 run directory, made by the benchmark process.
//
// Unary clients (grpc-uds, grpc-tcp) hold an Attach call open and make one Exchange
// call per request; streaming clients (grpc-stream-*) hold one Chat stream. accept()
// waits until every client has one of those open.
class GrpcFanIn final : public FanInServer {
 public:
  GrpcFanIn(const std::string& where, bool uds, bool streaming, std::vector<std::string> tokens)
      : streaming_(streaming), tokens_(std::move(tokens)), clients_(tokens_.size()) {
    // The socket file first: gRPC (initialised next) starts threads of its own, and
    // listen_unix_private sets the process's umask for a moment.
    if (uds) {
      listen_fd_ = listen_unix_private(where, SOCK_STREAM, kMaxCallers);
      socket_path_ = where;
      int p[2];
      check_sys(::pipe2(p, O_CLOEXEC), "pipe2 (grpc accept stop)");
      stop_r_.reset(p[0]);
      stop_w_.reset(p[1]);
    }
    keep_grpc_until_exit();
    grpc::ServerBuilder b;
    int port = 0;
    if (!uds) b.AddListeningPort(where + ":0", grpc::InsecureServerCredentials(), &port);
    b.SetMaxReceiveMessageSize(kMaxGrpcBytes);
    b.SetMaxSendMessageSize(kMaxGrpcBytes);
    b.RegisterService(&service_);
    cq_ = b.AddCompletionQueue();
    server_ = b.BuildAndStart();
    if (!server_ || (!uds && port == 0))
      throw ProtocolError("grpc: the server could not start on " + where);
    target_ = uds ? "unix:" + where : where + ":" + std::to_string(port);
    if (streaming_) {
      request(Call::kChat);
    } else {
      request(Call::kAttach);
      request(Call::kExchange);
    }
    if (uds)
      acceptor_ =
          std::thread([this] { accept_own_uid(listen_fd_.get(), stop_r_.get(), server_.get()); });
  }
  ~GrpcFanIn() override {
    if (acceptor_.joinable()) {
      stop_w_.reset();  // the acceptor sees the hang-up and returns
      acceptor_.join();
    }
    server_->Shutdown(std::chrono::system_clock::now() + kCloseGrace);
    cq_->Shutdown();
    void* tag;
    bool ok;
    while (cq_->Next(&tag, &ok)) {
    }
    if (!socket_path_.empty()) ::unlink(socket_path_.c_str());
  }

  const std::string& target() const { return target_; }

  // Drives the queue until every client has its Attach or Chat open.
  void await_clients(const SetupWait& wait) {
    while (joined_ < clients_.size()) {
      if (!wait.peer_alive()) throw ProtocolError("grpc: a client exited before connecting");
      if (std::chrono::steady_clock::now() > wait.deadline)
        throw ProtocolError("grpc: timed out waiting for the clients to connect (" +
                            std::to_string(joined_) + " of " + std::to_string(clients_.size()) +
                            " in)");
      step();
    }
  }

  std::vector<Channel*> links() override { return {}; }
  std::string model() const override { return "shared-queue"; }

  std::pair<std::size_t, std::size_t> recv_any(std::span<std::byte> buf) override {
    for (;;) {
      if (!ready_.empty()) {
        auto [k, c] = ready_.front();
        ready_.pop_front();
        if (c->in.data().empty())
          throw ProtocolError("grpc: an empty message from client " + std::to_string(k));
        const std::size_t n = copy_out(c->in.data(), buf);
        if (streaming_) read_chat(k);  // its buffer is free again
        return {k, n};
      }
      if (aborted_.load(std::memory_order_relaxed)) return {0, 0};
      step();
    }
  }

  void reply(std::size_t k, std::span<const std::byte> msg) override {
    if (k >= clients_.size()) throw ProtocolError("grpc: no client " + std::to_string(k));
    Client& cl = clients_[k];
    if (!streaming_) {
      Call* c = cl.answering;
      if (!c) throw ProtocolError("grpc: client " + std::to_string(k) + " has no call to answer");
      cl.answering = nullptr;
      c->out.set_data(msg.data(), msg.size());
      ++c->pending;
      c->unary.Finish(c->out, grpc::Status::OK, &c->finished);
      return;
    }
    // One write at a time per stream: the last one must have completed on the queue.
    while (cl.writing && !cl.gone) {
      if (aborted_.load(std::memory_order_relaxed))
        throw ProtocolError("grpc: shut down by the watchdog");
      step();
    }
    if (cl.gone || !cl.chat)
      throw SysError("grpc: client " + std::to_string(k) + " went away", EPIPE);
    cl.chat->out.set_data(msg.data(), msg.size());
    ++cl.chat->pending;
    cl.chat->chat.Write(cl.chat->out, &cl.chat->finished);
    cl.writing = true;
  }

  // Every wait above is on the completion queue in slices of kSlice: it sees this soon.
  void abort() noexcept override { aborted_.store(true); }

 private:
  static constexpr auto kSlice = std::chrono::milliseconds(50);
  struct Client {
    Call* attach = nullptr;     // unary: its Attach, open while it is connected
    Call* chat = nullptr;       // streaming: its Chat stream
    Call* answering = nullptr;  // unary: its Exchange, waiting for the reply
    bool reading = false, writing = false, gone = false;
  };

  void request(Call::Kind kind) {
    calls_.push_back(std::make_unique<Call>(kind));
    Call* c = calls_.back().get();
    ++c->pending;
    switch (kind) {
      case Call::kExchange:
        service_.RequestExchange(&c->ctx, &c->in, &c->unary, cq_.get(), cq_.get(), &c->arrived);
        break;
      case Call::kAttach:
        ++c->pending;  // the done notification
        c->ctx.AsyncNotifyWhenDone(&c->done);
        service_.RequestAttach(&c->ctx, &c->in, &c->unary, cq_.get(), cq_.get(), &c->arrived);
        break;
      case Call::kChat:
        service_.RequestChat(&c->ctx, &c->chat, cq_.get(), cq_.get(), &c->arrived);
        break;
      case Call::kUpload:  // not part of fan-in: never requested
        break;
    }
  }

  // The client the call names, if it carries that client's token; clients_.size() if not.
  std::size_t who(const grpc::ServerContext& ctx) const {
    const auto& md = ctx.client_metadata();
    auto num = md.find(grpc::string_ref(kClientKey));
    auto tok = md.find(grpc::string_ref(kTokenKey));
    if (num == md.end() || tok == md.end()) return clients_.size();
    const grpc::string_ref digits = num->second;
    if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && *digits.begin() == '0'))
      return clients_.size();
    std::size_t k = 0;
    for (char ch : digits) {
      if (ch < '0' || ch > '9') return clients_.size();
      k = k * 10 + static_cast<std::size_t>(ch - '0');
    }
    if (k >= clients_.size() || tok->second != grpc::string_ref(tokens_[k])) return clients_.size();
    return k;
  }

  void refuse(Call* c, grpc::StatusCode code, const char* why) {
    c->refused = true;
    ++c->pending;
    const grpc::Status st(code, why);
    if (c->kind == Call::kChat)
      c->chat.Finish(st, &c->finished);
    else
      c->unary.FinishWithError(st, &c->finished);
  }

  void on_arrival(Call* c) {
    request(c->kind);  // a call of each kind stays requested
    const std::size_t k = who(c->ctx);
    if (k == clients_.size())
      return refuse(c, grpc::StatusCode::UNAUTHENTICATED, "not a client of the benchmark");
    c->client = k;
    Client& cl = clients_[k];
    switch (c->kind) {
      case Call::kAttach:
        if (cl.attach) return refuse(c, grpc::StatusCode::ALREADY_EXISTS, "already attached");
        cl.attach = c;
        ++joined_;
        break;
      case Call::kExchange:
        if (c->in.data().empty())
          return refuse(c, grpc::StatusCode::INVALID_ARGUMENT, "a request carries a message");
        if (cl.answering)
          return refuse(c, grpc::StatusCode::FAILED_PRECONDITION, "the last request is unanswered");
        cl.answering = c;
        ready_.emplace_back(k, c);
        break;
      case Call::kChat:
        if (cl.chat) return refuse(c, grpc::StatusCode::ALREADY_EXISTS, "already chatting");
        cl.chat = c;
        ++joined_;
        read_chat(k);
        break;
      case Call::kUpload:
        break;
    }
  }

  void read_chat(std::size_t k) {
    Client& cl = clients_[k];
    if (!cl.chat || cl.reading || cl.gone) return;
    ++cl.chat->pending;
    cl.chat->chat.Read(&cl.chat->in, &cl.chat->io);
    cl.reading = true;
  }

  // Takes one completion off the queue (waiting up to kSlice) and acts on it.
  void step() {
    void* raw;
    bool ok;
    switch (cq_->AsyncNext(&raw, &ok, std::chrono::system_clock::now() + kSlice)) {
      case grpc::CompletionQueue::TIMEOUT:
        return;
      case grpc::CompletionQueue::SHUTDOWN:
        throw ProtocolError("grpc: completion queue shut down");
      case grpc::CompletionQueue::GOT_EVENT:
        break;
    }
    Tag* t = static_cast<Tag*>(raw);
    Call* c = t->call;
    --c->pending;
    switch (t->event) {
      case Tag::kArrived:
        if (ok) on_arrival(c);
        break;
      case Tag::kIo:  // a Read on a client's Chat stream
        clients_[c->client].reading = false;
        if (ok)
          ready_.emplace_back(c->client, c);
        else
          clients_[c->client].gone = true;  // it ended the stream or went away
        break;
      case Tag::kFinished:  // a Write on a Chat stream, or a call answered
        if (c->kind == Call::kChat && !c->refused) {
          clients_[c->client].writing = false;
          if (!ok) clients_[c->client].gone = true;
        }
        break;
      case Tag::kDone:  // an Attach ended: if a client's, that client is gone
        if (!c->refused && c->kind == Call::kAttach && clients_[c->client].attach == c)
          clients_[c->client].gone = true;
        break;
    }
    // Exchange calls are one per request, refused calls one per attempt: free them once
    // nothing of theirs is outstanding. Attach and Chat live as long as their client.
    if (c->pending == 0 && (c->refused || c->kind == Call::kExchange) &&
        (c->refused || clients_[c->client].answering != c))
      calls_.remove_if([c](const std::unique_ptr<Call>& p) { return p.get() == c; });
  }

  bool streaming_;
  std::vector<std::string> tokens_;
  std::vector<Client> clients_;
  std::string socket_path_;               // Unix socket only: removed at the end
  UniqueFd listen_fd_, stop_r_, stop_w_;  // Unix socket only
  std::thread acceptor_;
  Bench::AsyncService service_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::unique_ptr<grpc::Server> server_;
  std::list<std::unique_ptr<Call>> calls_;
  std::deque<std::pair<std::size_t, Call*>> ready_;  // requests not yet taken
  std::size_t joined_ = 0;
  std::string target_;
  std::atomic<bool> aborted_{false};
};

class GrpcFanInListener final : public FanInListener {
 public:
  // Endpoint of client i: {"fan-in", gRPC target, token pipe, i}.
  GrpcFanInListener(RunDir& dir, bool uds, bool streaming, const TransportSettings& settings,
                    const std::string& name, std::size_t clients) {
    std::vector<std::string> texts;
    for (std::size_t i = 0; i < clients; ++i) {
      tokens_.push_back(PeerToken::make());
      texts.push_back(tokens_.back().text);
    }
    hub_ = std::make_unique<GrpcFanIn>(
        uds ? dir.make_path("grpc") : checked_bind_address(settings, name), uds, streaming,
        std::move(texts));
    for (std::size_t i = 0; i < clients; ++i)
      eps_.push_back(
          {{"fan-in", hub_->target(), std::to_string(tokens_[i].pipe.get()), std::to_string(i)},
           {tokens_[i].pipe.get()}});
  }
  std::size_t clients() const override { return eps_.size(); }
  const Endpoint& endpoint(std::size_t i) const override { return eps_.at(i); }
  std::unique_ptr<FanInServer> accept(const SetupWait& wait) override {
    if (!hub_) throw ProtocolError("grpc: accept called twice");
    for (std::size_t i = 0; i < tokens_.size(); ++i) tokens_[i].handed_over(eps_[i]);
    hub_->await_clients(wait);
    return std::move(hub_);
  }

 private:
  std::vector<PeerToken> tokens_;
  std::unique_ptr<GrpcFanIn> hub_;
  std::vector<Endpoint> eps_;
};

class GrpcTransport final : public TransportBase {
 public:
  GrpcTransport(bool uds, bool streaming, TransportInfo info)
      : TransportBase(std::move(info)), uds_(uds), streaming_(streaming) {}
  std::unique_ptr<Listener> listen(RunDir& dir, std::size_t,
                                   const TransportSettings& settings) const override {
    return std::make_unique<GrpcListener>(dir, uds_, streaming_, settings, name());
  }
  std::unique_ptr<FanInListener> listen_fan_in(RunDir& dir, std::size_t,
                                               const TransportSettings& settings,
                                               std::size_t clients,
                                               const std::string& /*model*/) const override {
    return std::make_unique<GrpcFanInListener>(dir, uds_, streaming_, settings, name(), clients);
  }
  std::unique_ptr<Channel> connect(const Endpoint& ep, const SetupWait& wait) const override {
    if (!ep.addresses.empty() && ep.addresses[0] == "fan-in") return connect_client(ep, wait);
    EndpointReader r(ep, name(), {"address", "ready pipe", "token pipe"});
    UniqueFd ready = r.inherited_fd(1);
    std::string token = r.token(2);
    return std::make_unique<GrpcServer>(ep.addresses[0], uds_, std::move(ready), std::move(token),
                                        streaming_);
  }

 private:
  // A fan-in client: the gRPC client of the benchmark process's one server.
  std::unique_ptr<Channel> connect_client(const Endpoint& ep, const SetupWait& wait) const {
    EndpointReader r(ep, name(), {"fan-in", "target", "token pipe", "client"});
    const std::string& client = r.text(3);
    if (client.empty() || client.size() > 3 ||
        client.find_first_not_of("0123456789") != std::string::npos)
      throw ProtocolError(name() + ": client: '" + client + "' is not a client number");
    std::string token = r.token(2);
    auto ch = open_channel(r.text(1));
    // In slices, so that a benchmark side that died is noticed.
    while (!ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::milliseconds(100)))
      wait.check(name() + ": connecting to " + r.text(1));
    if (streaming_) return std::make_unique<GrpcStreamClient>(std::move(ch), token, client);
    return std::make_unique<GrpcUnaryClient>(std::move(ch), std::move(token), client);
  }

  bool uds_, streaming_;
};

TransportInfo grpc_info(const char* name, bool uds, bool streaming) {
  std::string how = streaming ? "one bidirectional stream (Chat) for the whole link"
                              : "unary Exchange per request/reply; client-streaming Upload "
                                "for a run of one-way messages, acknowledged by its reply";
  return {.name = name,
          .family = TransportFamily::kRpc,
          .paradigm = "RPC",
          .kernel_boundaries = false,
          .reach = uds ? "same host (by unix: socket path)" : "network (measured on 127.0.0.1)",
          .coupling =
              "client calls a typed service (protobuf contract); the server is a separate process",
          .max_message = kMaxFrameBytes,
          .summary = std::string("gRPC C++ ") + grpc::Version() + ", insecure credentials, " +
                     (uds ? "unix: socket 0600 in the run directory, own uid only"
                          : "127.0.0.1, ephemeral port") +
                     "; every call carries a token in its metadata, others are refused; " + how +
                     "; protobuf bytes payload; max message size raised to 256 MiB",
          .built_on = uds ? "uds" : "tcp",
          .encoding = "protobuf",
          .fan_in = std::string("one gRPC server (async, one completion queue) in the server, "
                                "one channel per client; ") +
                    (streaming ? "one Chat stream per client" : "one Exchange call per request") +
                    "; each call carries its client's number and own token",
          .server_models = {"shared-queue"},
          // A stream may be written on one thread while it is read on another; a unary
          // Exchange blocks until its reply.
          .pipelining = streaming ? "two threads" : ""};
}

}  // namespace

std::unique_ptr<Transport> make_grpc_tcp_transport() {
  return std::make_unique<GrpcTransport>(false, false, grpc_info("grpc-tcp", false, false));
}
std::unique_ptr<Transport> make_grpc_uds_transport() {
  return std::make_unique<GrpcTransport>(true, false, grpc_info("grpc-uds", true, false));
}
std::unique_ptr<Transport> make_grpc_stream_tcp_transport() {
  return std::make_unique<GrpcTransport>(false, true, grpc_info("grpc-stream-tcp", false, true));
}
std::unique_ptr<Transport> make_grpc_stream_uds_transport() {
  return std::make_unique<GrpcTransport>(true, true, grpc_info("grpc-stream-uds", true, true));
}

}  // namespace ipcbench
