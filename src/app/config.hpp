// Command-line, config-file and SLUICE_* environment options of `sluice serve`.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

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
  std::size_t search_queue = 256;        // search tasks queued or running (503 search_busy above)
  int llm_max_tokens = 2048;             // max_tokens sent with every model call
  std::size_t max_runs = 64;             // agent runs at once (503 too_many_runs)
  std::size_t max_runs_per_subject = 8;  // per subject (429 too_many_runs_for_subject)
  std::string searxng_url;               // empty: no web search
};

struct serve_options {
  transport::server_config server;
  agent_options agents;
  std::string web_root = SLUICE_DEFAULT_WEB_ROOT;  // the built page (web/app/dist)
  std::string log_level = "info";
  bool enable_bench = false;  // POST /v1/bench/tokens (benchmarks only)
  // --memory-budget as given: bytes with an optional K/M/G/T suffix, or a
  // percentage of physical RAM ("25%", the default); "0" = no limit.
  std::string memory_budget = "25%";
  // The embedded durable log (docs/durability.md). Empty data_dir or
  // memory_only: streams live in memory only.
  std::string data_dir;
  bool memory_only = false;
  std::string fsync = "interval";  // always | interval | never
  long long fsync_interval_ms = 50;
  std::string disk_budget = "0";        // bytes with K/M/G/T; 0 = no limit
  std::uint64_t disk_budget_bytes = 0;  // resolved by finish_serve_options
  // Many nodes (docs/scaling.md): redis:// or rediss:// URL; empty = one node.
  std::string redis;
  std::string redis_ca_file;  // rediss://: a PEM CA trusted besides the system's
  std::string node_id;        // empty: hostname:port:random
  double run_lease_s = 15;    // a run's lease in Redis
  // What each stream keeps on disk (at least memory's retention).
  std::size_t disk_retention_events = 10'000'000;
  std::string disk_retention = "1G";                // bytes with K/M/G/T
  std::uint64_t disk_retention_bytes = 1ull << 30;  // resolved by finish_serve_options
};

// Adds the agent/search/model options (shared by `serve` and `ask`).
void add_agent_options(CLI::App& cmd, agent_options& opts);

// Adds every `serve` option to `cmd`, bound to `opts`, each also readable
// from SLUICE_<NAME> (e.g. --max-connections from SLUICE_MAX_CONNECTIONS).
void add_serve_options(CLI::App& cmd, serve_options& opts);

// Applies what CLI11 parsed into the duration fields (kept as integers there)
// and resolves --memory-budget. Throws CLI::ValidationError on bad values.
void finish_serve_options(serve_options& opts);

// "512M", "2G", "1048576", "25%" (of `physical_bytes`) -> bytes; nullopt when
// malformed or a percentage outside 0..100.
std::optional<std::size_t> parse_memory_size(std::string_view text, std::uint64_t physical_bytes);
// Physical RAM of this machine in bytes (0 when unknown).
std::uint64_t physical_memory_bytes();

}  // namespace sluice::app
