// `sluice ask "question"`: starts an agent run and renders it as it streams.
// In-process by default (no server needed, offline); with --server it runs on
// a Sluice server over HTTP. Ctrl-C cancels the run.
#pragma once

#include <CLI/CLI.hpp>

namespace sluice::app {

// Registers the subcommand; returns it so main can tell whether it ran.
CLI::App* add_ask_command(CLI::App& app, int& exit_code);

}  // namespace sluice::app
