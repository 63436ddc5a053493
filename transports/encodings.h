// Encodings: the encode/decode work a transport does per message, apart from moving the
// bytes, runnable in-process so that it can be timed alone (bench/floors.cpp,
// floor/encoding-<name>/<bytes>). A transport names its encoding in
// TransportInfo::encoding; the report sets a layer's encoding cost against the extra
// round-trip time the layer adds over the transport under it.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace ipcbench {

// One round trip's worth of a codec, as the transport runs it: the request encoded and
// decoded, then the response (the peer's echo of the decoded request) encoded and
// decoded. Returns the size of the payload the decoded response carries; throws
// ProtocolError when decoding fails. scratch is the caller's, kept across calls, for
// the function to grow and reuse.
using EncodingRoundTrip = std::size_t (*)(std::span<const std::byte> payload,
                                          std::vector<std::byte>& scratch);

struct Encoding {
  std::string name;  // as TransportInfo::encoding says it
  EncodingRoundTrip round_trip;
};

// Every encoding of this build, in a fixed order.
const std::vector<Encoding>& encodings();
// The encoding of that name; nullptr when there is none.
const Encoding* find_encoding(const std::string& name);

// The suite's length-prefix framing (StreamChannel's code, transports/framing.h).
std::size_t framing_round_trip(std::span<const std::byte> payload, std::vector<std::byte>& scratch);
#ifdef IPCBENCH_HAVE_GRPC
// gRPC's protobuf messages (rpc::Frame, transports/grpc/ipcbench.proto).
std::size_t protobuf_round_trip(std::span<const std::byte> payload,
                                std::vector<std::byte>& scratch);
#endif

}  // namespace ipcbench
