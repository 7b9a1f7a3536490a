// JSON Web Tokens for Sluice's access control, verified and minted with
// OpenSSL directly.
//
// Why OpenSSL and not libjwt: libjwt is not among the Debian 12 packages this
// project may use (and its 1.x API also needs jansson). The three algorithms
// Sluice accepts (HS256, RS256, ES256) are a few OpenSSL calls on a library
// every transport already links; doing it here keeps the parsing of every
// remote byte in code that uses error codes (no exception can reach an I/O
// thread), pins the algorithm to the configured key kind (no alg confusion:
// the header's `alg` never chooses the key), and range-checks every claim.
//
// Thread-safety: a verifier is immutable after load(); verify() and
// mint_link() from any thread.
#pragma once

#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/auth_config.hpp"
#include "auth/principal.hpp"

namespace sluice::auth {

enum class jwt_alg { hs256, rs256, es256 };
std::string_view to_string(jwt_alg alg);

// Tokens above this size are refused before any parsing.
constexpr std::size_t max_token_bytes = 8 * 1024;
// Allowed clock difference for `exp` and `nbf`.
constexpr std::int64_t clock_skew_s = 60;
// At most this many patterns per list in a token.
constexpr std::size_t max_patterns = 256;

// What a minted token says.
struct token_claims {
  std::string sub;
  std::vector<std::string> publish;
  std::vector<std::string> subscribe;
  bool run = false;
  bool admin = false;
  bool link = false;
  std::int64_t iat = 0;
  std::int64_t exp = 0;
  std::string audience;  // empty: no `aud`
  std::string issuer;    // empty: no `iss`
};

// The claims set (JSON) of `c`, and a complete HS256 token of it.
std::string claims_json(const token_claims& c);
std::string mint_hs256(std::string_view secret, const token_claims& c);

// Reads an HS256 secret file as `sluice serve` and `sluice token` do (a
// trailing newline is dropped; at least 32 bytes). Throws std::runtime_error
// naming the file and what is wrong.
std::string read_secret_file(const std::string& path);

struct verify_outcome {
  std::shared_ptr<const principal> who;  // null when refused
  std::string error;                     // why (safe to send: never echoes the token)
};

class verifier {
 public:
  // Reads the key of `config` (mode jwt): exactly one of --jwt-secret-file
  // (HS256) or --jwt-public-key-file (RS256 for an RSA key of >= 2048 bits,
  // ES256 for a P-256 key). Throws std::runtime_error with a message naming
  // the flag, the file and the problem.
  static std::shared_ptr<const verifier> load(const auth_config& config);
  // The same from key material in memory (tests).
  static std::shared_ptr<const verifier> from_secret(std::string secret, std::string audience = {},
                                                     std::string issuer = {});
  static std::shared_ptr<const verifier> from_public_key_pem(std::string_view pem,
                                                             std::string audience = {},
                                                             std::string issuer = {});
  ~verifier();
  verifier(const verifier&) = delete;
  verifier& operator=(const verifier&) = delete;

  // Checks `token` at time `now_s` (unix seconds). Accepts only the
  // configured algorithm, plus HS256 link tokens signed with the link secret.
  verify_outcome verify(std::string_view token, std::int64_t now_s) const;

  // A read-only token for one stream (a share link), valid for ttl_s. Signed
  // with the HS256 secret, or, when the server verifies with a public key,
  // with a link secret drawn from RAND_bytes at start (links then die with
  // the process).
  std::string mint_link(std::string_view stream_id, std::int64_t now_s, std::int64_t ttl_s) const;

  jwt_alg alg() const { return alg_; }

 private:
  verifier() = default;
  static std::shared_ptr<verifier> with_public_key(EVP_PKEY* key, std::string audience,
                                                   std::string issuer);
  bool check_signature(jwt_alg alg, std::string_view input, std::string_view sig,
                       bool& link_key) const;

  jwt_alg alg_ = jwt_alg::hs256;
  std::string secret_;       // HS256
  EVP_PKEY* key_ = nullptr;  // RS256/ES256, owned
  std::string link_secret_;  // == secret_ for HS256
  std::string audience_;
  std::string issuer_;
};

// `n` bytes from OpenSSL's CSPRNG as lower-case hex (2n characters). Throws
// std::runtime_error if the generator fails.
std::string random_hex(std::size_t n);

}  // namespace sluice::auth
