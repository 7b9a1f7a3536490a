// URL parsing and the RESP reader's limits: pure logic, no server.
#include "redis/redis_url.hpp"

#include <gtest/gtest.h>

#include "redis/redis_error.hpp"
#include "redis/resp_reader.hpp"

namespace sluice::redis {
namespace {

TEST(RedisUrl, PlainHostPort) {
  auto e = parse_redis_url("redis://127.0.0.1:6390");
  ASSERT_TRUE(e);
  EXPECT_FALSE(e->tls);
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, "6390");
  EXPECT_TRUE(e->host_is_ip);
  EXPECT_FALSE(e->password);
  EXPECT_EQ(e->db, 0);
}

TEST(RedisUrl, DefaultsPasswordAndDb) {
  auto e = parse_redis_url("redis://:s%40cret@cache.internal/3");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->host, "cache.internal");
  EXPECT_FALSE(e->host_is_ip);
  EXPECT_EQ(e->port, "6379");
  ASSERT_TRUE(e->password);
  EXPECT_EQ(*e->password, "s@cret");
  EXPECT_TRUE(e->username.empty());
  EXPECT_EQ(e->db, 3);
  EXPECT_EQ(e->redacted(), "redis://:***@cache.internal:6379/3");
}

TEST(RedisUrl, UserPasswordTlsIpv6) {
  auto e = parse_redis_url("rediss://app:pw@[::1]:6380/");
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->tls);
  EXPECT_EQ(e->host, "::1");
  EXPECT_TRUE(e->host_is_ip);
  EXPECT_EQ(e->username, "app");
  EXPECT_EQ(*e->password, "pw");
  EXPECT_EQ(e->redacted(), "rediss://app:***@[::1]:6380");
}

TEST(RedisUrl, BadUrlsAreRefusedWithoutThePassword) {
  for (const char* bad :
       {"", "localhost:6379", "http://localhost", "redis://", "redis://:pw@/0", "redis://h:0",
        "redis://h:65536", "redis://h:99999999999999999999", "redis://h:12ab", "redis://h/x",
        "redis://h/-1", "redis://h/2147483648", "redis://h/1/2", "redis://h?db=1", "redis://h#frag",
        "redis://:topsecret@h:port"}) {
    auto e = parse_redis_url(bad);
    EXPECT_FALSE(e) << bad;
    if (!e) {
      EXPECT_EQ(e.error().message.find("topsecret"), std::string::npos) << bad;
    }
  }
}

std::optional<resp_value> one(resp_reader& r, std::string_view bytes) {
  EXPECT_FALSE(r.feed(bytes));
  auto v = r.next();
  EXPECT_TRUE(v);
  return v ? *v : std::nullopt;
}

TEST(RespReader, ParsesNestedRepliesFedByteByByte) {
  resp_reader r;
  const std::string wire = "*3\r\n$5\r\nhello\r\n:-42\r\n*2\r\n+OK\r\n$-1\r\n-ERR bad\r\n";
  std::vector<resp_value> got;
  for (char c : wire) {
    ASSERT_FALSE(r.feed(std::string_view(&c, 1)));
    for (;;) {
      auto v = r.next();
      ASSERT_TRUE(v);
      if (!*v) break;
      got.push_back(std::move(**v));
    }
  }
  ASSERT_EQ(got.size(), 2u);
  ASSERT_TRUE(got[0].is_array());
  ASSERT_EQ(got[0].elements.size(), 3u);
  EXPECT_EQ(got[0].elements[0].str, "hello");
  EXPECT_EQ(got[0].elements[1].integer, -42);
  EXPECT_EQ(got[0].elements[2].elements[0].type, resp_value::kind::status);
  EXPECT_TRUE(got[0].elements[2].elements[1].is_nil());
  EXPECT_TRUE(got[1].is_error());
  EXPECT_EQ(got[1].str, "ERR bad");
}

TEST(RespReader, RefusesOversizedArraysAndBulks) {
  resp_limits l;
  l.max_array_elements = 10;
  l.max_bulk_bytes = 8;
  l.max_buffered_bytes = 64;
  {
    resp_reader r(l);
    ASSERT_FALSE(r.feed("*11\r\n"));
    auto v = r.next();
    ASSERT_FALSE(v);
    EXPECT_EQ(v.error(), redis_errc::reply_too_large);
  }
  {
    resp_reader r(l);
    ASSERT_FALSE(r.feed("$9\r\n123456789\r\n"));
    auto v = r.next();
    ASSERT_FALSE(v);
    EXPECT_EQ(v.error(), redis_errc::reply_too_large);
  }
  {
    // A bulk announced large is refused by the bytes it makes us buffer.
    resp_reader r(l);
    ASSERT_FALSE(r.feed("$1000000\r\n"));
    auto v = r.next();
    ASSERT_TRUE(v);
    EXPECT_FALSE(*v);
    EXPECT_EQ(r.feed(std::string(100, 'x')), redis_errc::reply_too_large);
  }
  {
    // Values across all nested arrays are counted too.
    resp_limits small;
    small.max_reply_values = 5;
    resp_reader r(small);
    ASSERT_FALSE(r.feed("*2\r\n*3\r\n:1\r\n:2\r\n:3\r\n*0\r\n"));
    auto v = r.next();
    ASSERT_FALSE(v);
    EXPECT_EQ(v.error(), redis_errc::reply_too_large);
  }
}

TEST(RespReader, RefusesBadBytes) {
  for (const char* bad : {"?what\r\n", "$abc\r\n", "*-5x\r\n", ":12a\r\n", "$-2\r\n"}) {
    resp_reader r;
    ASSERT_FALSE(r.feed(bad));
    auto v = r.next();
    EXPECT_FALSE(v) << bad;
    if (!v) {
      EXPECT_EQ(v.error(), redis_errc::protocol_error) << bad;
    }
  }
}

TEST(RespReader, EncodesCommands) {
  std::string out;
  resp_reader::append_command(out, {"SET", "k", std::string_view("a\r\nb", 4)});
  EXPECT_EQ(out, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n");
  resp_reader r;
  auto v = one(r, "*0\r\n");
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->is_array());
}

}  // namespace
}  // namespace sluice::redis
