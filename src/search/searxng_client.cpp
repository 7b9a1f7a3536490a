// One search() call: a private single-threaded io_context runs one coroutine
// (resolve, connect [+ TLS], GET, read the whole bounded response) and
// search() returns when it has finished. A fixed deadline covers the call:
// a timer cancels the resolver, and beast::tcp_stream's expiry (set to the
// same deadline) covers connect, handshake, write and read.
#include "search/searxng_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <exception>
#include <optional>
#include <stdexcept>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "core/log_text.hpp"
#include "net/error_text.hpp"
#include "net/http_url.hpp"
#include "net/outbound_connection.hpp"

namespace sluice::search {

namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = net::ip::tcp;
using boost::system::error_code;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);
constexpr std::uint32_t max_header_bytes = 16 * 1024;
constexpr std::size_t max_snippet = 160;  // of a body quoted in an error message

class searxng_category_impl : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "searxng"; }
  std::string message(int ev) const override {
    switch (static_cast<searxng_errc>(ev)) {
      case searxng_errc::http_status:
        return "SearXNG answered with an HTTP error status";
      case searxng_errc::not_json:
        return "SearXNG answered with something that is not JSON";
      case searxng_errc::bad_response:
        return "SearXNG's JSON has no \"results\" array";
      case searxng_errc::response_too_large:
        return "SearXNG's response is too large";
      case searxng_errc::no_answer:
        return "SearXNG closed the connection without a complete answer";
    }
    return "unknown searxng error";
  }
};

}  // namespace

const boost::system::error_category& searxng_category() noexcept {
  static const searxng_category_impl category;
  return category;
}

boost::system::error_code make_error_code(searxng_errc e) noexcept {
  return {static_cast<int>(e), searxng_category()};
}

std::string percent_encode_component(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

struct searxng_client::impl {
  searxng_config config;
  outbound::http_url url;   // base_url taken apart
  std::string path_prefix;  // without a trailing '/'
  std::string base_query;   // encoded, without '?'; empty when none
  std::string display;      // "SearXNG at <base_url>" for messages
  // https only. Mutable because ssl::stream takes a non-const context; it is
  // only used to create SSL objects, which OpenSSL allows concurrently.
  mutable std::optional<ssl::context> tls;
};

namespace {

using client_impl = searxng_client::impl;

using outbound::is_timeout;
using outbound::upstream_failure;
using outbound::ms_text;

// The first bytes of a body, printable, for an error message.
std::string snippet(std::string_view body) {
  std::string s = outbound::excerpt(body, max_snippet);
  for (char& c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = ' ';
  }
  return s;
}

// Clients get a fixed sentence with a code (error_message); the operator's
// log gets the detail: the instance's URL, host, port, its answer.
void fail(searxng_outcome& out, error_code ec, upstream_failure f, std::string detail,
          unsigned http_status = 0) {
  out.ec = ec;
  out.error_message = outbound::client_text("the search engine", f, http_status);
  spdlog::warn("searxng: {} ({})", core::log_escape(detail), outbound::code_of(f));
  out.error_detail = std::move(detail);
}

}  // namespace

void parse_searxng_results(std::string_view display, std::string_view body,
                           std::string_view content_type, std::size_t limit,
                           searxng_outcome& out) {
  error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) {
    std::string message = std::string(display) + " answered with something that is not JSON (" + ec.message() +
                          "; Content-Type: " +
                          (content_type.empty() ? std::string("none") : std::string(content_type)) +
                          "): " + snippet(body);
    return fail(out, searxng_errc::not_json, upstream_failure::malformed, std::move(message));
  }
  const json::object* root = v.if_object();
  const json::value* results = root ? root->if_contains("results") : nullptr;
  if (!results || !results->is_array())
    return fail(out, searxng_errc::bad_response, upstream_failure::malformed,
                std::string(display) + " answered JSON without a \"results\" array: " + snippet(body));
  std::unordered_set<std::string> seen;
  for (const json::value& r : results->get_array()) {
    if (out.hits.size() >= limit) break;
    const json::object* o = r.if_object();
    if (!o) continue;
    const json::value* url = o->if_contains("url");
    if (!url || !url->is_string() || url->get_string().empty()) continue;
    std::string u(url->get_string());
    if (!seen.insert(u).second) continue;
    auto text_of = [o](const char* key) {
      const json::value* f = o->if_contains(key);
      return f && f->is_string() ? std::string(f->get_string()) : std::string();
    };
    search_hit hit;
    hit.source_id = u;
    hit.path = std::move(u);
    hit.title = text_of("title");
    hit.text = text_of("content");
    hit.score = 1.0 / static_cast<double>(out.hits.size() + 1);
    out.hits.push_back(std::move(hit));
  }
}

