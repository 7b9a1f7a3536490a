// Error codes of the search library. SQLite failures keep SQLite's primary
// result code in sqlite_category(); everything else is a search_errc.
#pragma once

#include <boost/system/error_code.hpp>
#include <type_traits>

namespace sluice::search {

enum class search_errc {
  corpus_not_a_directory = 1,
  corpus_unreadable,      // a directory or file could not be read
  index_missing,          // the index file does not exist
  index_schema_mismatch,  // the file is not an index of this schema version
  index_unwritable,       // the finished index could not be moved into place
};

const boost::system::error_category& search_category() noexcept;
// Values are SQLite result codes (SQLITE_CORRUPT, SQLITE_BUSY, ...); messages
// come from sqlite3_errstr.
const boost::system::error_category& sqlite_category() noexcept;

inline boost::system::error_code make_error_code(search_errc e) noexcept {
  return {static_cast<int>(e), search_category()};
}

inline boost::system::error_code make_sqlite_error(int rc) noexcept {
  return {rc & 0xFF, sqlite_category()};
}

}  // namespace sluice::search

template <>
struct boost::system::is_error_code_enum<sluice::search::search_errc> : std::true_type {};
