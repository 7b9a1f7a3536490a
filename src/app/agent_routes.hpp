// Agent runs behind the stream op layer: an agents run_launcher (parses the
// seed's request bodies, starts or finds the run) installed in the server's
// streams::stream_service, which decides access and attach once; the HTTP
// run routes POST /AutoAgent (alias /v1/agent/runs) and POST
// /v1/tool/deepsearch answer with the run's SSE stream, or for
// isStream/stream false with the final message as JSON.
#pragma once

#include <boost/json/value.hpp>
#include <optional>
#include <string>

#include "agents/run_service.hpp"
#include "transport/http_server.hpp"

namespace sluice::app {

// Installs the launcher and adds the HTTP run routes. `runs` must outlive
// the server's requests.
void add_agent_routes(transport::http_server& server, agents::run_service& runs);

// A request that cannot start a run: the HTTP status and the error's code and
// message (HTTP answers json_error of them; WebSocket an op error).
struct agent_request_error {
  unsigned status;
  std::string code;
  std::string message;
};

// Parses the JSON of a run request, as both endpoints and WebSocket start
// share it (`tool`: POST /v1/tool/deepsearch's names). Fills `req` and
// `stream`, or returns the error; every number is range-checked. A request
// without requestId gets a fresh one. No other effect (fuzzed by
// fuzz/agent_request_fuzz.cpp).
std::optional<agent_request_error> parse_agent_request(const boost::json::value& v, bool tool,
                                                       const agents::agent_env& env,
                                                       agents::agent_request& req, bool& stream);

// Installs the launcher only: {"op":"start","request":{...AutoAgent body...}}
// on /v1/ws then starts (or attaches to) a run the same way POST /AutoAgent
// does (add_agent_routes installs it too).
void add_agent_ws_start(transport::http_server& server, agents::run_service& runs);

}  // namespace sluice::app
