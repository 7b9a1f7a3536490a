#include "streams/stream_service.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <stdexcept>
#include <vector>

#include "core/coalescer.hpp"
#include "core/stream_id.hpp"

namespace sluice::streams {

namespace json = boost::json;

op_error forbidden(std::string message) {
  return {"forbidden", 403, std::move(message), 0};
}

op_error stream_not_found() {
  return {"stream_not_found", 404, "no such stream", 0};
}

op_error registry_refusal(const boost::system::error_code& ec) {
  using core::registry_error;
  if (ec == core::make_error_code(registry_error::too_many_streams_for_owner))
    return {"too_many_streams_for_subject", 429,
            "this subject holds as many streams as it may (--max-streams-per-subject)", 5};
  if (ec == core::make_error_code(registry_error::memory_budget_exceeded))
    return {"memory_budget_exceeded", 503,
            "the server's memory budget for retained events is reached", 5};
  if (ec == core::make_error_code(registry_error::already_exists))
    return {"stream_exists", 409, "the stream already exists", 0};
  return {"too_many_streams", 503, "the stream limit is reached", 5};
}

namespace {

op_error error(std::string code, unsigned status, std::string message) {
  return {std::move(code), status, std::move(message), 0};
}

op_error unauthorized(std::string message) {
  return error("unauthorized", 401, std::move(message));
}

op_error invalid_last_event_id() {
  return error("invalid_last_event_id", 400,
               "Last-Event-ID must be a sequence number (N, or N-EPOCH)");
}

op_error invalid_stream_id() {
  return error("invalid_stream_id", 400, "stream id must match [A-Za-z0-9._:-]{1,128}");
}

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
    std::size_t n = c < 0x80           ? 1
                    : (c >> 5) == 0x6  ? 2
                    : (c >> 4) == 0xE  ? 3
                    : (c >> 3) == 0x1E ? 4
                                       : 0;
    if (n == 0 || i + n > s.size() || (n == 1 && (c < 0x20 || c == 0x7F)) || (n == 2 && c < 0xC2))
      return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Attaching to a run needs ownership or a subscribe pattern covering it.
bool may_attach(const auth::principal& who, const core::stream_log& log) {
  return who.owns(log.owner()) || who.may_subscribe(log.id());
}

}  // namespace

stream_service::stream_service(core::stream_registry& registry, service_config config,
                               op_counters* counters)
    : registry_(registry), config_(std::move(config)), counters_(counters) {
  if (config_.link_ttl_s <= 0 || config_.link_ttl_s > 366LL * 86'400)
    throw std::runtime_error("--link-ttl-s must be 1..31622400");
}

std::optional<op_error> stream_service::check_expiry(const auth::principal* who) const {
  if (who && who->expires_at != 0 && who->expires_at + auth::clock_skew_s <= unix_now())
    return unauthorized("the token has expired");
  return std::nullopt;
}

std::optional<op_error> stream_service::check_caller(const auth::principal* who) const {
  if (auto e = check_expiry(who)) return e;
  if (!who) return unauthorized("this endpoint needs a token (Authorization: Bearer)");
  return std::nullopt;
}

std::optional<op_error> stream_service::check_run(const auth::principal* who) const {
  if (auto e = check_caller(who)) return e;
  if (!who->run) return forbidden("this token may not start runs (sluice.run)");
  return std::nullopt;
}

bool stream_service::may_read(const auth::principal& who, std::string_view id,
                              const std::shared_ptr<core::stream_log>& existing) const {
  return who.may_subscribe(id) || (existing && who.owns(existing->owner()));
}

namespace {

// What publish and prepare_publish both check before touching a stream: the
// target and event name, then every JSON value of the body (one, or one per
// NDJSON line), each handed to `sink` with its delta when the publish is one.
// All or nothing: an error is returned before any stream is touched.
template <class Sink>
std::optional<op_error> parse_publish_body(const publish_input& in, Sink&& sink) {
  if (!core::is_valid_event_name(in.type))
    return error("invalid_event_name", 400, "event must match [A-Za-z0-9._:-]{1,128}");
  if (in.delta_of && !core::is_valid_event_name(*in.delta_of))
    return error("invalid_delta", 400, "delta (a message id) must match [A-Za-z0-9._:-]{1,128}");
  std::size_t values = 0;
  auto add_value = [&](std::string_view text, std::size_t line) -> std::optional<op_error> {
    boost::system::error_code ec;
    json::value v = json::parse(text, ec);
    if (ec) {
      std::string msg = "body is not valid JSON";
      if (in.ndjson) msg += " (line " + std::to_string(line) + ")";
      msg += ": " + ec.message();
      return error("malformed_json", 400, std::move(msg));
    }
    ++values;
    if (!in.delta_of) {
      sink(text, std::optional<core::delta_event>());
      return std::nullopt;
    }
    if (!v.is_object()) return error("invalid_delta", 400, "a delta's data must be a JSON object");
    auto d = core::make_delta_event(in.type, *in.delta_of, in.delta_field, v.as_object());
    if (!d)
      return error("invalid_delta", 400,
                   "a delta's data must have a string member \"" + std::string(in.delta_field) +
                       "\"");
    sink(text, std::optional<core::delta_event>(std::move(*d)));
    return std::nullopt;
  };
  if (!in.ndjson) return add_value(trim_json_space(in.body), 1);
  std::string_view body = in.body;
  std::size_t line = 0;
  while (!body.empty()) {
    ++line;
    auto nl = body.find('\n');
    std::string_view l = trim_json_space(body.substr(0, nl));
    body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
    if (l.empty()) continue;
    if (auto err = add_value(l, line)) return err;
  }
  if (values == 0) return error("malformed_json", 400, "no JSON value in the body");
  return std::nullopt;
}

}  // namespace

std::optional<op_error> stream_service::prepare_publish(const auth::principal* who,
                                                        std::string_view id,
                                                        const publish_input& in,
                                                        std::vector<owned_event>& events) const {
  if (auto e = check_caller(who)) return *e;
  if (!core::is_valid_stream_id(id)) return invalid_stream_id();
  if (!who->may_publish(id))
    return forbidden("this token may not publish to this stream (sluice.publish)");
  return parse_publish_body(in, [&](std::string_view text, std::optional<core::delta_event> d) {
    // A delta is stored as what the log would write for it (its compact JSON).
    if (!d) return events.push_back({std::string(in.type), std::string(text)});
    events.push_back(
        {std::string(in.type), std::move(d->json), std::move(d->message_id), std::move(d->field)});
  });
}

op_result<publish_result> stream_service::publish(const auth::principal* who, std::string_view id,
                                                  const publish_input& in) {
  if (auto e = check_caller(who)) return *e;
  if (!core::is_valid_stream_id(id)) return invalid_stream_id();
  if (!who->may_publish(id))
    return forbidden("this token may not publish to this stream (sluice.publish)");

  // Parse and validate everything before touching the stream: all or nothing.
  std::vector<std::string_view> texts;
  std::vector<core::delta_event> deltas;
  if (auto err = parse_publish_body(in, [&](std::string_view text,
                                            std::optional<core::delta_event> d) {
        if (d) deltas.push_back(std::move(*d));
        texts.push_back(text);
      }))
    return *err;

  auto log = registry_.get_or_create(id, who->subject);
  if (!log) return registry_refusal(log.error());
  // The memory budget: one relaxed load while under it (finished streams are
  // evicted first when at it).
  if (!registry_.memory_available())
    return registry_refusal(core::make_error_code(core::registry_error::memory_budget_exceeded));
  std::vector<core::publish_item> items(texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    items[i].type = in.type;
    items[i].data = texts[i];
    items[i].delta = in.delta_of ? &deltas[i] : nullptr;
  }
  items.back().final = in.final;
  auto out = (*log)->publish_all(items);
  if (out.status != core::publish_status::ok)
    return error("stream_ended", 409, "the stream has ended; publishing is refused");
  if (counters_) counters_->published(items.size());
  publish_result r{out.first_sequence, out.last_sequence, {}};
  if (core::stream_store* store = registry_.store(); store && store->acks_wait_for_disk())
    r.wait_durable = [store, stream = *log, seq = out.last_sequence](auto done) {
      store->when_durable(*stream, seq, std::move(done));
    };
  return r;
}

op_result<cursor_start> stream_service::open_cursor(std::shared_ptr<core::stream_log> log,
                                                    const subscribe_input& in) {
  const core::stream_status st = log->status();
  cursor_start r;
  r.coalesce = config_.coalesce && in.coalesce;
  if (in.last_event_id) {
    auto last = parse_event_id(*in.last_event_id);
    if (!last) return invalid_last_event_id();
    const core::epoch_info& ep = st.epochs;
    const bool current = last->epoch == ep.current;
    const bool before_boundary =
        ep.boundary != 0 && last->epoch == ep.previous && last->seq < ep.boundary;
    const bool nothing_yet = last->seq == 0 && last->epoch.empty();
    if (!current && !before_boundary && !nothing_yet) {
      op_error e = error("history_truncated", 409,
                         "the stream's history after Last-Event-ID " +
                             core::format_event_id(last->seq, last->epoch) +
                             " was lost (the stream is in another epoch): start again from "
                             "first_available without Last-Event-ID");
      e.first_available = st.first_sequence == 0 ? st.last_sequence + 1 : st.first_sequence;
      return e;
    }
    if (last->seq > st.last_sequence)
      return error("unknown_last_event_id", 409,
                   "Last-Event-ID " + core::format_event_id(last->seq, last->epoch) +
                       " is past the stream's last event " + std::to_string(st.last_sequence));
    if (counters_) counters_->resumed();
    r.complete = last->seq == st.last_sequence && st.state != core::stream_state::open;
    r.next_sequence = last->seq + 1;
  } else {
    r.next_sequence = st.first_sequence == 0 ? st.last_sequence + 1 : st.first_sequence;
    // A new subscriber is told that the start of the stream is gone.
    if (st.first_sequence > 1) r.history_truncated_at = st.first_sequence;
  }
  r.stream = std::move(log);
  return r;
}

op_result<cursor_start> stream_service::subscribe(const auth::principal* who, std::string_view id,
                                                  const subscribe_input& in) {
  if (auto e = check_caller(who)) return *e;
  if (!core::is_valid_stream_id(id)) return invalid_stream_id();
  // A bad Last-Event-ID must not create a stream as a side effect.
  std::optional<event_id> last;
  if (in.last_event_id && !(last = parse_event_id(*in.last_event_id)))
    return invalid_last_event_id();
  auto existing = registry_.find(id);
  // Without a subscribe pattern only the owner reads, and a stream that is
  // not yours looks exactly like one that does not exist.
  if (!may_read(*who, id, existing)) return stream_not_found();
  if (!existing && last && (last->seq > 0 || !last->epoch.empty()))
    return error("unknown_last_event_id", 409,
                 "the stream has no event " + std::string(*in.last_event_id));
  if (existing) return open_cursor(std::move(existing), in);
  // Pending until its first publish: it expires after --pending-stream-s with
  // a final error event (stream_not_started) and counts against the budgets.
  // Subscribing confers no ownership, yet counts against the reader's budget.
  auto log = registry_.get_or_create_pending(id, core::reader_owner(who->subject));
  if (!log) return registry_refusal(log.error());
  return open_cursor(std::move(*log), in);
}

op_result<stream_info> stream_service::status(const auth::principal* who,
                                              std::string_view id) const {
  if (auto e = check_caller(who)) return *e;
  if (!core::is_valid_stream_id(id)) return invalid_stream_id();
  auto log = registry_.find(id);
  if (!log || !may_read(*who, id, log)) return stream_not_found();
  return stream_info{log->id(), log->status()};
}

op_result<cancel_result> stream_service::cancel(const auth::principal* who, std::string_view id,
                                                std::optional<std::string_view> reason) {
  if (auto e = check_caller(who)) return *e;
  if (!core::is_valid_stream_id(id)) return invalid_stream_id();
  auto log = registry_.find(id);
  if (!log || !(who->may_publish(id) || who->owns(log->owner()))) return stream_not_found();
  const std::string_view text = reason.value_or("cancelled by request");
  if (text.size() > 256 || !is_clean_utf8(text))
    return error("invalid_reason", 400, "reason must be UTF-8 text of at most 256 bytes");
  if (!log->cancel(text)) return error("stream_ended", 409, "the stream has already ended");
  return cancel_result{log->status().last_sequence};
}

op_result<share_link> stream_service::create_share_link(const auth::principal* who,
                                                        std::string_view id) const {
  if (auto e = check_caller(who)) return *e;
  if (!core::is_valid_stream_id(id)) return invalid_stream_id();
  auto log = registry_.find(id);
  // Owner only (anyone with --auth none); others cannot tell it exists.
  if (!log || (config_.verifier && !who->owns(log->owner()))) return stream_not_found();
  share_link l;
  l.stream = id;
  l.path = "/v1/streams/" + std::string(id) + "/events";
  if (config_.verifier) {
    const std::int64_t now = unix_now();
    l.token = config_.verifier->mint_link(id, now, config_.link_ttl_s);
    l.expires_at = now + config_.link_ttl_s;
  }
  return l;
}

op_result<run_started> stream_service::start_run(const auth::principal* who, const run_input& in) {
  if (auto e = check_run(who)) return *e;
  if (launcher_ == nullptr)
    return op_error{"start_unavailable", 503, "this server has no producer behind \"start\"", 1};
  if (in.request == nullptr) return error("invalid_request", 400, "a run needs a request");
  auto plan = launcher_->plan(in.endpoint, *in.request);
  if (!plan) return plan.error();
  // Before starting: a resume of a run that does not exist, or attaching to
  // a run that is not the caller's to read, is the same 404 (no existence
  // oracle).
  auto existing = registry_.find(plan->request_id);
  if ((existing && !may_attach(*who, *existing)) || (!existing && in.resuming))
    return stream_not_found();
  auto run = plan->launch(in.executor, who->subject);
  if (!run) return run.error();
  // The run may have appeared between the check and the start.
  if (!run->created && !may_attach(*who, *run->stream)) return stream_not_found();
  run->wants_stream = plan->wants_stream;
  return std::move(*run);
}

}  // namespace sluice::streams

// ---- asynchronous ops ------------------------------------------------------

namespace sluice::streams {

void stream_service::publish_async(std::shared_ptr<const auth::principal> who, std::string_view id,
                                   const publish_input& in, op_callback<publish_result> done) {
  if (!backend_) return done(publish(who.get(), id, in));
  std::vector<owned_event> events;
  if (auto e = prepare_publish(who.get(), id, in, events)) return done(std::move(*e));
  backend_->publish(std::string(id), who->subject, std::move(events), in.final,
                    [this, done = std::move(done)](op_result<publish_result> r) {
                      if (r && counters_)
                        counters_->published(r->last_sequence - r->first_sequence + 1);
                      done(std::move(r));
                    });
}

void stream_service::subscribe_async(std::shared_ptr<const auth::principal> who,
                                     std::string_view id, const subscribe_input& in,
                                     op_callback<cursor_start> done) {
  if (!backend_) return done(subscribe(who.get(), id, in));
  if (auto e = check_caller(who.get())) return done(std::move(*e));
  if (!core::is_valid_stream_id(id)) return done(invalid_stream_id());
  std::optional<core::event_id> last;
  if (in.last_event_id && !(last = parse_event_id(*in.last_event_id)))
    return done(invalid_last_event_id());
  const bool resuming = last && (last->seq > 0 || !last->epoch.empty());
  std::optional<std::uint64_t> after;
  if (last) after = last->seq;
  // The reader's options outlive the request's buffers.
  std::optional<std::string> last_text;
  if (in.last_event_id) last_text.emplace(*in.last_event_id);
  const bool coalesce = in.coalesce;
  auto check = [who, sid = std::string(id)](const std::string& owner) -> std::optional<op_error> {
    if (who->may_subscribe(sid) || who->owns(owner)) return std::nullopt;
    return stream_not_found();
  };
  backend_->open(std::string(id), after, !resuming, std::move(check),
                 [this, resuming, last_text = std::move(last_text), coalesce,
                  done = std::move(done)](op_result<std::shared_ptr<core::stream_log>> r) {
                   if (!r) {
                     if (r.error().code == "stream_not_found" && resuming)
                       return done(op_error{"unknown_last_event_id", 409,
                                            "the stream has no event " + *last_text, 0});
                     return done(r.error());
                   }
                   subscribe_input again;
                   if (last_text) again.last_event_id = *last_text;
                   again.coalesce = coalesce;
                   done(open_cursor(std::move(*r), again));
                 });
}

void stream_service::status_async(std::shared_ptr<const auth::principal> who, std::string_view id,
                                  op_callback<stream_info> done) {
  if (!backend_) return done(status(who.get(), id));
  if (auto e = check_caller(who.get())) return done(std::move(*e));
  if (!core::is_valid_stream_id(id)) return done(invalid_stream_id());
  backend_->status(
      std::string(id),
      [who, sid = std::string(id)](const std::string& owner) -> std::optional<op_error> {
        if (who->may_subscribe(sid) || who->owns(owner)) return std::nullopt;
        return stream_not_found();
      },
      std::move(done));
}

void stream_service::cancel_async(std::shared_ptr<const auth::principal> who, std::string_view id,
                                  std::optional<std::string_view> reason,
                                  op_callback<cancel_result> done) {
  if (!backend_) return done(cancel(who.get(), id, reason));
  if (auto e = check_caller(who.get())) return done(std::move(*e));
  if (!core::is_valid_stream_id(id)) return done(invalid_stream_id());
  const std::string_view text = reason.value_or("cancelled by request");
  if (text.size() > 256 || !is_clean_utf8(text))
    return done(error("invalid_reason", 400, "reason must be UTF-8 text of at most 256 bytes"));
  backend_->cancel(
      std::string(id), std::string(text),
      [who, sid = std::string(id)](const std::string& owner) -> std::optional<op_error> {
        if (who->may_publish(sid) || who->owns(owner)) return std::nullopt;
        return stream_not_found();
      },
      std::move(done));
}

void stream_service::start_run_async(std::shared_ptr<const auth::principal> who,
                                     const run_input& in, op_callback<run_started> done) {
  if (!backend_) return done(start_run(who.get(), in));
  if (auto e = check_run(who.get())) return done(std::move(*e));
  if (launcher_ == nullptr)
    return done(
        op_error{"start_unavailable", 503, "this server has no producer behind \"start\"", 1});
  if (in.request == nullptr) return done(error("invalid_request", 400, "a run needs a request"));
  auto plan = launcher_->plan(in.endpoint, *in.request);
  if (!plan) return done(plan.error());
  const bool wants_stream = plan->wants_stream;
  auto shared_plan = std::make_shared<run_plan>(std::move(*plan));
  auto check =
      [who, rid = shared_plan->request_id](const std::string& owner) -> std::optional<op_error> {
    if (who->owns(owner) || who->may_subscribe(rid)) return std::nullopt;
    return stream_not_found();
  };
  auto launch = [shared_plan, ex = in.executor, subject = who->subject]() {
    return shared_plan->launch(ex, subject);
  };
  backend_->start_run(shared_plan->request_id, who->subject, in.resuming, std::move(check),
                      std::move(launch), in.executor,
                      [wants_stream, done = std::move(done)](op_result<run_started> r) {
                        if (r) r->wants_stream = wants_stream;
                        done(std::move(r));
                      });
}

}  // namespace sluice::streams
