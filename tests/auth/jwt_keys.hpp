// Keys and token signing for the auth tests, made with OpenSSL inside the
// test (nothing committed): HS256 secrets, RSA-2048 and EC P-256 key pairs,
// and a signer for any header/payload (so tests can forge what an attacker
// would send).
#pragma once

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "auth/base64url.hpp"

namespace sluice::test {

struct pkey_free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;

inline pkey_ptr make_rsa(unsigned bits = 2048) {
  return pkey_ptr(EVP_RSA_gen(bits));
}
inline pkey_ptr make_ec(const char* curve = "P-256") {
  return pkey_ptr(EVP_EC_gen(curve));
}

inline std::string public_pem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, key);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return pem;
}

inline std::string hmac(const std::string& key, const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<const char*>(md), len);
}

// RS256/ES256 signature of `data`; ES256 as raw r||s (JWS form).
inline std::string sign(EVP_PKEY* key, const std::string& data) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::size_t len = 0;
  EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key);
  EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()),
                 data.size());
  std::string sig(len, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                 reinterpret_cast<const unsigned char*>(data.data()), data.size());
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return sig;
  const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
  ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
  std::string raw(64, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
  ECDSA_SIG_free(es);
  return raw;
}

inline std::string signing_input(const std::string& header, const std::string& payload) {
  return auth::base64url_encode(header) + "." + auth::base64url_encode(payload);
}

inline std::string hs256_token(const std::string& secret, const std::string& payload,
                               const std::string& header = R"({"alg":"HS256","typ":"JWT"})") {
  const std::string in = signing_input(header, payload);
  return in + "." + auth::base64url_encode(hmac(secret, in));
}

inline std::string pk_token(EVP_PKEY* key, const std::string& alg, const std::string& payload) {
  const std::string in = signing_input(R"({"alg":")" + alg + R"(","typ":"JWT"})", payload);
  return in + "." + auth::base64url_encode(sign(key, in));
}

}  // namespace sluice::test