namespace {

// Sends the GET and reads the whole (bounded) response into `out`.
template <class Stream>
net::awaitable<void> exchange(Stream& stream, const client_impl& p, const std::string& target,
                              clock_type::time_point deadline, std::size_t limit,
                              searxng_outcome& out) {
  auto& lowest = beast::get_lowest_layer(stream);
  const auto& cfg = p.config;

  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, p.url.host_header);
  req.set(http::field::user_agent, "sluice");
  req.set(http::field::accept, "application/json");
  req.set(http::field::connection, "close");

  lowest.expires_at(deadline);
  auto [wec, wn] = co_await http::async_write(stream, req, tuple_awaitable);
  (void)wn;
  if (is_timeout(wec))
    co_return fail(
        out, net::error::timed_out, upstream_failure::timeout,
        p.display + ": sending the request timed out (timeout " + ms_text(cfg.timeout) + ")");
  if (wec) co_return fail(out, wec, upstream_failure::connection, p.display + ": sending the request failed: " + wec.message());

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.header_limit(max_header_bytes);
  parser.body_limit(cfg.max_response_bytes);
  lowest.expires_at(deadline);
  auto [rec, rn] = co_await http::async_read(stream, buffer, parser, tuple_awaitable);
  (void)rn;
  if (is_timeout(rec))
    co_return fail(out, net::error::timed_out, upstream_failure::timeout,
                   p.display + ": no complete answer within " + ms_text(cfg.timeout));
  if (rec == http::error::body_limit)
    co_return fail(
        out, searxng_errc::response_too_large, upstream_failure::too_large,
        p.display + ": the response exceeds " + std::to_string(cfg.max_response_bytes) + " bytes");
  if (rec == http::error::header_limit)
    co_return fail(
        out, searxng_errc::response_too_large, upstream_failure::too_large,
        p.display + ": the response header exceeds " + std::to_string(max_header_bytes) + " bytes");
  if (rec == http::error::end_of_stream || rec == http::error::partial_message ||
      rec == net::error::eof || rec == net::error::connection_reset ||
      rec == ssl::error::stream_truncated)
    co_return fail(
        out, searxng_errc::no_answer, upstream_failure::connection,
        p.display + " closed the connection without a complete answer (" + rec.message() + ")");
  if (rec) co_return fail(out, rec, upstream_failure::connection, p.display + ": reading the response failed: " + rec.message());

  const auto& res = parser.get();
  const unsigned status = res.result_int();
  if (status != 200) {
    std::string message = p.display + " answered HTTP " + std::to_string(status);
    if (!res.reason().empty()) message += " " + std::string(res.reason());
    if (status == 403) message += " (does its settings.yml list json in search.formats?)";
    if (!res.body().empty()) message += ": " + snippet(res.body());
    co_return fail(out, searxng_errc::http_status, upstream_failure::http_status,
                   std::move(message), status);
  }
  parse_searxng_results(p.display, res.body(), res[http::field::content_type], limit, out);
}

