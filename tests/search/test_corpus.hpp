// A small bilingual corpus written to a fresh temporary directory, shared by
// the search and builtin-answerer tests. The directory is removed on
// destruction.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace sluice::testing {

inline constexpr std::string_view sqlite_fts_md = R"(# SQLite full-text search

FTS5 is the full-text search extension of SQLite. It stores an inverted index inside ordinary database pages.

## Ranking

The bm25 function ranks FTS5 matches by term frequency and inverse document frequency. Lower bm25 values mean better matches, so queries order by the bm25 score ascending.

## Tokenizers

The unicode61 tokenizer splits text on whitespace and punctuation and folds case. The trigram tokenizer indexes every sequence of three characters, which supports substring search.
)";

// sqlite_fts_md with one word changed: a mirrored copy, a near-duplicate.
inline constexpr std::string_view sqlite_fts_copy_md = R"(# SQLite full-text search

FTS5 is the full-text search extension of SQLite. It stores an inverted index inside ordinary database pages.

## Ranking

The bm25 function ranks FTS5 matches by term frequency and inverse document frequency. Lower bm25 values mean better matches, so queries order by the bm25 score ascending.

## Tokenizers

The unicode61 tokenizer splits text on whitespace and punctuation and folds case. The trigram tokenizer indexes every sequence of three characters, which enables substring search.
)";

inline constexpr std::string_view redis_streams_md = R"(# Redis Streams

A Redis stream is an append-only log. XADD appends an entry and returns its id.

## Consumer groups

Consumer groups let several consumers share the work of one stream. Each entry is delivered to one consumer of the group, and XACK acknowledges it.
)";

inline constexpr std::string_view sse_reconnect_txt = R"(Server-Sent Events reconnection

When the connection drops, the browser reconnects automatically after the retry delay.

The browser sends the Last-Event-ID header with the id of the last event it received, so the server can resume the stream without gaps.
)";

inline constexpr std::string_view vector_db_md = R"(# 向量数据库

向量数据库用于存储文本的嵌入向量，并按相似度检索最近邻。常见的索引结构有HNSW和IVF。

## 与全文检索的区别

全文检索依靠倒排索引匹配关键词，向量检索依靠语义相似度。两者经常组合使用，称为混合检索。
)";

inline constexpr std::string_view streaming_md = R"(# 流式输出

服务器通过SSE把模型生成的内容逐段推送给浏览器，用户不必等待完整答案。

## 断线重连

连接断开后，浏览器会自动重连，并在请求头中带上最后收到的事件编号，服务器据此从断点继续推送。
)";

inline constexpr std::string_view inverted_index_txt = R"(倒排索引简介

倒排索引记录每个词出现在哪些文档中，是搜索引擎的核心数据结构。

查询时先找到每个词的文档列表，再合并列表并计算相关性得分。
)";

inline constexpr std::string_view kafka_html = R"(<!DOCTYPE html>
<html><head><title>Apache Kafka &amp; partitions</title>
<style>body { color: red; } .stylesecret { display: none }</style>
<script>var token = "kafkasecrettoken"; if (a < b && c > d) {}</script>
</head>
<body>
<nav><a href="/">Home</a></nav>
<h1>Apache Kafka overview</h1>
<p>Kafka stores records in <b>topics</b>. Each topic is split into partitions&nbsp;that are replicated across brokers.</p>
<!-- a comment that must not be indexed: commentsecret -->
<h2>Partitions &amp; ordering</h2>
<p>Records inside one partition keep their order; the key of a record chooses its partition &lt;hash(key) mod n&gt;.</p>
<ul><li>Producers append records.</li><li>Consumers read at their own offset.</li></ul>
</body></html>
)";

class temp_corpus {
 public:
  temp_corpus() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "sluice_corpus_XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root_ = pattern;
    corpus_ = root_ / "corpus";
    write("en/sqlite-fts.md", sqlite_fts_md);
    write("mirror/sqlite-fts-copy.md", sqlite_fts_copy_md);
    write("en/redis-streams.md", redis_streams_md);
    write("en/sse-reconnect.txt", sse_reconnect_txt);
    write("zh/vector-db.md", vector_db_md);
    write("zh/streaming.md", streaming_md);
    write("zh/inverted-index.txt", inverted_index_txt);
    write("web/kafka.html", kafka_html);
    write(".git/hidden.md", "# Hidden\n\nhiddensecret must never be indexed.\n");
    write("notes.pdf", "not a supported format: pdfsecret");
  }
  ~temp_corpus() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  temp_corpus(const temp_corpus&) = delete;
  temp_corpus& operator=(const temp_corpus&) = delete;

  const std::filesystem::path& corpus_dir() const { return corpus_; }
  std::filesystem::path index_path() const { return root_ / "index.sqlite"; }
  const std::filesystem::path& root() const { return root_; }

  void write(const std::string& relative, std::string_view content) const {
    const std::filesystem::path path = corpus_ / relative;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary);
    out << content;
  }

 private:
  std::filesystem::path root_;
  std::filesystem::path corpus_;
};

}  // namespace sluice::testing
