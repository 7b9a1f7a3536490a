// POST /AutoAgent (alias /v1/agent/runs) and POST /v1/tool/deepsearch: parse
// the seed's request bodies, start (or attach to) a run, answer with its SSE
// stream — or, for isStream/stream false, with the final message as JSON.
#pragma once

#include "agents/run_service.hpp"
#include "transport/http_server.hpp"

namespace sluice::app {

void add_agent_routes(transport::http_server& server, agents::run_service& runs);

// {"op":"start","request":{...AutoAgent body...}} on /v1/ws starts (or
// attaches to) a run the same way POST /AutoAgent does.
void add_agent_ws_start(transport::http_server& server, agents::run_service& runs);

}  // namespace sluice::app
