// Builds the SQLite FTS5 search index from a directory of documents.
//
// Input: every regular file under `corpus_dir` (recursively, hidden files and
// directories skipped) whose extension is .md/.markdown/.txt/.html/.htm.
// Output: a SQLite database at `index_path` with the schema in
// sqlite_handle.hpp (documents, passages, and the FTS5 table passage_terms).
//
// Guarantees:
//  * deterministic: files are processed in order of their relative path, so
//    the same corpus gives the same passage ids and source ids;
//  * source ids are "<relative path>#<0-based passage number>", with '/'
//    separators on every platform;
//  * atomic: the index is built in "<index_path>.building" and renamed over
//    `index_path` only on success; readers never see a half-built index and a
//    failed build leaves the previous index in place.
//
// Meant for start-up or an offline tool (it does blocking file I/O and may
// take seconds on large corpora), but reports failures as error codes so a
// caller can decide whether they are fatal. Thread-safety: concurrent builds
// of the same index_path are not supported.
#pragma once

#include <boost/system/result.hpp>
#include <cstddef>
#include <cstdint>
#include <filesystem>

#include "search/passage_splitter.hpp"

namespace sluice::search {

struct index_options {
  split_options split;
  // Larger files are skipped (counted in skipped_files), not truncated.
  std::uintmax_t max_file_bytes = 16 * 1024 * 1024;
};

struct index_stats {
  std::size_t documents = 0;
  std::size_t passages = 0;
  std::size_t skipped_files = 0;  // unsupported extension excluded; too large or unreadable
};

boost::system::result<index_stats> build_index(const std::filesystem::path& corpus_dir,
                                               const std::filesystem::path& index_path,
                                               const index_options& options = {});

}  // namespace sluice::search
