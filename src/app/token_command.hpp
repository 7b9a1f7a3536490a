// sluice token: mints an HS256 token for `sluice serve --auth jwt
// --jwt-secret-file F`, so an operator needs no other tool.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string_view>

namespace sluice::app {

// Adds the `token` subcommand; it prints the token when parsed and sets
// `exit_code` (non-zero on a bad secret file or --ttl).
CLI::App* add_token_command(CLI::App& app, int& exit_code);

// "90", "90s", "15m", "1h", "7d" as seconds; nullopt when not a positive
// duration of at most 10 years.
std::optional<long long> parse_ttl(std::string_view text);

}  // namespace sluice::app
