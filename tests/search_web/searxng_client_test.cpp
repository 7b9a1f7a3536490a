// searxng_client against a fake SearXNG on 127.0.0.1 (real sockets): the
// request it sends, the mapping of results to hits, and every failure as a
// clear outcome (status, not JSON, no results array, too large, refused,
// timed out, TLS verification).
#include "search/searxng_client.hpp"

#include <gtest/gtest.h>

#include <boost/asio/error.hpp>
#include <stdexcept>

#include "fake_searxng_server.hpp"
#include "tls_test_proxy.hpp"

namespace sluice {
namespace {

namespace net = boost::asio;
using search::searxng_client;
using search::searxng_config;
using search::searxng_errc;
using test::fake_reply;
using test::fake_result;
using test::fake_searxng_server;
using test::recorded_search;

searxng_config config_for(const std::string& url) {
  searxng_config c;
  c.base_url = url;
  return c;
}

fake_reply json_reply(const std::vector<fake_result>& results) {
  fake_reply r;
  r.body = test::results_json(results);
  return r;
}

const std::vector<fake_result> three_results = {
    {"https://example.test/a", "Title A", "Content of A."},
    {"https://example.test/b", "Title B", "Content of B."},
    {"https://example.test/c", "Title C", "Content of C."},
};

TEST(SearxngClient, MapsResultsToHitsAndEncodesTheQuery) {
  fake_searxng_server server([](const recorded_search&) { return json_reply(three_results); });
  searxng_client client(config_for(server.base_url()));
  const std::string query = "c++ & rust: 排序 #1 a+b=c 100%";
  auto out = client.search(query, 10);
  ASSERT_FALSE(out.ec) << out.error_message;
  ASSERT_EQ(out.hits.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& h = out.hits[i];
    EXPECT_EQ(h.source_id, three_results[i].url);
    EXPECT_EQ(h.path, three_results[i].url);
    EXPECT_EQ(h.title, three_results[i].title);
    EXPECT_EQ(h.text, three_results[i].content);
    EXPECT_EQ(h.heading, "");
    EXPECT_EQ(h.passage_id, 0);
    EXPECT_DOUBLE_EQ(h.score, 1.0 / static_cast<double>(i + 1));
  }
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].path, "/search");
  EXPECT_EQ(requests[0].q, query);
  EXPECT_EQ(requests[0].format, "json");
  EXPECT_EQ(requests[0].accept, "application/json");
}

TEST(SearxngClient, LimitsAndSkipsResultsWithoutUrlOrRepeated) {
  fake_searxng_server server([](const recorded_search&) {
    fake_reply r;
    r.body = R"({"results":[
      {"title":"no url","content":"x"},
      {"url":"https://example.test/1","title":"One"},
      "not an object",
      {"url":"https://example.test/1","title":"One again","content":"dup"},
      {"url":"https://example.test/2","title":"Two","content":"second","engine":"ddg"},
      {"url":"https://example.test/3","title":"Three","content":"third"}]})";
    return r;
  });
  searxng_client client(config_for(server.base_url()));
  auto out = client.search("anything", 2);
  ASSERT_FALSE(out.ec) << out.error_message;
  ASSERT_EQ(out.hits.size(), 2u);
  EXPECT_EQ(out.hits[0].source_id, "https://example.test/1");
  EXPECT_EQ(out.hits[0].title, "One");
  EXPECT_EQ(out.hits[0].text, "");  // no content field
  EXPECT_EQ(out.hits[1].source_id, "https://example.test/2");
  EXPECT_EQ(out.hits[1].text, "second");
}

TEST(SearxngClient, KeepsThePathPrefixAndQueryOfTheBaseUrl) {
  fake_searxng_server server([](const recorded_search&) { return json_reply(three_results); });
  searxng_client client(config_for(server.base_url() + "/searx/?language=en&safesearch=1"));
  auto out = client.search("hello world", 5);
  ASSERT_FALSE(out.ec) << out.error_message;
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].path, "/searx/search");
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"language", "en"}, {"safesearch", "1"}, {"q", "hello world"}, {"format", "json"}};
  EXPECT_EQ(requests[0].params, expected);
}

TEST(SearxngClient, EmptyResultsAreNotAnError) {
  fake_searxng_server server([](const recorded_search&) { return json_reply({}); });
  searxng_client client(config_for(server.base_url()));
  auto out = client.search("nothing", 5);
  EXPECT_FALSE(out.ec) << out.error_message;
  EXPECT_TRUE(out.hits.empty());
}

TEST(SearxngClient, Non200IsAClearError) {
  fake_searxng_server server([](const recorded_search&) {
    fake_reply r;
    r.status = 500;
    r.content_type = "text/plain";
    r.body = "engine crashed";
    return r;
  });
  searxng_client client(config_for(server.base_url()));
  auto out = client.search("q", 5);
  EXPECT_EQ(out.ec, searxng_errc::http_status);
  EXPECT_TRUE(out.hits.empty());
  EXPECT_NE(out.error_detail.find("SearXNG at " + server.base_url()), std::string::npos)
      << out.error_detail;
  EXPECT_NE(out.error_detail.find("HTTP 500"), std::string::npos) << out.error_detail;
  EXPECT_NE(out.error_detail.find("engine crashed"), std::string::npos) << out.error_detail;
  // Clients are told the status and a code, not the instance or its answer.
  EXPECT_EQ(out.error_message,
            "the search engine answered with HTTP status 500 (upstream_http_status)");
}

