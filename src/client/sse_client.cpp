// One coroutine per client runs the attempts one after the other: connect (+
// TLS), send the request, read the head, then read the body piecewise
// (buffer_body), inflate it when gzip, and feed it to the SSE parser, whose
// events pass through the delivery filter to the application. Every I/O
// outcome is an error code (as_tuple); the only exceptions are bad_alloc and
// whatever a callback throws, both of which end the client (failed).
//
// Cancellation: cancel() sets an atomic flag (checked before every delivery
// and after every operation) and posts a terminal cancellation into the
// coroutine's slot, which aborts the pending operation (socket read, connect,
// handshake or backoff wait).
#include "client/sse_client.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <charconv>
#include <cstdio>
#include <exception>
#include <random>

#include "client/bearer_token.hpp"
#include "client/delivery_filter.hpp"
#include "client/gzip_inflater.hpp"
#include "client/reconnect_backoff.hpp"
#include "core/sse_parser.hpp"
#include "net/error_text.hpp"
#include "net/http_url.hpp"
#include "net/outbound_connection.hpp"
#include "net/response_body.hpp"

namespace sluice::client {

namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = net::ip::tcp;
using boost::system::error_code;

const char* to_string(sse_status s) {
  switch (s) {
    case sse_status::connecting:
      return "connecting";
    case sse_status::open:
      return "open";
    case sse_status::reconnecting:
      return "reconnecting";
    case sse_status::closed:
      return "closed";
    case sse_status::failed:
      return "failed";
  }
  return "unknown";
}

struct sse_client::impl {
  impl(net::any_io_executor e, sse_client_options o) : ex(std::move(e)), opt(std::move(o)) {}

  net::any_io_executor ex;
  const sse_client_options opt;
  sse_event_handler event_handler;
  sse_status_handler status_handler;
  sse_error_handler error_handler;

  net::cancellation_signal cancel_signal;  // executor only
  bool started = false;                    // executor only, after start()
  bool finished = false;                   // executor only
  std::atomic<bool> cancel_requested{false};
  std::atomic<bool> detached{false};  // the sse_client is gone: no more callbacks

  void status(sse_status s, std::string_view detail) {
    if (!detached && status_handler) status_handler(s, detail);
  }
  void error(const sse_client_error& e) {
    if (!detached && error_handler) error_handler(e);
  }
  void event(const sse_client_event& e) {
    if (!detached && event_handler) event_handler(e);
  }
  bool cancelled() const { return cancel_requested.load(std::memory_order_relaxed); }
};

namespace {

constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);
constexpr std::size_t max_error_body = 64 * 1024;
constexpr std::size_t max_header_bytes = 64 * 1024;
constexpr std::size_t max_header_value = 16 * 1024;  // Last-Event-ID and extra headers

using outbound::is_timeout;
using outbound::ms_text;
using outbound::read_body_some;

// The subscription URL and the request target derived from it once.
struct target_url {
  outbound::http_url url;
  std::string target;  // path [+ "?" query]
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// Retry-After in delta-seconds; an HTTP-date (or garbage) gives nullopt.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view v) {
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  std::uint32_t s = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), s);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size()) return std::nullopt;
  return std::chrono::milliseconds(std::uint64_t{s} * 1000);
}

// {"error":{"code":...,"message":...}} -> the error; anything else -> http_error.
sse_client_error http_error(unsigned status, std::string_view reason, std::string_view body) {
  sse_client_error e;
  e.http_status = status;
  error_code ec;
  json::value v = json::parse(body, ec);
  if (!ec && v.is_object()) {
    if (const auto* err = v.get_object().if_contains("error"); err && err->is_object()) {
      const auto& o = err->get_object();
      if (const auto* c = o.if_contains("code"); c && c->is_string())
        e.code = std::string(c->get_string());
      if (const auto* m = o.if_contains("message"); m && m->is_string())
        e.message = std::string(m->get_string());
      // history_truncated (409): the stream's history after the client's
      // Last-Event-ID was lost; it must start again from scratch.
      if (const auto* f = o.if_contains("first_available"); f && f->is_uint64())
        e.first_available = f->get_uint64();
      else if (f && f->is_int64() && f->get_int64() >= 0)
        e.first_available = static_cast<std::uint64_t>(f->get_int64());
    }
  }
  if (e.code.empty()) {
    e.code = "http_error";
    e.message =
        "HTTP " + std::to_string(status) + (reason.empty() ? "" : " " + std::string(reason));
    if (!body.empty()) e.message += ": " + std::string(body.substr(0, 200));
  }
  return e;
}

