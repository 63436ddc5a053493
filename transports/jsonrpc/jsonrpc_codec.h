// JSON-RPC 2.0 messages as the jsonrpc-* transports put them on a byte stream: each one
// framed as `Content-Length: N\r\n\r\n` + N bytes of UTF-8 JSON (the base protocol of the
// Language Server Protocol, StreamJsonRpc's default), built and parsed with nlohmann-json,
// a binary payload as standard base64 (RFC 4648, padded) inside a JSON string.
//
// The messages (the client is the benchmark side, the server the peer):
//   {"jsonrpc":"2.0","method":"echo","params":[<base64>],"id":n}   request: answer me
//   {"jsonrpc":"2.0","method":"push","params":[<base64>]}          notification
//   {"jsonrpc":"2.0","method":"next","id":n}                       request: your next message
//   {"jsonrpc":"2.0","result":<base64>,"id":n}                     response
//   {"jsonrpc":"2.0","error":{"code":c,"message":m},"id":n|null}   error response
//
// These functions are everything the transports do to a message between the caller's
// bytes and the system calls; jsonrpc_encoding_round_trip chains them as one echo call
// does, so that its cost can be timed in-process. Every decoding failure throws
// ProtocolError naming what was wrong; a failure the server answers throws JsonRpcFault,
// carrying the error code of the JSON-RPC 2.0 specification.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "transports/framing.h"

namespace ipcbench {

// Largest JSON body accepted: a kMaxFrameBytes payload in base64 and the envelope around it.
inline constexpr std::size_t kMaxJsonRpcBody = (kMaxFrameBytes + 2) / 3 * 4 + 4096;
// Longest header block accepted, its terminating empty line included.
inline constexpr std::size_t kMaxJsonRpcHeader = 1024;

// Error codes of the JSON-RPC 2.0 specification (section 5.1).
inline constexpr int kJsonRpcParseError = -32700;
inline constexpr int kJsonRpcInvalidRequest = -32600;
inline constexpr int kJsonRpcMethodNotFound = -32601;
inline constexpr int kJsonRpcInvalidParams = -32602;

// A request the server cannot serve: what it answers (code, message, the request's id or
// null) before it gives up on the link. what() names the problem in full.
class JsonRpcFault : public ProtocolError {
 public:
  JsonRpcFault(int code, std::string message, nlohmann::json id, const std::string& detail);
  int code() const { return code_; }
  const std::string& message() const { return message_; }
  const nlohmann::json& id() const { return id_; }

 private:
  int code_;
  std::string message_;
  nlohmann::json id_;
};

// One encoded message: the header block, then the body. Written as two pieces, so that
// the body is not copied to put the header in front of it.
struct JsonRpcFrame {
  std::string header;
  std::string body;
};

// Standard base64 of `in`, with padding, into `out` (replaced).
void base64_encode(std::span<const std::byte> in, std::string& out);
// Decodes `text` into out and returns the byte count. Refuses (ProtocolError naming
// `what`) anything but canonical-alphabet base64 with a length multiple of 4 and at most
// two '=' at its very end (no whitespace, no line breaks), and a result that does not fit.
std::size_t base64_decode(std::string_view text, std::span<std::byte> out, const char* what);

// The body length announced by a header block (the bytes up to and including the empty
// line). Accepts Content-Length (required, once, decimal, at most kMaxJsonRpcBody) and
// Content-Type; field names in any case. Throws ProtocolError naming the fault.
std::size_t parse_header_block(std::string_view block);

// A request or notification into `out`. params: the payload already in base64 (moved
// into the message and handed back after), or nullptr for none; id: none = notification.
void encode_call(JsonRpcFrame& out, std::string_view method, std::string* params,
                 std::optional<std::uint64_t> id);
// A response carrying `result` (base64 text, moved in and handed back after).
void encode_result(JsonRpcFrame& out, const nlohmann::json& id, std::string& result);
void encode_error(JsonRpcFrame& out, const nlohmann::json& id, int code, std::string_view message);

// What a server received.
struct JsonRpcCall {
  enum Method { kEcho, kPush, kNext } method = kEcho;
  nlohmann::json id;     // null for a notification
  std::size_t size = 0;  // payload bytes decoded into the caller's buffer (echo, push)
};
// Parses a request or notification body (into `parsed`, reused) and decodes its payload
// into out. Throws JsonRpcFault: -32700 invalid JSON, -32600 not a request of the
// protocol (version, fields, an id where none belongs), -32601 unknown method, -32602
// bad params (not one base64 string, bad base64, too large for out).
JsonRpcCall decode_call(const std::string& body, nlohmann::json& parsed, std::span<std::byte> out);

// Parses a response body (into `parsed`, reused) to request `id` and decodes its result
// into out; returns the byte count. Throws ProtocolError: invalid JSON, wrong version,
// missing or extra fields, an id other than `id`, an error object (its code and message),
// bad base64, a result larger than out.
std::size_t decode_response(const std::string& body, nlohmann::json& parsed, std::uint64_t id,
                            std::span<std::byte> out);

// The buffers one round trip reuses.
struct JsonRpcCodecScratch {
  std::string text;  // base64 of the payload on its way
  JsonRpcFrame request, response;
  nlohmann::json parsed;
  std::vector<std::byte> server_buf, client_buf;
  std::uint64_t next_id = 0;
};

// One echo call without the system calls, as the transports make it: the client encodes
// the payload as a framed echo request, the server parses the header and the body and
// decodes the payload, encodes it back as the result, and the client parses and decodes
// that. Returns the size of the decoded result (payload.size(), or it throws).
std::size_t jsonrpc_encoding_round_trip(std::span<const std::byte> payload, JsonRpcCodecScratch& s);

}  // namespace ipcbench
