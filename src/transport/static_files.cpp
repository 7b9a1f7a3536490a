#include "transport/static_files.hpp"

#include <fstream>
#include <sstream>

namespace sluice::transport {

namespace fs = std::filesystem;

std::string_view content_type_for(const fs::path& file) {
  const std::string ext = file.extension().string();
  if (ext == ".html") return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".json" || ext == ".map") return "application/json";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".jpg" || ext == ".jpeg") return "image/jpeg";
  if (ext == ".ico") return "image/x-icon";
  if (ext == ".woff2") return "font/woff2";
  if (ext == ".txt") return "text/plain; charset=utf-8";
  if (ext == ".webmanifest") return "application/manifest+json";
  return "application/octet-stream";
}

static_files::static_files(fs::path root) {
  std::error_code ec;
  root_ = fs::weakly_canonical(root, ec);
  if (ec) root_ = std::move(root);
}

std::optional<http_reply> static_files::serve(std::string_view path) const {
  if (path.empty() || path.front() != '/') return std::nullopt;
  if (path.find('\0') != std::string_view::npos || path.find('\\') != std::string_view::npos)
    return std::nullopt;
  std::string_view rel = path.substr(1);
  if (rel.empty()) rel = "index.html";
  // No "..", "." or empty segments: the path names a file below the root.
  for (std::size_t start = 0; start <= rel.size();) {
    auto slash = rel.find('/', start);
    std::string_view seg = rel.substr(start, slash == std::string_view::npos ? rel.npos : slash - start);
    if (seg.empty() || seg == "." || seg == ".." || seg.front() == '.') return std::nullopt;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  std::error_code ec;
  const fs::path file = fs::weakly_canonical(root_ / fs::path(std::string(rel)), ec);
  if (ec) return std::nullopt;
  // Symlinks resolved: the file must still be inside the root.
  auto [r, f] = std::mismatch(root_.begin(), root_.end(), file.begin(), file.end());
  if (r != root_.end()) return std::nullopt;
  if (!fs::is_regular_file(file, ec)) return std::nullopt;
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream body;
  body << in.rdbuf();
  http_reply reply;
  reply.body = std::move(body).str();
  reply.content_type = std::string(content_type_for(file));
  const bool hashed = rel.starts_with("assets/");
  reply.headers.emplace_back("Cache-Control",
                             hashed ? "public, max-age=31536000, immutable" : "no-cache");
  reply.headers.emplace_back("X-Content-Type-Options", "nosniff");
  // The page runs only its own scripts, talks only to this origin (fetch,
  // EventSource, WebSocket), cannot be framed (clickjacking), and leaks no
  // URL (share links carry a token) in Referer. Inline styles stay allowed:
  // React sets style attributes.
  reply.headers.emplace_back("Content-Security-Policy", std::string(page_csp));
  reply.headers.emplace_back("X-Frame-Options", "DENY");
  reply.headers.emplace_back("Referrer-Policy", "no-referrer");
  return reply;
}

}  // namespace sluice::transport
