#include "app/agent_routes.hpp"

#include <boost/json/parse.hpp>

#include "core/stream_id.hpp"

namespace sluice::app {

namespace json = boost::json;
using transport::json_error;

namespace {

constexpr std::size_t max_query_bytes = 32 * 1024;

const json::value* member(const json::object& o, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (const json::value* v = o.if_contains(n)) return v;
  return nullptr;
}

// An integer member in [lo, hi] (absent or null: `dflt`). Anything else (a
// fraction, a string, a number out of range, however large) sets `bad`:
// every number from the network is range-checked before it is narrowed.
std::optional<int> int_member(const json::object& o, std::initializer_list<const char*> names,
                              int dflt, int lo, int hi, bool& bad) {
  const json::value* v = member(o, names);
  if (v == nullptr || v->is_null()) return dflt;
  // (Boost.JSON holds an integer as uint64 only when it exceeds INT64_MAX.)
  if (v->is_int64() && v->get_int64() >= lo && v->get_int64() <= hi)
    return static_cast<int>(v->get_int64());
  bad = true;
  return std::nullopt;
}

}  // namespace

std::optional<agent_request_error> parse_agent_request(const json::value& v, bool tool,
                                                       const agents::agent_env& env,
                                                       agents::agent_request& req, bool& stream) {
  auto json_error = [](unsigned status, std::string_view code, std::string message) {
    return agent_request_error{status, std::string(code), std::move(message)};
  };
  if (!v.is_object()) return json_error(400, "invalid_request", "body must be a JSON object");
  const json::object& o = v.as_object();

  const json::value* q = member(o, {"query"});
  if (q == nullptr || !q->is_string() || q->as_string().empty())
    return json_error(400, "invalid_request", "\"query\" must be a non-empty string");
  if (q->as_string().size() > max_query_bytes)
    return json_error(400, "query_too_long", "\"query\" is limited to 32 KiB");
  req.query = q->as_string();

  const json::value* id = tool ? member(o, {"request_id", "requestId"}) : member(o, {"requestId", "request_id"});
  if (id != nullptr && !id->is_null()) {
    if (!id->is_string() || !core::is_valid_stream_id(id->as_string()))
      return json_error(400, "invalid_request_id", "requestId must match [A-Za-z0-9._:-]{1,128}");
    req.request_id = id->as_string();
  } else {
    req.request_id = agents::run_service::new_request_id();
  }

  if (tool) {
    req.kind = agents::agent_kind::deepsearch;
  } else {
    const json::value* t = member(o, {"agentType", "agent_type"});
    std::string type = "plan_solve";
    // Numbers as in the seed's API (3, 5); any other integer, however large,
    // is just an unknown type (never narrowed: 2^63 once ended the process).
    if (t != nullptr && t->is_string()) type = t->get_string();
    else if (t != nullptr && t->is_int64()) type = std::to_string(t->get_int64());
    else if (t != nullptr && t->is_uint64()) type = std::to_string(t->get_uint64());
    else if (t != nullptr && !t->is_null())
      return json_error(400, "invalid_agent_type", "agentType must be a string or number");
    auto kind = agents::parse_agent_kind(type);
    if (!kind)
      return json_error(400, "invalid_agent_type",
                        "agentType must be plan_solve (3), react (5) or deepsearch");
    if (*kind == agents::agent_kind::react && env.model == nullptr)
      return json_error(400, "agent_needs_model",
                        "the react agent needs a model: start sluice with --llm openai");
    req.kind = *kind;
  }
  bool bad = false;
  auto max_loop = int_member(o, {"max_loop", "maxLoop"}, 1, 1, 5, bad);
  auto max_steps = int_member(o, {"max_steps", "maxSteps"}, 5, 1, 20, bad);
  if (bad)
    return json_error(400, "invalid_request", "max_loop must be an integer 1..5 and max_steps 1..20");
  req.max_loop = *max_loop;
  req.max_steps = *max_steps;

  const json::value* s = tool ? member(o, {"stream"}) : member(o, {"isStream", "stream"});
  stream = true;
  if (s != nullptr && !s->is_null()) {
    if (!s->is_bool()) return json_error(400, "invalid_request", "isStream/stream must be a boolean");
    stream = s->as_bool();
  }
  return std::nullopt;
}

namespace {

using request_error = agent_request_error;

// Attaching to an existing run (same requestId) needs ownership or a
// subscribe pattern covering it; otherwise the run looks like one that does
// not exist.
bool may_attach(const auth::principal& who, const core::stream_log& log) {
  return who.owns(log.owner()) || who.may_subscribe(log.id());
}

// Before starting: a resume (Last-Event-ID) of a run that does not exist, or
// is not the caller's to read, is the same 404 (no existence oracle).
std::optional<request_error> check_attach(core::stream_registry& registry,
                                          const auth::principal& who,
                                          const agents::agent_request& ar, bool resuming) {
  auto existing = registry.find(ar.request_id);
  if ((existing && !may_attach(who, *existing)) || (!existing && resuming))
    return request_error{404, "stream_not_found", "no such stream"};
  return std::nullopt;
}

// Why a run could not start, as a refusal with Retry-After (see docs/security.md, Resource budgets).
request_error run_refusal(const boost::system::error_code& ec) {
  if (ec == agents::make_error_code(agents::run_error::too_many_runs))
    return {503, "too_many_runs", "the limit of agent runs at once is reached (--max-runs)"};
  if (ec == agents::make_error_code(agents::run_error::too_many_runs_for_subject))
    return {429, "too_many_runs_for_subject",
            "this subject runs as many agents at once as it may (--max-runs-per-subject)"};
  // The stream budgets answer as the stream routes do (one place decides).
  auto r = transport::registry_refusal(ec);
  boost::system::error_code pec;
  json::value v = json::parse(r.body, pec);
  const json::value* e = !pec && v.is_object() ? v.as_object().if_contains("error") : nullptr;
  const json::value* code = e && e->is_object() ? e->as_object().if_contains("code") : nullptr;
  const json::value* msg = e && e->is_object() ? e->as_object().if_contains("message") : nullptr;
  if (code == nullptr || !code->is_string() || msg == nullptr || !msg->is_string())
    return {503, "too_many_streams", ec.message()};
  return {r.status, std::string(code->as_string()), std::string(msg->as_string())};
}

// A new run would fail its first search at once: refuse it before it starts.
std::optional<request_error> search_refusal(const agents::run_service& runs) {
  if (runs.env().search == nullptr || !runs.env().search->busy()) return std::nullopt;
  return request_error{503, "search_busy", "the search pool's queue is full; retry later"};
}

transport::http_reply refusal_reply(const request_error& e) {
  // Stream and memory budgets free slowly (streams age out); runs and
  // searches end sooner.
  const bool slow = e.status == 429 || e.code == "memory_budget_exceeded" ||
                    e.code == "too_many_streams";
  return transport::json_refusal(e.status, e.code, e.message, slow ? 5 : 1);
}

transport::route_handler make_handler(transport::router& routes, agents::run_service& runs,
                                      bool tool) {
  return [&routes, &runs, tool](transport::request_context& req) -> transport::handler_result {
    agents::agent_request ar;
    bool stream = true;
    boost::system::error_code ec;
    json::value body = json::parse(req.body, ec);
    if (ec) return json_error(400, "malformed_json", "body is not valid JSON: " + ec.message());
    if (auto err = parse_agent_request(body, tool, runs.env(), ar, stream))
      return json_error(err->status, err->code, err->message);
    // The router let only tokens with "run" this far.
    if (req.principal == nullptr) return transport::unauthorized("this endpoint needs a token");
    if (auto err = check_attach(routes.registry(), *req.principal, ar, req.last_event_id.has_value()))
      return json_error(err->status, err->code, err->message);
    ar.owner = req.principal->subject;
    if (!runs.registry().find(ar.request_id))  // a new run, not a retry attaching to one
      if (auto busy = search_refusal(runs)) return refusal_reply(*busy);
    auto run = runs.start(ar, tool ? agents::run_endpoint::deepsearch_tool : agents::run_endpoint::agent,
                          req.executor, ar.owner);
    if (!run) return refusal_reply(run_refusal(run.error()));
    if (!run->created && !may_attach(*req.principal, *run->log))
      return json_error(404, "stream_not_found", "no such stream");
    if (!stream) return transport::final_event_reply{run->log};
    // A retried POST (same requestId) resumes after its Last-Event-ID.
    return routes.subscribe(req, run->log);
  };
}

}  // namespace

void add_agent_routes(transport::http_server& server, agents::run_service& runs) {
  auto& routes = server.routes();
  routes.add("POST", "/AutoAgent", make_handler(routes, runs, false));
  routes.add("POST", "/v1/agent/runs", make_handler(routes, runs, false));
  routes.add("POST", "/v1/tool/deepsearch", make_handler(routes, runs, true));
}

void add_agent_ws_start(transport::http_server& server, agents::run_service& runs) {
  server.set_ws_start_handler(
      [&runs, &server](const json::value& request, const boost::asio::any_io_executor& ex,
                       const auth::principal& who) -> transport::ws_start_result {
        if (!who.run)
          return transport::ws_start_error{"forbidden", "this token may not start runs (sluice.run)"};
        agents::agent_request ar;
        bool stream = true;  // a WebSocket start always streams
        if (auto err = parse_agent_request(request, false, runs.env(), ar, stream))
          return transport::ws_start_error{err->code, err->message};
        if (auto err = check_attach(server.registry(), who, ar, false))
          return transport::ws_start_error{err->code, err->message};
        ar.owner = who.subject;
        if (!runs.registry().find(ar.request_id))
          if (auto busy = search_refusal(runs))
            return transport::ws_start_error{busy->code, busy->message};
        auto run = runs.start(ar, agents::run_endpoint::agent, ex, ar.owner);
        if (!run) {
          auto e = run_refusal(run.error());
          return transport::ws_start_error{e.code, e.message};
        }
        if (!run->created && !may_attach(who, *run->log))
          return transport::ws_start_error{"stream_not_found", "no such stream"};
        return transport::ws_start_ok{run->log, run->created};
      });
}

}  // namespace sluice::app
