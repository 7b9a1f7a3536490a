// Command-line, config-file and SLUICE_* environment options of `sluice serve`.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "transport/server_config.hpp"

namespace sluice::app {

struct agent_options {
  std::string corpus_dir = SLUICE_DEFAULT_CORPUS;  // the project's docs/
  std::string index_path;                          // empty: next to the binary
  std::string llm = "builtin";                     // builtin | openai
  std::string llm_base_url = "http://127.0.0.1:11434/v1";
  std::string llm_model = "gpt-4o-mini";
  std::string llm_api_key_env = "OPENAI_API_KEY";
  long long llm_timeout_s = 60;
  long long detach_grace_s = 30;
  long long builtin_delta_ms = 20;
  unsigned search_threads = 4;
  std::string searxng_url;  // empty: no web search
};

struct serve_options {
  transport::server_config server;
  agent_options agents;
  std::string web_root = SLUICE_DEFAULT_WEB_ROOT;  // the built page (web/app/dist)
  std::string log_level = "info";
  bool enable_bench = false;  // POST /v1/bench/tokens (benchmarks only)
};

// Adds the agent/search/model options (shared by `serve` and `ask`).
void add_agent_options(CLI::App& cmd, agent_options& opts);

// Adds every `serve` option to `cmd`, bound to `opts`, each also readable
// from SLUICE_<NAME> (e.g. --max-connections from SLUICE_MAX_CONNECTIONS).
void add_serve_options(CLI::App& cmd, serve_options& opts);

// Applies what CLI11 parsed into the duration fields (kept as integers there).
void finish_serve_options(serve_options& opts);

}  // namespace sluice::app
