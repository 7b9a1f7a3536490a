// Read-only access to an index built by build_index(): bm25-ranked passage
// search for English and Chinese free-text queries.
//
// Thread-safety: a search_index owns one SQLite connection and must be used by
// one thread at a time. Open one per thread (or per worker); any number of
// search_index objects may read the same file concurrently, also while
// build_index() prepares a replacement (it is swapped in by rename, so an
// open index keeps reading the old file).
#pragma once

#include <boost/system/result.hpp>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;

namespace sluice::search {

struct search_hit {
  std::int64_t passage_id = 0;
  std::string source_id;  // "<path>#<ordinal>", stable across rebuilds of the same corpus
  std::string path;       // document path relative to the corpus root
  std::string title;      // document title
  std::string heading;    // nearest heading above the passage
  std::string text;       // passage text as indexed (Markdown kept, HTML stripped)
  double score = 0;       // -bm25: higher is better; only comparable within one query
};

class search_index {
 public:
  // Opens read-only. Errors: search_errc::index_missing,
  // search_errc::index_schema_mismatch, or an sqlite_category() code.
  static boost::system::result<search_index> open(const std::filesystem::path& index_path);

  search_index(search_index&&) noexcept;
  search_index& operator=(search_index&&) noexcept;
  ~search_index();

  // Best `limit` passages for free text `query`, best first (ties by passage
  // id). Any user text is accepted (see fts_query.hpp); text without a
  // searchable term gives an empty list, not an error. Weights: title 2,
  // heading 1.5, body 1.
  boost::system::result<std::vector<search_hit>> search(std::string_view query, std::size_t limit);

  // Runs search() for each query and fuses the ranked lists with reciprocal
  // rank fusion (fuse_ranked_lists), so sub-queries with incomparable bm25
  // scales contribute fairly. Hits are unique by source id.
  boost::system::result<std::vector<search_hit>> search_all(const std::vector<std::string>& queries,
                                                            std::size_t limit_per_query);

  boost::system::result<std::size_t> passage_count();
  boost::system::result<std::size_t> document_count();

 private:
  struct db_closer {
    void operator()(sqlite3* db) const noexcept;
  };
  explicit search_index(std::unique_ptr<sqlite3, db_closer> db);
  boost::system::result<std::size_t> count(const char* sql);

  std::unique_ptr<sqlite3, db_closer> db_;
};

}  // namespace sluice::search
