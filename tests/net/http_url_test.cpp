#include "net/http_url.hpp"

#include <gtest/gtest.h>

namespace sluice::outbound {
namespace {

TEST(http_url, http_with_default_port) {
  auto u = parse_http_url("http://example.com/v1");
  ASSERT_TRUE(u) << u.error().message();
  EXPECT_FALSE(u->https);
  EXPECT_EQ(u->host, "example.com");
  EXPECT_EQ(u->port, "80");
  EXPECT_EQ(u->host_header, "example.com");
  EXPECT_EQ(u->path, "/v1");
  EXPECT_FALSE(u->query);
  EXPECT_FALSE(u->host_is_ip);
  EXPECT_EQ(u->request_target(), "/v1");
}

TEST(http_url, https_with_explicit_port_keeps_it_in_host_header) {
  auto u = parse_http_url("https://api.example.com:8443/v1/");
  ASSERT_TRUE(u) << u.error().message();
  EXPECT_TRUE(u->https);
  EXPECT_EQ(u->host, "api.example.com");
  EXPECT_EQ(u->port, "8443");
  EXPECT_EQ(u->host_header, "api.example.com:8443");
  EXPECT_EQ(u->path, "/v1/");
  EXPECT_EQ(u->path_prefix(), "/v1");
}

TEST(http_url, https_defaults_to_443) {
  auto u = parse_http_url("https://example.com");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->port, "443");
  EXPECT_EQ(u->path, "");
  EXPECT_EQ(u->path_prefix(), "");
  EXPECT_EQ(u->request_target(), "/");
}

TEST(http_url, scheme_is_case_insensitive) {
  auto u = parse_http_url("HTTPS://example.com/");
  ASSERT_TRUE(u);
  EXPECT_TRUE(u->https);
  EXPECT_EQ(u->port, "443");
}

TEST(http_url, query_is_kept_encoded_and_an_empty_one_is_not_dropped) {
  auto u = parse_http_url("http://h/searx/?language=en&q=a%20b");
  ASSERT_TRUE(u);
  ASSERT_TRUE(u->query);
  EXPECT_EQ(*u->query, "language=en&q=a%20b");
  EXPECT_EQ(u->path_prefix(), "/searx");
  EXPECT_EQ(u->request_target(), "/searx/?language=en&q=a%20b");

  auto empty = parse_http_url("http://h/p?");
  ASSERT_TRUE(empty);
  ASSERT_TRUE(empty->query);
  EXPECT_EQ(*empty->query, "");
  EXPECT_EQ(empty->request_target(), "/p?");
}

TEST(http_url, trailing_slashes_all_go_from_the_prefix) {
  auto u = parse_http_url("http://h/a//");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->path_prefix(), "/a");
}

TEST(http_url, ipv4_literal) {
  auto u = parse_http_url("http://127.0.0.1:8080/x");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, "8080");
  EXPECT_EQ(u->host_header, "127.0.0.1:8080");
  EXPECT_TRUE(u->host_is_ip);
}

TEST(http_url, ipv6_literal_has_no_brackets_in_host_but_keeps_them_in_host_header) {
  auto u = parse_http_url("https://[::1]:9443/");
  ASSERT_TRUE(u) << u.error().message();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->host_header, "[::1]:9443");
  EXPECT_TRUE(u->host_is_ip);
}

TEST(http_url, refusals_say_why) {
  EXPECT_EQ(parse_http_url("not a url").error(), url_errc::not_a_url);
  EXPECT_EQ(parse_http_url("/relative/path").error(), url_errc::not_a_url);
  EXPECT_EQ(parse_http_url("").error(), url_errc::not_a_url);
  EXPECT_EQ(parse_http_url("ftp://example.com/").error(), url_errc::not_http);
  EXPECT_EQ(parse_http_url("ws://example.com/").error(), url_errc::not_http);
  EXPECT_EQ(parse_http_url("http:///path").error(), url_errc::no_host);
  EXPECT_EQ(parse_http_url("https://").error(), url_errc::no_host);
}

TEST(http_url, error_messages_read_after_the_urls_name) {
  EXPECT_EQ(make_error_code(url_errc::not_a_url).message(), "is not a URL");
  EXPECT_EQ(make_error_code(url_errc::not_http).message(), "must be http:// or https://");
  EXPECT_EQ(make_error_code(url_errc::no_host).message(), "has no host");
  EXPECT_STREQ(url_category().name(), "sluice.url");
}

}  // namespace
}  // namespace sluice::outbound
