#include "llm/builtin_answerer.hpp"

#include <gtest/gtest.h>

#include "../search/test_corpus.hpp"
#include "llm/answer_deltas.hpp"
#include "search/corpus_indexer.hpp"
#include "search/query_decomposer.hpp"
#include "search/result_dedup.hpp"
#include "search/search_index.hpp"
#include "search/text.hpp"

namespace sluice::llm {
namespace {

source_document doc(std::string id, std::string_view text) {
  return source_document{id, id, std::string(text)};
}

std::string concat(const std::vector<std::string_view>& parts) {
  std::string out;
  for (std::string_view p : parts) out.append(p);
  return out;
}

TEST(builtin_answerer, english_answer_cites_the_source_it_quotes) {
  const std::vector<source_document> sources = {
      doc("redis", testing::redis_streams_md),
      doc("sqlite", testing::sqlite_fts_md),
      doc("sse", testing::sse_reconnect_txt),
  };
  const std::vector<std::string> subs = {"How does bm25 ranking work?"};
  const extractive_answer a = answer_extractively(subs[0], subs, sources);
  ASSERT_TRUE(a.found);
  ASSERT_FALSE(a.sentences.empty());
  EXPECT_EQ(a.sentences[0].source, 2u);
  EXPECT_EQ(a.sentences[0].text,
            "The bm25 function ranks FTS5 matches by term frequency and inverse document "
            "frequency.");
  EXPECT_EQ(a.text.rfind("The bm25 function ranks FTS5 matches by term frequency and inverse "
                         "document frequency [2].",
                         0),
            0u)
      << a.text;
  for (const answer_sentence& s : a.sentences) {
    // Every quoted sentence really is in the source it cites.
    EXPECT_NE(sources[s.source - 1].text.find(s.text), std::string::npos) << s.text;
  }
  EXPECT_EQ(a.cited_sources, std::vector<std::size_t>{2});
}

TEST(builtin_answerer, chinese_answer_with_bigram_terms) {
  const std::vector<source_document> sources = {
      doc("vector", testing::vector_db_md),
      doc("streaming", testing::streaming_md),
      doc("inverted", testing::inverted_index_txt),
  };
  const std::vector<std::string> subs = {"断线后如何重连？"};
  const extractive_answer a = answer_extractively(subs[0], subs, sources);
  ASSERT_TRUE(a.found);
  EXPECT_EQ(a.sentences[0].source, 2u);
  EXPECT_EQ(
      a.text.rfind("连接断开后，浏览器会自动重连，并在请求头中带上最后收到的事件编号，服务器据此"
                   "从断点继续推送[2]。",
                   0),
      0u)
      << a.text;
}

TEST(builtin_answerer, sub_queries_pull_in_every_aspect) {
  const std::vector<source_document> sources = {
      doc("redis", testing::redis_streams_md),
      doc("sqlite", testing::sqlite_fts_md),
      doc("inverted", testing::inverted_index_txt),
  };
  const std::string query = "Compare consumer groups and the trigram tokenizer";
  const std::vector<std::string> subs = search::decompose_query(query);
  ASSERT_EQ(subs.size(), 3u);
  const extractive_answer a = answer_extractively(query, subs, sources);
  ASSERT_TRUE(a.found);
  EXPECT_EQ(a.cited_sources, (std::vector<std::size_t>{1, 2}));
  EXPECT_NE(a.text.find("Consumer groups let several consumers"), std::string::npos) << a.text;
  EXPECT_NE(a.text.find("The trigram tokenizer indexes"), std::string::npos) << a.text;
}

TEST(builtin_answerer, mirrored_sources_are_not_repeated) {
  const std::vector<source_document> sources = {
      doc("original", testing::sqlite_fts_md),
      doc("copy", testing::sqlite_fts_copy_md),
  };
  const std::vector<std::string> subs = {"FTS5 bm25 ranking tokenizer inverted index"};
  const extractive_answer a = answer_extractively(subs[0], subs, sources, {.max_sentences = 6});
  ASSERT_TRUE(a.found);
  for (std::size_t i = 0; i < a.sentences.size(); ++i) {
    for (std::size_t j = i + 1; j < a.sentences.size(); ++j) {
      EXPECT_NE(a.sentences[i].text, a.sentences[j].text);
    }
  }
  // The near-identical tokenizer sentence of the copy is redundant with the
  // original's, so at most one of the two appears.
  const auto count = [&](std::string_view needle) {
    std::size_t n = 0;
    for (std::size_t p = a.text.find(needle); p != std::string::npos;
         p = a.text.find(needle, p + 1)) {
      ++n;
    }
    return n;
  };
  EXPECT_LE(count("The trigram tokenizer indexes every sequence"), 1u) << a.text;
  EXPECT_EQ(count("[2]"), 0u) << a.text;  // identical sentences are cited to the first source
}

TEST(builtin_answerer, respects_length_and_sentence_caps) {
  const std::vector<source_document> sources = {
      doc("sqlite", testing::sqlite_fts_md),
      doc("redis", testing::redis_streams_md),
  };
  const std::vector<std::string> subs = {"bm25 FTS5 tokenizer stream consumer"};
  const extractive_answer a =
      answer_extractively(subs[0], subs, sources, {.max_sentences = 2, .max_chars = 200});
  ASSERT_TRUE(a.found);
  EXPECT_LE(a.sentences.size(), 2u);
  EXPECT_LE(search::utf8_length(a.text), 200u);
}

TEST(builtin_answerer, nothing_relevant_gives_the_fixed_notice) {
  const std::vector<source_document> sources = {doc("redis", testing::redis_streams_md)};
  const std::vector<std::string> none;
  const extractive_answer en = answer_extractively("quantum chromodynamics", none, sources);
  EXPECT_FALSE(en.found);
  EXPECT_EQ(en.text, no_answer_text("x"));
  EXPECT_TRUE(en.cited_sources.empty());
  const extractive_answer zh = answer_extractively("量子色动力学", none, {});
  EXPECT_FALSE(zh.found);
  EXPECT_EQ(zh.text, "检索到的资料中没有与问题直接相关的内容。");
  const extractive_answer empty = answer_extractively("", none, sources);
  EXPECT_FALSE(empty.found);
}

TEST(builtin_answerer, deterministic) {
  const std::vector<source_document> sources = {doc("a", testing::sqlite_fts_md),
                                                doc("b", testing::vector_db_md)};
  const std::vector<std::string> subs = {"FTS5 向量检索"};
  EXPECT_EQ(answer_extractively(subs[0], subs, sources).text,
            answer_extractively(subs[0], subs, sources).text);
}

TEST(answer_deltas, concatenate_byte_exactly) {
  const std::string texts[] = {
      "The bm25 function ranks FTS5 matches [2]. Lower values are better [2].",
      "连接断开后，浏览器会自动重连[2]。SQLite的FTS5支持trigram分词[1]。",
      "  leading space, trailing space  ",
      "https://example.com/a/very/long/url/that/exceeds/the/word/limit/for/sure ok",
      "「引号」开头……结尾！",
      "[1][23] [x] [",
      "",
      "   ",
  };
  for (const std::string& text : texts) {
    const auto deltas = split_into_deltas(text);
    EXPECT_EQ(concat(deltas), text);
    for (std::string_view d : deltas) {
      EXPECT_FALSE(d.empty());
      EXPECT_TRUE(search::is_valid_utf8(d)) << text;
      EXPECT_LE(search::utf8_length(d), 30u) << d;
    }
  }
}

TEST(answer_deltas, shapes) {
  using views = std::vector<std::string_view>;
  EXPECT_EQ(split_into_deltas("Lower values win [2]. 向量数据库很常用[1]。"),
            (views{"Lower ", "values ", "win ", "[2]", ". ", "向量", "数据", "库很", "常用", "[1]",
                   "。"}));
  EXPECT_EQ(split_into_deltas("中文，标点。", {.cjk_chars_per_delta = 3}),
            (views{"中文，", "标点。"}));
}

TEST(answer_deltas, stream_yields_every_delta_once) {
  answer_delta_stream stream("SQLite 的 FTS5 [1]。");
  std::string rebuilt;
  std::size_t count = 0;
  while (auto d = stream.next()) {
    rebuilt.append(*d);
    ++count;
  }
  EXPECT_TRUE(stream.done());
  EXPECT_FALSE(stream.next());
  EXPECT_EQ(rebuilt, stream.text());
  EXPECT_EQ(count, split_into_deltas(stream.text()).size());
}

// The deep-search pipeline end to end, minus transport: decompose, search,
// fuse, dedup, answer, stream.
TEST(builtin_answerer_pipeline, citations_point_at_the_retrieved_documents) {
  testing::temp_corpus corpus;
  ASSERT_TRUE(search::build_index(corpus.corpus_dir(), corpus.index_path()));
  auto index = search::search_index::open(corpus.index_path());
  ASSERT_TRUE(index);

  const auto run = [&](const std::string& query) {
    const std::vector<std::string> subs = search::decompose_query(query);
    auto fused = index->search_all(subs, 8);
    EXPECT_TRUE(fused);
    const std::vector<search::search_hit> hits = search::dedup_hits(*fused);
    std::vector<source_document> sources;
    for (const search::search_hit& h : hits) sources.push_back({h.title, h.source_id, h.text});
    extractive_answer answer = answer_extractively(query, subs, sources);
    std::vector<std::string> cited_ids;
    for (std::size_t n : answer.cited_sources) cited_ids.push_back(sources.at(n - 1).source_id);
    answer_delta_stream stream(answer.text);
    std::string streamed;
    while (auto d = stream.next()) streamed.append(*d);
    EXPECT_EQ(streamed, answer.text);
    return std::make_pair(answer, cited_ids);
  };

  const auto [en, en_ids] = run("How does the browser resume the stream after a reconnect?");
  ASSERT_TRUE(en.found);
  EXPECT_EQ(en_ids.front(), "en/sse-reconnect.txt#0") << en.text;
  EXPECT_NE(en.text.find("Last-Event-ID"), std::string::npos) << en.text;

  const auto [zh, zh_ids] = run("向量数据库和全文检索的区别");
  ASSERT_TRUE(zh.found);
  for (const std::string& id : zh_ids) {
    EXPECT_TRUE(id.starts_with("zh/vector-db.md") || id.starts_with("zh/inverted-index.txt")) << id;
  }
  EXPECT_NE(zh.text.find("倒排索引"), std::string::npos) << zh.text;
}

}  // namespace
}  // namespace sluice::llm
