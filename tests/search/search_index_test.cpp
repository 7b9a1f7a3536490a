#include "search/search_index.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "search/corpus_indexer.hpp"
#include "search/fts_query.hpp"
#include "search/query_decomposer.hpp"
#include "search/result_dedup.hpp"
#include "search/search_error.hpp"
#include "test_corpus.hpp"

namespace sluice::search {
namespace {

class search_index_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto stats = build_index(corpus_.corpus_dir(), corpus_.index_path());
    ASSERT_TRUE(stats) << stats.error().message();
    stats_ = *stats;
    auto index = search_index::open(corpus_.index_path());
    ASSERT_TRUE(index) << index.error().message();
    index_.emplace(std::move(*index));
  }

  std::vector<search_hit> search(std::string_view query, std::size_t limit = 10) {
    auto hits = index_->search(query, limit);
    EXPECT_TRUE(hits) << query << ": " << hits.error().message();
    return hits ? *hits : std::vector<search_hit>{};
  }

  testing::temp_corpus corpus_;
  index_stats stats_;
  std::optional<search_index> index_;
};

TEST_F(search_index_test, indexes_supported_files_and_skips_hidden_ones) {
  EXPECT_EQ(stats_.documents, 8u);
  EXPECT_EQ(stats_.skipped_files, 0u);
  EXPECT_EQ(*index_->document_count(), 8u);
  EXPECT_EQ(*index_->passage_count(), stats_.passages);
  EXPECT_TRUE(search("hiddensecret").empty());
  EXPECT_TRUE(search("pdfsecret").empty());
}

TEST_F(search_index_test, english_query_finds_the_right_document) {
  const auto hits = search("How do consumer groups share a stream?");
  ASSERT_FALSE(hits.empty());
  EXPECT_EQ(hits[0].path, "en/redis-streams.md");
  EXPECT_EQ(hits[0].source_id, "en/redis-streams.md#1");
  EXPECT_EQ(hits[0].title, "Redis Streams");
  EXPECT_EQ(hits[0].heading, "Consumer groups");
  EXPECT_GT(hits[0].score, 0.0);
}

TEST_F(search_index_test, porter_stemming_matches_inflections) {
  const auto hits = search("reconnecting browsers");
  ASSERT_FALSE(hits.empty());
  EXPECT_EQ(hits[0].path, "en/sse-reconnect.txt");
  EXPECT_EQ(hits[0].title, "Server-Sent Events reconnection");
}

TEST_F(search_index_test, chinese_query_finds_the_right_document) {
  const auto hits = search("什么是向量数据库？");
  ASSERT_FALSE(hits.empty());
  EXPECT_EQ(hits[0].path, "zh/vector-db.md");
}

TEST_F(search_index_test, two_character_chinese_query) {
  // "重连" occurs only in zh/streaming.md ("断线重连", "自动重连").
  const auto hits = search("重连");
  ASSERT_FALSE(hits.empty());
  EXPECT_EQ(hits[0].path, "zh/streaming.md");
  for (const search_hit& hit : hits) {
    EXPECT_TRUE(hit.heading.find("重连") != std::string::npos ||
                hit.text.find("重连") != std::string::npos)
        << hit.source_id;
  }
  // "倒排" occurs in two documents, most often in the inverted-index one.
  const auto inverted = search("倒排");
  ASSERT_GE(inverted.size(), 2u);
  EXPECT_EQ(inverted[0].path, "zh/inverted-index.txt");
  EXPECT_EQ(inverted[1].path, "zh/vector-db.md");
}

TEST_F(search_index_test, one_character_chinese_query_is_a_prefix_query) {
  // "库" appears only as the last character of "数据库" (run-final unigram or
  // inside a bigram), which a prefix query on the segmented form reaches.
  const auto hits = search("库");
  ASSERT_FALSE(hits.empty());
  for (const search_hit& hit : hits) {
    EXPECT_TRUE(hit.text.find("库") != std::string::npos ||
                hit.title.find("库") != std::string::npos)
        << hit.source_id;
  }
  EXPECT_EQ(hits[0].path, "zh/vector-db.md");
}

TEST_F(search_index_test, mixed_language_query) {
  const auto hits = search("SSE 断线重连");
  ASSERT_FALSE(hits.empty());
  EXPECT_EQ(hits[0].path, "zh/streaming.md");
}