net::awaitable<void> run_search(const client_impl& p, std::string target,
                                clock_type::time_point deadline, std::size_t limit,
                                searxng_outcome& out) {
  auto ex = co_await net::this_coro::executor;
  const auto& cfg = p.config;
  const outbound::http_url& u = p.url;

  auto endpoints = co_await outbound::resolve(u, deadline);
  if (!endpoints && endpoints.error() == net::error::timed_out)
    co_return fail(
        out, net::error::timed_out, upstream_failure::timeout,
        p.display + ": resolving " + u.host + " timed out (timeout " + ms_text(cfg.timeout) + ")");
  if (!endpoints)
    co_return fail(out, endpoints.error(), upstream_failure::unreachable,
                   p.display + ": cannot resolve " + u.host + ": " + endpoints.error().message());

  beast::tcp_stream tcp_stream(ex);
  const error_code cec = co_await outbound::connect(tcp_stream, *endpoints, deadline);
  if (is_timeout(cec))
    co_return fail(out, net::error::timed_out, upstream_failure::timeout,
                   p.display + ": connecting to " + u.host + ":" + u.port + " timed out (timeout " +
                       ms_text(cfg.timeout) + ")");
  if (cec)
    co_return fail(
        out, cec, upstream_failure::unreachable,
        p.display + ": cannot connect to " + u.host + ":" + u.port + ": " + cec.message());

  if (!p.tls) {
    co_await exchange(tcp_stream, p, target, deadline, limit, out);
    outbound::close(tcp_stream);
    co_return;
  }

  ssl::stream<beast::tcp_stream> tls_stream(std::move(tcp_stream), *p.tls);
  const outbound::tls_handshake_result hs =
      co_await outbound::tls_handshake(tls_stream, u, cfg.verify_tls, deadline);
  if (is_timeout(hs.ec)) {
    outbound::close(beast::get_lowest_layer(tls_stream));
    co_return fail(
        out, net::error::timed_out, upstream_failure::timeout,
        p.display + ": the TLS handshake timed out (timeout " + ms_text(cfg.timeout) + ")");
  }
  if (hs.ec) {
    std::string message = p.display + ": the TLS handshake failed: " + hs.ec.message();
    if (!hs.verify_error.empty()) message += " (" + hs.verify_error + ")";
    outbound::close(beast::get_lowest_layer(tls_stream));
    co_return fail(out, hs.ec, upstream_failure::tls, std::move(message));
  }
  co_await exchange(tls_stream, p, target, deadline, limit, out);
  outbound::close(beast::get_lowest_layer(tls_stream));
}

}  // namespace

searxng_client::searxng_client(searxng_config config) {
  auto url = outbound::parse_http_url(config.base_url);
  if (!url) {
    throw std::invalid_argument((url.error() == outbound::url_errc::not_a_url
                                     ? std::string("searxng: not a URL: ")
                                     : "searxng: the URL " + url.error().message() + ": ") +
                                config.base_url);
  }
  auto m = std::make_unique<impl>();
  m->url = std::move(*url);
  m->path_prefix = m->url.path_prefix();
  if (m->url.query) m->base_query = *m->url.query;
  m->display = "SearXNG at " + config.base_url;
  // throws system_error when the CA paths or file cannot be loaded
  if (m->url.https)
    m->tls.emplace(outbound::make_tls_client_context(config.verify_tls, config.ca_file));
  m->config = std::move(config);
  impl_ = std::move(m);
}

searxng_client::~searxng_client() = default;

const searxng_config& searxng_client::config() const {
  return impl_->config;
}

searxng_outcome searxng_client::search(std::string_view query, std::size_t limit) const {
  searxng_outcome out;
  if (limit == 0) return out;
  std::string target = impl_->path_prefix + "/search?";
  if (!impl_->base_query.empty()) target += impl_->base_query + "&";
  target += "q=" + percent_encode_component(query) + "&format=json";

  const auto deadline = clock_type::now() + impl_->config.timeout;
  net::io_context ioc(1);
  std::exception_ptr failure;
  net::co_spawn(ioc, run_search(*impl_, std::move(target), deadline, limit, out),
                [&failure](std::exception_ptr e) { failure = e; });
  ioc.run();
  if (failure) std::rethrow_exception(failure);  // bad_alloc: nothing else throws there
  return out;
}

}  // namespace sluice::search