struct attempt_outcome {
  enum class kind { retry, ended, failed, cancelled };
  kind what = kind::retry;
  bool opened = false;  // a 2xx event-stream response arrived
  std::string reason;   // retry: why the attempt ended
  std::optional<std::chrono::milliseconds> retry_after;
  sse_client_error error;  // failed
};

attempt_outcome retry(std::string reason) {
  attempt_outcome o;
  o.reason = std::move(reason);
  return o;
}
attempt_outcome failed(sse_client_error e) {
  attempt_outcome o;
  o.what = attempt_outcome::kind::failed;
  o.error = std::move(e);
  return o;
}
attempt_outcome cancelled() {
  attempt_outcome o;
  o.what = attempt_outcome::kind::cancelled;
  return o;
}

// State that lives across attempts: the parser (its last event id is the
// resume point), the delivery filter and the server's retry hint.
class stream_state final : public core::sse_listener {
 public:
  stream_state(sse_client::impl& client, std::uint64_t highest)
      : client_(client), parser_(*this), filter_(highest) {}

  // The resume point given in the options, as if an event with it had been
  // dispatched (the blank line commits the id without dispatching).
  void set_initial_id(const std::string& id) {
    parser_.feed("id: " + id + "\n\n");
    parser_.reset_partial();
  }

  // A new response starts: forget any partial event of the previous one.
  void begin_response() {
    parser_.reset_partial();
    bytes_since_event_ = 0;
  }

  void feed(std::string_view bytes) {
    if (stop_) return;
    bytes_since_event_ += bytes.size();
    parser_.feed(bytes);
    if (!stop_ && bytes_since_event_ > client_.opt.max_event_bytes) {
      stop_ = sse_client_error{
          "event_too_large",
          "an event exceeded " + std::to_string(client_.opt.max_event_bytes) + " bytes", 0, 0};
    }
  }

  const std::string& last_event_id() const { return parser_.last_event_id(); }
  const std::optional<sse_client_error>& stop() const { return stop_; }
  std::optional<std::uint64_t> take_retry_hint() { return std::exchange(retry_ms_, std::nullopt); }

  void on_event(const core::sse_event& e) override {
    if (stop_ || client_.cancelled()) return;
    bytes_since_event_ = 0;
    // The parser hands every event the current "last event ID string" and
    // whether the event's own block set it; only an own numeric id is a
    // sequence number for de-duplication (an inherited one is not).
    const bool has_id = e.has_id;
    const delivery d = filter_.classify(e.last_event_id, has_id, e.type, e.data);
    switch (d.what) {
      case delivery::action::deliver:
        client_.event(sse_client_event{e.last_event_id,
                                       has_id ? e.last_event_id : std::string_view(), has_id,
                                       e.type, e.data, d.first_seq, d.last_seq});
        return;
      case delivery::action::drop_duplicate:
        return;
      case delivery::action::resume_window_exceeded:
        stop_ = sse_client_error{"resume_window_exceeded",
                                 d.message.empty()
                                     ? "the events after the resume point are no longer retained"
                                     : d.message,
                                 0, d.first_available};
        return;
    }
  }
  void on_retry(std::uint64_t ms) override { retry_ms_ = ms; }

 private:
  sse_client::impl& client_;
  core::sse_parser parser_;
  delivery_filter filter_;
  std::size_t bytes_since_event_ = 0;
  std::optional<std::uint64_t> retry_ms_;
  std::optional<sse_client_error> stop_;
};

