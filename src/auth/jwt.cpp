#include "auth/jwt.hpp"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "auth/base64url.hpp"

namespace sluice::auth {

namespace json = boost::json;

std::string_view to_string(jwt_alg alg) {
  switch (alg) {
    case jwt_alg::hs256:
      return "HS256";
    case jwt_alg::rs256:
      return "RS256";
    case jwt_alg::es256:
      return "ES256";
  }
  return "?";
}

namespace {

constexpr std::size_t max_subject_bytes = 256;
constexpr std::size_t min_secret_bytes = 32;

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len) == nullptr)
    return {};
  return std::string(reinterpret_cast<const char*>(md), len);
}

bool equal_constant_time(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// ES256 signatures are r||s (32 bytes each, RFC 7518 section 3.4); OpenSSL
// verifies DER. Empty on failure.
std::string es256_raw_to_der(std::string_view raw) {
  if (raw.size() != 64) return {};
  ECDSA_SIG* sig = ECDSA_SIG_new();
  if (sig == nullptr) return {};
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr);
  std::string der;
  if (r != nullptr && s != nullptr && ECDSA_SIG_set0(sig, r, s) == 1) {
    r = s = nullptr;  // owned by sig now
    const int len = i2d_ECDSA_SIG(sig, nullptr);
    if (len > 0) {
      der.resize(static_cast<std::size_t>(len));
      auto* p = reinterpret_cast<unsigned char*>(der.data());
      if (i2d_ECDSA_SIG(sig, &p) != len) der.clear();
    }
  }
  BN_free(r);
  BN_free(s);
  ECDSA_SIG_free(sig);
  return der;
}

bool digest_verify(EVP_PKEY* key, std::string_view input, std::string_view sig) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return false;
  bool ok =
      EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

// A NumericDate (seconds): an integer, or a finite number, within +-2^53.
std::optional<std::int64_t> numeric_date(const json::value& v) {
  constexpr std::int64_t limit = std::int64_t{1} << 53;
  if (v.is_int64()) {
    const auto n = v.as_int64();
    if (n < -limit || n > limit) return std::nullopt;
    return n;
  }
  if (v.is_uint64()) {
    const auto n = v.as_uint64();
    if (n > static_cast<std::uint64_t>(limit)) return std::nullopt;
    return static_cast<std::int64_t>(n);
  }
  if (v.is_double()) {
    const double d = v.as_double();
    if (!std::isfinite(d) || d < -static_cast<double>(limit) || d > static_cast<double>(limit))
      return std::nullopt;
    return static_cast<std::int64_t>(std::floor(d));
  }
  return std::nullopt;
}

bool is_clean_text(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return false;
  return true;
}

// Fills `out` from a JSON array of patterns; false with `why` on anything else.
bool read_patterns(const json::value& v, std::vector<std::string>& out, std::string& why,
                   std::string_view name) {
  if (!v.is_array()) {
    why = "sluice." + std::string(name) + " must be an array of stream-id patterns";
    return false;
  }
  const auto& a = v.as_array();
  if (a.size() > max_patterns) {
    why = "sluice." + std::string(name) + " has more than " + std::to_string(max_patterns) +
          " patterns";
    return false;
  }
  for (const auto& p : a) {
    if (!p.is_string() || !is_valid_pattern(p.as_string())) {
      why = "sluice." + std::string(name) +
            " holds an invalid pattern (an id, a prefix ending in *, or *)";
      return false;
    }
    out.emplace_back(p.as_string());
  }
  return true;
}

std::string read_file(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(std::string(flag) + " " + path + ": cannot open the file");
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw std::runtime_error(std::string(flag) + " " + path + ": cannot read the file");
  return std::move(s).str();
}

}  // namespace

std::string random_hex(std::size_t n) {
  std::string raw(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(n)) != 1)
    throw std::runtime_error("the random number generator failed");
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (unsigned char c : raw) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string claims_json(const token_claims& c) {
  json::object o;
  o["sub"] = c.sub;
  o["iat"] = c.iat;
  o["exp"] = c.exp;
  if (!c.audience.empty()) o["aud"] = c.audience;
  if (!c.issuer.empty()) o["iss"] = c.issuer;
  json::object s;
  if (!c.publish.empty()) {
    json::array a;
    for (const auto& p : c.publish) a.emplace_back(p);
    s["publish"] = std::move(a);
  }
  if (!c.subscribe.empty()) {
    json::array a;
    for (const auto& p : c.subscribe) a.emplace_back(p);
    s["subscribe"] = std::move(a);
  }
  if (c.run) s["run"] = true;
  if (c.admin) s["admin"] = true;
  if (c.link) s["link"] = true;
  o["sluice"] = std::move(s);
  return json::serialize(o);
}

std::string mint_hs256(std::string_view secret, const token_claims& c) {
  std::string input = base64url_encode(R"({"alg":"HS256","typ":"JWT"})");
  input += '.';
  input += base64url_encode(claims_json(c));
  const std::string mac = hmac_sha256(secret, input);
  if (mac.empty()) throw std::runtime_error("HMAC-SHA256 failed");
  return input + "." + base64url_encode(mac);
}

