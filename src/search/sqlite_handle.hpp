// Internal to sluice_search: owning wrappers for SQLite handles and the index
// schema. Not part of the public API.
#pragma once

#include <sqlite3.h>

#include <boost/system/result.hpp>
#include <memory>
#include <string_view>

#include "search/search_error.hpp"

namespace sluice::search::detail {

struct db_closer {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
struct stmt_finalizer {
  void operator()(sqlite3_stmt* stmt) const noexcept { sqlite3_finalize(stmt); }
};
using db_ptr = std::unique_ptr<sqlite3, db_closer>;
using stmt_ptr = std::unique_ptr<sqlite3_stmt, stmt_finalizer>;

// Bumped whenever the tables or the FTS segmentation change; an index of
// another version is refused rather than searched wrongly.
inline constexpr int schema_version = 1;

inline constexpr std::string_view schema_sql = R"sql(
CREATE TABLE documents(
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL UNIQUE,      -- relative to the corpus root, '/' separators
  title TEXT NOT NULL,
  format TEXT NOT NULL,           -- 'markdown' | 'text' | 'html'
  bytes INTEGER NOT NULL,
  passage_count INTEGER NOT NULL
);
CREATE TABLE passages(
  id INTEGER PRIMARY KEY,
  document_id INTEGER NOT NULL REFERENCES documents(id),
  ordinal INTEGER NOT NULL,       -- 0-based position in the document
  source_id TEXT NOT NULL UNIQUE, -- '<path>#<ordinal>'
  heading TEXT NOT NULL,
  text TEXT NOT NULL,
  UNIQUE(document_id, ordinal)
);
-- Contentless: rows hold the segmented form (search::fts_index_form) of the
-- passage's title, heading and text; rowid = passages.id.
CREATE VIRTUAL TABLE passage_terms USING fts5(
  title, heading, body,
  content = '',
  tokenize = 'porter unicode61 remove_diacritics 2'
);
)sql";

inline boost::system::error_code exec(sqlite3* db, const char* sql) {
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? boost::system::error_code{} : make_sqlite_error(rc);
}

inline boost::system::result<stmt_ptr> prepare(sqlite3* db, std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return make_sqlite_error(rc);
  }
  return stmt_ptr(stmt);
}

inline void bind_text(sqlite3_stmt* stmt, int index, std::string_view text) {
  sqlite3_bind_text(stmt, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}

inline std::string_view column_text(sqlite3_stmt* stmt, int column) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, column));
  return p ? std::string_view(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt, column)))
           : std::string_view();
}

}  // namespace sluice::search::detail
