// Deterministic, rule-based query decomposition: the offline default for the
// "decompose" step of deep search (an LLM-backed decomposer can replace it).
//
// Output contract:
//  * empty input (after trimming) gives an empty list; otherwise the first
//    sub-query is the original query (whitespace collapsed), always;
//  * then, per clause (split at ? ？ ; ； ! ！ 。 and line breaks): the
//    clause itself (when there are several clauses), followed by its
//    enumeration items when it has at least two;
//  * items are split at , ， 、 and conjunctions: English whole words "and",
//    "or", "vs", "vs.", "versus", "as well as"; Chinese 以及 或者 还是 and 和 与
//    及 或 跟, except where those characters are part of a common word
//    (和平, 参与, 涉及, 及时, 或许, ...);
//  * comparison framing is removed before splitting ("compare", "the
//    difference between", 比较, 对比, 介绍, ...的区别, ...有什么区别, ...);
//  * shared context is distributed: in English a leading "<head> of|for|in|on"
//    of the first item is prepended to short following items ("performance
//    of Redis and Kafka" -> "performance of Redis", "performance of Kafka");
//    in Chinese a trailing "的..." of the last item is appended to the earlier
//    items ("Python和Go的并发模型" -> "Python的并发模型", "Go的并发模型");
//  * sub-queries without a searchable term are dropped, duplicates are
//    removed (case-insensitive, ignoring whitespace and end punctuation),
//    keeping the first; at most max_queries are returned.
//
// Pure and thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::search {

struct decompose_options {
  std::size_t max_queries = 5;  // including the original query; 0 means 1
};

std::vector<std::string> decompose_query(std::string_view query,
                                         const decompose_options& options = {});

}  // namespace sluice::search