std::string read_secret_file(const std::string& path) {
  std::string secret = read_file(path, "--jwt-secret-file");
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.size() < min_secret_bytes)
    throw std::runtime_error("--jwt-secret-file " + path + ": the secret has " +
                             std::to_string(secret.size()) +
                             " bytes; HS256 needs at least 32 (e.g. `head -c 32 /dev/urandom | "
                             "base64 > " +
                             path + "`)");
  return secret;
}

verifier::~verifier() {
  EVP_PKEY_free(key_);
}

std::shared_ptr<const verifier> verifier::from_secret(std::string secret, std::string audience,
                                                      std::string issuer) {
  if (secret.size() < min_secret_bytes)
    throw std::runtime_error("an HS256 secret needs at least 32 bytes");
  std::shared_ptr<verifier> v(new verifier());
  v->alg_ = jwt_alg::hs256;
  v->secret_ = secret;
  v->link_secret_ = std::move(secret);
  v->audience_ = std::move(audience);
  v->issuer_ = std::move(issuer);
  return v;
}

std::shared_ptr<verifier> verifier::with_public_key(EVP_PKEY* key, std::string audience,
                                                    std::string issuer) {
  std::shared_ptr<verifier> v(new verifier());
  v->key_ = key;  // owned from here, freed by the destructor even if we throw below
  v->audience_ = std::move(audience);
  v->issuer_ = std::move(issuer);
  const int type = EVP_PKEY_get_base_id(key);
  if (type == EVP_PKEY_RSA) {
    if (EVP_PKEY_get_bits(key) < 2048)
      throw std::runtime_error("the RSA key has " + std::to_string(EVP_PKEY_get_bits(key)) +
                               " bits; RS256 needs at least 2048");
    v->alg_ = jwt_alg::rs256;
  } else if (type == EVP_PKEY_EC) {
    char group[64] = {};
    std::size_t len = 0;
    if (EVP_PKEY_get_group_name(key, group, sizeof group, &len) != 1 ||
        (std::string_view(group) != "prime256v1" && std::string_view(group) != "P-256"))
      throw std::runtime_error("the EC key is not on P-256 (ES256 needs prime256v1)");
    v->alg_ = jwt_alg::es256;
  } else {
    throw std::runtime_error("the key is neither RSA (RS256) nor EC P-256 (ES256)");
  }
  v->link_secret_ = std::string(32, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(v->link_secret_.data()), 32) != 1)
    throw std::runtime_error("the random number generator failed");
  return v;
}

std::shared_ptr<const verifier> verifier::from_public_key_pem(std::string_view pem,
                                                              std::string audience,
                                                              std::string issuer) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) throw std::runtime_error("out of memory");
  EVP_PKEY* key = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (key == nullptr)
    throw std::runtime_error("not a PEM public key (expected -----BEGIN PUBLIC KEY-----)");
  return with_public_key(key, std::move(audience), std::move(issuer));
}

std::shared_ptr<const verifier> verifier::load(const auth_config& config) {
  const bool has_secret = !config.jwt_secret_file.empty();
  const bool has_key = !config.jwt_public_key_file.empty();
  if (has_secret == has_key)
    throw std::runtime_error(
        "--auth jwt needs exactly one of --jwt-secret-file (HS256) or --jwt-public-key-file "
        "(RS256/ES256)");
  if (has_secret)
    return from_secret(read_secret_file(config.jwt_secret_file), config.audience, config.issuer);
  const std::string pem = read_file(config.jwt_public_key_file, "--jwt-public-key-file");
  try {
    return from_public_key_pem(pem, config.audience, config.issuer);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("--jwt-public-key-file " + config.jwt_public_key_file + ": " +
                             e.what());
  }
}

bool verifier::check_signature(jwt_alg alg, std::string_view input, std::string_view sig,
                               bool& link_key) const {
  link_key = false;
  if (alg == jwt_alg::hs256) {
    if (alg_ != jwt_alg::hs256) link_key = true;  // only link tokens are HS256 here
    const std::string mac = hmac_sha256(alg_ == jwt_alg::hs256 ? secret_ : link_secret_, input);
    return !mac.empty() && equal_constant_time(mac, sig);
  }
  if (alg != alg_ || key_ == nullptr) return false;
  if (alg == jwt_alg::es256) {
    const std::string der = es256_raw_to_der(sig);
    return !der.empty() && digest_verify(key_, input, der);
  }
  return digest_verify(key_, input, sig);
}

