#include "app/auth_options.hpp"

#include <map>

namespace sluice::app {

void add_auth_options(CLI::App& cmd, auth::auth_config& a) {
  cmd.add_option("--auth", a.mode,
                 "none (everyone may do everything; loopback hosts only) or jwt (every request "
                 "needs a token, see docs/security.md)")
      ->envname("SLUICE_AUTH")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, auth::auth_mode>{{"none", auth::auth_mode::none},
                                                 {"jwt", auth::auth_mode::jwt}},
          CLI::ignore_case))
      ->default_str("none");
  cmd.add_option("--jwt-secret-file", a.jwt_secret_file,
                 "HS256: file holding the shared secret (at least 32 bytes), read once at start")
      ->envname("SLUICE_JWT_SECRET_FILE");
  cmd.add_option("--jwt-public-key-file", a.jwt_public_key_file,
                 "RS256/ES256: PEM public key (RSA >= 2048 bits or EC P-256), read once at start")
      ->envname("SLUICE_JWT_PUBLIC_KEY_FILE");
  cmd.add_option("--jwt-audience", a.audience, "Require this value in the tokens' aud (empty: any)")
      ->envname("SLUICE_JWT_AUDIENCE");
  cmd.add_option("--jwt-issuer", a.issuer, "Require this iss in the tokens (empty: any)")
      ->envname("SLUICE_JWT_ISSUER");
  cmd.add_option("--allowed-origins", a.allowed_origins,
                 "Other origins (scheme://host[:port]) allowed to upgrade WebSockets, send "
                 "state-changing requests and read with CORS (the server's own origin always is)")
      ->envname("SLUICE_ALLOWED_ORIGINS")
      ->delimiter(',');
  cmd.add_flag("--metrics-public", a.metrics_public,
               "Serve /metrics without a token (default: it needs sluice.admin with --auth jwt)")
      ->envname("SLUICE_METRICS_PUBLIC");
  cmd.add_flag("--insecure-no-auth", a.insecure_no_auth,
               "Allow --auth none on a non-loopback --host (anyone who reaches the port may do "
               "everything)")
      ->envname("SLUICE_INSECURE_NO_AUTH");
  cmd.add_option("--link-ttl-s", a.link_ttl_s, "Lifetime of share-link tokens (seconds)")
      ->envname("SLUICE_LINK_TTL_S")
      ->capture_default_str();
}

}  // namespace sluice::app