TEST_F(search_index_test, html_is_stripped_and_titled) {
  const auto hits = search("partition ordering");
  ASSERT_FALSE(hits.empty());
  EXPECT_EQ(hits[0].path, "web/kafka.html");
  EXPECT_EQ(hits[0].title, "Apache Kafka & partitions");
  EXPECT_EQ(hits[0].heading, "Partitions & ordering");
  EXPECT_NE(hits[0].text.find("<hash(key) mod n>"), std::string::npos);
  EXPECT_TRUE(search("kafkasecrettoken").empty());
  EXPECT_TRUE(search("stylesecret").empty());
  EXPECT_TRUE(search("commentsecret").empty());
}

TEST_F(search_index_test, fts_syntax_in_user_text_is_harmless) {
  const char* nasty[] = {
      "\"",         "\"\"",
      "'",          "(",
      ")",          "((bm25",
      "bm25)",      "*",
      "bm25*",      "NEAR",
      "NEAR(a b)",  "a NEAR b",
      "-",          "-bm25",
      "NOT bm25",   "AND",
      "OR",         "bm25 AND OR NOT",
      "title:bm25", "^bm25",
      "{a b}:c",    "'; DROP TABLE passages; --",
      "\"bm25",     "",
      "   ",        "+",
      "。",         "？？",
      "\\",
  };
  for (const char* q : nasty) {
    auto hits = index_->search(q, 5);
    EXPECT_TRUE(hits) << "query [" << q << "]: " << hits.error().message();
  }
  EXPECT_TRUE(search("").empty());
  EXPECT_TRUE(search("*").empty());
  // Operators typed by users are plain words: "NOT" does not exclude.
  const auto hits = search("NOT bm25");
  ASSERT_FALSE(hits.empty());
  EXPECT_NE(hits[0].text.find("bm25"), std::string::npos);
  EXPECT_EQ(*index_->passage_count(), stats_.passages);  // the table survived
}

TEST(fts_query, only_quoted_terms_reach_fts) {
  EXPECT_EQ(build_fts_query("\"foo\" (bar*) NEAR -baz").match,
            "\"foo\" OR \"bar\" OR \"near\" OR \"baz\"");
  EXPECT_EQ(build_fts_query("向量数据库").match,
            "\"向量\" OR \"量数\" OR \"数据\" OR \"据库\" OR \"向量 量数 数据 据库\"");
  EXPECT_EQ(build_fts_query("库").match, "\"库\" *");
  EXPECT_EQ(build_fts_query("the").match, "\"the\"");  // only stop words: keep them
  EXPECT_EQ(build_fts_query("what is the bm25").match, "\"bm25\"");
  EXPECT_TRUE(build_fts_query("()*-\"").empty());
}

TEST_F(search_index_test, source_ids_are_stable_across_rebuilds) {
  const auto before = search("bm25 tokenizer 向量 Kafka", 20);
  ASSERT_GE(before.size(), 4u);
  index_.reset();
  ASSERT_TRUE(build_index(corpus_.corpus_dir(), corpus_.index_path()));
  auto reopened = search_index::open(corpus_.index_path());
  ASSERT_TRUE(reopened);
  index_.emplace(std::move(*reopened));
  const auto after = search("bm25 tokenizer 向量 Kafka", 20);
  ASSERT_EQ(before.size(), after.size());
  for (std::size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(before[i].source_id, after[i].source_id);
    EXPECT_EQ(before[i].passage_id, after[i].passage_id);
  }
}

TEST_F(search_index_test, dedup_removes_the_mirrored_copy_and_keeps_the_better_ranked) {
  const auto hits = search("trigram tokenizer substring search");
  ASSERT_GE(hits.size(), 2u);
  // Both the original and its mirrored copy are found...
  const auto is_tokenizers = [](const search_hit& h) { return h.heading == "Tokenizers"; };
  EXPECT_EQ(std::count_if(hits.begin(), hits.end(), is_tokenizers), 2);
  // ...and dedup keeps exactly one of them: the better-ranked one.
  const auto first = std::find_if(hits.begin(), hits.end(), is_tokenizers);
  const auto unique = dedup_hits(hits);
  EXPECT_EQ(std::count_if(unique.begin(), unique.end(), is_tokenizers), 1);
  const auto kept = std::find_if(unique.begin(), unique.end(), is_tokenizers);
  EXPECT_EQ(kept->source_id, first->source_id);
  // Identical passages (the intro and Ranking sections) are removed too.
  const auto ranking = dedup_hits(search("bm25 inverse document frequency"));
  EXPECT_EQ(std::count_if(ranking.begin(), ranking.end(),
                          [](const search_hit& h) { return h.heading == "Ranking"; }),
            1);
}

