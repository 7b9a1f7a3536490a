// Access-control settings of `sluice serve` (see docs/security.md). Plain
// data: the keys they name are read once, by auth::verifier::load().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::auth {

enum class auth_mode { none, jwt };

struct auth_config {
  auth_mode mode = auth_mode::none;
  std::string jwt_secret_file;      // HS256: the shared secret (raw bytes, >= 32)
  std::string jwt_public_key_file;  // RS256 (RSA >= 2048) or ES256 (P-256), PEM
  std::string audience;             // non-empty: tokens must carry it in `aud`
  std::string issuer;               // non-empty: tokens' `iss` must equal it
  // Origins (scheme://host[:port]) allowed on WebSocket upgrades and
  // state-changing requests, and answered with CORS. Empty: only the server's
  // own origin (http(s):// + the request's Host).
  std::vector<std::string> allowed_origins;
  bool metrics_public = false;    // /metrics without an admin token
  bool insecure_no_auth = false;  // allow --auth none on a non-loopback --host
  std::int64_t link_ttl_s = 86'400;
};

}  // namespace sluice::auth
