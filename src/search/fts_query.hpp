// Turns free user text into an FTS5 MATCH expression for the passage_terms
// table (see text.hpp for the segmentation the index uses).
//
// Safety contract: the expression only ever contains double-quoted strings,
// the operator OR and the prefix marker '*' written by this builder. User
// characters never reach FTS5 syntax: every term is made of word or CJK
// characters only (punctuation, quotes, parentheses, '*', '-', ':' and '^' are
// separators) and is quoted, so "NEAR", "AND", "NOT" typed by a user are plain
// words. The expression is bound as an SQL parameter by the caller.
//
// Routing:
//  * English words: stop words dropped (unless nothing else is left), each
//    word one quoted term; FTS5's porter tokenizer stems it on both sides;
//  * CJK runs: split at Chinese function words (的, 是, 什么, ...), then each
//    segment of
//      1 character   -> prefix term  "库" *  (matches bigrams starting with it
//                       and the run-final unigram, i.e. every occurrence);
//      2 characters  -> the bigram   "数据";
//      n >= 3        -> each bigram, plus the phrase "向量 量数 数据 据库" so
//                       passages with the exact string rank above passages
//                       that only share some bigrams.
//  * all terms are joined with OR; bm25 rewards passages matching more and
//    rarer terms. Duplicate terms are removed; at most max_terms are kept.
//
// Pure and thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::search {

struct fts_query {
  std::string match;               // empty when the text has no searchable term
  std::vector<std::string> terms;  // the quoted/prefixed terms, in order
  bool empty() const { return match.empty(); }
};

fts_query build_fts_query(std::string_view user_text, std::size_t max_terms = 32);

}  // namespace sluice::search
