// Base64 is OpenSSL's EVP_EncodeBlock/EVP_DecodeBlock (libcrypto, libssl-dev): Debian's
// best-kept implementation, already on every machine that has the suite's other
// dependencies, and one call per message with no line breaks (unlike its EVP_Encode*
// streaming API or BIO_f_base64). EVP_DecodeBlock is lax where RFC 4648 is strict, so
// base64_decode checks what it lets through: it skips leading and trailing whitespace
// (seen as a short result), takes '=' anywhere as zero bits (refused here unless in the
// last two places) and counts padding as decoded bytes (subtracted here).
#include "transports/jsonrpc/jsonrpc_codec.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

namespace ipcbench {
namespace {

using nlohmann::json;

bool same_name(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string shown(std::string_view s) {
  std::string q(s.substr(0, 64));
  for (char& c : q)
    if (!std::isprint(static_cast<unsigned char>(c))) c = '?';
  return "'" + q + (s.size() > 64 ? "…'" : "'");
}

// Decodes whole quanta of text into out; false when OpenSSL refused them or skipped any.
bool decode_quanta(std::string_view text, unsigned char* out) {
  const int n = EVP_DecodeBlock(out, reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  return n >= 0 && static_cast<std::size_t>(n) == text.size() / 4 * 3;
}

json make_envelope() { return json{{"jsonrpc", "2.0"}}; }

void frame(JsonRpcFrame& out, const json& j) {
  out.body = j.dump();
  out.header = "Content-Length: " + std::to_string(out.body.size()) + "\r\n\r\n";
}

[[noreturn]] void bad_response(const std::string& why) {
  throw ProtocolError("jsonrpc: bad response: " + why);
}

}  // namespace

JsonRpcFault::JsonRpcFault(int code, std::string message, nlohmann::json id,
                           const std::string& detail)
    : ProtocolError("jsonrpc: " + detail + " (answered " + std::to_string(code) + " " + message +
                    ")"),
      code_(code),
      message_(std::move(message)),
      id_(std::move(id)) {}

void base64_encode(std::span<const std::byte> in, std::string& out) {
  out.resize((in.size() + 2) / 3 * 4 + 1);  // EVP_EncodeBlock adds a NUL
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
}

std::size_t base64_decode(std::string_view text, std::span<std::byte> out, const char* what) {
  const std::string bad = std::string("jsonrpc: ") + what + " is not base64: ";
  if (text.empty()) throw ProtocolError(std::string("jsonrpc: ") + what + " is empty");
  if (text.size() % 4 != 0)
    throw ProtocolError(bad + "length " + std::to_string(text.size()) + " is not a multiple of 4");
  std::size_t pad = 0;
  while (pad < 3 && text[text.size() - 1 - pad] == '=') ++pad;
  if (pad > 2) throw ProtocolError(bad + "more than two '=' at the end");
  if (const void* eq = std::memchr(text.data(), '=', text.size() - pad))
    throw ProtocolError(bad + "'=' at offset " +
                        std::to_string(static_cast<const char*>(eq) - text.data()));
  const std::size_t size = text.size() / 4 * 3 - pad;
  if (size > out.size())
    throw ProtocolError("jsonrpc: " + std::string(what) + " of " + std::to_string(size) +
                        " bytes does not fit in " + std::to_string(out.size()));
  // The last quantum apart: with padding it decodes to fewer bytes than OpenSSL writes.
  auto* dst = reinterpret_cast<unsigned char*>(out.data());
  const std::string_view head = text.substr(0, text.size() - 4);
  unsigned char last[4];
  if (!decode_quanta(head, dst) || !decode_quanta(text.substr(head.size()), last))
    throw ProtocolError(bad + "a character outside its alphabet");
  std::memcpy(dst + head.size() / 4 * 3, last, 3 - pad);
  return size;
}

std::size_t parse_header_block(std::string_view block) {
  if (block.size() < 4 || block.substr(block.size() - 4) != "\r\n\r\n")
    throw ProtocolError("jsonrpc: header block does not end with an empty line");
  std::optional<std::size_t> length;
  std::string_view rest = block.substr(0, block.size() - 2);  // each line keeps its \r\n
  while (!rest.empty()) {
    const std::size_t eol = rest.find("\r\n");
    const std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol + 2);
    const std::size_t colon = line.find(':');
    if (line.find_first_of("\r\n") != std::string_view::npos || colon == std::string_view::npos ||
        colon == 0)
      throw ProtocolError("jsonrpc: malformed header line " + shown(line));
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = trim(line.substr(colon + 1));
    if (same_name(name, "Content-Type")) continue;
    if (!same_name(name, "Content-Length"))
      throw ProtocolError("jsonrpc: unknown header " + shown(name));
    if (length) throw ProtocolError("jsonrpc: Content-Length given twice");
    std::size_t n = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (value.empty() || ec != std::errc() || p != value.data() + value.size())
      throw ProtocolError("jsonrpc: Content-Length " + shown(value) + " is not a number");
    if (n == 0) throw ProtocolError("jsonrpc: Content-Length 0 (an empty body)");
    if (n > kMaxJsonRpcBody)
      throw ProtocolError("jsonrpc: Content-Length " + std::to_string(n) +
                          " exceeds the limit of " + std::to_string(kMaxJsonRpcBody));
    length = n;
  }
  if (!length) throw ProtocolError("jsonrpc: no Content-Length header");
  return *length;
}

void encode_call(JsonRpcFrame& out, std::string_view method, std::string* params,
                 std::optional<std::uint64_t> id) {
  json j = make_envelope();
  j["method"] = method;
  if (params) j["params"] = json::array({std::move(*params)});
  if (id) j["id"] = *id;
  frame(out, j);
  if (params) *params = std::move(j["params"][0].get_ref<std::string&>());
}

void encode_result(JsonRpcFrame& out, const nlohmann::json& id, std::string& result) {
  json j = make_envelope();
  j["result"] = std::move(result);
  j["id"] = id;
  frame(out, j);
  result = std::move(j["result"].get_ref<std::string&>());
}

void encode_error(JsonRpcFrame& out, const nlohmann::json& id, int code, std::string_view message) {
  json j = make_envelope();
  j["error"] = {{"code", code}, {"message", message}};
  j["id"] = id;
  frame(out, j);
}

JsonRpcCall decode_call(const std::string& body, nlohmann::json& parsed, std::span<std::byte> out) {
  try {
    parsed = json::parse(body);
  } catch (const json::exception& e) {
    throw JsonRpcFault(kJsonRpcParseError, "Parse error", nullptr,
                       std::string("invalid JSON: ") + e.what());
  }
  const json& j = parsed;
  if (!j.is_object())
    throw JsonRpcFault(kJsonRpcInvalidRequest, "Invalid Request", nullptr, "not a JSON object");
  JsonRpcCall call{JsonRpcCall::kEcho, nullptr, 0};
  const auto id = j.find("id");
  const bool has_id = id != j.end();
  if (has_id) {
    if (!id->is_number_integer() && !id->is_string() && !id->is_null())
      throw JsonRpcFault(kJsonRpcInvalidRequest, "Invalid Request", nullptr,
                         "id is neither a number nor a string");
    call.id = *id;
  }
  auto invalid = [&call](const std::string& why) {
    return JsonRpcFault(kJsonRpcInvalidRequest, "Invalid Request", call.id, why);
  };
  for (const auto& member : j.items())
    if (member.key() != "jsonrpc" && member.key() != "method" && member.key() != "params" &&
        member.key() != "id")
      throw invalid("unknown member " + shown(member.key()));
  const auto version = j.find("jsonrpc");
  if (version == j.end() || *version != "2.0") throw invalid("jsonrpc is not \"2.0\"");
  const auto method = j.find("method");
  if (method == j.end() || !method->is_string()) throw invalid("no method");
  const std::string& name = method->get_ref<const std::string&>();
  if (name == "echo") {
    call.method = JsonRpcCall::kEcho;
  } else if (name == "push") {
    call.method = JsonRpcCall::kPush;
  } else if (name == "next") {
    call.method = JsonRpcCall::kNext;
  } else {
    throw JsonRpcFault(kJsonRpcMethodNotFound, "Method not found", call.id,
                       "unknown method " + shown(name));
  }
  if (has_id == (call.method == JsonRpcCall::kPush))
    throw invalid(has_id ? "push is a notification but has an id" : name + " has no id");
  const auto params = j.find("params");
  if (call.method == JsonRpcCall::kNext) {
    if (params != j.end() && !(params->is_array() && params->empty()))
      throw JsonRpcFault(kJsonRpcInvalidParams, "Invalid params", call.id, "next takes no params");
    return call;
  }
  if (params == j.end() || !params->is_array() || params->size() != 1 || !(*params)[0].is_string())
    throw JsonRpcFault(kJsonRpcInvalidParams, "Invalid params", call.id,
                       name + " params are not one base64 string");
  try {
    call.size = base64_decode((*params)[0].get_ref<const std::string&>(), out, "params");
  } catch (const ProtocolError& e) {
    throw JsonRpcFault(kJsonRpcInvalidParams, "Invalid params", call.id, e.what());
  }
  return call;
}

std::size_t decode_response(const std::string& body, nlohmann::json& parsed, std::uint64_t id,
                            std::span<std::byte> out) {
  try {
    parsed = json::parse(body);
  } catch (const json::exception& e) {
    bad_response(std::string("invalid JSON: ") + e.what());
  }
  const json& j = parsed;
  if (!j.is_object()) bad_response("not a JSON object");
  for (const auto& member : j.items())
    if (member.key() != "jsonrpc" && member.key() != "result" && member.key() != "error" &&
        member.key() != "id")
      bad_response("unknown member " + shown(member.key()));
  const auto version = j.find("jsonrpc");
  if (version == j.end() || *version != "2.0") bad_response("jsonrpc is not \"2.0\"");
  const auto result = j.find("result");
  const auto error = j.find("error");
  if (result != j.end() && error != j.end()) bad_response("both result and error");
  const auto got = j.find("id");
  if (got == j.end()) bad_response("no id");
  if (error != j.end()) {
    const auto code = error->is_object() ? error->find("code") : error->end();
    const auto message = error->is_object() ? error->find("message") : error->end();
    if (!error->is_object() || code == error->end() || !code->is_number_integer() ||
        message == error->end() || !message->is_string())
      bad_response("error is not an object with a code and a message");
    throw ProtocolError("jsonrpc: the server answered request " + std::to_string(id) +
                        " with error " + std::to_string(code->get<long long>()) + ": " +
                        shown(message->get_ref<const std::string&>()) + " (id " + got->dump() +
                        ")");
  }
  if (!got->is_number_unsigned() || got->get<std::uint64_t>() != id)
    bad_response("id " + got->dump().substr(0, 64) + " does not answer request " +
                 std::to_string(id));
  if (result == j.end() || !result->is_string()) bad_response("no base64 string result");
  return base64_decode(result->get_ref<const std::string&>(), out, "result");
}

std::size_t jsonrpc_encoding_round_trip(std::span<const std::byte> payload,
                                        JsonRpcCodecScratch& s) {
  if (s.server_buf.size() < payload.size()) s.server_buf.resize(payload.size());
  if (s.client_buf.size() < payload.size()) s.client_buf.resize(payload.size());
  // The client: send() encodes the payload, recv() sends it as an echo request.
  base64_encode(payload, s.text);
  const std::uint64_t id = ++s.next_id;
  encode_call(s.request, "echo", &s.text, id);
  // The server: the frame, the call, the echo back.
  if (parse_header_block(s.request.header) != s.request.body.size())
    throw ProtocolError("jsonrpc: round trip: request length");
  const JsonRpcCall call = decode_call(s.request.body, s.parsed, s.server_buf);
  base64_encode(std::span(s.server_buf).first(call.size), s.text);
  encode_result(s.response, call.id, s.text);
  // The client: the frame, the response.
  if (parse_header_block(s.response.header) != s.response.body.size())
    throw ProtocolError("jsonrpc: round trip: response length");
  return decode_response(s.response.body, s.parsed, id, s.client_buf);
}

}  // namespace ipcbench
