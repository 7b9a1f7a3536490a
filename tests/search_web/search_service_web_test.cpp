// search_service with the corpus index and a (fake) SearXNG backend: both
// lists fused and deduplicated together, and a failing web backend leaving the
// local results usable, with the failure reported.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <set>

#include "agents/search_service.hpp"
#include "fake_searxng_server.hpp"
#include "search/corpus_indexer.hpp"
#include "test_corpus.hpp"

namespace sluice {
namespace {

namespace net = boost::asio;
using agents::search_report;
using agents::search_service;
using search::search_hit;
using test::fake_reply;
using test::fake_result;
using test::fake_searxng_server;
using test::recorded_search;

template <class T>
T run(net::awaitable<T> a) {
  net::io_context ioc;
  auto f = net::co_spawn(ioc, std::move(a), net::use_future);
  ioc.run();
  return f.get();
}

std::unique_ptr<const search::searxng_client> web_client(const std::string& url) {
  search::searxng_config c;
  c.base_url = url;
  return std::make_unique<const search::searxng_client>(std::move(c));
}

bool has(const std::vector<search_hit>& hits, const std::string& source_id) {
  return std::any_of(hits.begin(), hits.end(),
                     [&](const search_hit& h) { return h.source_id == source_id; });
}

std::vector<std::string> ids(const std::vector<search_hit>& hits) {
  std::vector<std::string> v;
  for (const auto& h : hits) v.push_back(h.source_id);
  return v;
}

class SearchServiceWeb : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(search::build_index(corpus_.corpus_dir(), corpus_.index_path()));
  }

  // What the corpus alone finds.
  std::vector<search_hit> local_hits(std::size_t limit) {
    search_service local(corpus_.index_path(), 2);
    auto r = run(local.search_many_reported(queries_, 5, limit));
    EXPECT_TRUE(r);
    EXPECT_TRUE(r->warnings.empty());
    return r ? r->hits : std::vector<search_hit>{};
  }

  testing::temp_corpus corpus_;
  const std::vector<std::string> queries_ = {"bm25 ranking", "trigram tokenizer"};
};

TEST_F(SearchServiceWeb, FusesLocalAndWebListsAndDropsWebCopiesOfLocalPassages) {
  const auto local = local_hits(50);
  ASSERT_GE(local.size(), 2u);
  const std::string copied_text = local[0].text;
  const std::string web_only_1 =
      "Okapi BM25 has two free parameters, k1 and b, tuned per collection in Lucene.";
  const std::string web_only_2 =
      "Elasticsearch exposes similarity settings for each field of an index mapping.";
  // Every query gets the same web list: the copy of the best local passage
  // first (so it would outrank the local passage on its own), then two
  // web-only results.
  fake_searxng_server server([&](const recorded_search&) {
    fake_reply r;
    r.body = test::results_json({{"https://example.test/copy", "Copy", copied_text},
                                 {"https://example.test/k1", "BM25 parameters", web_only_1},
                                 {"https://example.test/es", "Similarity", web_only_2}});
    return r;
  });
  search_service both(corpus_.index_path(), 2, web_client(server.base_url()));
  ASSERT_NE(both.web(), nullptr);
  auto report = run(both.search_many_reported(queries_, 5, 50));
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_TRUE(report->warnings.empty());

  const auto& hits = report->hits;
  EXPECT_FALSE(has(hits, "https://example.test/copy")) << ::testing::PrintToString(ids(hits));
  EXPECT_TRUE(has(hits, local[0].source_id));
  // Every local hit survives (the web adds, it does not displace, below the limit).
  for (const auto& h : local) EXPECT_TRUE(has(hits, h.source_id)) << h.source_id;
  // Both web-only results, once each although both queries returned them.
  EXPECT_EQ(hits.size(), local.size() + 2) << ::testing::PrintToString(ids(hits));
  const std::vector<std::string> all = ids(hits);
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), all.size());
  auto k1 = std::find_if(hits.begin(), hits.end(), [](const search_hit& h) {
    return h.source_id == "https://example.test/k1";
  });
  ASSERT_NE(k1, hits.end());
  EXPECT_EQ(k1->path, "https://example.test/k1");
  EXPECT_EQ(k1->title, "BM25 parameters");
  EXPECT_EQ(k1->text, web_only_1);
  // Best first by fused (reciprocal rank) score.
  EXPECT_TRUE(
      std::is_sorted(hits.begin(), hits.end(),
                     [](const search_hit& a, const search_hit& b) { return a.score > b.score; }));

  // One web request per query, in parallel with the local searches.
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), queries_.size());
  std::multiset<std::string> asked;
  for (const auto& r : requests) asked.insert(r.q);
  EXPECT_EQ(asked, std::multiset<std::string>(queries_.begin(), queries_.end()));
}

