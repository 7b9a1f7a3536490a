// One stream_chat call: resolve, connect (+ TLS handshake), POST the request,
// then read the response body piecewise (buffer_body) and feed each piece to
// the SSE parser, so every content delta reaches on_delta as soon as its bytes
// arrive. Every I/O outcome is an error code (as_tuple); nothing on this path
// throws except bad_alloc and whatever on_delta throws.
//
// Cancellation: the awaiting coroutine's cancellation state is forwarded by
// Asio into each awaited operation (tcp_stream, ssl::stream and Beast's HTTP
// operations all accept terminal cancellation), so a terminal cancellation
// completes the pending operation with operation_aborted; the call then closes
// the socket and returns. The state is also checked after every operation,
// which catches a cancellation emitted between two operations.
#include "llm/openai/openai_provider.hpp"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <exception>
#include <optional>
#include <stdexcept>

#include "core/sse_parser.hpp"
#include "llm/openai/openai_chunks.hpp"
#include "net/error_text.hpp"
#include "net/http_url.hpp"
#include "net/outbound_connection.hpp"
#include "net/response_body.hpp"

namespace sluice::llm {

namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = net::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);
// An error response body is kept up to this size for the error message.
constexpr std::size_t max_error_body = 64 * 1024;
// Status line and headers must fit in this.
constexpr std::size_t max_header_bytes = 64 * 1024;

class openai_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "sluice.openai"; }
  std::string message(int ev) const override {
    switch (static_cast<openai_errc>(ev)) {
      case openai_errc::http_status:
        return "upstream answered with an HTTP error status";
      case openai_errc::stream_truncated:
        return "upstream stream ended before [DONE]";
      case openai_errc::malformed_chunk:
        return "malformed chunk in upstream stream";
      case openai_errc::upstream_error:
        return "upstream reported an error in the stream";
      case openai_errc::response_too_large:
        return "upstream response too large";
    }
    return "unknown openai provider error";
  }
};

using outbound::excerpt;
using outbound::upstream_failure;
using outbound::is_timeout;
using outbound::ms_text;
using outbound::read_body_some;

bool is_cancelled(const net::cancellation_state& cs) {
  return cs.cancelled() != net::cancellation_type::none;
}

void set_aborted(chat_outcome& out) {
  out.ec = net::error::operation_aborted;
  out.error_message = "cancelled";
}

// "HTTP 429 Too Many Requests: Rate limit reached" from an error response.
std::string describe_http_error(unsigned status, std::string_view reason, std::string_view body) {
  std::string msg = "upstream answered HTTP " + std::to_string(status);
  if (!reason.empty()) msg += " " + std::string(reason);
  error_code ec;
  json::value v = json::parse(body, ec);
  std::string server_message;
  if (!ec) {
    if (const auto* o = v.if_object()) {
      if (const auto* e = o->if_contains("error")) server_message = error_value_message(*e);
    }
  }
  if (server_message.empty() && !body.empty()) server_message = excerpt(body);
  if (!server_message.empty()) msg += ": " + server_message;
  return msg;
}

json::object request_body(const openai_config& cfg, const chat_request& request) {
  json::object body;
  body["model"] = cfg.model;
  json::array messages;
  messages.reserve(request.messages.size());
  for (const auto& m : request.messages) {
    messages.push_back(json::object{{"role", m.role}, {"content", m.content}});
  }
  body["messages"] = std::move(messages);
  body["stream"] = true;
  body["temperature"] = request.temperature;
  int max_tokens = cfg.max_tokens;
  if (request.max_tokens > 0 && (max_tokens <= 0 || request.max_tokens < max_tokens))
    max_tokens = request.max_tokens;
  if (max_tokens > 0) body["max_tokens"] = max_tokens;
  body["stream_options"] = json::object{{"include_usage", true}};
  return body;
}

}  // namespace

const boost::system::error_category& openai_category() noexcept {
  static const openai_category_impl category;
  return category;
}

boost::system::error_code make_error_code(openai_errc e) noexcept {
  return {static_cast<int>(e), openai_category()};
}

// Immutable after construction (the ssl::context is configured once and then
// only used to create connections, which OpenSSL allows from any thread).
struct openai_provider::impl {
  openai_config config;
  outbound::http_url url;           // base_url taken apart
  std::string target;               // path prefix + "/chat/completions" [+ "?" query]
  std::optional<ssl::context> tls;  // https only
};