TEST_F(search_index_test, search_all_fuses_sub_queries) {
  const auto queries = decompose_query("Compare Redis Streams and Kafka partitions");
  ASSERT_EQ(queries.size(), 3u);
  auto fused = index_->search_all(queries, 5);
  ASSERT_TRUE(fused);
  std::vector<std::string> paths;
  for (const search_hit& hit : *fused) paths.push_back(hit.path);
  EXPECT_NE(std::find(paths.begin(), paths.end(), "en/redis-streams.md"), paths.end());
  EXPECT_NE(std::find(paths.begin(), paths.end(), "web/kafka.html"), paths.end());
  for (std::size_t i = 0; i + 1 < fused->size(); ++i) {
    EXPECT_GE((*fused)[i].score, (*fused)[i + 1].score);
    for (std::size_t j = i + 1; j < fused->size(); ++j) {
      EXPECT_NE((*fused)[i].source_id, (*fused)[j].source_id);
    }
  }
}

// Two builders of one index at once (two servers started together in one
// folder) both succeed, and the index in place is whole.
TEST_F(search_index_test, concurrent_builds_of_one_index_both_succeed) {
  index_.reset();
  std::vector<std::thread> builders;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i)
    builders.emplace_back([&] {
      if (build_index(corpus_.corpus_dir(), corpus_.index_path())) ++ok;
    });
  for (auto& t : builders) t.join();
  EXPECT_EQ(ok.load(), 4);
  auto reopened = search_index::open(corpus_.index_path());
  ASSERT_TRUE(reopened) << reopened.error().message();
  index_.emplace(std::move(*reopened));
  EXPECT_FALSE(search("bm25 tokenizer 向量 Kafka", 20).empty());
  std::size_t leftovers = 0;
  for (const auto& e : std::filesystem::directory_iterator(corpus_.index_path().parent_path()))
    if (e.path().filename().string().find(".building") != std::string::npos) ++leftovers;
  EXPECT_EQ(leftovers, 0u);
}

TEST(search_index_errors, missing_and_foreign_files_are_reported) {
  testing::temp_corpus corpus;
  auto missing = search_index::open(corpus.root() / "nope.sqlite");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), make_error_code(search_errc::index_missing));

  const auto junk = corpus.root() / "junk.sqlite";
  std::ofstream(junk) << "this is not a database at all, just some text padding it out......";
  auto foreign = search_index::open(junk);
  ASSERT_FALSE(foreign);
  EXPECT_EQ(foreign.error(), make_error_code(search_errc::index_schema_mismatch));

  auto not_dir = build_index(corpus.corpus_dir() / "en/sqlite-fts.md", corpus.index_path());
  ASSERT_FALSE(not_dir);
  EXPECT_EQ(not_dir.error(), make_error_code(search_errc::corpus_not_a_directory));
  EXPECT_FALSE(std::filesystem::exists(corpus.index_path()));
}

TEST(result_dedup, fuse_ranked_lists_is_reciprocal_rank_fusion) {
  const auto hit = [](std::string id) {
    search_hit h;
    h.source_id = std::move(id);
    h.text = h.source_id;
    return h;
  };
  const auto fused = fuse_ranked_lists({{hit("a"), hit("b")}, {hit("b"), hit("c")}}, 60.0);
  ASSERT_EQ(fused.size(), 3u);
  EXPECT_EQ(fused[0].source_id, "b");
  EXPECT_DOUBLE_EQ(fused[0].score, 1.0 / 62 + 1.0 / 61);
  EXPECT_EQ(fused[1].source_id, "a");
  EXPECT_EQ(fused[2].source_id, "c");
}

TEST(result_dedup, near_duplicate_measures) {
  const std::string a =
      "Consumer groups let several consumers share the work of one stream and acknowledge entries.";
  const std::string b =
      "Consumer groups let several consumers share the work of one stream and acknowledge items.";
  const std::string c = "向量数据库用于存储文本的嵌入向量，并按相似度检索最近邻。";
  const auto sa = shingle_hashes(a);
  const auto sb = shingle_hashes(b);
  const auto sc = shingle_hashes(c);
  EXPECT_GT(jaccard(sa, sb), 0.8);
  EXPECT_LT(jaccard(sa, sc), 0.01);
  EXPECT_LE(hamming_distance(simhash64(sa), simhash64(sa)), 0);
  EXPECT_GT(hamming_distance(simhash64(sa), simhash64(sc)), 10);
  search_hit h1, h2, h3;
  h1.source_id = "x#0", h1.text = a;
  h2.source_id = "y#0", h2.text = b;
  h3.source_id = "z#0", h3.text = c;
  search_hit h1_again = h1;
  const auto kept = dedup_hits({h1, h2, h3, h1_again});
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].source_id, "x#0");
  EXPECT_EQ(kept[1].source_id, "z#0");
}

}  // namespace
}  // namespace sluice::search