TEST_F(SearchServiceWeb, LimitAppliesToTheFusedList) {
  fake_searxng_server server([](const recorded_search&) {
    fake_reply r;
    r.body = test::results_json({{"https://example.test/1", "One", "first web result text"},
                                 {"https://example.test/2", "Two", "another web result entirely"}});
    return r;
  });
  search_service both(corpus_.index_path(), 2, web_client(server.base_url()));
  auto report = run(both.search_many_reported(queries_, 5, 3));
  ASSERT_TRUE(report);
  EXPECT_EQ(report->hits.size(), 3u);
}

TEST_F(SearchServiceWeb, FailingWebBackendKeepsLocalResultsAndReportsIt) {
  const auto local = local_hits(8);
  ASSERT_FALSE(local.empty());
  fake_searxng_server server([](const recorded_search&) {
    fake_reply r;
    r.status = 502;
    r.content_type = "text/plain";
    r.body = "upstream engines unavailable";
    return r;
  });
  search_service both(corpus_.index_path(), 2, web_client(server.base_url()));
  auto report = run(both.search_many_reported(queries_, 5, 8));
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(ids(report->hits), ids(local));
  ASSERT_EQ(report->warnings.size(), queries_.size());
  for (const auto& w : report->warnings) {
    EXPECT_NE(w.find("web search for \""), std::string::npos) << w;
    EXPECT_NE(w.find("HTTP status 502 (upstream_http_status)"), std::string::npos) << w;
  }

  // The plain search_many (deepsearch, agents) gets the same local hits; the
  // warnings go to the log.
  auto hits = run(both.search_many(queries_, 5, 8));
  ASSERT_TRUE(hits);
  EXPECT_EQ(ids(*hits), ids(local));
}

TEST_F(SearchServiceWeb, UnreachableWebBackendKeepsLocalResults) {
  const auto local = local_hits(8);
  const std::string url = "http://127.0.0.1:" + std::to_string(test::refused_port());
  search_service both(corpus_.index_path(), 2, web_client(url));
  auto report = run(both.search_many_reported(queries_, 5, 8));
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(ids(report->hits), ids(local));
  ASSERT_EQ(report->warnings.size(), queries_.size());
  EXPECT_NE(report->warnings[0].find("(upstream_unreachable)"), std::string::npos) << report->warnings[0];
}

TEST_F(SearchServiceWeb, WebOnlyPartlyFailingStillUsesTheAnsweredQueries) {
  fake_searxng_server server([](const recorded_search& r) {
    fake_reply reply;
    if (r.q == "bm25 ranking") {
      reply.body =
          test::results_json({{"https://example.test/ok", "OK", "a web page about scoring"}});
    } else {
      reply.body = "not json at all";
    }
    return reply;
  });
  search_service both(corpus_.index_path(), 2, web_client(server.base_url()));
  auto report = run(both.search_many_reported(queries_, 5, 50));
  ASSERT_TRUE(report);
  EXPECT_TRUE(has(report->hits, "https://example.test/ok"));
  ASSERT_EQ(report->warnings.size(), 1u);
  EXPECT_NE(report->warnings[0].find("\"trigram tokenizer\""), std::string::npos)
      << report->warnings[0];
  EXPECT_NE(report->warnings[0].find("(upstream_malformed)"), std::string::npos) << report->warnings[0];
}

TEST_F(SearchServiceWeb, WithoutWebBackendNothingChanges) {
  search_service local(corpus_.index_path(), 2);
  EXPECT_EQ(local.web(), nullptr);
  auto report = run(local.search_many_reported(queries_, 5, 8));
  ASSERT_TRUE(report);
  EXPECT_FALSE(report->hits.empty());
  EXPECT_TRUE(report->warnings.empty());
  for (const auto& h : report->hits) EXPECT_EQ(h.source_id.rfind("http", 0), std::string::npos);
}

}  // namespace
}  // namespace sluice
