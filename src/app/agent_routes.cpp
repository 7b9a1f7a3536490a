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

std::optional<std::int64_t> int_member(const json::object& o, std::initializer_list<const char*> names,
                                       std::int64_t dflt, bool& bad) {
  const json::value* v = member(o, names);
  if (v == nullptr || v->is_null()) return dflt;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->as_uint64());
  bad = true;
  return std::nullopt;
}

// A request that cannot start a run: the HTTP status and the error's code and
// message (HTTP answers json_error of them; WebSocket an op error).
struct request_error {
  unsigned status;
  std::string code;
  std::string message;
};

// Parses what both endpoints (and WebSocket start) share; fills `req` or
// returns the error.
std::optional<request_error> parse_request(const json::value& v, bool tool,
                                           const agents::agent_env& env,
                                           agents::agent_request& req, bool& stream) {
  auto json_error = [](unsigned status, std::string_view code, std::string message) {
    return request_error{status, std::string(code), std::move(message)};
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
    if (t != nullptr && t->is_string()) type = t->as_string();
    else if (t != nullptr && (t->is_int64() || t->is_uint64())) type = std::to_string(t->to_number<std::int64_t>());
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
  auto max_loop = int_member(o, {"max_loop", "maxLoop"}, 1, bad);
  auto max_steps = int_member(o, {"max_steps", "maxSteps"}, 5, bad);
  if (bad || *max_loop < 1 || *max_loop > 5 || *max_steps < 1 || *max_steps > 20)
    return json_error(400, "invalid_request", "max_loop must be 1..5 and max_steps 1..20");
  req.max_loop = static_cast<int>(*max_loop);
  req.max_steps = static_cast<int>(*max_steps);

  const json::value* s = tool ? member(o, {"stream"}) : member(o, {"isStream", "stream"});
  stream = true;
  if (s != nullptr && !s->is_null()) {
    if (!s->is_bool()) return json_error(400, "invalid_request", "isStream/stream must be a boolean");
    stream = s->as_bool();
  }
  return std::nullopt;
}

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

transport::route_handler make_handler(transport::router& routes, agents::run_service& runs,
                                      bool tool) {
  return [&routes, &runs, tool](transport::request_context& req) -> transport::handler_result {
    agents::agent_request ar;
    bool stream = true;
    boost::system::error_code ec;
    json::value body = json::parse(req.body, ec);
    if (ec) return json_error(400, "malformed_json", "body is not valid JSON: " + ec.message());
    if (auto err = parse_request(body, tool, runs.env(), ar, stream))
      return json_error(err->status, err->code, err->message);
    // The router let only tokens with "run" this far.
    if (req.principal == nullptr) return transport::unauthorized("this endpoint needs a token");
    if (auto err = check_attach(routes.registry(), *req.principal, ar, req.last_event_id.has_value()))
      return json_error(err->status, err->code, err->message);
    ar.owner = req.principal->subject;
    auto run = runs.start(ar, tool ? agents::run_endpoint::deepsearch_tool : agents::run_endpoint::agent,
                          req.executor);
    if (!run) return json_error(503, "too_many_streams", "the stream limit is reached");
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
        if (auto err = parse_request(request, false, runs.env(), ar, stream))
          return transport::ws_start_error{err->code, err->message};
        if (auto err = check_attach(server.registry(), who, ar, false))
          return transport::ws_start_error{err->code, err->message};
        ar.owner = who.subject;
        auto run = runs.start(ar, agents::run_endpoint::agent, ex);
        if (!run) return transport::ws_start_error{"too_many_streams", "the stream limit is reached"};
        if (!run->created && !may_attach(who, *run->log))
          return transport::ws_start_error{"stream_not_found", "no such stream"};
        return transport::ws_start_ok{run->log, run->created};
      });
}

}  // namespace sluice::app