// One request/response on a connected stream.
template <class Stream>
net::awaitable<attempt_outcome> exchange(sse_client::impl& c, const target_url& u, Stream& stream,
                                         stream_state& st) {
  const sse_client_options& opt = c.opt;
  auto& lowest = beast::get_lowest_layer(stream);

  http::request<http::string_body> req{http::string_to_verb(opt.method), u.target, 11};
  req.set(http::field::host, u.url.host_header);
  req.set(http::field::user_agent, "sluice");
  req.set(http::field::accept, "text/event-stream");
  req.set(http::field::cache_control, "no-cache");
  if (opt.gzip) req.set(http::field::accept_encoding, "gzip");
  if (!st.last_event_id().empty()) {
    // A server's id can be of any length; HTTP header fields cannot (Beast
    // refuses 64 KiB, servers far less): stop and say why, not retry.
    if (st.last_event_id().size() > max_header_value)
      co_return failed(sse_client_error{"last_event_id_too_long",
                                        "the stream's last event id (" +
                                            std::to_string(st.last_event_id().size()) +
                                            " bytes) is too long to resume with (at most " +
                                            std::to_string(max_header_value) + " bytes)",
                                        0, 0});
    req.set("Last-Event-ID", st.last_event_id());
  }
  for (const auto& [name, value] : opt.headers) req.set(name, value);
  if (!opt.body.empty() || req.method() == http::verb::post) {
    req.set(http::field::content_type, opt.content_type);
    req.body() = opt.body;
  }
  req.prepare_payload();

  lowest.expires_after(opt.stall_timeout);
  auto [wec, wn] = co_await http::async_write(stream, req, tuple_awaitable);
  (void)wn;
  if (c.cancelled()) co_return cancelled();
  if (wec) co_return retry("sending the request failed: " + wec.message());

  beast::flat_buffer buffer(max_header_bytes);
  http::response_parser<http::buffer_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(max_header_bytes / 2));
  parser.body_limit(boost::none);  // a stream has no size; events are bounded instead

  lowest.expires_after(opt.stall_timeout);
  auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser, tuple_awaitable);
  (void)hn;
  if (c.cancelled()) co_return cancelled();
  if (is_timeout(hec)) co_return retry("no response for " + ms_text(opt.stall_timeout));
  if (hec) co_return retry("no response: " + hec.message());

  const auto& head = parser.get();
  const unsigned status = head.result_int();
  if (status == 204) {
    attempt_outcome o;
    o.what = attempt_outcome::kind::ended;
    co_return o;
  }

  std::array<char, 16 * 1024> piece;
  if (status < 200 || status >= 300) {
    if (status == 429 || status == 503) {
      if (auto it = head.find(http::field::retry_after); it != head.end()) {
        attempt_outcome o =
            retry("HTTP " + std::to_string(status) + ", Retry-After " + std::string(it->value()));
        o.retry_after = parse_retry_after(it->value());
        co_return o;
      }
    }
    std::string body;
    while (!parser.is_done() && body.size() < max_error_body) {
      auto [ec, got] = co_await read_body_some(stream, buffer, parser, piece, opt.stall_timeout);
      if (c.cancelled()) co_return cancelled();
      body.append(piece.data(), std::min(got, max_error_body - body.size()));
      if (ec) break;
    }
    co_return failed(http_error(status, head.reason(), body));
  }

  const std::string content_type = lower(head[http::field::content_type]);
  if (content_type.rfind("text/event-stream", 0) != 0) {
    co_return failed(sse_client_error{"not_event_stream",
                                      "HTTP " + std::to_string(status) + " with Content-Type '" +
                                          content_type + "', not text/event-stream",
                                      status, 0});
  }
  const std::string encoding = lower(head[http::field::content_encoding]);
  const bool gzip = encoding == "gzip" || encoding == "x-gzip";
  if (!encoding.empty() && !gzip && encoding != "identity") {
    co_return failed(sse_client_error{
        "http_error", "unsupported Content-Encoding '" + encoding + "'", status, 0});
  }
  std::optional<gzip_inflater> inflater;
  if (gzip) inflater.emplace();
  std::string decoded;

  attempt_outcome result;
  result.opened = true;
  c.status(sse_status::open, "HTTP " + std::to_string(status) + (gzip ? ", gzip" : ""));
  if (c.cancelled()) co_return cancelled();
  st.begin_response();

  while (!parser.is_done()) {
    auto [ec, got] = co_await read_body_some(stream, buffer, parser, piece, opt.stall_timeout);
    if (c.cancelled()) co_return cancelled();
    if (got > 0) {
      std::string_view bytes(piece.data(), got);
      if (inflater) {
        decoded.clear();
        if (!inflater->inflate(bytes, decoded)) {
          co_return failed(
              sse_client_error{"invalid_gzip", "the response body is not valid gzip", status, 0});
        }
        bytes = decoded;
      }
      st.feed(bytes);
      if (c.cancelled()) co_return cancelled();
      if (st.stop()) {
        attempt_outcome o = failed(*st.stop());
        o.opened = true;
        co_return o;
      }
    }
    if (is_timeout(ec)) {
      result.reason = "stalled: nothing received for " + ms_text(opt.stall_timeout);
      co_return result;
    }
    if (ec) {
      result.reason = "connection lost: " + ec.message();
      co_return result;
    }
  }
  result.reason = "response ended";
  co_return result;
}

