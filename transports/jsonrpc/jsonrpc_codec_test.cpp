// The JSON-RPC codec on its own: base64 against RFC 4648's vectors and its refusals,
// the header block, each error a server answers and each fault a client refuses, and the
// round trip the encoding floor times.
#include "transports/jsonrpc/jsonrpc_codec.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/test_support.h"

namespace ipcbench {
namespace {

using nlohmann::json;

std::span<const std::byte> bytes(std::string_view s) { return std::as_bytes(std::span(s)); }

std::string decoded(std::string_view text, std::size_t room = 64) {
  std::vector<std::byte> out(room);
  const std::size_t n = base64_decode(text, out, "test");
  return std::string(reinterpret_cast<const char*>(out.data()), n);
}

using testing_support::error_of;

TEST(JsonRpcBase64, MatchesTheVectorsOfRfc4648BothWays) {
  const std::pair<const char*, const char*> vectors[] = {
      {"f", "Zg=="},        {"fo", "Zm8="},        {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
  std::string text;
  for (auto [plain, coded] : vectors) {
    base64_encode(bytes(plain), text);
    EXPECT_EQ(text, coded);
    EXPECT_EQ(decoded(coded), plain);
    // Into a buffer of exactly the decoded size: padding needs no room of its own.
    EXPECT_EQ(decoded(coded, std::strlen(plain)), plain);
  }
  base64_encode({}, text);
  EXPECT_EQ(text, "");
}

TEST(JsonRpcBase64, EveryByteValueAndLargeMessagesSurvive) {
  for (std::size_t n : {1u, 2u, 3u, 255u, 256u, (1u << 20) + 1}) {
    auto msg = testing_support::pattern(n, static_cast<unsigned>(n));
    std::string text;
    base64_encode(msg, text);
    EXPECT_EQ(text.size(), (n + 2) / 3 * 4);
    std::vector<std::byte> back(n);
    ASSERT_EQ(base64_decode(text, back, "test"), n);
    EXPECT_EQ(back, msg) << n;
  }
}

TEST(JsonRpcBase64, RefusesWhatRfc4648DoesNotAllow) {
  struct Case {
    const char* text;
    const char* why;
  } cases[] = {
      {"", "is empty"},
      {"Zg=", "not a multiple of 4"},
      {"Z===", "more than two '='"},
      {"Zg==Zg==", "'=' at offset 2"},
      {"Z=8v", "'=' at offset 1"},
      {" Zm8", "outside its alphabet"},  // OpenSSL alone skips leading whitespace
      {"Zm8 ", "outside its alphabet"},  // and trailing whitespace
      {"Zm9vYg\r\n", "outside its alphabet"},
      {"    Zm9v", "outside its alphabet"},  // whole quanta of whitespace: skipped, not -1
      {"Zm9v    ", "outside its alphabet"},
      {"Zm 8", "outside its alphabet"},
      {"Zm-8", "outside its alphabet"},  // base64url is another alphabet
      {"Zm_8", "outside its alphabet"},
  };
  for (const Case& c : cases) {
    const std::string e = error_of([&] { decoded(c.text); });
    EXPECT_NE(e.find(c.why), std::string::npos) << "'" << c.text << "': " << e;
  }
  EXPECT_NE(error_of([] { decoded("Zm9vYg==", 3); }).find("4 bytes does not fit in 3"),
            std::string::npos);
}

TEST(JsonRpcHeaderBlock, TakesContentLengthAndContentType) {
  EXPECT_EQ(parse_header_block("Content-Length: 12\r\n\r\n"), 12u);
  EXPECT_EQ(parse_header_block("content-length:7\r\n\r\n"), 7u);
  EXPECT_EQ(parse_header_block("Content-Length: 5\r\n"
                               "Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n"),
            5u);
  EXPECT_EQ(parse_header_block("Content-Type: application/json\r\nContent-Length: 3 \r\n\r\n"), 3u);
  EXPECT_EQ(parse_header_block("Content-Length: " + std::to_string(kMaxJsonRpcBody) + "\r\n\r\n"),
            kMaxJsonRpcBody);
}

TEST(JsonRpcHeaderBlock, RefusesEverythingElse) {
  const std::pair<std::string, const char*> cases[] = {
      {"\r\n\r\n", "malformed header line"},
      {"Content-Type: application/json\r\n\r\n", "no Content-Length"},
      {"Content-Length: 5\r\nContent-Length: 5\r\n\r\n", "given twice"},
      {"Content-Length: 5\r\nX-Trace: 1\r\n\r\n", "unknown header 'X-Trace'"},
      {"Content-Length: -1\r\n\r\n", "'-1' is not a number"},
      {"Content-Length: 5x\r\n\r\n", "'5x' is not a number"},
      {"Content-Length: \r\n\r\n", "'' is not a number"},
      {"Content-Length: 0\r\n\r\n", "an empty body"},
      {"Content-Length: " + std::to_string(kMaxJsonRpcBody + 1) + "\r\n\r\n", "exceeds the limit"},
      {"Content-Length: 99999999999999999999999\r\n\r\n", "is not a number"},
      {"Content-Length 5\r\n\r\n", "malformed header line"},
      {"Content-Length: 5\nX: 1\r\n\r\n", "malformed header line"},
      {"Content-Length: 5\r\n", "does not end with an empty line"},
  };
  for (const auto& [block, why] : cases) {
    const std::string e = error_of([&] { parse_header_block(block); });
    EXPECT_NE(e.find(why), std::string::npos) << json(block).dump() << ": " << e;
  }
}

// The fault a server answers a body with: its code, id and what() text.
struct Fault {
  int code = 0;
  json id;
  std::string what;
};
Fault fault_of(const std::string& body) {
  json parsed;
  std::vector<std::byte> out(16);
  try {
    decode_call(body, parsed, out);
  } catch (const JsonRpcFault& f) {
    return {f.code(), f.id(), f.what()};
  }
  return {};
}

TEST(JsonRpcServerDecoding, ReadsEchoPushAndNext) {
  json parsed;
  std::vector<std::byte> out(16);
  auto c =
      decode_call(R"({"jsonrpc":"2.0","method":"echo","params":["Zm9v"],"id":7})", parsed, out);
  EXPECT_EQ(c.method, JsonRpcCall::kEcho);
  EXPECT_EQ(c.id, json(7));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(out.data()), c.size), "foo");
  c = decode_call(R"({"params":["Zg=="],"method":"push","jsonrpc":"2.0"})", parsed, out);
  EXPECT_EQ(c.method, JsonRpcCall::kPush);
  EXPECT_TRUE(c.id.is_null());
  EXPECT_EQ(c.size, 1u);
  c = decode_call(R"({"jsonrpc":"2.0","method":"next","id":"a"})", parsed, out);
  EXPECT_EQ(c.method, JsonRpcCall::kNext);
  EXPECT_EQ(c.id, json("a"));
}

TEST(JsonRpcServerDecoding, AnswersEachFaultWithItsCode) {
  const struct {
    const char* body;
    int code;
    json id;
    const char* why;
  } cases[] = {
      {R"({"jsonrpc":"2.0","method":"echo",)", kJsonRpcParseError, nullptr, "invalid JSON"},
      {"{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[\"\xff\"],\"id\":1}",
       kJsonRpcParseError, nullptr, "invalid JSON"},  // not UTF-8
      {R"([1,2])", kJsonRpcInvalidRequest, nullptr, "not a JSON object"},
      {R"({"jsonrpc":"1.0","method":"echo","params":["Zg=="],"id":3})", kJsonRpcInvalidRequest, 3,
       "jsonrpc is not \"2.0\""},
      {R"({"method":"echo","params":["Zg=="],"id":3})", kJsonRpcInvalidRequest, 3,
       "jsonrpc is not \"2.0\""},
      {R"({"jsonrpc":"2.0","params":["Zg=="],"id":3})", kJsonRpcInvalidRequest, 3, "no method"},
      {R"({"jsonrpc":"2.0","method":"echo","params":["Zg=="],"id":3,"x":1})",
       kJsonRpcInvalidRequest, 3, "unknown member 'x'"},
      {R"({"jsonrpc":"2.0","method":"echo","params":["Zg=="],"id":[1]})", kJsonRpcInvalidRequest,
       nullptr, "id is neither"},
      {R"({"jsonrpc":"2.0","method":"echo","params":["Zg=="]})", kJsonRpcInvalidRequest, nullptr,
       "echo has no id"},
      {R"({"jsonrpc":"2.0","method":"push","params":["Zg=="],"id":4})", kJsonRpcInvalidRequest, 4,
       "push is a notification but has an id"},
      {R"({"jsonrpc":"2.0","method":"shutdown","id":5})", kJsonRpcMethodNotFound, 5,
       "unknown method 'shutdown'"},
      {R"({"jsonrpc":"2.0","method":"echo","params":"Zg==","id":6})", kJsonRpcInvalidParams, 6,
       "not one base64 string"},
      {R"({"jsonrpc":"2.0","method":"echo","params":["Zg==","Zg=="],"id":6})",
       kJsonRpcInvalidParams, 6, "not one base64 string"},
      {R"({"jsonrpc":"2.0","method":"echo","params":["Zg=!"],"id":6})", kJsonRpcInvalidParams, 6,
       "is not base64"},
      {R"({"jsonrpc":"2.0","method":"echo","params":["AAAAAAAAAAAAAAAAAAAAAAAA"],"id":6})",
       kJsonRpcInvalidParams, 6, "18 bytes does not fit in 16"},
      {R"({"jsonrpc":"2.0","method":"next","params":["Zg=="],"id":8})", kJsonRpcInvalidParams, 8,
       "next takes no params"},
  };
  for (const auto& c : cases) {
    const Fault f = fault_of(c.body);
    EXPECT_EQ(f.code, c.code) << c.body;
    EXPECT_EQ(f.id, c.id) << c.body;
    EXPECT_NE(f.what.find(c.why), std::string::npos) << c.body << ": " << f.what;
  }
}

std::string response_error(const std::string& body, std::uint64_t id = 4) {
  json parsed;
  std::vector<std::byte> out(16);
  return error_of([&] { decode_response(body, parsed, id, out); });
}

TEST(JsonRpcClientDecoding, ReadsAResultAndRefusesEveryFault) {
  json parsed;
  std::vector<std::byte> out(16);
  EXPECT_EQ(decode_response(R"({"jsonrpc":"2.0","result":"Zm9vYg==","id":4})", parsed, 4, out), 4u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(out.data()), 4), "foob");
  const std::pair<const char*, const char*> cases[] = {
      {R"({"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":4})",
       "answered request 4 with error -32601: 'Method not found'"},
      {R"({"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null})",
       "with error -32700: 'Parse error' (id null)"},
      {R"({"jsonrpc":"2.0","error":"no","id":4})", "error is not an object"},
      {R"({"jsonrpc":"2.0","result":"Zg==","id":5})", "id 5 does not answer request 4"},
      {R"({"jsonrpc":"2.0","result":"Zg==","id":"4"})", "id \"4\" does not answer request 4"},
      {R"({"jsonrpc":"2.0","result":"Zg=="})", "no id"},
      {R"({"jsonrpc":"1.0","result":"Zg==","id":4})", "jsonrpc is not \"2.0\""},
      {R"({"result":"Zg==","id":4})", "jsonrpc is not \"2.0\""},
      {R"({"jsonrpc":"2.0","id":4})", "no base64 string result"},
      {R"({"jsonrpc":"2.0","result":3,"id":4})", "no base64 string result"},
      {R"({"jsonrpc":"2.0","result":"Zg==","error":{"code":1,"message":"m"},"id":4})",
       "both result and error"},
      {R"({"jsonrpc":"2.0","result":"Zg==","id":4,"extra":0})", "unknown member 'extra'"},
      {R"({"jsonrpc":"2.0","result":"Zg=","id":4})", "result is not base64"},
      {R"({"jsonrpc":"2.0","result":"Zg==")", "invalid JSON"},
      {R"("Zg==")", "not a JSON object"},
  };
  for (const auto& [body, why] : cases) {
    const std::string e = response_error(body);
    EXPECT_NE(e.find(why), std::string::npos) << body << ": " << e;
  }
}

