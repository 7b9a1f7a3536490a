#include "search/text.hpp"

#include <gtest/gtest.h>

#include "search/html_to_text.hpp"
#include "search/passage_splitter.hpp"
#include "search/sentence_splitter.hpp"

namespace sluice::search {
namespace {

using strings = std::vector<std::string>;

TEST(search_text, scan_runs_separates_words_and_cjk) {
  const auto runs = scan_runs("SQLite的FTS5索引, ＡＢＣ full-width!");
  ASSERT_EQ(runs.size(), 7u);
  EXPECT_EQ(runs[0].text, "sqlite");
  EXPECT_EQ(runs[1].kind, run_kind::cjk);
  EXPECT_EQ(runs[1].text, "的");
  EXPECT_EQ(runs[2].text, "fts5");
  EXPECT_EQ(runs[3].text, "索引");
  EXPECT_EQ(runs[4].text, "abc");
  EXPECT_EQ(runs[5].text, "full");  // '-' separates
  EXPECT_EQ(runs[6].text, "width");
}

TEST(search_text, fts_index_form_uses_bigrams_and_trailing_unigram) {
  EXPECT_EQ(fts_index_form("向量数据库 SQLite"), "向量 量数 数据 据库 库 sqlite");
  EXPECT_EQ(fts_index_form("和"), "和");
  EXPECT_EQ(fts_index_form("重连"), "重连 连");
}

TEST(search_text, chinese_function_words_split_runs) {
  EXPECT_EQ(split_cjk_at_stop_words("什么是向量数据库"), strings{"向量数据库"});
  EXPECT_EQ(split_cjk_at_stop_words("为什么需要断线重连"), strings{"需要断线重连"});
  EXPECT_EQ(split_cjk_at_stop_words("向量和索引的区别"), (strings{"向量", "索引", "区别"}));
  EXPECT_TRUE(split_cjk_at_stop_words("的是").empty());
}

TEST(search_text, analyze_drops_stop_words_and_stems) {
  EXPECT_EQ(analyze("How do the Streams scale?"), (strings{"stream", "scale"}));
  EXPECT_EQ(analyze("how does it work"), strings{});
  EXPECT_EQ(analyze("什么是倒排索引"), (strings{"倒排", "排索", "索引"}));
  EXPECT_EQ(light_stem("queries"), "query");
  EXPECT_EQ(light_stem("indexing"), "index");
  EXPECT_EQ(light_stem("running"), "run");
  EXPECT_EQ(light_stem("class"), "class");
}

TEST(search_text, utf8_helpers_survive_invalid_input) {
  const std::string bad = std::string("ok\xC3") + "\xFF" + "end";
  EXPECT_FALSE(is_valid_utf8(bad));
  const std::string clean = sanitize_utf8(bad);
  EXPECT_TRUE(is_valid_utf8(clean));
  EXPECT_EQ(clean,
            "ok\xEF\xBF\xBD\xEF\xBF\xBD"
            "end");
  EXPECT_EQ(utf8_length("数据ab"), 4u);
  EXPECT_EQ(utf8_prefix_bytes("数据ab", 1), 3u);
  EXPECT_EQ(collapse_whitespace("  a \n\t b　"), "a b");
}

TEST(sentence_splitter, english_and_chinese_boundaries) {
  const auto s = split_sentences(
      "FTS5 is fast. It ranks with bm25, e.g. for search! Version 3.40 works.\n\n"
      "向量数据库很常用。它支持相似度检索！对吗？\n- list item one\n- list item two");
  const std::vector<std::string_view> expected = {
      "FTS5 is fast.",       "It ranks with bm25, e.g. for search!",
      "Version 3.40 works.", "向量数据库很常用。",
      "它支持相似度检索！",  "对吗？",
      "- list item one",     "- list item two"};
  EXPECT_EQ(s, expected);
}

TEST(html_to_text, strips_scripts_styles_comments_and_decodes_entities) {
  const html_text out = html_to_text(
      "<html><head><title>A &amp; B</title><style>p{}</style></head><body>"
      "<script>var x = '<p>no</p>';</script><h1>Main</h1><p>x &lt; y &#x4E2D;&#25991; "
      "&nbsp;&unknown; <b>bold</b>er</p><!-- hidden --><h2>Sub &quot;part&quot;</h2>"
      "<p>text</p></body></html>");
  EXPECT_EQ(out.title, "A & B");
  EXPECT_EQ(out.text, "# Main\n\nx < y 中文 &unknown; bolder\n\n## Sub \"part\"\n\ntext");
}

TEST(html_to_text, title_falls_back_to_first_h1) {
  EXPECT_EQ(html_to_text("<h1>First <i>one</i></h1><h1>Second</h1>").title, "First one");
}

TEST(passage_splitter, headings_start_passages_and_keep_titles) {
  const std::string md =
      "# Guide\n\nIntro paragraph.\n\n## Install\n\nRun the installer.\n\n"
      "```sh\n# not a heading\nmake\n```\n\n## Use\n\nCall the API.\n";
  const parsed_document doc = parse_document(md, document_format::markdown, "fallback");
  EXPECT_EQ(doc.title, "Guide");
  ASSERT_EQ(doc.passages.size(), 3u);
  EXPECT_EQ(doc.passages[0].heading, "Guide");
  EXPECT_EQ(doc.passages[0].text, "Intro paragraph.");
  EXPECT_EQ(doc.passages[1].heading, "Install");
  EXPECT_EQ(doc.passages[1].text, "Run the installer.\n\n```sh\n# not a heading\nmake\n```");
  EXPECT_EQ(doc.passages[2].heading, "Use");
  EXPECT_EQ(doc.passages[2].ordinal, 2u);
}

TEST(passage_splitter, long_sections_pack_paragraphs_within_limits) {
  std::string md = "# Long\n\n";
  for (int i = 0; i < 30; ++i) {
    md += "Paragraph " + std::to_string(i) + " talks about streaming servers and their clients. ";
    md += "It has two sentences to make it longer than before.\n\n";
  }
  md += std::string(3000, 'x') + "\n";  // one giant unbreakable "sentence"
  const split_options options{.min_chars = 300, .max_chars = 600};
  const parsed_document doc = parse_document(md, document_format::markdown, "f", options);
  ASSERT_GT(doc.passages.size(), 5u);
  for (const passage& p : doc.passages) {
    EXPECT_LE(utf8_length(p.text), options.max_chars + options.min_chars / 2) << p.text;
    EXPECT_EQ(p.heading, "Long");
  }
  for (std::size_t i = 0; i + 1 < doc.passages.size(); ++i) {
    EXPECT_GE(utf8_length(doc.passages[i].text), options.min_chars / 2);
  }
}

TEST(passage_splitter, plain_text_title_is_first_line) {
  const parsed_document doc =
      parse_document("倒排索引简介\n\n正文。\n# 不是标题\n", document_format::text, "stem");
  EXPECT_EQ(doc.title, "倒排索引简介");
  ASSERT_EQ(doc.passages.size(), 1u);
  EXPECT_EQ(doc.passages[0].heading, "");
}

}  // namespace
}  // namespace sluice::search
