// src/auth: base64url, JWT verification (the matrix: none / wrong alg /
// wrong key / expired / nbf / aud / iss / scope / malformed / oversized),
// patterns and ownership, minting and share-link tokens, key loading.
#include "auth/jwt.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "agents/run_service.hpp"
#include "app/token_command.hpp"
#include "auth/base64url.hpp"
#include "core/stream_registry.hpp"
#include "jwt_keys.hpp"

namespace sluice {
namespace {

using auth::verifier;

const std::string secret(40, 's');
const std::string other_secret(40, 'o');

std::int64_t now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string claims(const std::string& extra = R"("sluice":{"subscribe":["team1-*"]})",
                   std::int64_t exp_offset = 3600, const std::string& sub = "alice") {
  std::string c = R"({"sub":")" + sub + R"(","exp":)" + std::to_string(now() + exp_offset);
  if (!extra.empty()) c += "," + extra;
  return c + "}";
}

TEST(Base64Url, RoundTripsEveryLength) {
  std::string bytes;
  for (int i = 0; i < 70; ++i) {
    auto enc = auth::base64url_encode(bytes);
    EXPECT_EQ(enc.find_first_of("+/="), std::string::npos);
    auto dec = auth::base64url_decode(enc);
    ASSERT_TRUE(dec) << i;
    EXPECT_EQ(*dec, bytes);
    bytes.push_back(static_cast<char>(i * 37 + 250));
  }
}

TEST(Base64Url, RefusesNonCanonicalAndForeignCharacters) {
  EXPECT_FALSE(auth::base64url_decode("YQ=="));   // padding
  EXPECT_FALSE(auth::base64url_decode("a+/b"));   // base64, not base64url
  EXPECT_FALSE(auth::base64url_decode("abcde"));  // length 1 mod 4
  EXPECT_FALSE(auth::base64url_decode("YR"));     // unused bits set ("YQ" is canonical)
  EXPECT_TRUE(auth::base64url_decode("YQ"));
  EXPECT_FALSE(auth::base64url_decode(std::string("YQ\0A", 4)));
}

TEST(Jwt, AcceptsAValidHs256TokenWithItsClaims) {
  auto v = verifier::from_secret(secret);
  auto out = v->verify(
      test::hs256_token(
          secret,
          claims(
              R"("sluice":{"publish":["team1-*"],"subscribe":["team1-*","x"],"run":true,"admin":false})")),
      now());
  ASSERT_TRUE(out.who) << out.error;
  EXPECT_EQ(out.who->subject, "alice");
  EXPECT_EQ(out.who->publish, std::vector<std::string>{"team1-*"});
  EXPECT_EQ(out.who->subscribe, (std::vector<std::string>{"team1-*", "x"}));
  EXPECT_TRUE(out.who->run);
  EXPECT_FALSE(out.who->admin);
  EXPECT_FALSE(out.who->link);
  EXPECT_TRUE(out.who->may_publish("team1-a"));
  EXPECT_FALSE(out.who->may_publish("team2-a"));
  EXPECT_TRUE(out.who->may_subscribe("x"));
  EXPECT_FALSE(out.who->may_subscribe("xy"));
}

TEST(Jwt, RefusesAlgNone) {
  auto v = verifier::from_secret(secret);
  for (std::string alg : {"none", "None", "NONE", ""}) {
    const std::string t = test::signing_input(R"({"alg":")" + alg + R"("})", claims()) + ".";
    auto out = v->verify(t, now());
    EXPECT_FALSE(out.who) << alg;
  }
  // A "none" header with a valid HS256 MAC still names an algorithm we refuse.
  auto out = v->verify(test::hs256_token(secret, claims(), R"({"alg":"none"})"), now());
  EXPECT_FALSE(out.who);
  EXPECT_EQ(out.error, "algorithm not accepted");
}

TEST(Jwt, RefusesAnAlgorithmOtherThanTheConfiguredKind) {
  auto rsa = test::make_rsa();
  auto ec = test::make_ec();
  const std::string rsa_pem = test::public_pem(rsa.get());
  auto hs = verifier::from_secret(secret);
  auto rs = verifier::from_public_key_pem(rsa_pem);
  auto es = verifier::from_public_key_pem(test::public_pem(ec.get()));
  EXPECT_EQ(rs->alg(), auth::jwt_alg::rs256);
  EXPECT_EQ(es->alg(), auth::jwt_alg::es256);
  EXPECT_FALSE(hs->verify(test::pk_token(rsa.get(), "RS256", claims()), now()).who);
  EXPECT_FALSE(hs->verify(test::pk_token(ec.get(), "ES256", claims()), now()).who);
  EXPECT_FALSE(rs->verify(test::pk_token(ec.get(), "ES256", claims()), now()).who);
  EXPECT_FALSE(es->verify(test::pk_token(rsa.get(), "RS256", claims()), now()).who);
  // Algorithm confusion: HS256 keyed with the public key's PEM text.
  EXPECT_FALSE(rs->verify(test::hs256_token(rsa_pem, claims()), now()).who);
  for (std::string alg : {"HS384", "RS512", "PS256", "EdDSA"})
    EXPECT_FALSE(
        hs->verify(test::hs256_token(secret, claims(), R"({"alg":")" + alg + R"("})"), now()).who)
        << alg;
}

TEST(Jwt, VerifiesRs256AndEs256) {
  auto rsa = test::make_rsa();
  auto ec = test::make_ec();
  auto rs = verifier::from_public_key_pem(test::public_pem(rsa.get()));
  auto es = verifier::from_public_key_pem(test::public_pem(ec.get()));
  auto a = rs->verify(test::pk_token(rsa.get(), "RS256", claims()), now());
  ASSERT_TRUE(a.who) << a.error;
  EXPECT_EQ(a.who->subject, "alice");
  auto b = es->verify(test::pk_token(ec.get(), "ES256", claims()), now());
  ASSERT_TRUE(b.who) << b.error;
  EXPECT_EQ(b.who->subscribe, std::vector<std::string>{"team1-*"});
}

TEST(Jwt, RefusesTheWrongKey) {
  auto hs = verifier::from_secret(secret);
  auto out = hs->verify(test::hs256_token(other_secret, claims()), now());
  EXPECT_FALSE(out.who);
  EXPECT_EQ(out.error, "bad signature");
  auto rsa = test::make_rsa(), rsa2 = test::make_rsa();
  auto ec = test::make_ec(), ec2 = test::make_ec();
  auto rs = verifier::from_public_key_pem(test::public_pem(rsa.get()));
  auto es = verifier::from_public_key_pem(test::public_pem(ec.get()));
  EXPECT_FALSE(rs->verify(test::pk_token(rsa2.get(), "RS256", claims()), now()).who);
  EXPECT_FALSE(es->verify(test::pk_token(ec2.get(), "ES256", claims()), now()).who);
  // A tampered payload under a valid signature.
  std::string t = test::hs256_token(secret, claims());
  const auto d1 = t.find('.'), d2 = t.rfind('.');
  std::string forged = t.substr(0, d1 + 1) +
                       auth::base64url_encode(claims(R"("sluice":{"admin":true})")) + t.substr(d2);
  EXPECT_FALSE(hs->verify(forged, now()).who);
  // ES256 signature of the wrong length.
  std::string es_t = test::pk_token(ec.get(), "ES256", claims());
  EXPECT_FALSE(es->verify(es_t.substr(0, es_t.size() - 4), now()).who);
}

TEST(Jwt, RefusesExpiredTokensWithinTheSkew) {
  auto v = verifier::from_secret(secret);
  auto out = v->verify(test::hs256_token(secret, claims("", -(auth::clock_skew_s + 1))), now());
  EXPECT_FALSE(out.who);
  EXPECT_EQ(out.error, "token expired");
  EXPECT_TRUE(
      v->verify(test::hs256_token(secret, claims("", -(auth::clock_skew_s / 2))), now()).who);
  // exp is required and must be a sane number.
  EXPECT_FALSE(v->verify(test::hs256_token(secret, R"({"sub":"a"})"), now()).who);
  EXPECT_FALSE(
      v->verify(test::hs256_token(secret, R"({"sub":"a","exp":"9999999999"})"), now()).who);
  EXPECT_FALSE(v->verify(test::hs256_token(secret, R"({"sub":"a","exp":1e300})"), now()).who);
  EXPECT_FALSE(
      v->verify(test::hs256_token(secret, R"({"sub":"a","exp":18446744073709551615})"), now()).who);
  EXPECT_TRUE(v->verify(test::hs256_token(
                            secret, R"({"sub":"a","exp":)" + std::to_string(now() + 100) + ".5}"),
                        now())
                  .who);
}

TEST(Jwt, RefusesTokensNotValidYet) {
  auto v = verifier::from_secret(secret);
  auto nbf = [](std::int64_t off) { return R"("nbf":)" + std::to_string(now() + off); };
  auto out = v->verify(test::hs256_token(secret, claims(nbf(auth::clock_skew_s + 60))), now());
  EXPECT_FALSE(out.who);
  EXPECT_EQ(out.error, "token not valid yet (nbf)");
  EXPECT_TRUE(v->verify(test::hs256_token(secret, claims(nbf(auth::clock_skew_s / 2))), now()).who);
  EXPECT_FALSE(v->verify(test::hs256_token(secret, claims(R"("nbf":null)")), now()).who);
}

TEST(Jwt, ChecksAudienceAndIssuerWhenConfigured) {
  auto v = verifier::from_secret(secret, "sluice-prod", "https://id.example");
  const std::string iss = R"("iss":"https://id.example")";
  EXPECT_TRUE(
      v->verify(test::hs256_token(secret, claims(R"("aud":"sluice-prod",)" + iss)), now()).who);
  EXPECT_TRUE(
      v->verify(test::hs256_token(secret, claims(R"("aud":["x","sluice-prod"],)" + iss)), now())
          .who);
  auto wrong_aud =
      v->verify(test::hs256_token(secret, claims(R"("aud":"sluice-dev",)" + iss)), now());
  EXPECT_FALSE(wrong_aud.who);
  EXPECT_EQ(wrong_aud.error, "wrong audience");
  EXPECT_FALSE(v->verify(test::hs256_token(secret, claims(iss)), now()).who);  // no aud
  auto wrong_iss = v->verify(
      test::hs256_token(secret, claims(R"("aud":"sluice-prod","iss":"https://evil.example")")),
      now());
  EXPECT_FALSE(wrong_iss.who);
  EXPECT_EQ(wrong_iss.error, "wrong issuer");
  EXPECT_FALSE(v->verify(test::hs256_token(secret, claims(R"("aud":"sluice-prod")")), now()).who);
  // Not configured: aud and iss are not checked.
  auto open = verifier::from_secret(secret);
  EXPECT_TRUE(open->verify(test::hs256_token(secret, claims(R"("aud":"x","iss":"y")")), now()).who);
}

TEST(Jwt, ValidatesTheScopeClaims) {
  auto v = verifier::from_secret(secret);
  auto ok = [&](const std::string& extra) {
    return v->verify(test::hs256_token(secret, claims(extra)), now()).who != nullptr;
  };
  EXPECT_TRUE(ok(R"("sluice":{"publish":["*","a","b-*"]})"));
  EXPECT_TRUE(ok(""));  // no sluice claim: a subject with no rights
  EXPECT_FALSE(ok(R"("sluice":{"publish":["a*b"]})"));
  EXPECT_FALSE(ok(R"("sluice":{"publish":["**"]})"));
  EXPECT_FALSE(ok(R"("sluice":{"publish":["a/b"]})"));
  EXPECT_FALSE(ok(R"("sluice":{"publish":"a"})"));
  EXPECT_FALSE(ok(R"("sluice":{"subscribe":[1]})"));
  EXPECT_FALSE(ok(R"("sluice":{"run":"true"})"));
  EXPECT_FALSE(ok(R"("sluice":{"admin":1})"));
  EXPECT_FALSE(ok(R"("sluice":[])"));
  std::string many = R"("sluice":{"subscribe":[)";
  for (std::size_t i = 0; i <= auth::max_patterns; ++i)
    many += (i ? ",\"a" : "\"a") + std::to_string(i) + "\"";
  EXPECT_FALSE(ok(many + "]}"));
  // sub: required, short, no control characters.
  EXPECT_FALSE(v->verify(test::hs256_token(secret, claims("", 3600, "")), now()).who);
  EXPECT_FALSE(v->verify(test::hs256_token(secret, claims("", 3600, "a\\u0000b")), now()).who);
  EXPECT_FALSE(
      v->verify(test::hs256_token(secret, claims("", 3600, std::string(257, 'a'))), now()).who);
  EXPECT_FALSE(v->verify(test::hs256_token(secret, R"({"sub":7,"exp":9999999999})"), now()).who);
}

TEST(Jwt, RefusesMalformedTokens) {
  auto v = verifier::from_secret(secret);
  const std::string good = test::hs256_token(secret, claims());
  for (std::string t :
       {std::string(), std::string("abc"), std::string("a.b"), good + ".x",
        good.substr(0, good.rfind('.')) + ".!!!", std::string("e30.e30.") + std::string(43, '-'),
        std::string(".."), test::hs256_token(secret, "[1,2]"), test::hs256_token(secret, "{"),
        test::hs256_token(secret, claims(), "{\"alg\":\"HS256\"")}) {
    auto out = v->verify(t, now());
    EXPECT_FALSE(out.who) << t;
    EXPECT_EQ(out.error.find(secret), std::string::npos);
  }
  // Padding or standard base64 characters in a segment.
  std::string padded = good;
  padded.insert(good.find('.'), "=");
  EXPECT_FALSE(v->verify(padded, now()).who);
  // Critical header extensions are not understood: refused.
  EXPECT_FALSE(
      v->verify(test::hs256_token(secret, claims(), R"({"alg":"HS256","crit":["b64"]})"), now())
          .who);
}

TEST(Jwt, RefusesOversizedTokensBeforeParsing) {
  auto v = verifier::from_secret(secret);
  std::string pad(auth::max_token_bytes, 'a');
  auto out = v->verify(test::hs256_token(secret, claims(R"("pad":")" + pad + "\"")), now());
  EXPECT_FALSE(out.who);
  EXPECT_EQ(out.error, "token larger than 8192 bytes");
}

TEST(Patterns, CoverExactIdsPrefixesAndEverything) {
  EXPECT_TRUE(auth::pattern_covers("*", "anything"));
  EXPECT_TRUE(auth::pattern_covers("team1-*", "team1-"));
  EXPECT_TRUE(auth::pattern_covers("team1-*", "team1-run"));
  EXPECT_FALSE(auth::pattern_covers("team1-*", "team2-run"));
  EXPECT_FALSE(auth::pattern_covers("team1-*", "team1"));
  EXPECT_TRUE(auth::pattern_covers("run1", "run1"));
  EXPECT_FALSE(auth::pattern_covers("run1", "run10"));
  EXPECT_TRUE(auth::is_valid_pattern("*"));
  EXPECT_TRUE(auth::is_valid_pattern("a.b:c-*"));
  EXPECT_FALSE(auth::is_valid_pattern(""));
  EXPECT_FALSE(auth::is_valid_pattern("*a"));
  EXPECT_FALSE(auth::is_valid_pattern(std::string(130, 'a')));
}

TEST(Patterns, OwnershipNeedsTheSameSubjectAndNoLink) {
  auth::principal p;
  p.subject = "alice";
  EXPECT_TRUE(p.owns("alice"));
  EXPECT_FALSE(p.owns("bob"));
  EXPECT_FALSE(p.owns(""));  // a stream nobody owns
  p.link = true;
  EXPECT_FALSE(p.owns("alice"));
  auto anyone = auth::principal::anyone("127.0.0.1");
  EXPECT_TRUE(anyone->may_publish("x") && anyone->may_subscribe("y") && anyone->run &&
              anyone->admin);
}

// A stream created by subscribing is charged to the reader but owned by
// nobody: arriving first as a reader gives no cancel or link rights.
TEST(Patterns, AReaderThatCreatedAPendingStreamDoesNotOwnIt) {
  auth::principal p;
  p.subject = "alice";
  EXPECT_FALSE(p.owns(core::reader_owner("alice")));
  EXPECT_EQ(core::charged_subject(core::reader_owner("alice")), "alice");
  EXPECT_EQ(core::charged_subject("alice"), "alice");
}

TEST(Minting, Hs256TokensVerifyWithTheirClaims) {
  auth::token_claims c;
  c.sub = "bob";
  c.publish = {"team1-*"};
  c.subscribe = {"*"};
  c.admin = true;
  c.iat = now();
  c.exp = now() + 60;
  c.audience = "aud1";
  c.issuer = "iss1";
  auto v = verifier::from_secret(secret, "aud1", "iss1");
  auto out = v->verify(auth::mint_hs256(secret, c), now());
  ASSERT_TRUE(out.who) << out.error;
  EXPECT_EQ(out.who->subject, "bob");
  EXPECT_EQ(out.who->publish, std::vector<std::string>{"team1-*"});
  EXPECT_TRUE(out.who->admin);
  EXPECT_FALSE(out.who->run);
  EXPECT_EQ(out.who->expires_at, c.exp);
}

TEST(ShareLinks, ReadOneStreamOnlyAndExpire) {
  auto rsa = test::make_rsa();
  for (auto v : {verifier::from_secret(secret),
                 verifier::from_public_key_pem(test::public_pem(rsa.get()))}) {
    auto out = v->verify(v->mint_link("run-1", now(), 600), now());
    ASSERT_TRUE(out.who) << out.error;
    EXPECT_TRUE(out.who->link);
    EXPECT_TRUE(out.who->may_subscribe("run-1"));
    EXPECT_FALSE(out.who->may_subscribe("run-10"));
    EXPECT_FALSE(out.who->may_publish("run-1"));
    EXPECT_FALSE(out.who->run || out.who->admin);
    EXPECT_FALSE(out.who->owns(out.who->subject));
    auto old = v->verify(v->mint_link("run-1", now() - 1000, 600), now());
    EXPECT_FALSE(old.who);
    EXPECT_EQ(old.error, "token expired");
  }
  // With a public key, the link secret signs links only: an HS256 token with
  // more rights is refused even if it somehow carried a valid MAC, and any
  // other HS256 token is a bad signature.
  auto rs = verifier::from_public_key_pem(test::public_pem(rsa.get()));
  EXPECT_FALSE(
      rs->verify(test::hs256_token(secret, claims(R"("sluice":{"link":true,"subscribe":["a"]})")),
                 now())
          .who);
  // An HS256 operator token marked link is stripped to read-only.
  auto hs = verifier::from_secret(secret);
  auto l = hs->verify(
      test::hs256_token(
          secret, claims(R"("sluice":{"link":true,"publish":["*"],"run":true,"subscribe":["a"]})")),
      now());
  ASSERT_TRUE(l.who);
  EXPECT_FALSE(l.who->may_publish("a"));
  EXPECT_FALSE(l.who->run);
}

class KeyFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sluice-auth-keys-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    auto p = dir_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  static std::string load_error(const auth::auth_config& c) {
    try {
      verifier::load(c);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "";
  }
  std::filesystem::path dir_;
};

TEST_F(KeyFiles, LoadsGoodKeysOnce) {
  auth::auth_config c;
  c.mode = auth::auth_mode::jwt;
  c.jwt_secret_file = write("secret", secret + "\n");  // a trailing newline is dropped
  auto v = verifier::load(c);
  EXPECT_TRUE(v->verify(test::hs256_token(secret, claims()), now()).who);
  auto ec = test::make_ec();
  auth::auth_config k;
  k.mode = auth::auth_mode::jwt;
  k.jwt_public_key_file = write("ec.pem", test::public_pem(ec.get()));
  EXPECT_EQ(verifier::load(k)->alg(), auth::jwt_alg::es256);
}

TEST_F(KeyFiles, BadKeyFilesRefuseToStartWithAClearMessage) {
  auth::auth_config c;
  c.mode = auth::auth_mode::jwt;
  EXPECT_NE(load_error(c).find("exactly one of --jwt-secret-file"), std::string::npos);
  c.jwt_secret_file = (dir_ / "missing").string();
  EXPECT_NE(load_error(c).find("--jwt-secret-file " + c.jwt_secret_file + ": cannot open"),
            std::string::npos);
  c.jwt_secret_file = write("short", "tooshort\n");
  EXPECT_NE(load_error(c).find("at least 32"), std::string::npos) << load_error(c);
  auth::auth_config k;
  k.mode = auth::auth_mode::jwt;
  k.jwt_public_key_file = write("junk.pem", "-----BEGIN PUBLIC KEY-----\nnope\n");
  EXPECT_NE(load_error(k).find("--jwt-public-key-file"), std::string::npos);
  EXPECT_NE(load_error(k).find("not a PEM public key"), std::string::npos);
  auto small = test::make_rsa(1024);
  k.jwt_public_key_file = write("rsa1024.pem", test::public_pem(small.get()));
  EXPECT_NE(load_error(k).find("at least 2048"), std::string::npos) << load_error(k);
  auto p384 = test::make_ec("P-384");
  k.jwt_public_key_file = write("p384.pem", test::public_pem(p384.get()));
  EXPECT_NE(load_error(k).find("P-256"), std::string::npos) << load_error(k);
  k.jwt_secret_file = write("secret", secret);
  EXPECT_NE(load_error(k).find("exactly one"), std::string::npos);
}

TEST(RunIds, Carry128RandomBits) {
  const std::regex shape("run-[0-9a-f]{32}");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto id = agents::run_service::new_request_id();
    ASSERT_TRUE(std::regex_match(id, shape)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_EQ(auth::random_hex(16).size(), 32u);
}

TEST(TokenCommand, ParsesTtls) {
  EXPECT_EQ(app::parse_ttl("90"), 90);
  EXPECT_EQ(app::parse_ttl("90s"), 90);
  EXPECT_EQ(app::parse_ttl("15m"), 900);
  EXPECT_EQ(app::parse_ttl("1h"), 3600);
  EXPECT_EQ(app::parse_ttl("7d"), 7 * 86400);
  EXPECT_FALSE(app::parse_ttl("0"));
  EXPECT_FALSE(app::parse_ttl("-1h"));
  EXPECT_FALSE(app::parse_ttl("1w"));
  EXPECT_FALSE(app::parse_ttl("h"));
  EXPECT_FALSE(app::parse_ttl("99999999999999d"));
}

}  // namespace
}  // namespace sluice
