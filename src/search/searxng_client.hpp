// Web search through a SearXNG instance's JSON API:
//   GET {base_url}/search?q=<query>&format=json
//   -> {"results": [{"url", "title", "content", "engine", ...}, ...]}
// (the instance must list `json` in settings.yml `search.formats`, otherwise
// it answers 403).
//
// The call is blocking (made for the search pool's threads, never for an
// event-loop thread): each search() runs resolve, connect, TLS handshake,
// request and response on a private io_context, all within config.timeout.
// Responses are bounded by config.max_response_bytes. Every failure is an
// outcome (ec + a message naming the instance and the cause), never an
// exception; only bad_alloc escapes.
//
// Thread-safety: immutable after construction; search() may be called from
// any number of threads at once (OpenSSL allows creating connections from one
// SSL_CTX concurrently).
//
// Note: a DNS lookup that hangs past the timeout is abandoned at the deadline,
// but search() returns only when the system resolver gives up on it (Asio
// joins its resolver thread); IP literals and /etc/hosts names never wait.
#pragma once

#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "search/search_index.hpp"

namespace sluice::search {

enum class searxng_errc {
  http_status = 1,     // an answer other than 200
  not_json,            // the body does not parse as JSON
  bad_response,        // JSON, but without a "results" array
  response_too_large,  // more than max_response_bytes
  no_answer,           // the connection closed before a complete response
};

const boost::system::error_category& searxng_category() noexcept;
boost::system::error_code make_error_code(searxng_errc e) noexcept;

struct searxng_config {
  // http:// or https://, with an optional path prefix (…/searx) and query
  // parameters kept on every request (e.g. ?language=en&categories=general).
  std::string base_url;
  // The whole request: resolve, connect, TLS, send and receive. Expiry gives
  // net::error::timed_out.
  std::chrono::milliseconds timeout{10'000};
  // Verify the server certificate (system store plus ca_file) and its host
  // name. Turn off only for local test instances.
  bool verify_tls = true;
  std::string ca_file;  // optional PEM bundle trusted in addition to the defaults
  std::size_t max_response_bytes = 2 * 1024 * 1024;
};

struct searxng_outcome {
  boost::system::error_code ec;  // searxng_errc, net::error::timed_out, or a socket/TLS error
  // For clients: a fixed sentence and a code, never the instance's URL, host,
  // port or answer. error_detail, for the operator's log, has those.
  std::string error_message;
  std::string error_detail;
  // Best first, at most `limit`: source_id = path = the URL, title, heading
  // empty, text = the result's "content", passage_id 0, score = 1 / rank
  // (1-based; SearXNG's own scores are not comparable across queries either).
  std::vector<search_hit> hits;
};

class searxng_client {
 public:
  // Throws std::invalid_argument when base_url is not an http(s) URL with a
  // host, and boost::system::system_error when the trust store or ca_file
  // cannot be loaded.
  explicit searxng_client(searxng_config config);
  ~searxng_client();
  searxng_client(const searxng_client&) = delete;
  searxng_client& operator=(const searxng_client&) = delete;

  // Results without a "url" are skipped; duplicate URLs keep their first rank.
  searxng_outcome search(std::string_view query, std::size_t limit) const;

  const searxng_config& config() const;

  struct impl;

 private:
  std::unique_ptr<const impl> impl_;
};

// Maps a SearXNG JSON answer to hits (see searxng_outcome), or sets the
// outcome's error; `display` names the instance in the error detail. Pure
// logic on bytes from the network (fuzzed by fuzz/searxng_results_fuzz.cpp).
void parse_searxng_results(std::string_view display, std::string_view body,
                           std::string_view content_type, std::size_t limit,
                           searxng_outcome& out);

// Percent-encodes everything but RFC 3986 unreserved characters, so that '+',
// '&', '=' and '#' in a query survive form decoding on the server.
std::string percent_encode_component(std::string_view s);

}  // namespace sluice::search

template <>
struct boost::system::is_error_code_enum<sluice::search::searxng_errc> : std::true_type {};
