#include "transports/encodings.h"

#include <cstring>
#include <string>

#include "base/error.h"
#include "transports/framing.h"
#ifdef IPCBENCH_HAVE_GRPC
#include "transports/grpc/ipcbench.pb.h"
#endif
// Codecs of other transport folders: include each one's header here...
#include "transports/http/http_codec.h"
#include "transports/jsonrpc/jsonrpc_codec.h"

namespace ipcbench {
namespace {

// One message through StreamChannel's code, system calls aside: stage_frame as send()
// runs it, then unstage_frame as recv() runs it over what its buffer holds. The kernel's
// part, carrying the staged bytes (or the writev'ed body) into that buffer or straight
// into the caller's, is the transport's and left out: only the 4-byte length is moved
// across by hand. Body bytes sit in the buffer, to be copied out, for messages below
// kDirectFrameBytes (the steady state of a run of equal sizes); larger ones are read in
// place and only their length is decoded.
std::size_t framed_one_way(std::span<const std::byte> msg, std::span<std::byte> stage,
                           std::span<std::byte> rbuf, std::span<std::byte> out) {
  stage_frame(stage, msg);
  std::memcpy(rbuf.data(), stage.data(), kLengthPrefixBytes);
  const std::size_t buffered = msg.size() < kDirectFrameBytes ? msg.size() : 0;
  return unstage_frame(rbuf.first(kLengthPrefixBytes + buffered), out);
}

// A codec whose scratch is a type of its own: one per thread, kept across calls, as the
// transport keeps it across messages (the vector the floor passes is not used).
template <class Scratch, std::size_t (*RoundTrip)(std::span<const std::byte>, Scratch&)>
std::size_t with_own_scratch(std::span<const std::byte> payload, std::vector<std::byte>&) {
  thread_local Scratch scratch;
  return RoundTrip(payload, scratch);
}

}  // namespace

std::size_t framing_round_trip(std::span<const std::byte> payload,
                               std::vector<std::byte>& scratch) {
  // scratch: [stage | receive buffer | the peer's copy of the request | the response]
  constexpr std::size_t kStage = kLengthPrefixBytes + kStagedFrameBytes;
  constexpr std::size_t kBuffer = kLengthPrefixBytes + kDirectFrameBytes;
  const std::size_t n = payload.size();
  if (scratch.size() < kStage + kBuffer + 2 * n) scratch.resize(kStage + kBuffer + 2 * n);
  const std::span<std::byte> stage(scratch.data(), kStage), rbuf(stage.data() + kStage, kBuffer),
      request(rbuf.data() + kBuffer, n), response(request.data() + n, n);
  const std::size_t got = framed_one_way(payload, stage, rbuf, request);
  if (got != n) throw ProtocolError("framing: the request came back as " + std::to_string(got));
  return framed_one_way(request, stage, rbuf, response);  // the peer echoes it
}

#ifdef IPCBENCH_HAVE_GRPC
// What the grpc-* transports do to one request and its reply in protobuf: the payload
// copied into an rpc::Frame (set_data), serialized, parsed by the server into a fresh
// Frame (the server's are new for every call) and copied out to the echoing peer
// (FrameChannel::recv; the peer's copy is left at the front of scratch); the reply set
// from that copy, serialized and parsed by the client, which reads it in place (view).
// Left out, because they live in gRPC's core and cannot be timed apart from it: HTTP/2
// framing, HPACK headers, the slices serialization writes into, the completion queues.
std::size_t protobuf_round_trip(std::span<const std::byte> payload,
                                std::vector<std::byte>& scratch) {
  auto one_way = [](std::span<const std::byte> msg, rpc::Frame& into) {
    rpc::Frame sent;
    sent.set_data(msg.data(), msg.size());
    std::string wire;
    if (!sent.SerializeToString(&wire)) throw ProtocolError("protobuf: Frame did not serialize");
    if (!into.ParseFromString(wire)) throw ProtocolError("protobuf: Frame did not parse");
  };
  rpc::Frame request, response;
  one_way(payload, request);
  const std::size_t n = request.data().size();
  if (scratch.size() < n) scratch.resize(n);
  std::memcpy(scratch.data(), request.data().data(), n);
  one_way(std::span(scratch).first(n), response);
  return response.data().size();
}
#endif

const std::vector<Encoding>& encodings() {
  static const std::vector<Encoding> list = {
      {"framing", framing_round_trip},
#ifdef IPCBENCH_HAVE_GRPC
      {"protobuf", protobuf_round_trip},
#endif
      // ...and add its entry here, named as its transports' TransportInfo::encoding.
      {"http", with_own_scratch<HttpCodecScratch, http_encoding_round_trip>},
      {"jsonrpc", with_own_scratch<JsonRpcCodecScratch, jsonrpc_encoding_round_trip>},
  };
  return list;
}

const Encoding* find_encoding(const std::string& name) {
  for (const Encoding& e : encodings())
    if (e.name == name) return &e;
  return nullptr;
}

}  // namespace ipcbench
