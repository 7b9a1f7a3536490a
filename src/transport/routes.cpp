#include "transport/routes.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <charconv>
#include <chrono>
#include <mutex>
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

http_reply json_ok(std::string body, unsigned status) {
  http_reply r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

namespace {

bool is_true(std::optional<std::string_view> v) {
  return v && (*v == "true" || *v == "1");
}

// --fsync always: the reply is sent once the events are on disk (see
// http_reply::before_send); otherwise `wait` is empty and nothing changes.
http_reply with_durable_wait(http_reply r, streams::durable_wait wait) {
  r.before_send = std::move(wait);
  return r;
}

// An op answered by `render`: at once when it completed inline (one node),
// else as a deferred_reply completed when the shared store answers.
template <class T, class Start, class Render>
handler_result op_reply(Start start, Render render) {
  struct state {
    std::mutex m;
    std::optional<streams::op_result<T>> early;
    std::function<void(handler_result)> done;
  };
  auto st = std::make_shared<state>();
  auto now = streams::complete_inline_or_later<T>(
      [&start](streams::op_callback<T> cb) { start(std::move(cb)); },
      [st, render](streams::op_result<T> r) {
        std::unique_lock lock(st->m);
        if (!st->done) {
          st->early.emplace(std::move(r));
          return;
        }
        auto done = std::move(st->done);
        lock.unlock();
        done(render(std::move(r)));
      });
  if (now) return render(std::move(*now));
  return deferred_reply{[st, render](std::function<void(handler_result)> done) {
    std::unique_lock lock(st->m);
    if (st->early) {
      auto r = std::move(*st->early);
      lock.unlock();
      done(render(std::move(r)));
      return;
    }
    st->done = std::move(done);
  }};
}

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

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

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

http_reply error_reply(const streams::op_error& e) {
  if (e.http_status == 401) return unauthorized(e.message);
  if (e.retry_after_s > 0) return json_refusal(e.http_status, e.code, e.message, e.retry_after_s);
  http_reply r = json_error(e.http_status, e.code, e.message);
  if (e.first_available) {
    // {"error":{"code","message","first_available":N}} (history_truncated)
    json::object inner;
    inner["code"] = e.code;
    inner["message"] = e.message;
    inner["first_available"] = *e.first_available;
    json::object outer;
    outer["error"] = std::move(inner);
    r.body = json::serialize(outer);
  }
  return r;
}

handler_result cursor_reply(const streams::cursor_start& c) {
  if (c.complete) return json_ok("", 204);
  stream_reply r;
  r.stream = c.stream;
  r.next_seq = c.next_sequence;
  r.coalesce = c.coalesce;
  if (c.history_truncated_at)
    r.preamble = core::encode_sse_event(0, "notice",
                                        "{\"code\":\"history_truncated\",\"first_available\":" +
                                            std::to_string(*c.history_truncated_at) + "}");
  return r;
}

streams::subscribe_input subscribe_input_of(const request_context& req) {
  streams::subscribe_input in;
  in.last_event_id = req.last_event_id;
  in.coalesce = req.param("coalesce") != std::optional<std::string_view>("false");
  return in;
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

router::router(streams::stream_service& service, metrics& m, const server_config& config)
    : service_(service), metrics_(m), config_(config) {
  loopback_bind_ = is_loopback_host(config.host);
  if (config.auth.mode == auth::auth_mode::jwt) {
    if (service.verifier() == nullptr)
      throw std::logic_error("--auth jwt: the stream service was built without the verifier");
  } else if (!loopback_bind_ && !config.auth.insecure_no_auth) {
    throw std::runtime_error(
        "refusing to listen on " + config.host +
        " without access control: anyone who reaches it could read, publish and cancel every "
        "stream and start agent runs. Use --auth jwt (see docs/security.md), or "
        "--insecure-no-auth to accept the risk.");
  }
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
  const auth::verifier* verifier = service_.verifier();
  if (!verifier) {
    // Immutable and a function of the address alone: this thread's last one
    // serves the next request from the same address (building one is three
    // allocations).
    thread_local std::shared_ptr<const auth::principal> last;
    if (!last || last->subject != req.client_address)
      last = auth::principal::anyone(req.client_address);
    req.principal = last;
    req.subject = req.client_address;
    return std::nullopt;
  }
  auto token = token_of(req);
  if (!token) return std::nullopt;  // anonymous: routes that need a token answer 401
  auto out = verifier->verify(*token, unix_now());
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

void router::serve_static(std::filesystem::path root) {
  static_.emplace(std::move(root));
}

void router::add(std::string method, std::string path, route_handler handler) {
  routes_[{std::move(method), std::move(path)}] = std::move(handler);
}

void router::add_run_route(std::string path, std::string endpoint) {
  add("POST", std::move(path),
      [this, endpoint = std::move(endpoint)](request_context& req) { return run(req, endpoint); });
}

handler_result router::dispatch(request_context& req) {
  if (req.method == "OPTIONS") return preflight(req);
  // (A token verified at admit() may have expired since.)
  if (auto e = service_.check_expiry(req.principal.get())) return error_reply(*e);
  auto need_token = [&]() -> std::optional<http_reply> {
    if (auto e = service_.check_caller(req.principal.get())) return error_reply(*e);
    return std::nullopt;
  };
  if (auto it = routes_.find({std::string(req.method), req.path}); it != routes_.end()) {
    // Producers (agent runs, benchmarks) make the server do work: "run".
    if (auto e = service_.check_run(req.principal.get())) return error_reply(*e);
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
      if (!req.principal->admin)
        return error_reply(streams::forbidden("/metrics needs an admin token (sluice.admin)"));
    }
    auto c = service_.registry().counts();
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
    if (key.second == req.path) return json_error(405, "method_not_allowed", "use " + key.first);
  if (static_ && (req.method == "GET" || req.method == "HEAD") && !path.starts_with("/v1/"))
    if (auto file = static_->serve(path)) return std::move(*file);
  return json_error(404, "not_found", "no such endpoint");
}

handler_result router::publish(request_context& req, std::string_view id) {
  streams::publish_input in;
  in.type = req.param("event").value_or(core::default_event_type);
  in.final = is_true(req.param("final"));
  in.delta_of = req.param("delta");
  in.delta_field = req.param("delta_field").value_or("text");
  in.body = req.body;
  in.ndjson = req.content_type.starts_with("application/x-ndjson");
  const bool ndjson = in.ndjson;
  return op_reply<streams::publish_result>(
      [&](auto done) { service_.publish_async(req.principal, id, in, std::move(done)); },
      [ndjson](streams::op_result<streams::publish_result> out) -> handler_result {
        if (!out) return error_reply(out.error());
        if (!ndjson)
          return with_durable_wait(
              json_ok("{\"sequence\":" + std::to_string(out->first_sequence) + "}"),
              std::move(out->wait_durable));
        std::string body = "{\"sequences\":[";
        for (std::uint64_t s = out->first_sequence; s <= out->last_sequence; ++s) {
          if (s != out->first_sequence) body += ',';
          body += std::to_string(s);
        }
        body += "]}";
        return with_durable_wait(json_ok(std::move(body)), std::move(out->wait_durable));
      });
}

handler_result router::subscribe(request_context& req, std::shared_ptr<core::stream_log> log) {
  auto c = service_.open_cursor(std::move(log), subscribe_input_of(req));
  if (!c) return error_reply(c.error());
  return cursor_reply(*c);
}

handler_result router::subscribe_route(request_context& req, std::string_view id) {
  return op_reply<streams::cursor_start>(
      [&](auto done) {
        service_.subscribe_async(req.principal, id, subscribe_input_of(req), std::move(done));
      },
      [](streams::op_result<streams::cursor_start> c) -> handler_result {
        if (!c) return error_reply(c.error());
        return cursor_reply(*c);
      });
}

handler_result router::status(request_context& req, std::string_view id) {
  return op_reply<streams::stream_info>(
      [&](auto done) { service_.status_async(req.principal, id, std::move(done)); },
      [](streams::op_result<streams::stream_info> info) -> handler_result {
        if (!info) return error_reply(info.error());
        const core::stream_status& st = info->status;
        json::object o;
        o["id"] = info->id;
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
      });
}

handler_result router::cancel(request_context& req, std::string_view id) {
  return op_reply<streams::cancel_result>(
      [&](auto done) {
        service_.cancel_async(req.principal, id, req.param("reason"), std::move(done));
      },
      [](streams::op_result<streams::cancel_result> out) -> handler_result {
        if (!out) return error_reply(out.error());
        return json_ok("{\"cancelled\":true,\"sequence\":" + std::to_string(out->sequence) + "}");
      });
}

handler_result router::share_link(request_context& req, std::string_view id) {
  auto link = service_.create_share_link(req.principal.get(), id);
  if (!link) return error_reply(link.error());
  json::object o;
  o["stream"] = link->stream;
  if (!link->token) {
    o["token"] = nullptr;
    o["expires_at"] = nullptr;
    o["url"] = link->path;
    return json_ok(json::serialize(o));
  }
  o["token"] = *link->token;
  o["expires_at"] = link->expires_at;
  // base64url and dots: nothing to escape
  o["url"] = link->path + "?access_token=" + *link->token;
  return json_ok(json::serialize(o));
}

handler_result router::run(request_context& req, std::string_view endpoint) {
  boost::system::error_code ec;
  json::value body = json::parse(req.body, ec);
  if (ec) return json_error(400, "malformed_json", "body is not valid JSON: " + ec.message());
  streams::run_input in;
  in.endpoint = endpoint;
  in.request = &body;
  in.resuming = req.last_event_id.has_value();
  in.executor = req.executor;
  // The reader's start (Last-Event-ID, ?coalesce) is copied: the result may
  // come later, on another thread.
  std::optional<std::string> last;
  if (req.last_event_id) last.emplace(*req.last_event_id);
  const bool coalesce = subscribe_input_of(req).coalesce;
  return op_reply<streams::run_started>(
      [&](auto done) { service_.start_run_async(req.principal, in, std::move(done)); },
      [this, last = std::move(last),
       coalesce](streams::op_result<streams::run_started> run) -> handler_result {
        if (!run) return error_reply(run.error());
        if (!run->wants_stream) return final_event_reply{run->stream};
        // A retried POST (same requestId) resumes after its Last-Event-ID.
        streams::subscribe_input sin;
        if (last) sin.last_event_id = *last;
        sin.coalesce = coalesce;
        auto c = service_.open_cursor(std::move(run->stream), sin);
        if (!c) return error_reply(c.error());
        return cursor_reply(*c);
      });
}

}  // namespace sluice::transport
