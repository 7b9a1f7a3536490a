// The command-line clients' token helpers (pure logic).
#include "client/bearer_token.hpp"

#include <gtest/gtest.h>

namespace sluice::client {
namespace {

TEST(BearerToken, AcceptsB64TokenCharactersOnly) {
  EXPECT_TRUE(is_valid_bearer_token("abc.DEF-123_~+/"));
  EXPECT_TRUE(is_valid_bearer_token("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig=="));
  EXPECT_FALSE(is_valid_bearer_token(""));
  EXPECT_FALSE(is_valid_bearer_token("="));
  EXPECT_FALSE(is_valid_bearer_token("a=b"));
  EXPECT_FALSE(is_valid_bearer_token("a b"));
  EXPECT_FALSE(is_valid_bearer_token("a\r\nX-Evil: 1"));
  EXPECT_FALSE(is_valid_bearer_token(std::string("a\0b", 3)));
}

TEST(BearerToken, AuthorizationValue) {
  EXPECT_EQ(authorization_value("t0k"), "Bearer t0k");
}

TEST(BearerToken, RedactsAccessTokenInUrls) {
  EXPECT_EQ(redact_access_token("http://h/v1/streams/s/events"), "http://h/v1/streams/s/events");
  EXPECT_EQ(redact_access_token("http://h/e?access_token=secret"),
            "http://h/e?access_token=REDACTED");
  EXPECT_EQ(redact_access_token("http://h/e?delta=1&access_token=secret&x=2#frag"),
            "http://h/e?delta=1&access_token=REDACTED&x=2#frag");
  EXPECT_EQ(redact_access_token("ws://h/v1/ws?my_access_token=keep"),
            "ws://h/v1/ws?my_access_token=keep");
}

}  // namespace
}  // namespace sluice::client
