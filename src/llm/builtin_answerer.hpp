// The offline "builtin" answerer: extractive question answering over
// retrieved passages. It selects sentences that already exist in the sources
// and cites them; it never writes new text (apart from one fixed "nothing
// found" sentence). See docs/builtin-answerer.md for the method.
//
// Pipeline: sentences of every source (search::split_sentences) ->
// BM25 relevance of each sentence to the query and sub-queries, with term
// statistics computed over the candidate sentences themselves -> a small
// position prior (earlier sources and earlier sentences first) -> greedy MMR
// selection (cosine similarity of term-frequency vectors) with a bonus for
// covering sub-queries not yet covered -> assembly with "[n]" markers, where
// n is the 1-based index of the sentence's source in `sources`.
//
// Pure, deterministic (same input, same answer) and thread-safe.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::llm {

// One numbered source, usually a search hit. Citation [n] refers to
// sources[n - 1].
struct source_document {
  std::string title;
  std::string source_id;
  std::string text;
};

struct answer_options {
  std::size_t max_sentences = 4;
  std::size_t max_chars = 600;      // code points of the whole answer, markers included
  double mmr_lambda = 0.7;          // 1: relevance only; 0: novelty only
  double position_weight = 0.15;    // share of the position prior in a sentence's base score
  double coverage_bonus = 0.25;     // per sub-query newly covered, relative to max relevance
  double context_weight = 0.6;      // bonus for sentences whose source title/heading matches the query
  double min_relevance = 0.3;       // sentences below this share of the best BM25 are never used
  double redundancy_cutoff = 0.75;  // cosine above which a sentence repeats a chosen one
  double bm25_k1 = 1.2;
  double bm25_b = 0.75;
};

struct answer_sentence {
  std::string text;        // as in the source, Markdown list/heading markers removed
  std::size_t source = 0;  // 1-based citation number
  double relevance = 0;    // BM25 against all query terms (raw, not normalized)
};

struct extractive_answer {
  std::string text;                        // the full answer, with [n] markers
  std::vector<answer_sentence> sentences;  // in answer order
  std::vector<std::size_t> cited_sources;  // distinct citation numbers, ascending
  bool found = false;                      // false: no relevant sentence; text is the fixed notice
};

// `sub_queries` may include the query itself (decompose_query() output does);
// it is used for term weighting and coverage, never required.
extractive_answer answer_extractively(std::string_view query,
                                      std::span<const std::string> sub_queries,
                                      std::span<const source_document> sources,
                                      const answer_options& options = {});

// The sentence used when nothing relevant is found: Chinese when the query
// contains CJK characters, English otherwise.
std::string_view no_answer_text(std::string_view query);

}  // namespace sluice::llm
