// The access-control options of `sluice serve` (--auth, --jwt-*,
// --allowed-origins, --metrics-public, --insecure-no-auth, --link-ttl-s),
// bound to auth::auth_config. See docs/security.md.
#pragma once

#include <CLI/CLI.hpp>

#include "auth/auth_config.hpp"

namespace sluice::app {

void add_auth_options(CLI::App& cmd, auth::auth_config& config);

}  // namespace sluice::app