TEST(JsonRpcFrames, CarryTheirBodyLengthAndOnlyTheMembersOfTheProtocol) {
  JsonRpcFrame f;
  std::string text = "Zm9v";
  encode_call(f, "echo", &text, 9);
  EXPECT_EQ(text, "Zm9v");  // handed back for reuse
  EXPECT_EQ(parse_header_block(f.header), f.body.size());
  EXPECT_EQ(json::parse(f.body),
            json::parse(R"({"jsonrpc":"2.0","method":"echo","params":["Zm9v"],"id":9})"));
  encode_call(f, "push", &text, std::nullopt);
  EXPECT_EQ(json::parse(f.body),
            json::parse(R"({"jsonrpc":"2.0","method":"push","params":["Zm9v"]})"));
  encode_call(f, "next", nullptr, 10);
  EXPECT_EQ(json::parse(f.body), json::parse(R"({"jsonrpc":"2.0","method":"next","id":10})"));
  encode_result(f, json("x"), text);
  EXPECT_EQ(json::parse(f.body), json::parse(R"({"jsonrpc":"2.0","result":"Zm9v","id":"x"})"));
  encode_error(f, nullptr, kJsonRpcParseError, "Parse error");
  EXPECT_EQ(json::parse(f.body),
            json::parse(
                R"({"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null})"));
  EXPECT_EQ(f.header, "Content-Length: " + std::to_string(f.body.size()) + "\r\n\r\n");
}

TEST(JsonRpcEncodingRoundTrip, ReturnsThePayloadIntact) {
  JsonRpcCodecScratch s;
  for (std::size_t n : {1u, 2u, 3u, 4u, 1000u, (1u << 20) + 1}) {
    auto msg = testing_support::pattern(n, static_cast<unsigned>(n) + 1);
    ASSERT_EQ(jsonrpc_encoding_round_trip(msg, s), n);
    EXPECT_EQ(0, std::memcmp(s.client_buf.data(), msg.data(), n)) << n;
  }
  EXPECT_EQ(s.next_id, 6u);  // each round trip is a call of its own
}

}  // namespace
}  // namespace ipcbench
