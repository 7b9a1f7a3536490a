// Fuzz target for agent run requests (POST /AutoAgent, /v1/agent/runs,
// /v1/tool/deepsearch and WebSocket start share the parser): any JSON text,
// parsed with the error-code overload as the handlers do, then
// parse_agent_request for both endpoint kinds.
// Invariants: no crash (the 2^63 agentType once ended the process); an
// accepted request has a non-empty query of at most 32 KiB, a valid id and
// in-range numbers; a refused one has a 4xx status and a code.
#include <boost/json/parse.hpp>
#include <cstdlib>

#include "app/agent_routes.hpp"
#include "core/stream_id.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sluice;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(fuzz::as_view(data, size), ec);
  if (ec) return 0;
  agents::agent_env env;  // no model: react is refused
  for (bool tool : {false, true}) {
    agents::agent_request req;
    bool stream = true;
    auto err = app::parse_agent_request(v, tool, env, req, stream);
    if (err) {
      if (err->status < 400 || err->status > 499 || err->code.empty()) std::abort();
      continue;
    }
    if (req.query.empty() || req.query.size() > 32 * 1024) std::abort();
    if (!core::is_valid_stream_id(req.request_id)) std::abort();
    if (req.max_loop < 1 || req.max_loop > 5 || req.max_steps < 1 || req.max_steps > 20)
      std::abort();
    if (req.kind == agents::agent_kind::react) std::abort();  // needs a model
  }
  return 0;
}
