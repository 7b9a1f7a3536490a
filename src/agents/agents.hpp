// The agents behind POST /AutoAgent and the deep-search tool behind
// POST /v1/tool/deepsearch. Each is a coroutine that reports through a
// printer and returns normally; the caller (run_service) guarantees exactly
// one final message (result, error or cancelled).
//
// Agent types: plan_solve (3), react (5), deepsearch. react needs a model.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "agents/deepsearch.hpp"
#include "agents/printer.hpp"

namespace sluice::agents {

enum class agent_kind { plan_solve, react, deepsearch };

// "plan_solve" / "3", "react" / "5", "deepsearch"; nullopt otherwise.
std::optional<agent_kind> parse_agent_kind(std::string_view name);
std::string_view to_string(agent_kind k);

struct agent_request {
  std::string request_id;
  std::string owner;  // the subject starting the run: its stream's owner
  std::string query;
  agent_kind kind = agent_kind::plan_solve;
  int max_steps = 5;  // react
  int max_loop = 1;   // deep search loops (model only)
};

// Runs an agent; sends its messages and, unless cancelled, the final
// `result` (or `error`) message.
boost::asio::awaitable<void> run_agent(const agent_env& env, agent_request request, printer& out);

// The deep-search tool in the seed's format (event type "data"): status
// stages, a search message, answer deltas, then a final message with the
// whole answer, sub-queries and documents.
boost::asio::awaitable<void> run_deepsearch_tool(const agent_env& env, agent_request request,
                                                 printer& out);

}  // namespace sluice::agents