namespace {

using provider_impl = openai_provider::impl;

// Sends the request and streams the response. `out` is filled in place;
// `stream` is connected (and TLS-established). The caller closes it.
template <class Stream>
net::awaitable<void> exchange(Stream& stream, const provider_impl& p, const std::string& body,
                              std::function<void(std::string_view)>& on_delta,
                              const net::cancellation_state& cs, chat_outcome& out) {
  const openai_config& cfg = p.config;
  auto& lowest = beast::get_lowest_layer(stream);

  http::request<http::string_body> req{http::verb::post, p.target, 11};
  req.set(http::field::host, p.url.host_header);
  req.set(http::field::user_agent, "sluice");
  req.set(http::field::content_type, "application/json");
  req.set(http::field::accept, "text/event-stream");
  if (!cfg.api_key.empty()) req.set(http::field::authorization, "Bearer " + cfg.api_key);
  for (const auto& [name, value] : cfg.extra_headers) req.set(name, value);
  req.body() = body;
  req.prepare_payload();

  lowest.expires_after(cfg.read_timeout);
  auto [wec, wn] = co_await http::async_write(stream, req, tuple_awaitable);
  (void)wn;
  if (is_cancelled(cs)) co_return set_aborted(out);
  if (is_timeout(wec)) {
    co_return set_upstream_error(out, net::error::timed_out, upstream_failure::timeout,
                        "sending the request to " + p.url.host_header + " stalled for " +
                            ms_text(cfg.read_timeout));
  }
  if (wec) {
    co_return set_upstream_error(
        out, wec, upstream_failure::connection, "sending the request to " + p.url.host_header + " failed: " + wec.message());
  }

  beast::flat_buffer buffer(max_header_bytes);
  http::response_parser<http::buffer_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(max_header_bytes / 2));
  parser.body_limit(cfg.max_response_bytes);

  lowest.expires_after(cfg.read_timeout);
  auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser, tuple_awaitable);
  (void)hn;
  if (is_cancelled(cs)) co_return set_aborted(out);
  if (is_timeout(hec)) {
    co_return set_upstream_error(
        out, net::error::timed_out, upstream_failure::timeout,
        "no response from " + p.url.host_header + " within " + ms_text(cfg.read_timeout));
  }
  if (hec == http::error::end_of_stream || hec == net::error::eof ||
      hec == net::error::connection_reset) {
    co_return set_upstream_error(out, openai_errc::stream_truncated, upstream_failure::connection,
                        "upstream " + p.url.host_header +
                            " closed the connection without answering: " + hec.message());
  }
  if (hec) {
    co_return set_upstream_error(
        out, hec, upstream_failure::connection, "reading the response from " + p.url.host_header + " failed: " + hec.message());
  }

  std::array<char, 16 * 1024> piece;
  const unsigned status = parser.get().result_int();
  if (status != 200) {
    // Keep up to max_error_body of the body for the message; a failure while
    // reading it only shortens the message.
    std::string error_body;
    while (!parser.is_done() && error_body.size() < max_error_body) {
      auto [ec, got] = co_await read_body_some(stream, buffer, parser, piece, cfg.read_timeout);
      if (is_cancelled(cs)) co_return set_aborted(out);
      error_body.append(piece.data(), std::min(got, max_error_body - error_body.size()));
      if (ec) break;
    }
    co_return set_upstream_error(out, openai_errc::http_status, upstream_failure::http_status,
                        "upstream " + p.url.host_header + ": " +
                            describe_http_error(status, parser.get().reason(), error_body),
                        status);
  }

  chunk_listener listener(out, on_delta);
  core::sse_parser sse(listener);
  while (!parser.is_done()) {
    auto [ec, got] = co_await read_body_some(stream, buffer, parser, piece, cfg.read_timeout);
    if (is_cancelled(cs)) co_return set_aborted(out);
    if (got > 0) sse.feed(std::string_view(piece.data(), got));
    if (listener.failed()) co_return;  // the listener set the error
    if (listener.done()) co_return;    // [DONE]: nothing more is needed from this connection
    if (is_timeout(ec)) {
      co_return set_upstream_error(out, net::error::timed_out, upstream_failure::timeout,
                          "no bytes from upstream " + p.url.host_header + " for " +
                              ms_text(cfg.read_timeout) + " (stream stalled)");
    }
    if (ec == http::error::body_limit) {
      co_return set_upstream_error(
          out, openai_errc::response_too_large, upstream_failure::too_large,
          "upstream response exceeded " + std::to_string(cfg.max_response_bytes) + " bytes");
    }
    if (ec == http::error::partial_message || ec == http::error::end_of_stream ||
        ec == net::error::eof || ec == net::error::connection_reset ||
        ec == ssl::error::stream_truncated) {
      co_return set_upstream_error(out, openai_errc::stream_truncated, upstream_failure::connection,
                          "upstream " + p.url.host_header +
                              " cut the stream before data: [DONE] (" + ec.message() + ")");
    }
    if (ec) {
      co_return set_upstream_error(
          out, ec, upstream_failure::connection, "reading the stream from " + p.url.host_header + " failed: " + ec.message());
    }
  }
  // The HTTP message ended without [DONE] (an unterminated last event is
  // discarded, as the standard says): complete only if the model finished.
  if (out.finish_reason.empty()) {
    set_upstream_error(out, openai_errc::stream_truncated, upstream_failure::connection,
              "upstream " + p.url.host_header +
                  " ended the response before data: [DONE] and without a finish_reason");
  }
}

