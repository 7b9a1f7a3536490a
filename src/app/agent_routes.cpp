#include "app/agent_routes.hpp"

#include <boost/json/parse.hpp>

#include "core/stream_id.hpp"
#include "streams/stream_service.hpp"

namespace sluice::app {

namespace json = boost::json;

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

// Agent runs as the stream op layer's run_launcher: parsing here, access and
// attach checks in streams::stream_service::start_run.
class agent_launcher final : public streams::run_launcher {
 public:
  explicit agent_launcher(agents::run_service& runs) : runs_(runs) {}

  streams::op_result<streams::run_plan> plan(std::string_view endpoint,
                                             const json::value& request) const override {
    const bool tool = endpoint == "deepsearch_tool";
    auto ar = std::make_shared<agents::agent_request>();
    bool stream = true;
    if (auto err = parse_agent_request(request, tool, runs_.env(), *ar, stream))
      return streams::op_error{err->code, err->status, err->message, 0};
    streams::run_plan p;
    p.request_id = ar->request_id;
    p.wants_stream = stream;
    p.launch = [&runs = runs_, ar, tool](
                   const boost::asio::any_io_executor& ex,
                   std::string_view owner) -> streams::op_result<streams::run_started> {
      ar->owner = owner;
      // A new run would fail its first search at once: refuse it before it
      // starts (a retry attaching to a run is not refused).
      if (!runs.registry().find(ar->request_id) && runs.env().search != nullptr &&
          runs.env().search->busy())
        return refusal({"search_busy", 503, "the search pool's queue is full; retry later", 0});
      auto run = runs.start(
          *ar, tool ? agents::run_endpoint::deepsearch_tool : agents::run_endpoint::agent, ex,
          ar->owner);
      if (!run) return refusal(run_refusal(run.error()));
      return streams::run_started{run->log, run->created, true};
    };
    return p;
  }

 private:
  // Why a run could not start (see docs/security.md, Resource budgets).
  static streams::op_error run_refusal(const boost::system::error_code& ec) {
    if (ec == agents::make_error_code(agents::run_error::too_many_runs))
      return {"too_many_runs", 503, "the limit of agent runs at once is reached (--max-runs)", 0};
    if (ec == agents::make_error_code(agents::run_error::too_many_runs_for_subject))
      return {"too_many_runs_for_subject", 429,
              "this subject runs as many agents at once as it may (--max-runs-per-subject)", 0};
    // The stream budgets answer as the stream ops do (one place decides).
    return streams::registry_refusal(ec);
  }
  // Every refusal of a start carries Retry-After: stream and memory budgets
  // free slowly (streams age out); runs and searches end sooner.
  static streams::op_error refusal(streams::op_error e) {
    const bool slow =
        e.http_status == 429 || e.code == "memory_budget_exceeded" || e.code == "too_many_streams";
    e.retry_after_s = slow ? 5 : 1;
    return e;
  }

  agents::run_service& runs_;
};

void install_launcher(transport::http_server& server, agents::run_service& runs) {
  server.set_run_launcher(std::make_shared<const agent_launcher>(runs));
}

}  // namespace

void add_agent_routes(transport::http_server& server, agents::run_service& runs) {
  install_launcher(server, runs);
  auto& routes = server.routes();
  routes.add_run_route("/AutoAgent", "agent");
  routes.add_run_route("/v1/agent/runs", "agent");
  routes.add_run_route("/v1/tool/deepsearch", "deepsearch_tool");
}

void add_agent_ws_start(transport::http_server& server, agents::run_service& runs) {
  install_launcher(server, runs);
}

}  // namespace sluice::app
