#include "transports/http/http_codec.h"

#include <boost/beast/version.hpp>
#include <cstring>

#include "base/error.h"
#include "transports/framing.h"

namespace ipcbench {
namespace http_codec {

namespace {

constexpr Sv kServerName = BOOST_BEAST_VERSION_STRING;

// A Content-Length of 0, however written ("0", "00": Beast's parser has checked it is
// digits only).
bool zero(Sv length) { return length.find_first_not_of('0') == Sv::npos; }

// No body: neither a length nor a transfer coding, or a length of 0.
bool bodiless(const http::request_header<>& h) {
  const auto len = h.find(http::field::content_length);
  const auto te = h.find(http::field::transfer_encoding);
  return te == h.end() && (len == h.end() || zero(len->value()));
}

}  // namespace

std::string authorization(Sv token) { return "Bearer " + std::string(token); }

void hold(Request& req, std::span<const std::byte> msg) {
  req.body().assign(reinterpret_cast<const char*>(msg.data()),
                    reinterpret_cast<const char*>(msg.data()) + msg.size());
}

namespace {
void start(http::request_header<>& h, http::verb verb, Sv target, Sv host, Sv auth) {
  h.method(verb);
  h.target(target);
  h.version(11);
  h.set(http::field::host, host);
  h.set(http::field::authorization, auth);
}
}  // namespace

void make_echo(Request& req, Sv host, Sv auth) {
  start(req.base(), http::verb::post, "/echo", host, auth);
  req.set(http::field::content_type, kContentType);
  req.content_length(req.body().size());
}

void make_next(Request& req, Sv host, Sv auth) {
  start(req.base(), http::verb::get, "/next", host, auth);
  req.body().clear();
  req.erase(http::field::content_type);
  req.erase(http::field::content_length);
}

void make_upload(http::request<http::empty_body>& req, Sv host, Sv auth) {
  start(req.base(), http::verb::post, "/upload", host, auth);
  req.set(http::field::content_type, kContentType);
  req.chunked(true);
}

void prepare(ReplyParser& p) {
  p.header_limit(kHeaderLimit);
  p.body_limit(kMaxFrameBytes);
}

void check_reply(const Response& res, Sv what) {
  const std::string w(what);
  if (res.result() != http::status::ok)
    throw ProtocolError("http: " + w + " answered " + std::to_string(res.result_int()) + " " +
                        std::string(res.reason()));
  const auto ct = res.find(http::field::content_type);
  if (ct == res.end() || ct->value() != kContentType)
    throw ProtocolError("http: " + w + " answered 200 without Content-Type " +
                        std::string(kContentType));
  if (res.body().empty()) throw ProtocolError("http: " + w + " answered 200 with an empty body");
}

void prepare(HeadParser& p) {
  p.header_limit(kHeaderLimit);
  // Beast checks a Content-Length against it as the header completes (its default, 1 MiB,
  // would refuse larger messages); a longer one is then a malformed request.
  p.body_limit(kMaxFrameBytes);
}

Route route(const http::request_header<>& h, Sv auth) {
  const auto a = h.find(http::field::authorization);
  if (a == h.end() || a->value().size() != auth.size() ||
      std::memcmp(a->value().data(), auth.data(), auth.size()) != 0)
    return Route::kUnauthorized;
  // HTTP/1.0 clients (ab, say) may call /echo and /next; a chunked upload is 1.1's.
  if (h.version() != 11 && h.version() != 10) return Route::kBadRequest;
  const auto te = h.find(http::field::transfer_encoding);
  const bool chunked = te != h.end() && te->value() == "chunked";
  const auto len = h.find(http::field::content_length);
  if (h.method() == http::verb::post && h.target() == "/echo") {
    if (te != h.end() || len == h.end() || zero(len->value())) return Route::kBadRequest;
    return Route::kEcho;
  }
  if (h.method() == http::verb::post && h.target() == "/upload") {
    if (h.version() != 11 || !chunked || len != h.end()) return Route::kBadRequest;
    return Route::kUpload;
  }
  if (h.method() == http::verb::get && h.target() == "/next")
    return bodiless(h) ? Route::kNext : Route::kBadRequest;
  return Route::kBadRequest;
}

void prepare(EchoBodyParser& p) { p.body_limit(kMaxFrameBytes); }

void make_reply(Response& res, std::span<const std::byte> msg, bool keep_alive, unsigned version) {
  res.result(http::status::ok);
  res.version(version);
  res.set(http::field::server, kServerName);
  res.set(http::field::content_type, kContentType);
  res.body().assign(reinterpret_cast<const char*>(msg.data()),
                    reinterpret_cast<const char*>(msg.data()) + msg.size());
  res.content_length(msg.size());
  res.keep_alive(keep_alive);
}

void make_refusal(Response& res, http::status status) {
  res.result(status);
  res.version(11);
  res.set(http::field::server, kServerName);
  res.set(http::field::content_type, "text/plain");
  const Sv why = http::obsolete_reason(status);
  res.body().assign(why.begin(), why.end());
  res.body().push_back('\n');
  res.content_length(res.body().size());
  res.keep_alive(false);
}

namespace {
// Serializes m whole into wire (as http::write does into a socket: the same serializer).
template <bool isRequest>
void serialize_message(http::message<isRequest, http_codec::Body>& m, std::vector<char>& wire) {
  wire.clear();
  http::serializer<isRequest, http_codec::Body> sr(m);
  boost::beast::error_code ec;
  do {
    sr.next(ec, [&](boost::beast::error_code&, const auto& buffers) {
      std::size_t n = 0;
      for (auto b : boost::beast::buffers_range_ref(buffers)) {
        const char* p = static_cast<const char*>(b.data());
        wire.insert(wire.end(), p, p + b.size());
        n += b.size();
      }
      sr.consume(n);
    });
    if (ec) throw ProtocolError("http codec: serialize: " + ec.message());
  } while (!sr.is_done());
}

}  // namespace

void serialize(Request& req, std::vector<char>& wire) { serialize_message(req, wire); }
void serialize(Response& res, std::vector<char>& wire) { serialize_message(res, wire); }

}  // namespace http_codec

namespace {

namespace http = boost::beast::http;

// Feeds bytes to a parser until it has what it wants, as http::read_header (header_only)
// and http::read do from a socket: not eager for a header, eager for a body.
template <class Parser>
std::size_t feed(Parser& p, const char* data, std::size_t n, bool header_only) {
  p.eager(!header_only);
  boost::beast::error_code ec;
  std::size_t used = 0;
  while (used < n && !(header_only ? p.is_header_done() : p.is_done())) {
    const std::size_t k = p.put(boost::asio::buffer(data + used, n - used), ec);
    if (ec == http::error::need_more && k == 0) break;
    if (ec && ec != http::error::need_more)
      throw ProtocolError("http codec: parse: " + ec.message());
    used += k;
  }
  if (!(header_only ? p.is_header_done() : p.is_done()))
    throw ProtocolError("http codec: parse: message incomplete");
  return used;
}

}  // namespace

std::size_t http_encoding_round_trip(std::span<const std::byte> payload, HttpCodecScratch& s) {
  using namespace http_codec;
  if (s.auth.empty()) s.auth = authorization(std::string(32, '0'));
  // Client: the held message becomes POST /echo.
  hold(s.req, payload);
  make_echo(s.req, "localhost", s.auth);
  serialize(s.req, s.wire);
  // Server: the header first, judged, then the body.
  HeadParser head;
  prepare(head);
  std::size_t used = feed(head, s.wire.data(), s.wire.size(), true);
  if (route(head.get(), s.auth) != Route::kEcho)
    throw ProtocolError("http codec: not routed to echo");
  EchoBodyParser body(std::move(head));
  prepare(body);
  s.spare.clear();
  body.get().body().swap(s.spare);
  feed(body, s.wire.data() + used, s.wire.size() - used, false);
  const std::vector<char>& got = body.get().body();
  // Server: the reply carries the message back.
  make_reply(s.res, std::as_bytes(std::span(got.data(), got.size())), body.get().keep_alive());
  body.get().body().swap(s.spare);
  serialize(s.res, s.wire);
  // Client: the reply, checked.
  ReplyParser reply;
  prepare(reply);
  s.spare.clear();
  reply.get().body().swap(s.spare);
  used = feed(reply, s.wire.data(), s.wire.size(), true);
  feed(reply, s.wire.data() + used, s.wire.size() - used, false);
  check_reply(reply.get(), "POST /echo");
  const std::size_t n = reply.get().body().size();
  reply.get().body().swap(s.spare);
  return n;
}

}  // namespace ipcbench
