#include "client/ws_client.hpp"

#include <openssl/rand.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/url/parse.hpp>
#include <optional>
#include <stdexcept>
#include <vector>

#include "client/bearer_token.hpp"
#include "client/delivery_filter.hpp"
#include "client/reconnect_backoff.hpp"
#include "core/event_id.hpp"
#include "net/http_url.hpp"
#include "net/outbound_connection.hpp"

namespace sluice::client {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace ssl = net::ssl;
namespace json = boost::json;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);

const char* to_string(ws_status s) {
  switch (s) {
    case ws_status::connecting:
      return "connecting";
    case ws_status::open:
      return "open";
    case ws_status::reconnecting:
      return "reconnecting";
    case ws_status::closed:
      return "closed";
    case ws_status::failed:
      return "failed";
  }
  return "?";
}

namespace {

std::optional<std::uint64_t> as_u64(const json::value* v) {
  if (v == nullptr) return std::nullopt;
  if (v->is_uint64()) return v->as_uint64();
  if (v->is_int64() && v->as_int64() >= 0) return static_cast<std::uint64_t>(v->as_int64());
  return std::nullopt;
}

std::string_view str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string_view(v->as_string()) : std::string_view();
}

// 128 bits from OpenSSL's CSPRNG: a run id is not guessable.
std::string random_request_id() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("RAND_bytes failed");
  static constexpr char hex[] = "0123456789abcdef";
  std::string id = "ws-";
  for (unsigned char b : bytes) {
    id.push_back(hex[b >> 4]);
    id.push_back(hex[b & 15]);
  }
  return id;
}

bool valid_header_text(std::string_view v) {
  return v.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

// {"error":{"code","message"}} in a refused upgrade's body, or nothing.
std::optional<std::pair<std::string, std::string>> json_error(std::string_view body) {
  error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const json::value* e = v.as_object().if_contains("error");
  if (e == nullptr || !e->is_object()) return std::nullopt;
  const std::string_view code = str(e->as_object(), "code");
  if (code.empty()) return std::nullopt;
  return std::pair<std::string, std::string>(code, str(e->as_object(), "message"));
}

// What one connection attempt came to.
struct attempt_result {
  bool opened = false;
  std::string why;                       // why it ended (for reconnecting)
  std::optional<ws_client_error> fatal;  // retrying cannot help: stop (failed)
};

}  // namespace

struct ws_client::impl : std::enable_shared_from_this<impl> {
  struct stream_state {
    std::string id;
    delivery_filter filter;
    bool resume_given = false;  // a start position was given: always send lastEventId
    bool done = false;          // ended or failed
  };
  struct pending_start {
    json::object request;
    std::string request_id;
  };

  impl(net::any_io_executor ex, ws_client_options o)
      : executor(std::move(ex)),
        opts(std::move(o)),
        backoff(opts.backoff_base, opts.backoff_cap,
                opts.jitter_seed.value_or(std::random_device{}())),
        timer(executor) {}

  net::any_io_executor executor;
  ws_client_options opts;
  reconnect_backoff backoff;
  net::steady_timer timer;
  std::vector<stream_state> streams;
  std::vector<pending_start> starts;
  ws_event_handler event_h;
  ws_stream_end_handler end_h;
  ws_status_handler status_h;
  ws_error_handler error_h;
  ws_started_handler started_h;
  beast::tcp_stream* current = nullptr;  // the attempt's TCP layer, for cancel()
  std::uint64_t duplicates = 0;
  outbound::http_url url;  // ws -> http, wss -> https
  std::string target;
  std::optional<ssl::context> tls;  // wss only
  bool cancelled = false;
  bool finished = false;  // closed or failed was reported
  bool any_failed = false;

  stream_state* find(std::string_view id) {
    for (auto& s : streams)
      if (s.id == id) return &s;
    return nullptr;
  }
  bool active() const {
    if (!starts.empty()) return true;
    for (const auto& s : streams)
      if (!s.done) return true;
    return false;
  }

  void status(ws_status s, std::string_view detail) {
    if (finished) return;
    if (s == ws_status::closed || s == ws_status::failed) finished = true;
    if (status_h) status_h(s, detail);
  }
  void error(ws_client_error e) {
    if (error_h) error_h(e);
  }
  void finish() {
    status(any_failed ? ws_status::failed : ws_status::closed,
           any_failed ? "a stream failed" : "every stream ended");
  }

  bool parse_url() {
    std::string_view u = opts.url;
    std::string as_http;
    if (u.starts_with("ws://"))
      as_http = "http://" + std::string(u.substr(5));
    else if (u.starts_with("wss://"))
      as_http = "https://" + std::string(u.substr(6));
    else
      return false;
    auto parsed = outbound::parse_http_url(as_http);
    if (!parsed) return false;
    url = *parsed;
    target = url.request_target();
    return true;
  }