verify_outcome verifier::verify(std::string_view token, std::int64_t now_s) const {
  auto fail = [](std::string why) { return verify_outcome{nullptr, std::move(why)}; };
  if (token.empty()) return fail("empty token");
  if (token.size() > max_token_bytes)
    return fail("token larger than " + std::to_string(max_token_bytes) + " bytes");
  const auto d1 = token.find('.');
  const auto d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos)
    return fail("malformed token (expected header.payload.signature)");
  auto header_text = base64url_decode(token.substr(0, d1));
  auto payload_text = base64url_decode(token.substr(d1 + 1, d2 - d1 - 1));
  auto sig = base64url_decode(token.substr(d2 + 1));
  if (!header_text || !payload_text || !sig) return fail("malformed token (bad base64url)");

  boost::system::error_code ec;
  json::value header = json::parse(*header_text, ec);
  if (ec || !header.is_object()) return fail("malformed token header");
  const json::object& h = header.as_object();
  if (h.contains("crit")) return fail("token header has unsupported critical extensions");
  const json::value* alg_v = h.if_contains("alg");
  if (alg_v == nullptr || !alg_v->is_string()) return fail("token header has no alg");
  const std::string_view alg_name = alg_v->as_string();
  jwt_alg alg;
  if (alg_name == "HS256")
    alg = jwt_alg::hs256;
  else if (alg_name == "RS256")
    alg = jwt_alg::rs256;
  else if (alg_name == "ES256")
    alg = jwt_alg::es256;
  else
    return fail("algorithm not accepted");
  if (alg != alg_ && alg != jwt_alg::hs256) return fail("algorithm not accepted");
  bool link_key = false;
  if (!check_signature(alg, token.substr(0, d2), *sig, link_key)) return fail("bad signature");

  json::value payload = json::parse(*payload_text, ec);
  if (ec || !payload.is_object()) return fail("malformed token claims");
  const json::object& c = payload.as_object();

  const json::value* exp_v = c.if_contains("exp");
  if (exp_v == nullptr) return fail("token has no exp");
  const auto exp = numeric_date(*exp_v);
  if (!exp) return fail("exp is not a valid time");
  if (*exp + clock_skew_s <= now_s) return fail("token expired");
  if (const json::value* nbf_v = c.if_contains("nbf")) {
    const auto nbf = numeric_date(*nbf_v);
    if (!nbf) return fail("nbf is not a valid time");
    if (*nbf - clock_skew_s > now_s) return fail("token not valid yet (nbf)");
  }
  if (!audience_.empty()) {
    const json::value* aud = c.if_contains("aud");
    bool ok = false;
    if (aud != nullptr && aud->is_string()) ok = aud->as_string() == audience_;
    if (aud != nullptr && aud->is_array())
      for (const auto& a : aud->as_array())
        ok = ok || (a.is_string() && a.as_string() == audience_);
    if (!ok) return fail("wrong audience");
  }
  if (!issuer_.empty()) {
    const json::value* iss = c.if_contains("iss");
    if (iss == nullptr || !iss->is_string() || iss->as_string() != issuer_)
      return fail("wrong issuer");
  }
  const json::value* sub = c.if_contains("sub");
  if (sub == nullptr || !sub->is_string() || sub->as_string().empty() ||
      sub->as_string().size() > max_subject_bytes || !is_clean_text(sub->as_string()))
    return fail("sub must be a non-empty string of at most 256 bytes without control characters");

  auto p = std::make_shared<principal>();
  p->subject = sub->as_string();
  p->expires_at = *exp;
  if (const json::value* s = c.if_contains("sluice"); s != nullptr && !s->is_null()) {
    if (!s->is_object()) return fail("the sluice claim must be an object");
    const json::object& so = s->as_object();
    std::string why;
    if (const auto* v = so.if_contains("publish");
        v && !read_patterns(*v, p->publish, why, "publish"))
      return fail(why);
    if (const auto* v = so.if_contains("subscribe");
        v && !read_patterns(*v, p->subscribe, why, "subscribe"))
      return fail(why);
    auto flag = [&](const char* name, bool& out) {
      const json::value* v = so.if_contains(name);
      if (v == nullptr || v->is_null()) return true;
      if (!v->is_bool()) return false;
      out = v->as_bool();
      return true;
    };
    if (!flag("run", p->run) || !flag("admin", p->admin) || !flag("link", p->link))
      return fail("sluice.run, sluice.admin and sluice.link must be booleans");
  }
  if (link_key) {
    // The link secret signs only share links: one stream, read-only.
    if (!p->link || !p->publish.empty() || p->run || p->admin || p->subscribe.size() != 1 ||
        p->subscribe.front().ends_with('*'))
      return fail("bad signature");
  }
  if (p->link) {
    // Whoever signed it, a link token reads and nothing else.
    p->publish.clear();
    p->run = false;
    p->admin = false;
  }
  return {std::move(p), {}};
}

std::string verifier::mint_link(std::string_view stream_id, std::int64_t now_s,
                                std::int64_t ttl_s) const {
  token_claims c;
  c.sub = "link:" + std::string(stream_id);
  c.subscribe = {std::string(stream_id)};
  c.link = true;
  c.iat = now_s;
  c.exp = now_s + ttl_s;
  c.audience = audience_;
  c.issuer = issuer_;
  return mint_hs256(link_secret_, c);
}

}  // namespace sluice::auth
