// Command-line, config-file and SLUICE_* environment options of `sluice serve`.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "transport/server_config.hpp"

namespace sluice::app {

struct serve_options {
  transport::server_config server;
  std::string log_level = "info";
};

// Adds every `serve` option to `cmd`, bound to `opts`, each also readable
// from SLUICE_<NAME> (e.g. --max-connections from SLUICE_MAX_CONNECTIONS).
void add_serve_options(CLI::App& cmd, serve_options& opts);

// Applies what CLI11 parsed into the duration fields (kept as integers there).
void finish_serve_options(serve_options& opts);

}  // namespace sluice::app