net::awaitable<attempt_outcome> attempt(sse_client::impl& c, const target_url& t,
                                        std::optional<ssl::context>& tls, stream_state& st) {
  const sse_client_options& opt = c.opt;
  const outbound::http_url& u = t.url;
  auto endpoints = co_await outbound::resolve(u);
  if (c.cancelled()) co_return cancelled();
  if (!endpoints) co_return retry("cannot resolve " + u.host + ": " + endpoints.error().message());

  beast::tcp_stream tcp_stream(c.ex);
  const error_code cec = co_await outbound::connect(
      tcp_stream, *endpoints, std::chrono::steady_clock::now() + opt.connect_timeout);
  if (c.cancelled()) co_return cancelled();
  if (is_timeout(cec)) co_return retry("connect timed out after " + ms_text(opt.connect_timeout));
  if (cec) co_return retry("cannot connect to " + u.host_header + ": " + cec.message());

  if (!tls) {
    attempt_outcome o = co_await exchange(c, t, tcp_stream, st);
    outbound::close(tcp_stream);
    co_return o;
  }

  ssl::stream<beast::tcp_stream> tls_stream(std::move(tcp_stream), *tls);
  const outbound::tls_handshake_result hs = co_await outbound::tls_handshake(
      tls_stream, u, opt.verify_tls, std::chrono::steady_clock::now() + opt.connect_timeout);
  if (c.cancelled()) {
    outbound::close(beast::get_lowest_layer(tls_stream));
    co_return cancelled();
  }
  if (hs.ec) {
    outbound::close(beast::get_lowest_layer(tls_stream));
    if (!hs.verify_error.empty()) {
      // Not transient: retrying cannot make a certificate valid.
      co_return failed(sse_client_error{
          "tls_verification_failed",
          "TLS handshake with " + u.host_header +
              " failed: " + (hs.host_mismatch ? hs.verify_error : hs.untrusted_reason),
          0, 0});
    }
    if (is_timeout(hs.ec))
      co_return retry("TLS handshake timed out after " + ms_text(opt.connect_timeout));
    co_return retry("TLS handshake failed: " + hs.ec.message());
  }
  attempt_outcome o = co_await exchange(c, t, tls_stream, st);
  outbound::close(beast::get_lowest_layer(tls_stream));
  co_return o;
}

std::string describe_attempt(const sse_client_options& opt, const stream_state& st) {
  std::string d = opt.method + " " + redact_access_token(opt.url);
  if (!st.last_event_id().empty()) d += " (Last-Event-ID: " + st.last_event_id() + ")";
  return d;
}

