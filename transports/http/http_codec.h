// The HTTP/1.1 messages of the http-uds and http-tcp transports (http_transport.cpp), in
// one place: how the client builds each request, how the server reads and classifies it,
// how the server builds its reply and how the client checks it. The transport calls
// these functions and nothing else to make or judge a message, and so does
// http_encoding_round_trip, so that an in-process timing of the encoding is the work the
// transport does per round trip (less the system calls and the peer's wake-up).
//
// Wire format (Boost.Beast, HTTP/1.1, keep-alive):
//   POST /echo     body = one message (Content-Length), answered 200 with one message
//   POST /upload   Transfer-Encoding: chunked, one chunk per message, answered 200 with
//                  one message once the last chunk came
//   GET /next      no body, answered 200 with the server's next message
// Every request carries "Authorization: Bearer <token>"; every 200 answer carries
// "Content-Type: application/octet-stream" and a Content-Length.
#pragma once

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace ipcbench {
namespace http_codec {

namespace http = boost::beast::http;

// Beast 1.74 speaks boost::string_view.
using Sv = boost::beast::string_view;
using Body = http::vector_body<char>;
using Request = http::request<Body>;
using Response = http::response<Body>;
// The server reads a request's header alone first (and judges it) before its body.
using HeadParser = http::request_parser<http::empty_body>;
using EchoBodyParser = http::request_parser<Body>;
using ReplyParser = http::response_parser<Body>;

// Largest header either side reads; ours are under 200 bytes.
inline constexpr std::uint32_t kHeaderLimit = 8192;
inline constexpr Sv kContentType = "application/octet-stream";

// "Bearer <token>": the Authorization value of every request.
std::string authorization(Sv token);

// --- client ---------------------------------------------------------------------------
// Keeps a copy of msg as the body of the next request (the client holds each message
// until its next call says what it is).
void hold(Request& req, std::span<const std::byte> msg);
// Turns req (its body held) into POST /echo.
void make_echo(Request& req, Sv host, Sv auth);
// Turns req into GET /next (the body is cleared).
void make_next(Request& req, Sv host, Sv auth);
// The header of POST /upload (chunked; the chunks follow one by one).
void make_upload(http::request<http::empty_body>& req, Sv host, Sv auth);
// A parser for the reply, its limits set. The client reads the reply's header first, and
// then its body: Beast 1.74 ignores the body limit when it parses a response's header
// eagerly (http::read) with body bytes behind it, and would allocate what the
// Content-Length says.
void prepare(ReplyParser& p);
// Throws ProtocolError "http: <what> answered …" unless res is a 200 with one message
// (Content-Type octet-stream, 1 byte or more).
void check_reply(const Response& res, Sv what);

// The bytes of a whole message, as http::write puts them on a socket (the same
// serializer); for the floor, and for what the client sends at its very end.
void serialize(Request& req, std::vector<char>& wire);
void serialize(Response& res, std::vector<char>& wire);

// --- server ---------------------------------------------------------------------------
enum class Route { kEcho, kNext, kUpload, kUnauthorized, kBadRequest };
void prepare(HeadParser& p);
// What a request whose header has been read asks for. The token is checked first:
// without it nothing else about the request matters (kUnauthorized).
Route route(const http::request_header<>& h, Sv auth);
// After route() said kEcho: a parser for the body, its limit kMaxFrameBytes.
void prepare(EchoBodyParser& p);
// A 200 answer carrying msg (copied), in the request's HTTP version (1.1, or 1.0 for a
// /echo or /next from a 1.0 client such as ab: then "Connection: keep-alive" says the
// connection stays open); keep_alive as the request asked.
void make_reply(Response& res, std::span<const std::byte> msg, bool keep_alive,
                unsigned version = 11);
// A refusal (401, 400, 409) with a short text body; the connection closes after it.
void make_refusal(Response& res, http::status status);

}  // namespace http_codec

// Reusable buffers of http_encoding_round_trip.
struct HttpCodecScratch {
  std::string auth;  // "Bearer <token>"
  http_codec::Request req;
  http_codec::Response res;
  std::vector<char> wire;
  std::vector<char> spare;  // a body's storage, handed between the messages
};

// One POST /echo round trip without the sockets: builds the client's request for
// payload (hold + make_echo, with a token), serializes it to bytes, parses them as the
// server does (header, route, body), builds the 200 reply with the same body (make_reply),
// serializes it, parses it as the client does (header, body, check_reply), and returns
// the size of the reply's body. Throws ProtocolError if any step fails (it never should).
// Where it differs from the transport: the transport hands the serializer's buffers
// (header and body) to one sendmsg, so the kernel makes the copy serialize() makes here;
// and its parsers take the bytes as they come off the socket (at most 64 KiB a read),
// where here they get them whole.
std::size_t http_encoding_round_trip(std::span<const std::byte> payload, HttpCodecScratch& s);

}  // namespace ipcbench