  net::awaitable<void> run();
  net::awaitable<attempt_result> connection();
  template <class WsStream>
  net::awaitable<void> session(WsStream& ws, attempt_result& r);
  void handle(std::string_view text);
};

void ws_client::impl::handle(std::string_view text) {
  error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return;  // not ours to interpret
  const json::object& m = v.as_object();
  const std::string_view op = str(m, "op");
  if (op.empty()) {
    stream_state* s = find(str(m, "stream"));
    auto id = as_u64(m.if_contains("id"));
    const json::value* data = m.if_contains("data");
    if (s == nullptr || s->done || !id || data == nullptr) return;
    // The id a resume sends back: N, or N-EPOCH when the frame has an epoch.
    std::string full_id = std::to_string(*id);
    if (const json::value* ep = m.if_contains("epoch"); ep && ep->is_string()) {
      if (!core::is_valid_epoch(ep->get_string())) return;
      full_id.push_back('-');
      full_id.append(ep->get_string());
    }
    std::string type(str(m, "event"));
    const std::string data_text = json::serialize(*data);
    // A producer's own event named "error" is an ordinary event here: over
    // WebSocket, resume_window_exceeded arrives as an op, never as an event.
    delivery d = s->filter.classify(
        full_id, true, type == "error" ? std::string_view("message") : type, data_text);
    if (d.what == delivery::action::drop_duplicate) {
      ++duplicates;
      return;
    }
    if (event_h) event_h(s->id, *id, type, data_text, d.first_seq, d.last_seq);
    return;
  }
  const std::string stream(str(m, "stream"));
  if (op == "started") {
    const bool created =
        m.if_contains("created") && m.at("created").is_bool() && m.at("created").as_bool();
    std::erase_if(starts, [&](const pending_start& p) { return p.request_id == stream; });
    if (!find(stream)) streams.push_back({stream, delivery_filter(0), false, false});
    if (started_h) started_h(stream, created);
  } else if (op == "end") {
    if (stream_state* s = find(stream); s && !s->done) {
      s->done = true;
      if (end_h) end_h(stream);
    }
  } else if (op == "error") {
    ws_client_error e{std::string(str(m, "code")), std::string(str(m, "message")), stream,
                      as_u64(m.if_contains("first_available")).value_or(0)};
    if (e.code == "already_subscribed") return;  // harmless
    if (!stream.empty()) {
      stream_state* s = find(stream);
      if (s == nullptr || s->done) return;
      s->done = true;
    } else if (!starts.empty()) {
      starts.erase(starts.begin());  // answers are in order: the oldest start failed
    }
    any_failed = true;
    error(std::move(e));
  } else if (op == "notice") {
    if (stream_state* s = find(stream); s && event_h) event_h(stream, 0, "notice", text, 0, 0);
  }
}

net::awaitable<attempt_result> ws_client::impl::connection() {
  attempt_result r;
  auto endpoints = co_await outbound::resolve(url);
  if (cancelled) co_return r;
  if (!endpoints) {
    r.why = "cannot resolve " + url.host + ": " + endpoints.error().message();
    co_return r;
  }
  beast::tcp_stream tcp_stream(executor);
  current = &tcp_stream;
  struct reset_current {
    impl* self;
    ~reset_current() { self->current = nullptr; }
  } guard{this};
  const error_code cec = co_await outbound::connect(
      tcp_stream, *endpoints, std::chrono::steady_clock::now() + opts.connect_timeout);
  if (cancelled) co_return r;
  if (cec) {
    r.why = outbound::is_timeout(cec) ? "connect timed out" : "connect: " + cec.message();
    co_return r;
  }
  if (!tls) {
    websocket::stream<beast::tcp_stream> ws(std::move(tcp_stream));
    current = &beast::get_lowest_layer(ws);
    co_await session(ws, r);
    co_return r;
  }
  websocket::stream<ssl::stream<beast::tcp_stream>> ws(std::move(tcp_stream), *tls);
  current = &beast::get_lowest_layer(ws);
  const outbound::tls_handshake_result hs =
      co_await outbound::tls_handshake(ws.next_layer(), url, opts.verify_tls,
                                       std::chrono::steady_clock::now() + opts.connect_timeout);
  if (cancelled) co_return r;
  if (hs.ec) {
    outbound::close(beast::get_lowest_layer(ws));
    if (!hs.verify_error.empty()) {
      // Not transient: retrying cannot make a certificate valid.
      r.fatal = ws_client_error{"tls_verification_failed",
                                "TLS handshake with " + url.host_header + " failed: " +
                                    (hs.host_mismatch ? hs.verify_error : hs.untrusted_reason),
                                "", 0};
      co_return r;
    }
    r.why = outbound::is_timeout(hs.ec) ? "TLS handshake timed out"
                                        : "TLS handshake failed: " + hs.ec.message();
    co_return r;
  }
  co_await session(ws, r);
  co_return r;
}

