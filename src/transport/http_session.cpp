// The HTTP/1.1 request loop of one connection (request phase). A request that
// is answered with a stream hands the socket to an sse_subscriber, which hands
// it back here when the response ends on a keep-alive connection.
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/url/parse.hpp>

#include "core/log_text.hpp"
#include "core/sse_parser.hpp"
#include "transport/sse_subscriber.hpp"
#include "transport/worker.hpp"
#include "transport/ws_session.hpp"

namespace sluice::transport {

namespace beast = boost::beast;
namespace http = beast::http;
using net::use_awaitable;
constexpr auto tuple_awaitable = net::as_tuple(use_awaitable);
// beast::tcp_stream with the worker's own executor type (see tcp_socket).
using http_stream =
    beast::basic_stream<tcp, net::io_context::executor_type, beast::unlimited_rate_policy>;

std::int64_t steady_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

namespace {

bool accepts_gzip(std::string_view header) {
  // "gzip" listed without q=0 (e.g. "gzip, deflate", "br;q=1.0, gzip;q=0.8").
  while (!header.empty()) {
    auto comma = header.find(',');
    std::string_view item = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    auto semi = item.find(';');
    std::string_view coding = item.substr(0, semi);
    while (!coding.empty() && coding.back() == ' ') coding.remove_suffix(1);
    if (coding != "gzip") continue;
    if (semi == std::string_view::npos) return true;
    std::string_view params = item.substr(semi + 1);
    auto q = params.find("q=");
    if (q == std::string_view::npos) return true;
    std::string_view v = params.substr(q + 2);
    return !(v.starts_with("0") && v.find_first_not_of("0. ") == std::string_view::npos);
  }
  return false;
}

// `head`: the answer to a HEAD request: the headers a GET would get
// (Content-Length included) and no body, so a keep-alive connection stays
// framed.
http::response<http::string_body> to_response(const http_reply& r, unsigned version,
                                              bool keep_alive, bool head) {
  http::response<http::string_body> res{static_cast<http::status>(r.status), version};
  res.set(http::field::server, "sluice");
  if (r.status != 204) res.set(http::field::content_type, r.content_type);
  res.set(http::field::cache_control, "no-store");
  for (const auto& [k, v] : r.headers) res.set(k, v);
  res.keep_alive(keep_alive);
  res.body() = r.body;
  if (r.status != 204) res.prepare_payload();
  if (head) res.body().clear();  // Content-Length stays that of the body
  return res;
}

net::awaitable<boost::system::error_code> write_reply(http_stream& stream, const http_reply& r,
                                                      unsigned version, bool keep_alive,
                                                      bool head = false) {
  auto res = to_response(r, version, keep_alive, head);
  stream.expires_after(std::chrono::seconds(30));
  auto [ec, n] = co_await http::async_write(stream, res, tuple_awaitable);
  co_return ec;
}

// Waits for an http_reply's before_send (e.g. the event being on disk with
// --fsync always); resumes on this coroutine's executor.
net::awaitable<bool> await_before_send(const std::function<void(std::function<void(bool)>)>& wait) {
  co_return co_await net::async_initiate<decltype(net::use_awaitable), void(bool)>(
      [&wait](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        wait([h](bool ok) {
          auto ex = net::get_associated_executor(*h);
          net::post(ex, [h, ok]() mutable { std::move (*h)(ok); });
        });
      },
      net::use_awaitable);
}

// Waits for a deferred_reply's result (an op waiting for a shared store);
// resumes on this coroutine's executor.
net::awaitable<handler_result> await_deferred(const deferred_reply& d) {
  co_return co_await net::async_initiate<decltype(net::use_awaitable), void(handler_result)>(
      [&d](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        d.start([h](handler_result r) {
          auto ex = net::get_associated_executor(*h);
          net::post(ex, [h, r = std::move(r)]() mutable { std::move (*h)(std::move(r)); });
        });
      },
      net::use_awaitable);
}

// Closes after letting the client read our response: stop sending, drain what
// it still sends for a moment, then close (a close with unread input would
// reset the connection and could destroy the response in flight).
net::awaitable<void> lingering_close(http_stream& stream) {
  boost::system::error_code ec;
  stream.socket().shutdown(tcp_socket::shutdown_send, ec);
  stream.expires_after(std::chrono::seconds(2));
  char buf[4096];
  std::size_t drained = 0;
  while (drained < (1u << 20)) {
    auto [rec, n] = co_await stream.async_read_some(net::buffer(buf), tuple_awaitable);
    if (rec) break;
    drained += n;
  }
  stream.close();
}

// An error reply that ends the connection.
net::awaitable<void> reply_and_close(http_stream& stream, const http_reply& r, unsigned version) {
  // (Not `if (!co_await ...)`: GCC 12 miscompiles a co_await in a condition here.)
  const boost::system::error_code ec = co_await write_reply(stream, r, version, false);
  if (!ec) co_await lingering_close(stream);
}

// Reads a stream from its first retained event to its end and keeps the data
// of the last event (the final one). The waiter wakes the coroutine through a
// timer on the connection's executor.
//
// Budgets: it gives up at `deadline` (504 final_reply_timeout) and when the
// client goes away (a read stays pending on the socket while waiting). Either
// way its subscription ends, so the run is unread and the detach grace
// (--detach-grace-s) cancels it unless someone attaches by requestId.
class final_event_collector : public core::stream_waiter,
                              public core::sse_listener,
                              public std::enable_shared_from_this<final_event_collector> {
 public:
  final_event_collector(net::any_io_executor ex, std::shared_ptr<core::stream_log> log)
      : wake_(ex), parser_(*this), sub_(std::move(log), 1, *this, /*coalesce=*/false) {}

  void on_stream_ready() noexcept override {
    if (auto self = weak_from_this().lock())
      net::post(wake_.get_executor(), [self] { self->wake_.cancel(); });
  }
  void on_event(const core::sse_event& e) override {
    last_type_ = e.type;
    last_data_ = e.data;
  }

  // The final event's data, an error reply, or nullopt when the client left.
  // Bytes the client sends meanwhile (a pipelined request) land in `buffer`.
  net::awaitable<std::optional<http_reply>> run(http_stream& stream, beast::flat_buffer& buffer,
                                                std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    watch_client(stream, buffer);
    std::optional<http_reply> out = co_await collect(deadline);
    // Stop watching, and wait for the read to finish before the buffer is used.
    if (!read_done_) {
      boost::system::error_code ec;
      stream.socket().cancel(ec);
    }
    while (!read_done_) {
      wake_.expires_at(net::steady_timer::time_point::max());
      co_await wake_.async_wait(tuple_awaitable);
    }
    if (read_n_ > 0) buffer.commit(read_n_);
    if (read_ec_ && read_ec_ != net::error::operation_aborted) co_return std::nullopt;
    co_return out;
  }

 private:
  void watch_client(http_stream& stream, beast::flat_buffer& buffer) {
    stream.socket().async_read_some(
        buffer.prepare(4096),
        [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
          self->read_done_ = true;
          self->read_ec_ = ec;
          self->read_n_ = n;
          self->wake_.cancel();
        });
  }

  net::awaitable<std::optional<http_reply>> collect(
      std::chrono::steady_clock::time_point deadline) {
    core::read_batch batch;
    for (;;) {
      switch (sub_.read(batch, 1u << 20)) {
        case core::read_status::data:
          for (const auto& s : batch.spans) parser_.feed(std::string_view(s.data, s.size));
          continue;
        case core::read_status::waiting: {
          if (read_done_ && read_ec_) co_return std::nullopt;  // the client left
          if (std::chrono::steady_clock::now() >= deadline)
            co_return json_error(504, "final_reply_timeout",
                                 "the run did not finish in time; it goes on while someone "
                                 "reads it (attach with its requestId)");
          wake_.expires_at(deadline);
          co_await wake_.async_wait(tuple_awaitable);
          continue;
        }
        case core::read_status::ended: {
          http_reply r;
          r.body = last_data_;
          co_return r;
        }
        case core::read_status::window_exceeded:
          co_return json_error(500, "resume_window_exceeded",
                               "the run's events were not retained long enough to collect it");
      }
    }
  }

  net::steady_timer wake_;
  core::sse_parser parser_;
  core::subscription sub_;
  std::string last_type_, last_data_;
  bool read_done_ = false;
  boost::system::error_code read_ec_;
  std::size_t read_n_ = 0;
};

request_context make_context(worker& w, const http::request<http::string_body>& req,
                             const std::string& client_address, boost::system::error_code& ec) {
  request_context ctx;
  ctx.client_address = client_address;
  ctx.subject = client_address;
  ctx.method = req.method_string();
  ctx.target = req.target();
  auto url = boost::urls::parse_origin_form(req.target());
  if (!url) {
    ec = url.error();
    return ctx;
  }
  ctx.path = url->path();
  for (auto p : url->params()) ctx.query.emplace_back(p.key, p.value);
  ctx.body = req.body();
  ctx.content_type = req[http::field::content_type];
  ctx.authorization = req[http::field::authorization];
  ctx.origin = req[http::field::origin];
  ctx.host = req[http::field::host];
  if (auto it = req.find("Last-Event-ID"); it != req.end() && !it->value().empty())
    ctx.last_event_id = it->value();
  else if (auto p = ctx.param("last_event_id"))
    ctx.last_event_id = *p;
  ctx.accepts_gzip = accepts_gzip(req[http::field::accept_encoding]);
  ctx.executor = w.ioc.get_executor();
  return ctx;
}

net::awaitable<void> run_session(worker& w, tcp_socket socket, connection_token token, bool reject,
                                 bool per_address) {
  server_context& sc = w.ctx;
  const server_config& cfg = sc.config;
  struct rejecting_slot {
    server_context* ctx;
    ~rejecting_slot() {
      if (ctx) ctx->rejecting.fetch_sub(1);
    }
  } slot{reject ? &sc : nullptr};
  // From the accept, carried by the token (also across hand-backs from an
  // SSE response); asked of the socket only when the token has none.
  std::string client_address = token.address();
  if (client_address.empty() && !reject) {
    boost::system::error_code aec;
    auto ep = socket.remote_endpoint(aec);
    if (!aec) client_address = ep.address().to_string();
  }
  http_stream stream(std::move(socket));
  session_link link;
  link.socket = &stream.socket();
  w.sessions.push_back(link);
  beast::flat_buffer buffer;
  auto body_too_large = [&cfg] {
    return json_error(
        413, "body_too_large",
        "request body exceeds the limit of " + std::to_string(cfg.max_body_bytes) + " bytes");
  };
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(cfg.max_header_bytes));
    parser.body_limit(cfg.max_body_bytes);
    stream.expires_after(cfg.header_timeout);
    auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, tuple_awaitable);
    if (ec == http::error::header_limit) {
      co_await reply_and_close(
          stream, json_error(431, "headers_too_large", "request headers exceed the limit"), 11);
      co_return;
    }
    if (ec == http::error::body_limit) {
      co_await reply_and_close(stream, body_too_large(), 11);
      co_return;
    }
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset ||
        ec == net::error::eof || sc.stopping.load(std::memory_order_relaxed)) {
      co_return;  // closed by the client, slow headers, or shutdown
    }
    if (ec) {
      co_await reply_and_close(
          stream, json_error(400, "bad_request", "malformed HTTP request: " + ec.message()), 11);
      co_return;
    }
    const unsigned version = parser.get().version();
    if (reject) {
      sc.metrics.local().add(sc.metrics.local().rejected_connections, 1);
      http_reply r = per_address
                         ? json_error(503, "too_many_connections_from_address",
                                      "this address has as many connections open as it may; retry "
                                      "later")
                         : json_error(503, "too_many_connections",
                                      "the connection limit is reached; retry later");
      r.headers.emplace_back("Retry-After", "1");
      co_await reply_and_close(stream, r, version);
      co_return;
    }
    if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
      static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
      co_await net::async_write(stream, net::buffer(cont), tuple_awaitable);
    }
    if (!parser.is_done()) {
      auto [bec, bn] = co_await http::async_read(stream, buffer, parser, tuple_awaitable);
      if (bec == http::error::body_limit) {
        co_await reply_and_close(stream, body_too_large(), version);
        co_return;
      }
      if (bec) co_return;
    }
    stream.expires_never();
    auto& req = parser.get();
    const bool keep_alive = req.keep_alive() && !sc.stopping.load(std::memory_order_relaxed);

    boost::system::error_code url_ec;
    request_context ctx = make_context(w, req, client_address, url_ec);
    handler_result result;
    if (url_ec) {
      result =
          json_error(400, "invalid_target", "the request target is not a valid origin-form URL");
    } else if (auto refused = sc.routes.admit(ctx, ctx.path == "/v1/ws")) {
      result = std::move(*refused);
    } else if (ctx.path == "/v1/ws") {
      // WebSocket: the socket moves to a ws session (which never hands it back).
      // Authenticated once, here: every op of the socket acts as this principal.
      if (!beast::websocket::is_upgrade(req))
        result = json_error(426, "upgrade_required", "GET /v1/ws is a WebSocket endpoint");
      else if (!ctx.principal)
        result = unauthorized("/v1/ws needs a token (Authorization: Bearer or ?access_token=)");
      else if (buffer.size() != 0)
        result = json_error(400, "bad_request", "data sent before the WebSocket handshake");
      else {
        link.unlink();
        start_ws_session(w, stream.release_socket(), std::move(token), parser.release(),
                         client_address, std::move(ctx.principal));
        co_return;
      }
    } else {
      try {
        result = sc.routes.dispatch(ctx);
      } catch (const std::exception& e) {
        spdlog::error("bug: the handler for {} {} threw: {}", core::log_escape(ctx.method),
                      core::log_escape(ctx.path), core::log_escape(e.what()));
        result = json_error(500, "internal_error", "the request failed on the server");
      }
    }
    while (auto* later = std::get_if<deferred_reply>(&result)) {
      const deferred_reply d = std::move(*later);
      result = co_await await_deferred(d);
    }
    if (auto* fin = std::get_if<final_event_reply>(&result)) {
      auto collector = std::make_shared<final_event_collector>(w.ioc.get_executor(), fin->stream);
      auto collected = co_await collector->run(stream, buffer, cfg.budgets.final_reply_timeout);
      if (!collected) co_return;  // the client left: nothing to answer
      result = std::move(*collected);
    }
    if (auto* reply = std::get_if<http_reply>(&result); reply && reply->before_send) {
      auto wait = std::move(reply->before_send);
      if (!co_await await_before_send(wait)) {
        *reply = json_error(503, "store_unavailable",
                            "the event was published but could not be written to disk");
        reply->headers.emplace_back("Retry-After", "1");
      }
    }
    for (auto& h : sc.routes.cors_headers(ctx)) {
      if (auto* reply = std::get_if<http_reply>(&result))
        reply->headers.push_back(std::move(h));
      else if (auto* sr = std::get_if<stream_reply>(&result))
        sr->extra_headers += h.first + ": " + h.second + "\r\n";
    }
    if (auto* reply = std::get_if<http_reply>(&result)) {
      const auto wec = co_await write_reply(stream, *reply, version, keep_alive,
                                            req.method() == http::verb::head);
      if (wec || !keep_alive) {
        if (!wec) co_await lingering_close(stream);
        co_return;
      }
      continue;
    }
    // Streaming response: the socket moves to an sse_subscriber.
    auto& sr = std::get<stream_reply>(result);
    sse_subscriber::options opts;
    opts.gzip = ctx.accepts_gzip;
    opts.keep_alive = keep_alive && buffer.size() == 0;
    link.unlink();
    auto sub = std::make_shared<sse_subscriber>(w, stream.release_socket(), std::move(token),
                                                std::move(sr), opts);
    sub->start();
    co_return;
  }
}

}  // namespace

void start_http_session(worker& w, tcp_socket socket, connection_token token, bool reject,
                        bool per_address) {
  net::co_spawn(w.ioc, run_session(w, std::move(socket), std::move(token), reject, per_address),
                [](std::exception_ptr e) {
                  if (!e) return;
                  try {
                    std::rethrow_exception(e);
                  } catch (const std::exception& ex) {
                    spdlog::error("http session failed: {}", ex.what());
                  }
                });
}

}  // namespace sluice::transport