TEST(SearxngClient, Forbidden403HintsAtTheJsonFormatSetting) {
  fake_searxng_server server([](const recorded_search&) {
    fake_reply r;
    r.status = 403;
    r.content_type = "text/html";
    r.body = "<html>Forbidden</html>";
    return r;
  });
  searxng_client client(config_for(server.base_url()));
  auto out = client.search("q", 5);
  EXPECT_EQ(out.ec, searxng_errc::http_status);
  EXPECT_NE(out.error_detail.find("HTTP 403"), std::string::npos) << out.error_detail;
  EXPECT_NE(out.error_detail.find("search.formats"), std::string::npos) << out.error_detail;
}

TEST(SearxngClient, InvalidJsonIsAClearError) {
  fake_searxng_server server([](const recorded_search&) {
    fake_reply r;
    r.content_type = "text/html; charset=utf-8";
    r.body = "<!DOCTYPE html><html><body>results page</body></html>";
    return r;
  });
  searxng_client client(config_for(server.base_url()));
  auto out = client.search("q", 5);
  EXPECT_EQ(out.ec, searxng_errc::not_json);
  EXPECT_TRUE(out.hits.empty());
  EXPECT_NE(out.error_detail.find("not JSON"), std::string::npos) << out.error_detail;
  EXPECT_NE(out.error_detail.find("text/html"), std::string::npos) << out.error_detail;
  EXPECT_NE(out.error_detail.find("<!DOCTYPE html>"), std::string::npos) << out.error_detail;
}

TEST(SearxngClient, JsonWithoutResultsArrayIsAClearError) {
  fake_searxng_server server([](const recorded_search&) {
    fake_reply r;
    r.body = R"({"error":"rate limited","results":"none"})";
    return r;
  });
  searxng_client client(config_for(server.base_url()));
  auto out = client.search("q", 5);
  EXPECT_EQ(out.ec, searxng_errc::bad_response);
  EXPECT_NE(out.error_detail.find("\"results\""), std::string::npos) << out.error_detail;
}

TEST(SearxngClient, ResponseSizeIsBounded) {
  fake_searxng_server server([](const recorded_search&) {
    std::vector<fake_result> many;
    for (int i = 0; i < 100; ++i)
      many.push_back({"https://example.test/" + std::to_string(i), "t", std::string(100, 'x')});
    return json_reply(many);
  });
  searxng_config c = config_for(server.base_url());
  c.max_response_bytes = 4096;
  searxng_client client(c);
  auto out = client.search("q", 5);
  EXPECT_EQ(out.ec, searxng_errc::response_too_large);
  EXPECT_NE(out.error_detail.find("4096 bytes"), std::string::npos) << out.error_detail;
}

TEST(SearxngClient, RefusedConnectionIsAClearError) {
  const unsigned short port = test::refused_port();
  searxng_client client(config_for("http://127.0.0.1:" + std::to_string(port)));
  auto out = client.search("q", 5);
  EXPECT_EQ(out.ec, net::error::connection_refused) << out.ec.message();
  EXPECT_NE(out.error_detail.find("cannot connect to 127.0.0.1:" + std::to_string(port)),
            std::string::npos)
      << out.error_detail;
  // Clients are told what failed, never where: no host, no port.
  EXPECT_EQ(out.error_message, "the search engine could not be reached (upstream_unreachable)");
}

TEST(SearxngClient, NoAnswerWithinTheTimeoutIsTimedOut) {
  fake_searxng_server server([](const recorded_search&) {
    fake_reply r;
    r.stall = true;
    return r;
  });
  searxng_config c = config_for(server.base_url());
  c.timeout = std::chrono::milliseconds(200);
  searxng_client client(c);
  auto out = client.search("q", 5);
  EXPECT_EQ(out.ec, net::error::timed_out) << out.ec.message();
  EXPECT_NE(out.error_detail.find("no complete answer within 200 ms"), std::string::npos)
      << out.error_detail;
}

TEST(SearxngClient, RejectsUrlsItCannotUse) {
  EXPECT_THROW(searxng_client(config_for("ftp://example.test/")), std::invalid_argument);
  EXPECT_THROW(searxng_client(config_for("not a url")), std::invalid_argument);
  EXPECT_THROW(searxng_client(config_for("http:///search")), std::invalid_argument);
}

// https through a TLS proxy in front of the plain fake, with a self-signed
// certificate for 127.0.0.1: refused by default, accepted once trusted.
TEST(SearxngClient, HttpsVerifiesTheCertificateByDefault) {
  fake_searxng_server server([](const recorded_search&) { return json_reply(three_results); });
  const auto certificate = test::make_self_signed_certificate("IP:127.0.0.1");
  test::temp_file ca_file(certificate.cert_pem);
  test::tls_test_proxy proxy(certificate, server.port());
  const std::string url = "https://127.0.0.1:" + std::to_string(proxy.port());

  searxng_client untrusted(config_for(url));
  auto refused = untrusted.search("q", 5);
  EXPECT_TRUE(refused.ec);
  EXPECT_TRUE(refused.hits.empty());
  EXPECT_NE(refused.error_detail.find("TLS handshake failed"), std::string::npos)
      << refused.error_detail;
  EXPECT_NE(refused.error_detail.find("certificate"), std::string::npos) << refused.error_message;

  searxng_config c = config_for(url);
  c.ca_file = ca_file.path().string();
  searxng_client trusted(c);
  auto out = trusted.search("q", 5);
  ASSERT_FALSE(out.ec) << out.error_message;
  ASSERT_EQ(out.hits.size(), 3u);
  EXPECT_EQ(out.hits[0].source_id, "https://example.test/a");
}

}  // namespace
}  // namespace sluice
