// Text primitives shared by the search index and the builtin answerer: UTF-8
// walking, character classes, and the one tokenizer both sides must agree on.
//
// Tokenization model (English and Chinese, no dictionary):
//  * a "word" is a maximal run of letters/digits outside the CJK blocks; it is
//    folded to lower case (ASCII and full-width ASCII only; other scripts are
//    passed through, SQLite's unicode61 folds them on its side);
//  * a "CJK run" is a maximal run of Han/Kana/Hangul characters; because there
//    is no word segmenter, CJK text is represented by overlapping character
//    bigrams ("数据库" -> "数据", "据库"); a run of one character is a unigram.
//
// All functions are pure and thread-safe. Invalid UTF-8 never fails: each bad
// byte decodes as U+FFFD, which is neither a word nor a CJK character.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::search {

inline constexpr char32_t replacement_char = 0xFFFD;

// Decodes the code point starting at `pos` and advances `pos` past it (one byte
// on invalid input). Precondition: pos < text.size().
char32_t decode_utf8(std::string_view text, std::size_t& pos);
void append_utf8(std::string& out, char32_t cp);
bool is_valid_utf8(std::string_view text);
// Number of code points (invalid bytes count one each).
std::size_t utf8_length(std::string_view text);
// Byte length of the longest prefix holding at most `max_chars` code points.
std::size_t utf8_prefix_bytes(std::string_view text, std::size_t max_chars);
// Replaces every invalid byte with U+FFFD, so the result is valid UTF-8.
std::string sanitize_utf8(std::string_view text);

bool is_cjk(char32_t cp);
// Letters and digits of any script (approximate: everything that is not
// whitespace, punctuation, symbols or CJK), matching what unicode61 keeps.
bool is_word_char(char32_t cp);
bool is_space(char32_t cp);
// ASCII and full-width ASCII letters to lower-case ASCII; full-width digits to
// ASCII digits; everything else unchanged.
char32_t fold_char(char32_t cp);

bool contains_cjk(std::string_view text);

// Trims ASCII and Unicode whitespace at both ends.
std::string_view trim(std::string_view text);
// Trims, and collapses internal whitespace runs into one ASCII space.
std::string collapse_whitespace(std::string_view text);
std::string ascii_lower(std::string_view text);

enum class run_kind { word, cjk };

struct text_run {
  run_kind kind;
  std::string text;  // folded (lower-case) form
};

// Splits text into word runs and CJK runs in order; everything else separates runs.
std::vector<text_run> scan_runs(std::string_view text);

bool is_english_stop_word(std::string_view folded_word);

// Splits a folded CJK run at Chinese function words (的, 是, 什么, 如何, ...),
// returning the content segments in order. Function words are matched longest
// first; segments are never empty.
std::vector<std::string> split_cjk_at_stop_words(std::string_view cjk_run);

// Character bigrams of a CJK segment ("数据库" -> {"数据", "据库"}); a single
// character is returned as itself.
std::vector<std::string> cjk_bigrams(std::string_view cjk_segment);

// Light English suffix stripping ("streams" -> "stream", "indexing" -> "index",
// "queries" -> "query"). Applied identically to queries and documents, so its
// mistakes cancel out; not a linguistic stemmer.
std::string light_stem(std::string_view folded_word);

struct analyze_options {
  bool drop_stop_words = true;  // English stop words and Chinese function words
  bool stem = true;             // light_stem on English words
};

// The bag-of-terms view used for scoring and similarity: words (optionally
// stemmed, stop words removed) and CJK bigrams/unigrams, in text order.
std::vector<std::string> analyze(std::string_view text, const analyze_options& options = {});

// The segmented form stored in the FTS5 index: words as they are and, for each
// CJK run c1..cn, the bigrams c1c2 ... c(n-1)cn followed by the unigram cn,
// separated by spaces. Every character of a run is then the first character
// of some token, so a one-character query is a prefix query, and a longer CJK
// query is a phrase of consecutive bigrams.
std::string fts_index_form(std::string_view text);

}  // namespace sluice::search
