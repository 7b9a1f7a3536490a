#include "search/query_decomposer.hpp"

#include <gtest/gtest.h>

namespace sluice::search {
namespace {

using strings = std::vector<std::string>;

TEST(query_decomposer, empty_input_gives_nothing) {
  EXPECT_TRUE(decompose_query("").empty());
  EXPECT_TRUE(decompose_query(" \n\t ").empty());
}

TEST(query_decomposer, simple_query_is_kept_alone) {
  EXPECT_EQ(decompose_query("  How does SSE   reconnection work "),
            strings{"How does SSE reconnection work"});
  EXPECT_EQ(decompose_query("什么是倒排索引"), strings{"什么是倒排索引"});
}

TEST(query_decomposer, english_comparisons) {
  EXPECT_EQ(decompose_query("Compare SQLite and PostgreSQL"),
            (strings{"Compare SQLite and PostgreSQL", "SQLite", "PostgreSQL"}));
  EXPECT_EQ(decompose_query("Redis vs Kafka"), (strings{"Redis vs Kafka", "Redis", "Kafka"}));
  EXPECT_EQ(decompose_query("What is the difference between SSE and WebSockets?"),
            (strings{"What is the difference between SSE and WebSockets?", "SSE", "WebSockets"}));
}

TEST(query_decomposer, english_enumeration_shares_context) {
  EXPECT_EQ(decompose_query("performance of Redis, Kafka, and NATS"),
            (strings{"performance of Redis, Kafka, and NATS", "performance of Redis",
                     "performance of Kafka", "performance of NATS"}));
}

TEST(query_decomposer, multiple_questions) {
  EXPECT_EQ(decompose_query("What is FTS5? How does bm25 ranking work?"),
            (strings{"What is FTS5? How does bm25 ranking work?", "What is FTS5",
                     "How does bm25 ranking work"}));
  EXPECT_EQ(decompose_query("What is FTS5; compare SQLite or DuckDB"),
            (strings{"What is FTS5; compare SQLite or DuckDB", "What is FTS5",
                     "compare SQLite or DuckDB", "SQLite", "DuckDB"}));
}

TEST(query_decomposer, chinese_conjunctions) {
  EXPECT_EQ(decompose_query("向量数据库和全文检索的区别"),
            (strings{"向量数据库和全文检索的区别", "向量数据库", "全文检索"}));
  EXPECT_EQ(decompose_query("SSE与WebSocket有什么区别？"),
            (strings{"SSE与WebSocket有什么区别？", "SSE", "WebSocket"}));
  EXPECT_EQ(decompose_query("介绍Python、Java以及Go的并发模型"),
            (strings{"介绍Python、Java以及Go的并发模型", "Python的并发模型", "Java的并发模型",
                     "Go的并发模型"}));
}

TEST(query_decomposer, chinese_multiple_questions) {
  EXPECT_EQ(decompose_query("什么是SSE？如何实现断线重连？"),
            (strings{"什么是SSE？如何实现断线重连？", "什么是SSE", "如何实现断线重连"}));
  EXPECT_EQ(decompose_query("倒排索引的原理；向量检索，全文检索"),
            (strings{"倒排索引的原理；向量检索，全文检索", "倒排索引的原理", "向量检索，全文检索",
                     "向量检索", "全文检索"}));
}

TEST(query_decomposer, conjunction_characters_inside_words_do_not_split) {
  EXPECT_EQ(decompose_query("和平与发展"), (strings{"和平与发展", "和平", "发展"}));
  EXPECT_EQ(decompose_query("如何及时参与开源项目"), strings{"如何及时参与开源项目"});
  EXPECT_EQ(decompose_query("Oracle and order"), (strings{"Oracle and order", "Oracle", "order"}));
  EXPECT_EQ(decompose_query("Android orchestration"), strings{"Android orchestration"});
}

TEST(query_decomposer, dedupes_and_caps) {
  EXPECT_EQ(decompose_query("SQLite and sqlite"), (strings{"SQLite and sqlite", "SQLite"}));
  EXPECT_EQ(decompose_query("Redis, Kafka, NATS, Pulsar, RabbitMQ, ZeroMQ", {.max_queries = 4}),
            (strings{"Redis, Kafka, NATS, Pulsar, RabbitMQ, ZeroMQ", "Redis", "Kafka", "NATS"}));
  EXPECT_EQ(decompose_query("Redis and Kafka", {.max_queries = 0}), strings{"Redis and Kafka"});
  // Items without a searchable term are dropped ("the", "的").
  EXPECT_EQ(decompose_query("Redis and the"), (strings{"Redis and the", "Redis"}));
}

}  // namespace
}  // namespace sluice::search
