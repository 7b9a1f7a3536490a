#include "search/corpus_indexer.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

#include "search/sqlite_handle.hpp"
#include "search/text.hpp"

namespace sluice::search {
namespace {

namespace fs = std::filesystem;
using boost::system::error_code;
using boost::system::result;

struct corpus_file {
  fs::path absolute;
  std::string relative;  // generic form, '/' separators
  document_format format;
};

const char* format_name(document_format format) {
  switch (format) {
    case document_format::markdown:
      return "markdown";
    case document_format::text:
      return "text";
    case document_format::html:
      return "html";
  }
  return "text";
}

bool is_hidden(const fs::path& relative) {
  for (const fs::path& part : relative) {
    const std::string name = part.string();
    if (!name.empty() && name[0] == '.' && name != "." && name != "..") return true;
  }
  return false;
}

result<std::vector<corpus_file>> list_corpus(const fs::path& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return make_error_code(search_errc::corpus_not_a_directory);
  std::vector<corpus_file> files;
  fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
  if (ec) return make_error_code(search_errc::corpus_unreadable);
  for (const fs::recursive_directory_iterator end; it != end; it.increment(ec)) {
    if (ec) return make_error_code(search_errc::corpus_unreadable);
    const fs::path relative = it->path().lexically_relative(root);
    if (is_hidden(relative)) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    document_format format;
    if (!it->is_regular_file(ec) ||
        !format_from_extension(it->path().extension().string(), format)) {
      continue;
    }
    files.push_back(corpus_file{it->path(), relative.generic_string(), format});
  }
  if (ec) return make_error_code(search_errc::corpus_unreadable);
  std::sort(files.begin(), files.end(),
            [](const corpus_file& a, const corpus_file& b) { return a.relative < b.relative; });
  return files;
}

bool read_file(const fs::path& path, std::uintmax_t max_bytes, std::string& out) {
  std::error_code ec;
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec || size > max_bytes) return false;
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

class index_writer {
 public:
  static result<index_writer> create(const fs::path& path) {
    sqlite3* raw = nullptr;
    const int rc =
        sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    detail::db_ptr db(raw);
    if (rc != SQLITE_OK) return make_sqlite_error(rc);
    index_writer writer(std::move(db));
    if (error_code ec = writer.prepare_all()) return ec;
    return writer;
  }

  result<std::size_t> add(const corpus_file& file, const parsed_document& doc, std::size_t bytes) {
    sqlite3_stmt* d = insert_document_.get();
    sqlite3_reset(d);
    detail::bind_text(d, 1, file.relative);
    detail::bind_text(d, 2, doc.title);
    sqlite3_bind_text(d, 3, format_name(file.format), -1, SQLITE_STATIC);
    sqlite3_bind_int64(d, 4, static_cast<sqlite3_int64>(bytes));
    sqlite3_bind_int64(d, 5, static_cast<sqlite3_int64>(doc.passages.size()));
    if (int rc = sqlite3_step(d); rc != SQLITE_DONE) return make_sqlite_error(rc);
    const sqlite3_int64 document_id = sqlite3_last_insert_rowid(db_.get());

    const std::string title_terms = fts_index_form(doc.title);
    for (const passage& p : doc.passages) {
      sqlite3_stmt* s = insert_passage_.get();
      sqlite3_reset(s);
      sqlite3_bind_int64(s, 1, document_id);
      sqlite3_bind_int64(s, 2, static_cast<sqlite3_int64>(p.ordinal));
      detail::bind_text(s, 3, file.relative + "#" + std::to_string(p.ordinal));
      detail::bind_text(s, 4, p.heading);
      detail::bind_text(s, 5, p.text);
      if (int rc = sqlite3_step(s); rc != SQLITE_DONE) return make_sqlite_error(rc);
      const sqlite3_int64 passage_id = sqlite3_last_insert_rowid(db_.get());

      sqlite3_stmt* t = insert_terms_.get();
      sqlite3_reset(t);
      sqlite3_bind_int64(t, 1, passage_id);
      detail::bind_text(t, 2, title_terms);
      detail::bind_text(t, 3, fts_index_form(p.heading));
      detail::bind_text(t, 4, fts_index_form(p.text));
      if (int rc = sqlite3_step(t); rc != SQLITE_DONE) return make_sqlite_error(rc);
    }
    return doc.passages.size();
  }

