#include "search/search_error.hpp"

#include <sqlite3.h>

#include <string>

namespace sluice::search {
namespace {

class search_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "sluice.search"; }
  std::string message(int value) const override {
    switch (static_cast<search_errc>(value)) {
      case search_errc::corpus_not_a_directory:
        return "corpus path is not a directory";
      case search_errc::corpus_unreadable:
        return "corpus file or directory could not be read";
      case search_errc::index_missing:
        return "search index file does not exist";
      case search_errc::index_schema_mismatch:
        return "file is not a search index of the expected schema version";
      case search_errc::index_unwritable:
        return "search index could not be moved into place";
    }
    return "unknown search error";
  }
};

class sqlite_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "sqlite"; }
  std::string message(int value) const override { return sqlite3_errstr(value); }
};

}  // namespace

const boost::system::error_category& search_category() noexcept {
  static const search_category_impl instance;
  return instance;
}

const boost::system::error_category& sqlite_category() noexcept {
  static const sqlite_category_impl instance;
  return instance;
}

}  // namespace sluice::search