template <class WsStream>
net::awaitable<void> ws_client::impl::session(WsStream& ws, attempt_result& r) {
  auto& tcp_layer = beast::get_lowest_layer(ws);
  if (opts.deflate) {
    websocket::permessage_deflate pmd;
    pmd.client_enable = true;
    ws.set_option(pmd);
  }
  ws.set_option(websocket::stream_base::decorator([this](websocket::request_type& req) {
    req.set(beast::http::field::user_agent, "sluice");
    for (const auto& [name, value] : opts.headers) req.set(name, value);
  }));
  ws.read_message_max(opts.max_message_bytes);
  tcp_layer.expires_after(opts.connect_timeout);
  websocket::response_type res;
  auto [hec] = co_await ws.async_handshake(res, url.host_header, target, tuple_awaitable);
  if (cancelled) co_return;
  if (hec) {
    const unsigned status = res.result_int();
    if (hec == websocket::error::upgrade_declined && status >= 400 && status < 500 &&
        status != 408 && status != 429) {
      // Refused (401 unauthorized, 403 forbidden, 404, ...): asking again
      // gets the same answer.
      ws_client_error e{"http_error",
                        "the WebSocket upgrade was refused with HTTP " + std::to_string(status), "",
                        0};
      if (auto je = json_error(res.body())) {
        e.code = je->first;
        e.message = je->second + " (HTTP " + std::to_string(status) + ")";
      }
      r.fatal = std::move(e);
    } else if (hec == websocket::error::upgrade_declined) {
      r.why = "handshake refused with HTTP " + std::to_string(status);
    } else {
      r.why = "handshake: " + hec.message();
    }
    co_return;
  }
  tcp_layer.expires_never();
  websocket::stream_base::timeout t;
  t.handshake_timeout = opts.connect_timeout;
  t.idle_timeout = opts.stall_timeout;
  t.keep_alive_pings = true;
  ws.set_option(t);
  r.opened = true;
  const bool deflate = res[beast::http::field::sec_websocket_extensions].find(
                           "permessage-deflate") != std::string_view::npos;
  status(ws_status::open, deflate ? "permessage-deflate" : "");
  if (cancelled) co_return;

  // Resume every stream, then re-send unanswered starts.
  std::vector<std::string> out;
  for (const auto& s : streams) {
    if (s.done) continue;
    json::object o;
    o["op"] = "subscribe";
    o["stream"] = s.id;
    // The whole id when it names an epoch (the server then checks the
    // history is the one this client saw: else history_truncated).
    if (s.filter.last_id().find('-') != std::string::npos)
      o["lastEventId"] = s.filter.last_id();
    else if (s.resume_given || s.filter.highest_delivered() > 0)
      o["lastEventId"] = s.filter.highest_delivered();
    out.push_back(json::serialize(o));
  }
  for (const auto& p : starts) {
    json::object o;
    o["op"] = "start";
    o["request"] = p.request;
    out.push_back(json::serialize(o));
  }
  for (const auto& msg : out) {
    auto [wec, wn] = co_await ws.async_write(net::buffer(msg), tuple_awaitable);
    if (wec) {
      r.why = "write: " + wec.message();
      co_return;
    }
  }
  beast::flat_buffer buf;
  for (;;) {
    auto [ec, n] = co_await ws.async_read(buf, tuple_awaitable);
    if (ec) {
      r.why = ec.message();
      if (ec == websocket::error::closed)
        r.why = "closed by the server (" + std::to_string(ws.reason().code) + " " +
                std::string(ws.reason().reason.data(), ws.reason().reason.size()) + ")";
      co_return;
    }
    const auto d = buf.cdata();
    handle(std::string_view(static_cast<const char*>(d.data()), d.size()));
    buf.consume(buf.size());
    if (cancelled) co_return;
    if (!active()) {
      co_await ws.async_close(websocket::close_code::normal, tuple_awaitable);
      co_return;
    }
  }
}