  sqlite3* db() const { return db_.get(); }

  // Finalizes statements and closes the connection so the file can be renamed.
  error_code close() {
    insert_document_.reset();
    insert_passage_.reset();
    insert_terms_.reset();
    const int rc = sqlite3_close(db_.release());
    return rc == SQLITE_OK ? error_code{} : make_sqlite_error(rc);
  }

 private:
  explicit index_writer(detail::db_ptr db) : db_(std::move(db)) {}

  error_code prepare_all() {
    // The index is rebuilt from the corpus on failure, so durability during
    // the build is not needed.
    if (auto ec = detail::exec(db_.get(), "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")) {
      return ec;
    }
    const std::string schema(detail::schema_sql);
    if (auto ec = detail::exec(db_.get(), schema.c_str())) return ec;
    std::string version = "PRAGMA user_version=";
    version.append(std::to_string(detail::schema_version));
    if (auto ec = detail::exec(db_.get(), version.c_str())) return ec;
    if (auto ec = detail::exec(db_.get(), "BEGIN")) return ec;
    auto d = detail::prepare(db_.get(),
                             "INSERT INTO documents(path, title, format, bytes, passage_count) "
                             "VALUES(?1, ?2, ?3, ?4, ?5)");
    if (!d) return d.error();
    auto p = detail::prepare(db_.get(),
                             "INSERT INTO passages(document_id, ordinal, source_id, heading, text) "
                             "VALUES(?1, ?2, ?3, ?4, ?5)");
    if (!p) return p.error();
    auto t = detail::prepare(db_.get(),
                             "INSERT INTO passage_terms(rowid, title, heading, body) "
                             "VALUES(?1, ?2, ?3, ?4)");
    if (!t) return t.error();
    insert_document_ = std::move(*d);
    insert_passage_ = std::move(*p);
    insert_terms_ = std::move(*t);
    return {};
  }

  detail::db_ptr db_;
  detail::stmt_ptr insert_document_;
  detail::stmt_ptr insert_passage_;
  detail::stmt_ptr insert_terms_;
};

}  // namespace

result<index_stats> build_index(const fs::path& corpus_dir, const fs::path& index_path,
                                const index_options& options) {
  auto files = list_corpus(corpus_dir);
  if (!files) return files.error();

  // A name of its own per build (process and build), so that two servers
  // started at once in one folder (two nodes of a cluster, say) each build
  // theirs and the rename, atomic, leaves one whole index: with one shared
  // name the second removed the first's half-built file, whose rename then
  // failed and ended that server.
  static std::atomic<std::uint64_t> builds{0};
  fs::path building = index_path;
  building += ".building." + std::to_string(::getpid()) + "." + std::to_string(builds++);
  std::error_code fs_ec;
  fs::remove(building, fs_ec);

  index_stats stats;
  {
    auto writer = index_writer::create(building);
    if (!writer) return writer.error();
    std::string content;
    for (const corpus_file& file : *files) {
      if (!read_file(file.absolute, options.max_file_bytes, content)) {
        ++stats.skipped_files;
        continue;
      }
      const parsed_document doc =
          parse_document(content, file.format, file.absolute.stem().string(), options.split);
      auto added = writer->add(file, doc, content.size());
      if (!added) {
        writer->close();
        fs::remove(building, fs_ec);
        return added.error();
      }
      ++stats.documents;
      stats.passages += *added;
    }
    error_code ec = detail::exec(writer->db(), "COMMIT");
    if (!ec)
      ec =
          detail::exec(writer->db(), "INSERT INTO passage_terms(passage_terms) VALUES('optimize')");
    const error_code close_ec = writer->close();
    if (!ec) ec = close_ec;
    if (ec) {
      fs::remove(building, fs_ec);
      return ec;
    }
  }
  fs::rename(building, index_path, fs_ec);
  if (fs_ec) {
    fs::remove(building, fs_ec);
    return make_error_code(search_errc::index_unwritable);
  }
  return stats;
}

}  // namespace sluice::search
