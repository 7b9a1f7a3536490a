// Serves the web page's built files (GET only) from one folder: index.html at
// "/", other files by path, with their content types. Nothing outside the
// folder is ever served: paths with "..", NUL, backslashes or symlinks that
// leave the folder are refused.
//
// Headers: a Content-Security-Policy (page_csp), nosniff, no framing, no
// Referer.
//
// Caching: files under /assets/ have content-hashed names (Vite) and are
// immutable for a year; everything else is revalidated (no-cache).
//
// Thread-safety: immutable after construction; serve() from any thread.
#pragma once

#include <filesystem>
#include <optional>
#include <string_view>

#include "transport/http_types.hpp"

namespace sluice::transport {

class static_files {
 public:
  explicit static_files(std::filesystem::path root);
  // The reply for `path` (already percent-decoded), or nullopt when there is
  // no such file (the caller answers 404).
  std::optional<http_reply> serve(std::string_view path) const;
  const std::filesystem::path& root() const { return root_; }

 private:
  std::filesystem::path root_;  // canonical
};

std::string_view content_type_for(const std::filesystem::path& file);

// The Content-Security-Policy of every served file.
inline constexpr std::string_view page_csp =
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'";

}  // namespace sluice::transport
