#include "search/search_index.hpp"

#include <system_error>

#include "search/fts_query.hpp"
#include "search/result_dedup.hpp"
#include "search/sqlite_handle.hpp"

namespace sluice::search {

using boost::system::result;

void search_index::db_closer::operator()(sqlite3* db) const noexcept {
  sqlite3_close_v2(db);
}

search_index::search_index(std::unique_ptr<sqlite3, db_closer> db) : db_(std::move(db)) {}
search_index::search_index(search_index&&) noexcept = default;
search_index& search_index::operator=(search_index&&) noexcept = default;
search_index::~search_index() = default;

result<search_index> search_index::open(const std::filesystem::path& index_path) {
  std::error_code fs_ec;
  if (!std::filesystem::is_regular_file(index_path, fs_ec)) {
    return make_error_code(search_errc::index_missing);
  }
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(index_path.c_str(), &raw,
                                 SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<sqlite3, db_closer> db(raw);
  if (rc != SQLITE_OK) return make_sqlite_error(rc);
  search_index index(std::move(db));
  auto version = index.count("PRAGMA user_version");
  if (!version) {
    // SQLITE_NOTADB and friends: not an index at all.
    return make_error_code(search_errc::index_schema_mismatch);
  }
  if (*version != static_cast<std::size_t>(detail::schema_version)) {
    return make_error_code(search_errc::index_schema_mismatch);
  }
  return index;
}

result<std::size_t> search_index::count(const char* sql) {
  auto stmt = detail::prepare(db_.get(), sql);
  if (!stmt) return stmt.error();
  const int rc = sqlite3_step(stmt->get());
  if (rc != SQLITE_ROW) return make_sqlite_error(rc);
  return static_cast<std::size_t>(sqlite3_column_int64(stmt->get(), 0));
}

result<std::size_t> search_index::passage_count() {
  return count("SELECT count(*) FROM passages");
}

result<std::size_t> search_index::document_count() {
  return count("SELECT count(*) FROM documents");
}

result<std::vector<search_hit>> search_index::search(std::string_view query, std::size_t limit) {
  std::vector<search_hit> hits;
  const fts_query fts = build_fts_query(query);
  if (fts.empty() || limit == 0) return hits;
  static constexpr std::string_view sql =
      "SELECT p.id, p.source_id, d.path, d.title, p.heading, p.text,"
      "       bm25(passage_terms, 2.0, 1.5, 1.0) AS rank_score "
      "FROM passage_terms "
      "JOIN passages p ON p.id = passage_terms.rowid "
      "JOIN documents d ON d.id = p.document_id "
      "WHERE passage_terms MATCH ?1 "
      "ORDER BY rank_score, p.id LIMIT ?2";
  auto stmt = detail::prepare(db_.get(), sql);
  if (!stmt) return stmt.error();
  sqlite3_stmt* s = stmt->get();
  detail::bind_text(s, 1, fts.match);
  sqlite3_bind_int64(s, 2, static_cast<sqlite3_int64>(limit));
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    search_hit hit;
    hit.passage_id = sqlite3_column_int64(s, 0);
    hit.source_id = detail::column_text(s, 1);
    hit.path = detail::column_text(s, 2);
    hit.title = detail::column_text(s, 3);
    hit.heading = detail::column_text(s, 4);
    hit.text = detail::column_text(s, 5);
    hit.score = -sqlite3_column_double(s, 6);
    hits.push_back(std::move(hit));
  }
  if (rc != SQLITE_DONE) return make_sqlite_error(rc);
  return hits;
}

result<std::vector<search_hit>> search_index::search_all(const std::vector<std::string>& queries,
                                                         std::size_t limit_per_query) {
  std::vector<std::vector<search_hit>> lists;
  lists.reserve(queries.size());
  for (const std::string& q : queries) {
    auto hits = search(q, limit_per_query);
    if (!hits) return hits.error();
    lists.push_back(std::move(*hits));
  }
  return fuse_ranked_lists(lists);
}

}  // namespace sluice::search
