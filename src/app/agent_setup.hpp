// Builds what agents need from the options: the corpus index (built at start
// when absent), the search pool and the model provider.
#pragma once

#include <memory>

#include "agents/deepsearch.hpp"
#include "app/config.hpp"

namespace sluice::app {

struct agent_runtime {
  std::unique_ptr<agents::search_service> search;
  std::unique_ptr<llm::chat_provider> model;  // null with --llm builtin
  agents::agent_env env;
};

// Throws std::runtime_error with a clear message when the setup cannot work.
agent_runtime make_agent_runtime(const agent_options& opts);

}  // namespace sluice::app
