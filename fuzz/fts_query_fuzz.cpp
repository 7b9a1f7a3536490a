// Fuzz target for the FTS query builder: any user text becomes a MATCH
// expression that SQLite's FTS5 accepts (the builder's safety contract: user
// characters never reach FTS5 syntax). Checked against a real in-memory FTS5
// table with the index's tokenizer.
#include <sqlite3.h>

#include <cstdlib>

#include "fuzz_input.hpp"
#include "search/fts_query.hpp"

namespace {

sqlite3_stmt* make_statement() {
  sqlite3* db = nullptr;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) std::abort();
  const char* ddl =
      "CREATE VIRTUAL TABLE t USING fts5(terms, tokenize='porter unicode61 remove_diacritics 2');"
      "INSERT INTO t(terms) VALUES ('server sent events reconnect 数据 据库');";
  if (sqlite3_exec(db, ddl, nullptr, nullptr, nullptr) != SQLITE_OK) std::abort();
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT rowid FROM t WHERE t MATCH ?1", -1, &st, nullptr) != SQLITE_OK)
    std::abort();
  return st;  // lives for the process
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static sqlite3_stmt* st = make_statement();
  auto q = sluice::search::build_fts_query(sluice::fuzz::as_view(data, size));
  if (q.terms.size() > 32) std::abort();
  if (q.empty()) return 0;
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, q.match.data(), static_cast<int>(q.match.size()), SQLITE_TRANSIENT);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) std::abort();  // FTS5 refused the expression
  return 0;
}
