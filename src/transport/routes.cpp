#include "transport/routes.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <charconv>
#include <chrono>
#include <stdexcept>

#include "core/coalescer.hpp"
#include "core/stream_id.hpp"

namespace sluice::transport {

namespace json = boost::json;

std::optional<std::string_view> request_context::param(std::string_view name) const {
  for (const auto& [k, v] : query)
    if (k == name) return std::string_view(v);
  return std::nullopt;
}

http_reply json_error(unsigned status, std::string_view code, std::string_view message) {
  json::object inner;
  inner["code"] = code;
  inner["message"] = message;
  json::object outer;
  outer["error"] = std::move(inner);
  http_reply r;
  r.status = status;
  r.body = json::serialize(outer);
  return r;
}

http_reply json_refusal(unsigned status, std::string_view code, std::string_view message,
                        int retry_after_s) {
  http_reply r = json_error(status, code, message);
  r.headers.emplace_back("Retry-After", std::to_string(retry_after_s));
  return r;
}

http_reply registry_refusal(const boost::system::error_code& ec) {
  using core::registry_error;
  if (ec == core::make_error_code(registry_error::too_many_streams_for_owner))
    return json_refusal(429, "too_many_streams_for_subject",
                        "this subject holds as many streams as it may (--max-streams-per-subject)",
                        5);
  if (ec == core::make_error_code(registry_error::memory_budget_exceeded))
    return json_refusal(503, "memory_budget_exceeded",
                        "the server's memory budget for retained events is reached", 5);
  if (ec == core::make_error_code(registry_error::already_exists))
    return json_error(409, "stream_exists", "the stream already exists");
  return json_refusal(503, "too_many_streams", "the stream limit is reached", 5);
}

http_reply json_ok(std::string body, unsigned status) {
  http_reply r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

std::optional<std::uint64_t> parse_event_id(std::string_view s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

namespace {

std::string_view trim_json_space(std::string_view s) {
  auto is_ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
  return s;
}

// Well-formed UTF-8 without control characters (the reason becomes JSON text).
bool is_clean_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size() || (n == 1 && (c < 0x20 || c == 0x7F)) || (n == 2 && c < 0xC2))
      return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

bool is_true(std::optional<std::string_view> v) { return v && (*v == "true" || *v == "1"); }

// Splits "/v1/streams/{id}/{rest}" into id and rest ("" when absent).
bool split_stream_path(std::string_view path, std::string_view& id, std::string_view& rest) {
  constexpr std::string_view prefix = "/v1/streams/";
  if (!path.starts_with(prefix)) return false;
  path.remove_prefix(prefix.size());
  auto slash = path.find('/');
  id = path.substr(0, slash);
  rest = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
  return true;
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// The media type of a Content-Type value, without parameters or spaces.
std::string_view media_type(std::string_view ct) {
  ct = ct.substr(0, ct.find(';'));
  while (!ct.empty() && (ct.front() == ' ' || ct.front() == '\t')) ct.remove_prefix(1);
  while (!ct.empty() && (ct.back() == ' ' || ct.back() == '\t')) ct.remove_suffix(1);
  return ct;
}

// The token of a request: "Authorization: Bearer X", else ?access_token=X.
std::optional<std::string_view> token_of(const request_context& req) {
  std::string_view h = req.authorization;
  if (!h.empty()) {
    if (h.size() > 7 && iequal(h.substr(0, 7), "bearer ")) {
      h.remove_prefix(7);
      while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
      while (!h.empty() && h.back() == ' ') h.remove_suffix(1);
      return h;
    }
    return std::string_view();  // another scheme: refused as an invalid token
  }
  return req.param("access_token");
}

http_reply forbidden(std::string_view message) { return json_error(403, "forbidden", message); }

http_reply stream_not_found() { return json_error(404, "stream_not_found", "no such stream"); }

http_reply bad_id(std::string_view what) {
  return json_error(400, "invalid_stream_id",
                    std::string(what) + " must match [A-Za-z0-9._:-]{1,128}");
}

}  // namespace

http_reply unauthorized(std::string_view message) {
  http_reply r = json_error(401, "unauthorized", message);
  r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"sluice\"");
  return r;
}

bool is_loopback_host(std::string_view host) {
  if (iequal(host, "localhost")) return true;
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address(std::string(host), ec);
  return !ec && a.is_loopback();
}

bool is_loopback_host_header(std::string_view host) {
  std::string_view name = host;
  if (name.starts_with('[')) {
    const auto close = name.find(']');
    if (close == std::string_view::npos) return false;
    name = name.substr(1, close - 1);
  } else if (const auto colon = name.find(':'); colon != std::string_view::npos) {
    name = name.substr(0, colon);
  }
  if (name.empty() || name.size() > 253) return false;
  if (iequal(name, "localhost")) return true;
  if (name.size() > 10 && iequal(name.substr(name.size() - 10), ".localhost")) return true;
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address(std::string(name), ec);
  return !ec && a.is_loopback();
}

router::router(core::stream_registry& registry, metrics& m, const server_config& config)
    : registry_(registry), metrics_(m), config_(config) {
  loopback_bind_ = is_loopback_host(config.host);
  if (config.auth.mode == auth::auth_mode::jwt) {
    verifier_ = auth::verifier::load(config.auth);
  } else if (!loopback_bind_ && !config.auth.insecure_no_auth) {
    throw std::runtime_error(
        "refusing to listen on " + config.host +
        " without access control: anyone who reaches it could read, publish and cancel every "
        "stream and start agent runs. Use --auth jwt (see docs/security.md), or "
        "--insecure-no-auth to accept the risk.");
  }
  if (config.auth.link_ttl_s <= 0 || config.auth.link_ttl_s > 366LL * 86'400)
    throw std::runtime_error("--link-ttl-s must be 1..31622400");
}

bool router::listed_origin(std::string_view origin) const {
  for (const auto& o : config_.auth.allowed_origins)
    if (iequal(o, origin)) return true;
  return false;
}

bool router::origin_allowed(const request_context& req) const {
  if (listed_origin(req.origin)) return true;
  // The server's own origin: the page it serves (directly or behind a TLS
  // proxy that keeps the Host header).
  if (req.host.empty()) return false;
  const std::string_view o = req.origin;
  for (std::string_view scheme : {"http://", "https://"})
    if (o.size() == scheme.size() + req.host.size() && iequal(o.substr(0, scheme.size()), scheme) &&
        iequal(o.substr(scheme.size()), req.host))
      return true;
  return false;
}

std::optional<http_reply> router::admit(request_context& req, bool websocket) {
  // DNS rebinding: a page of evil.example resolving to 127.0.0.1 sends
  // "Host: evil.example". A loopback server answers only loopback names.
  if (loopback_bind_ && !req.host.empty() && !is_loopback_host_header(req.host))
    return json_error(421, "host_not_allowed",
                      "this server listens on loopback and answers only localhost or loopback "
                      "addresses in the Host header");
  const bool state_changing =
      websocket || !(req.method == "GET" || req.method == "HEAD" || req.method == "OPTIONS");
  if (state_changing && !req.origin.empty() && !origin_allowed(req))
    return json_error(403, "origin_not_allowed",
                      "requests from this Origin are not allowed (see --allowed-origins)");
  if (req.method == "POST" && !(req.body.empty() && req.content_type.empty())) {
    const auto mt = media_type(req.content_type);
    if (!iequal(mt, "application/json") && !iequal(mt, "application/x-ndjson"))
      return json_error(415, "unsupported_media_type",
                        "send the body as application/json or application/x-ndjson");
  }
  if (!verifier_) {
    req.principal = auth::principal::anyone(req.client_address);
    req.subject = req.client_address;
    return std::nullopt;
  }
  auto token = token_of(req);
  if (!token) return std::nullopt;  // anonymous: routes that need a token answer 401
  auto out = verifier_->verify(*token, unix_now());
  if (!out.who) return unauthorized("invalid token: " + out.error);
  req.subject = out.who->subject;
  req.principal = std::move(out.who);
  return std::nullopt;
}

std::vector<std::pair<std::string, std::string>> router::cors_headers(
    const request_context& req) const {
  if (req.origin.empty() || !listed_origin(req.origin)) return {};
  return {{"Access-Control-Allow-Origin", std::string(req.origin)}, {"Vary", "Origin"}};
}

handler_result router::preflight(const request_context& req) {
  http_reply r = json_ok("", 204);
  if (req.origin.empty()) {
    r.headers.emplace_back("Allow", "GET, HEAD, POST, OPTIONS");
    return r;
  }
  if (!listed_origin(req.origin))
    return json_error(403, "origin_not_allowed",
                      "requests from this Origin are not allowed (see --allowed-origins)");
  r.headers = cors_headers(req);
  r.headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
  r.headers.emplace_back("Access-Control-Allow-Headers",
                         "Authorization, Content-Type, Last-Event-ID");
  r.headers.emplace_back("Access-Control-Max-Age", "600");
  return r;
}

bool router::may_read(const request_context& req, std::string_view id,
                      const std::shared_ptr<core::stream_log>& existing) const {
  return req.principal->may_subscribe(id) ||
         (existing && req.principal->owns(existing->owner()));
}

void router::serve_static(std::filesystem::path root) { static_.emplace(std::move(root)); }

void router::add(std::string method, std::string path, route_handler handler) {
  routes_[{std::move(method), std::move(path)}] = std::move(handler);
}

handler_result router::dispatch(request_context& req) {
  if (req.method == "OPTIONS") return preflight(req);
  // A WebSocket keeps the principal of its upgrade: its token may expire.
  if (req.principal && req.principal->expires_at != 0 &&
      req.principal->expires_at + auth::clock_skew_s <= unix_now())
    return unauthorized("the token has expired");
  auto need_token = [&]() -> std::optional<http_reply> {
    if (!req.principal) return unauthorized("this endpoint needs a token (Authorization: Bearer)");
    return std::nullopt;
  };
  if (auto it = routes_.find({std::string(req.method), req.path}); it != routes_.end()) {
    // Producers (agent runs, benchmarks) make the server do work: "run".
    if (auto e = need_token()) return *e;
    if (!req.principal->run) return forbidden("this token may not start runs (sluice.run)");
    return it->second(req);
  }
  const std::string_view path = req.path;
  if (path == "/healthz") {
    if (req.method != "GET") return json_error(405, "method_not_allowed", "use GET");
    return json_ok(R"({"status":"ok"})");
  }
  if (path == "/metrics") {
    if (req.method != "GET") return json_error(405, "method_not_allowed", "use GET");
    if (!config_.auth.metrics_public) {
      if (auto e = need_token()) return *e;
      if (!req.principal->admin) return forbidden("/metrics needs an admin token (sluice.admin)");
    }
    auto c = registry_.counts();
    http_reply r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = metrics_.render(c.open, c.finished, c.cancelled);
    return r;
  }
  std::string_view id, rest;
  if (split_stream_path(path, id, rest)) {
    if (!core::is_valid_stream_id(id)) return bad_id("stream id");
    if (auto e = need_token()) return *e;
    if (rest.empty()) {
      if (req.method != "GET") return json_error(405, "method_not_allowed", "use GET");
      return status(req, id);
    }
    if (rest == "events") {
      if (req.method == "GET") return subscribe_route(req, id);
      if (req.method == "POST") return publish(req, id);
      return json_error(405, "method_not_allowed", "use GET to subscribe or POST to publish");
    }
    if (rest == "cancel") {
      if (req.method != "POST") return json_error(405, "method_not_allowed", "use POST");
      return cancel(req, id);
    }
    if (rest == "links") {
      if (req.method != "POST") return json_error(405, "method_not_allowed", "use POST");
      return share_link(req, id);
    }
  }
  for (const auto& [key, handler] : routes_)
    if (key.second == req.path)
      return json_error(405, "method_not_allowed", "use " + key.first);
  if (static_ && (req.method == "GET" || req.method == "HEAD") && !path.starts_with("/v1/"))
    if (auto file = static_->serve(path)) return std::move(*file);
  return json_error(404, "not_found", "no such endpoint");
}

handler_result router::publish(request_context& req, std::string_view id) {
  if (!req.principal->may_publish(id))
    return forbidden("this token may not publish to this stream (sluice.publish)");
  const std::string_view type = req.param("event").value_or(core::default_event_type);
  if (!core::is_valid_event_name(type))
    return json_error(400, "invalid_event_name", "event must match [A-Za-z0-9._:-]{1,128}");
  const bool final = is_true(req.param("final"));
  const auto delta_of = req.param("delta");
  const std::string_view delta_field = req.param("delta_field").value_or("text");
  if (delta_of && !core::is_valid_event_name(*delta_of))
    return json_error(400, "invalid_delta", "delta (a message id) must match [A-Za-z0-9._:-]{1,128}");

  // Parse and validate everything before touching the stream: all or nothing.
  std::vector<std::string_view> texts;
  std::vector<core::delta_event> deltas;
  const bool ndjson = req.content_type.starts_with("application/x-ndjson");
  auto add_value = [&](std::string_view text, std::size_t line) -> std::optional<http_reply> {
    boost::system::error_code ec;
    json::value v = json::parse(text, ec);
    if (ec) {
      std::string msg = "body is not valid JSON";
      if (ndjson) msg += " (line " + std::to_string(line) + ")";
      msg += ": " + ec.message();
      return json_error(400, "malformed_json", msg);
    }
    if (delta_of) {
      if (!v.is_object())
        return json_error(400, "invalid_delta", "a delta's data must be a JSON object");
      auto d = core::make_delta_event(type, *delta_of, delta_field, v.as_object());
      if (!d)
        return json_error(400, "invalid_delta",
                          "a delta's data must have a string member \"" +
                              std::string(delta_field) + "\"");
      deltas.push_back(std::move(*d));
    }
    texts.push_back(text);
    return std::nullopt;
  };
  if (ndjson) {
    std::string_view body = req.body;
    std::size_t line = 0;
    while (!body.empty()) {
      ++line;
      auto nl = body.find('\n');
      std::string_view l = trim_json_space(body.substr(0, nl));
      body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
      if (l.empty()) continue;
      if (auto err = add_value(l, line)) return *err;
    }
    if (texts.empty()) return json_error(400, "malformed_json", "no JSON value in the body");
  } else {
    if (auto err = add_value(trim_json_space(req.body), 1)) return *err;
  }

  auto log = registry_.get_or_create(id, req.subject);
  if (!log) return registry_refusal(log.error());
  // The memory budget: one relaxed load while under it (finished streams are
  // evicted first when at it).
  if (!registry_.memory_available())
    return registry_refusal(core::make_error_code(core::registry_error::memory_budget_exceeded));
  std::vector<core::publish_item> items(texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    items[i].type = type;
    items[i].data = texts[i];
    items[i].delta = delta_of ? &deltas[i] : nullptr;
  }
  items.back().final = final;
  auto out = (*log)->publish_all(items);
  if (out.status != core::publish_status::ok)
    return json_error(409, "stream_ended", "the stream has ended; publishing is refused");
  metrics_.local().add(metrics_.local().events_published, items.size());
  http_reply reply;
  if (!ndjson) {
    reply = json_ok("{\"sequence\":" + std::to_string(out.first_sequence) + "}");
  } else {
    std::string body = "{\"sequences\":[";
    for (std::uint64_t s = out.first_sequence; s <= out.last_sequence; ++s) {
      if (s != out.first_sequence) body += ',';
      body += std::to_string(s);
    }
    body += "]}";
    reply = json_ok(std::move(body));
  }
  // --fsync always: answered once the events are on disk (the store's writer).
  if (core::stream_store* store = registry_.store(); store && store->acks_wait_for_disk())
    reply.before_send = [store, stream = *log, seq = out.last_sequence](auto done) {
      store->when_durable(*stream, seq, std::move(done));
    };
  return reply;
}

handler_result router::subscribe(request_context& req, std::shared_ptr<core::stream_log> log) {
  const core::stream_status st = log->status();
  stream_reply r;
  r.coalesce = config_.coalesce && req.param("coalesce") != std::optional<std::string_view>("false");
  if (req.last_event_id) {
    auto last = parse_event_id(*req.last_event_id);
    if (!last)
      return json_error(400, "invalid_last_event_id", "Last-Event-ID must be a sequence number");
    if (*last > st.last_sequence)
      return json_error(409, "unknown_last_event_id",
                        "Last-Event-ID " + std::to_string(*last) +
                            " is past the stream's last event " +
                            std::to_string(st.last_sequence));
    metrics_.local().add(metrics_.local().resumes, 1);
    if (*last == st.last_sequence && st.state != core::stream_state::open)
      return json_ok("", 204);
    r.next_seq = *last + 1;
  } else {
    r.next_seq = st.first_sequence == 0 ? st.last_sequence + 1 : st.first_sequence;
    if (st.first_sequence > 1) {
      // A new subscriber is told that the start of the stream is gone.
      r.preamble = core::encode_sse_event(
          0, "notice",
          "{\"code\":\"history_truncated\",\"first_available\":" +
              std::to_string(st.first_sequence) + "}");
    }
  }
  r.stream = std::move(log);
  return r;
}

handler_result router::subscribe_route(request_context& req, std::string_view id) {
  // A bad Last-Event-ID must not create a stream as a side effect.
  if (req.last_event_id && !parse_event_id(*req.last_event_id))
    return json_error(400, "invalid_last_event_id", "Last-Event-ID must be a sequence number");
  auto existing = registry_.find(id);
  // Without a subscribe pattern only the owner reads, and a stream that is
  // not yours looks exactly like one that does not exist.
  if (!may_read(req, id, existing)) return stream_not_found();
  if (!existing && req.last_event_id && *parse_event_id(*req.last_event_id) > 0)
    return json_error(409, "unknown_last_event_id",
                      "the stream has no event " + std::string(*req.last_event_id));
  if (existing) return subscribe(req, std::move(existing));
  // Pending until its first publish: it expires after --pending-stream-s with
  // a final error event (stream_not_started) and counts against the budgets.
  // Subscribing confers no ownership, yet counts against the reader's budget.
  auto log = registry_.get_or_create_pending(id, core::reader_owner(req.subject));
  if (!log) return registry_refusal(log.error());
  return subscribe(req, std::move(*log));
}

handler_result router::status(request_context& req, std::string_view id) {
  auto log = registry_.find(id);
  if (!log || !may_read(req, id, log)) return stream_not_found();
  const core::stream_status st = log->status();
  json::object o;
  o["id"] = log->id();
  o["state"] = core::to_string(st.state);
  o["first_sequence"] = st.first_sequence;
  o["last_sequence"] = st.last_sequence;
  o["retained_events"] = st.retained_events;
  o["retained_bytes"] = st.retained_bytes;
  o["subscribers"] = st.subscribers;
  o["created_us"] = st.created_us;
  if (st.finished_us != 0)
    o["finished_us"] = st.finished_us;
  else
    o["finished_us"] = nullptr;
  return json_ok(json::serialize(o));
}

handler_result router::cancel(request_context& req, std::string_view id) {
  auto log = registry_.find(id);
  if (!log || !(req.principal->may_publish(id) || req.principal->owns(log->owner())))
    return stream_not_found();
  std::string_view reason = req.param("reason").value_or("cancelled by request");
  if (reason.size() > 256 || !is_clean_utf8(reason))
    return json_error(400, "invalid_reason", "reason must be UTF-8 text of at most 256 bytes");
  if (!log->cancel(reason))
    return json_error(409, "stream_ended", "the stream has already ended");
  const auto st = log->status();
  return json_ok("{\"cancelled\":true,\"sequence\":" + std::to_string(st.last_sequence) + "}");
}

handler_result router::share_link(request_context& req, std::string_view id) {
  auto log = registry_.find(id);
  // Owner only (anyone with --auth none); others cannot tell it exists.
  if (!log || (verifier_ && !req.principal->owns(log->owner()))) return stream_not_found();
  const std::string path = "/v1/streams/" + std::string(id) + "/events";
  json::object o;
  o["stream"] = id;
  if (!verifier_) {
    o["token"] = nullptr;
    o["expires_at"] = nullptr;
    o["url"] = path;
    return json_ok(json::serialize(o));
  }
  const std::int64_t now = unix_now();
  const std::int64_t expires = now + config_.auth.link_ttl_s;
  std::string token = verifier_->mint_link(id, now, config_.auth.link_ttl_s);
  o["token"] = token;
  o["expires_at"] = expires;
  o["url"] = path + "?access_token=" + token;  // base64url and dots: nothing to escape
  return json_ok(json::serialize(o));
}

}  // namespace sluice::transport
