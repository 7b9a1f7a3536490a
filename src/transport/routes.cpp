#include "transport/routes.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <charconv>

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

http_reply bad_id(std::string_view what) {
  return json_error(400, "invalid_stream_id",
                    std::string(what) + " must match [A-Za-z0-9._:-]{1,128}");
}

}  // namespace

router::router(core::stream_registry& registry, metrics& m, const server_config& config)
    : registry_(registry), metrics_(m), config_(config) {}

void router::serve_static(std::filesystem::path root) { static_.emplace(std::move(root)); }

void router::add(std::string method, std::string path, route_handler handler) {
  routes_[{std::move(method), std::move(path)}] = std::move(handler);
}

handler_result router::dispatch(request_context& req) {
  if (auto it = routes_.find({std::string(req.method), req.path}); it != routes_.end())
    return it->second(req);
  const std::string_view path = req.path;
  if (path == "/healthz") {
    if (req.method != "GET") return json_error(405, "method_not_allowed", "use GET");
    return json_ok(R"({"status":"ok"})");
  }
  if (path == "/metrics") {
    if (req.method != "GET") return json_error(405, "method_not_allowed", "use GET");
    auto c = registry_.counts();
    http_reply r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = metrics_.render(c.open, c.finished, c.cancelled);
    return r;
  }
  std::string_view id, rest;
  if (split_stream_path(path, id, rest)) {
    if (!core::is_valid_stream_id(id)) return bad_id("stream id");
    if (rest.empty()) {
      if (req.method != "GET") return json_error(405, "method_not_allowed", "use GET");
      return status(id);
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
  }
  for (const auto& [key, handler] : routes_)
    if (key.second == req.path)
      return json_error(405, "method_not_allowed", "use " + key.first);
  if (static_ && (req.method == "GET" || req.method == "HEAD") && !path.starts_with("/v1/"))
    if (auto file = static_->serve(path)) return std::move(*file);
  return json_error(404, "not_found", "no such endpoint");
}

handler_result router::publish(request_context& req, std::string_view id) {
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
  if (!ndjson) return json_ok("{\"sequence\":" + std::to_string(out.first_sequence) + "}");
  std::string body = "{\"sequences\":[";
  for (std::uint64_t s = out.first_sequence; s <= out.last_sequence; ++s) {
    if (s != out.first_sequence) body += ',';
    body += std::to_string(s);
  }
  body += "]}";
  return json_ok(std::move(body));
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
  if (!existing && req.last_event_id && *parse_event_id(*req.last_event_id) > 0)
    return json_error(409, "unknown_last_event_id",
                      "the stream has no event " + std::string(*req.last_event_id));
  if (existing) return subscribe(req, std::move(existing));
  // Pending until its first publish: it expires after --pending-stream-s with
  // a final error event (stream_not_started) and counts against the budgets.
  auto log = registry_.get_or_create_pending(id, req.subject);
  if (!log) return registry_refusal(log.error());
  return subscribe(req, std::move(*log));
}

handler_result router::status(std::string_view id) {
  auto log = registry_.find(id);
  if (!log) return json_error(404, "stream_not_found", "no such stream");
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
  if (!log) return json_error(404, "stream_not_found", "no such stream");
  std::string_view reason = req.param("reason").value_or("cancelled by request");
  if (reason.size() > 256 || !is_clean_utf8(reason))
    return json_error(400, "invalid_reason", "reason must be UTF-8 text of at most 256 bytes");
  if (!log->cancel(reason))
    return json_error(409, "stream_ended", "the stream has already ended");
  const auto st = log->status();
  return json_ok("{\"cancelled\":true,\"sequence\":" + std::to_string(st.last_sequence) + "}");
}

}  // namespace sluice::transport