net::awaitable<void> ws_client::impl::run() {
  auto fail = [this](ws_client_error e) {
    any_failed = true;
    const std::string detail = e.code;
    error(std::move(e));
    status(ws_status::failed, detail);
  };
  if (!parse_url()) {
    fail({"invalid_url", "the URL must be ws://host[:port]/path or wss://host[:port]/path", "", 0});
    co_return;
  }
  for (const auto& [name, value] : opts.headers) {
    // The value is not quoted: it may be a secret (Authorization).
    if (name.empty() || !valid_header_text(name) || name.find_first_of(": ") != std::string::npos ||
        !valid_header_text(value)) {
      fail({"invalid_header",
            "the value of header '" + (valid_header_text(name) ? name : std::string("?")) +
                "' holds CR, LF or NUL, or its name is invalid",
            "", 0});
      co_return;
    }
  }
  if (url.https) {
    try {
      tls.emplace(outbound::make_tls_client_context(opts.verify_tls, opts.ca_file));
    } catch (const std::exception& e) {
      fail({"tls_verification_failed", std::string("TLS set-up: ") + e.what(), "", 0});
      co_return;
    }
  }
  unsigned failures = 0;  // consecutive attempts that never opened
  unsigned attempt = 0;   // backoff exponent
  for (;;) {
    if (!active()) {
      finish();
      co_return;
    }
    status(ws_status::connecting, redact_access_token(opts.url));
    attempt_result r = co_await connection();
    if (cancelled) {
      status(ws_status::closed, "cancelled");
      co_return;
    }
    if (r.fatal) {
      fail(std::move(*r.fatal));
      co_return;
    }
    if (!active()) {
      finish();
      co_return;
    }
    if (r.opened) {
      failures = 0;
      attempt = 0;
    } else if (opts.max_attempts != 0 && ++failures >= opts.max_attempts) {
      fail({"attempts_exhausted",
            "no connection after " + std::to_string(failures) + " attempts: " + r.why, "", 0});
      co_return;
    }
    auto delay = backoff.delay(attempt++);
    status(ws_status::reconnecting,
           r.why + "; retrying in " + std::to_string(delay.count()) + " ms");
    timer.expires_after(delay);
    co_await timer.async_wait(tuple_awaitable);
    if (cancelled) {
      status(ws_status::closed, "cancelled");
      co_return;
    }
  }
}

ws_client::ws_client(net::any_io_executor executor, ws_client_options options)
    : impl_(std::make_shared<impl>(std::move(executor), std::move(options))) {}

ws_client::~ws_client() {
  impl_->event_h = nullptr;
  impl_->end_h = nullptr;
  impl_->status_h = nullptr;
  impl_->error_h = nullptr;
  impl_->started_h = nullptr;
  cancel();
}

void ws_client::subscribe(std::string stream, std::uint64_t last_event_id) {
  impl_->streams.push_back(
      {std::move(stream), delivery_filter(last_event_id), last_event_id > 0, false});
}

bool ws_client::subscribe(std::string stream, std::string_view last_event_id) {
  auto seq = parse_sequence(last_event_id);
  if (!seq) return false;
  delivery_filter f(*seq);
  f.set_last_id(std::string(last_event_id));
  impl_->streams.push_back({std::move(stream), std::move(f), true, false});
  return true;
}

std::string ws_client::last_event_id(std::string_view stream) const {
  auto* s = impl_->find(stream);
  return s ? s->filter.last_id() : std::string();
}

void ws_client::start_run(const json::object& request) {
  impl::pending_start p;
  p.request = request;
  const std::string_view id = str(request, "requestId");
  if (id.empty()) {
    p.request_id = random_request_id();
    p.request["requestId"] = p.request_id;
  } else {
    p.request_id = id;
  }
  impl_->starts.push_back(std::move(p));
}

void ws_client::on_event(ws_event_handler h) {
  impl_->event_h = std::move(h);
}
void ws_client::on_stream_end(ws_stream_end_handler h) {
  impl_->end_h = std::move(h);
}
void ws_client::on_status(ws_status_handler h) {
  impl_->status_h = std::move(h);
}
void ws_client::on_error(ws_error_handler h) {
  impl_->error_h = std::move(h);
}
void ws_client::on_started(ws_started_handler h) {
  impl_->started_h = std::move(h);
}

void ws_client::start() {
  net::co_spawn(
      impl_->executor, [self = impl_]() { return self->run(); },
      [self = impl_](std::exception_ptr e) {
        if (!e) return;
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          what = ex.what();
        } catch (...) {
        }
        self->any_failed = true;
        self->error({"callback_threw", what, "", 0});
        self->status(ws_status::failed, "callback_threw");
      });
}

void ws_client::cancel() {
  net::post(impl_->executor, [self = impl_] {
    self->cancelled = true;
    self->timer.cancel();
    if (self->current) self->current->cancel();
  });
}

std::uint64_t ws_client::highest_delivered(std::string_view stream) const {
  auto* s = impl_->find(stream);
  return s ? s->filter.highest_delivered() : 0;
}

std::uint64_t ws_client::duplicates_dropped() const {
  return impl_->duplicates;
}

}  // namespace sluice::client