bool valid_header_value(std::string_view v) {
  return v.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

net::awaitable<void> run_attempts(sse_client::impl& c) {
  const sse_client_options& opt = c.opt;
  auto fail = [&c](sse_client_error e) {
    c.error(e);
    c.status(sse_status::failed, e.code + ": " + e.message);
  };
  auto url = outbound::parse_http_url(opt.url);
  if (!url)
    co_return fail(
        {"invalid_url", "not an absolute http(s) URL: " + redact_access_token(opt.url), 0, 0});
  const target_url u{*url, url->request_target()};
  if (opt.method != "GET" && opt.method != "POST")
    co_return fail({"invalid_url", "method must be GET or POST, not " + opt.method, 0, 0});
  if (!valid_header_value(opt.last_event_id))
    co_return fail({"invalid_last_event_id", "Last-Event-ID must not hold CR, LF or NUL", 0, 0});
  for (const auto& [name, value] : opt.headers) {
    // The value is not quoted: it may be a secret (Authorization).
    if (name.empty() || !valid_header_value(name) ||
        name.find_first_of(": ") != std::string::npos || !valid_header_value(value) ||
        name.size() + value.size() > max_header_value)
      co_return fail({"invalid_header",
                      "the value of header '" +
                          (valid_header_value(name) ? name : std::string("?")) +
                          "' holds CR, LF or NUL or is too long, or its name is invalid",
                      0, 0});
  }

  std::optional<ssl::context> tls;
  if (u.url.https) {
    try {
      tls.emplace(outbound::make_tls_client_context(opt.verify_tls, opt.ca_file));
    } catch (const std::exception& e) {
      co_return fail({"tls_verification_failed", std::string("TLS set-up: ") + e.what(), 0, 0});
    }
  }

  stream_state st(c, parse_sequence(opt.last_event_id).value_or(0));
  if (!opt.last_event_id.empty()) st.set_initial_id(opt.last_event_id);
  reconnect_backoff backoff(opt.backoff_base, opt.backoff_cap,
                            opt.jitter_seed ? *opt.jitter_seed : std::random_device{}());
  net::steady_timer timer(c.ex);
  unsigned failures = 0;  // consecutive attempts that did not reach "open"

  for (;;) {
    if (c.cancelled()) break;
    c.status(sse_status::connecting, describe_attempt(opt, st));
    attempt_outcome out = co_await attempt(c, u, tls, st);
    if (auto hint = st.take_retry_hint())
      backoff.set_base_from_server(
          std::chrono::milliseconds(std::min<std::uint64_t>(*hint, std::uint64_t{1} << 40)));
    if (c.cancelled() || out.what == attempt_outcome::kind::cancelled) break;
    if (out.what == attempt_outcome::kind::ended) {
      c.status(sse_status::closed, "stream ended (HTTP 204)");
      co_return;
    }
    if (out.what == attempt_outcome::kind::failed) co_return fail(std::move(out.error));

    failures = out.opened ? 0 : failures + 1;
    if (opt.max_attempts != 0 && failures >= opt.max_attempts) {
      co_return fail(
          {"attempts_exhausted",
           std::to_string(failures) + " attempts without a response; last: " + out.reason, 0, 0});
    }
    const std::chrono::milliseconds delay =
        out.retry_after ? std::min(*out.retry_after, backoff.cap()) : backoff.delay(failures);
    c.status(sse_status::reconnecting, out.reason + "; next attempt in " + ms_text(delay));
    if (delay.count() > 0) {
      timer.expires_after(delay);
      auto [tec] = co_await timer.async_wait(tuple_awaitable);
      (void)tec;  // aborted by cancel(): the loop's check ends it
    }
  }
  c.status(sse_status::closed, "cancelled");
}

net::awaitable<void> run(std::shared_ptr<sse_client::impl> self) {
  // Cancellation becomes an outcome (operation_aborted), never an exception.
  co_await net::this_coro::throw_if_cancelled(false);
  try {
    co_await run_attempts(*self);
  } catch (const std::exception& e) {
    // A callback threw (or bad_alloc): the client stops and says why.
    self->finished = true;
    sse_client_error err{"exception", e.what(), 0, 0};
    try {
      self->error(err);
      self->status(sse_status::failed, "exception: " + err.message);
    } catch (...) {
      std::fprintf(stderr, "sluice sse_client: a callback threw while reporting a failure\n");
    }
  }
  self->finished = true;
}

}  // namespace

sse_client::sse_client(net::any_io_executor executor, sse_client_options options)
    : impl_(std::make_shared<impl>(std::move(executor), std::move(options))) {}

sse_client::~sse_client() {
  impl_->detached = true;
  cancel();
}

void sse_client::on_event(sse_event_handler h) {
  impl_->event_handler = std::move(h);
}
void sse_client::on_status(sse_status_handler h) {
  impl_->status_handler = std::move(h);
}
void sse_client::on_error(sse_error_handler h) {
  impl_->error_handler = std::move(h);
}

void sse_client::start() {
  net::post(impl_->ex, [self = impl_] {
    if (self->started) return;
    self->started = true;
    net::co_spawn(self->ex, run(self),
                  net::bind_cancellation_slot(self->cancel_signal.slot(), [](std::exception_ptr e) {
                    if (!e) return;
                    try {
                      std::rethrow_exception(e);
                    } catch (const std::exception& x) {
                      std::fprintf(stderr, "sluice sse_client: unexpected exception: %s\n",
                                   x.what());
                    } catch (...) {
                      std::fprintf(stderr, "sluice sse_client: unexpected exception\n");
                    }
                  }));
  });
}

void sse_client::cancel() {
  impl_->cancel_requested = true;
  net::post(impl_->ex, [self = impl_] {
    if (self->started && !self->finished)
      self->cancel_signal.emit(net::cancellation_type::terminal);
  });
}

}  // namespace sluice::client