net::awaitable<chat_outcome> run_call(std::shared_ptr<provider_impl> p, chat_request request,
                                      std::function<void(std::string_view)> on_delta) {
  const openai_config& cfg = p->config;
  const outbound::http_url& u = p->url;
  auto cs = co_await net::this_coro::cancellation_state;
  auto ex = co_await net::this_coro::executor;
  chat_outcome out;
  if (is_cancelled(cs)) {
    set_aborted(out);
    co_return out;
  }
  const std::string body = json::serialize(request_body(cfg, request));

  auto endpoints = co_await outbound::resolve(u);
  if (is_cancelled(cs)) {
    set_aborted(out);
    co_return out;
  }
  if (!endpoints) {
    const error_code rec = endpoints.error();
    set_upstream_error(out, rec, upstream_failure::unreachable, "cannot resolve upstream host " + u.host + ": " + rec.message());
    co_return out;
  }

  beast::tcp_stream tcp_stream(ex);
  const error_code cec = co_await outbound::connect(
      tcp_stream, *endpoints, std::chrono::steady_clock::now() + cfg.connect_timeout);
  if (is_cancelled(cs)) {
    outbound::close(tcp_stream);
    set_aborted(out);
    co_return out;
  }
  if (is_timeout(cec)) {
    set_upstream_error(out, net::error::timed_out, upstream_failure::timeout,
              "connecting to " + u.host + ":" + u.port + " timed out after " +
                  ms_text(cfg.connect_timeout));
    co_return out;
  }
  if (cec) {
    set_upstream_error(out, cec, upstream_failure::unreachable, "cannot connect to " + u.host + ":" + u.port + ": " + cec.message());
    co_return out;
  }

  if (!p->tls) {
    co_await exchange(tcp_stream, *p, body, on_delta, cs, out);
    outbound::close(tcp_stream);
    co_return out;
  }

  ssl::stream<beast::tcp_stream> tls_stream(std::move(tcp_stream), *p->tls);
  const outbound::tls_handshake_result hs = co_await outbound::tls_handshake(
      tls_stream, u, cfg.verify_tls, std::chrono::steady_clock::now() + cfg.connect_timeout);
  if (is_cancelled(cs)) {
    outbound::close(beast::get_lowest_layer(tls_stream));
    set_aborted(out);
    co_return out;
  }
  if (is_timeout(hs.ec)) {
    set_upstream_error(
        out, net::error::timed_out, upstream_failure::timeout,
        "TLS handshake with " + u.host_header + " timed out after " + ms_text(cfg.connect_timeout));
    co_return out;
  }
  if (hs.ec) {
    std::string message = "TLS handshake with " + u.host_header + " failed: " + hs.ec.message();
    if (!hs.verify_error.empty()) message += " (" + hs.verify_error + ")";
    set_upstream_error(out, hs.ec, upstream_failure::tls, std::move(message));
    outbound::close(beast::get_lowest_layer(tls_stream));
    co_return out;
  }
  co_await exchange(tls_stream, *p, body, on_delta, cs, out);
  outbound::close(beast::get_lowest_layer(tls_stream));
  co_return out;
}

// Runs run_call with throw_if_cancelled off (so a cancellation becomes an
// outcome, not an exception) and restores the caller's setting afterwards: the
// flag belongs to the whole coroutine thread, not to this frame.
net::awaitable<chat_outcome> guarded_call(std::shared_ptr<provider_impl> p, chat_request request,
                                          std::function<void(std::string_view)> on_delta) {
  const bool caller_throws = co_await net::this_coro::throw_if_cancelled();
  co_await net::this_coro::throw_if_cancelled(false);
  std::exception_ptr failure;
  chat_outcome out;
  try {
    out = co_await run_call(std::move(p), std::move(request), std::move(on_delta));
  } catch (...) {
    failure = std::current_exception();  // bad_alloc or thrown by on_delta
  }
  co_await net::this_coro::throw_if_cancelled(caller_throws);
  if (failure) std::rethrow_exception(failure);
  co_return out;
}

}  // namespace

openai_provider::openai_provider(openai_config config) : impl_(std::make_shared<impl>()) {
  auto url = outbound::parse_http_url(config.base_url);
  if (!url) {
    throw std::invalid_argument("openai: base_url " + url.error().message() + ": " +
                                config.base_url);
  }
  impl& m = *impl_;
  m.url = std::move(*url);
  m.target = m.url.path_prefix() + "/chat/completions";
  if (m.url.query) m.target += "?" + *m.url.query;
  // throws system_error when the CA paths or file cannot be loaded
  if (m.url.https)
    m.tls.emplace(outbound::make_tls_client_context(config.verify_tls, config.ca_file));
  m.config = std::move(config);
}

openai_provider::~openai_provider() = default;

net::awaitable<chat_outcome> openai_provider::stream_chat(
    const chat_request& request, std::function<void(std::string_view)> on_delta) {
  // Not a coroutine: the request is copied now, so the call does not depend on
  // the caller's request (or this provider) staying alive until it runs.
  return guarded_call(impl_, request, std::move(on_delta));
}

std::unique_ptr<chat_provider> make_openai_provider(openai_config config) {
  return std::make_unique<openai_provider>(std::move(config));
}

}  // namespace sluice::llm
