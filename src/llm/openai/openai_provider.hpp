// The `openai` chat provider: streams a completion from any server speaking
// OpenAI's POST {base_url}/chat/completions with "stream": true (OpenAI, Ollama,
// llama.cpp, vLLM, ...). One HTTP/1.1 connection per call (http or https),
// opened on the executor of the awaiting coroutine and closed when the call
// ends; the server-sent events are parsed as they arrive and each content delta
// is handed to `on_delta` at once.
//
// Outcomes (chat_outcome::ec, with error_message saying what happened):
//   - success: ec empty; text, finish_reason and usage filled. A stream counts
//     as complete at `data: [DONE]`, or when the HTTP message ends cleanly
//     after a finish_reason was seen (servers that omit [DONE]).
//   - operation_aborted: the awaiting coroutine was cancelled (terminal
//     cancellation); the upstream connection is closed at once.
//   - openai_errc::*: the upstream answered with an error (see below).
//   - boost::asio::error::timed_out: connect/handshake took longer than
//     connect_timeout, or no byte arrived for read_timeout.
//   - the transport's own code otherwise (connection_refused, host_not_found,
//     TLS verification/handshake errors in the ssl category, ...).
// `text` holds what was streamed before any failure.
//
// Thread-safety: an openai_provider is immutable after construction and may be
// shared between threads; concurrent stream_chat calls are independent (each
// has its own connection and runs on its caller's executor).
#pragma once

#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "llm/chat_provider.hpp"

namespace sluice::llm {

struct openai_config {
  // Scheme, host, optional port and path prefix, e.g. "http://127.0.0.1:11434/v1"
  // or "https://api.openai.com/v1". A query string (Azure's ?api-version=...)
  // is kept after /chat/completions.
  std::string base_url = "https://api.openai.com/v1";
  std::string model;
  // Sent as "Authorization: Bearer <api_key>" when not empty. The caller reads
  // it (e.g. from an environment variable); it is never logged.
  std::string api_key;
  // Bounds the TCP connect and the TLS handshake. Name resolution is not
  // bounded by it and a cancellation during resolution takes effect when the
  // lookup returns: Asio's resolver cannot cut getaddrinfo short.
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
  // The call fails when no byte arrives from upstream for this long (while
  // sending the request, waiting for the status line, or mid-stream).
  std::chrono::milliseconds read_timeout{std::chrono::seconds(60)};
  // Added to every request after the standard headers (e.g. OpenAI-Organization).
  std::vector<std::pair<std::string, std::string>> extra_headers;
  // https only: verify the peer's certificate chain (system default CA paths
  // plus ca_file) and its host name. Turn off only for local test servers.
  bool verify_tls = true;
  std::string ca_file;  // optional PEM bundle trusted in addition to the defaults
  // Upper bound on one response body (the whole stream); a guard against an
  // upstream that never ends.
  std::uint64_t max_response_bytes = 64ull << 20;
  // Sent as max_tokens with every call (a request's own smaller max_tokens
  // wins): bounds what one call can spend. 0: not sent (the server's default).
  int max_tokens = 2048;
};

// Upstream failures that are not transport errors.
enum class openai_errc {
  http_status = 1,   // a status other than 200; error_message has status and server message
  stream_truncated,  // the connection or the HTTP message ended before data: [DONE]
  malformed_chunk,   // an event whose data is not a JSON object with "choices"
  upstream_error,    // the stream itself carried {"error": ...}
  response_too_large,
};
const boost::system::error_category& openai_category() noexcept;
boost::system::error_code make_error_code(openai_errc e) noexcept;

class openai_provider final : public chat_provider {
 public:
  // Throws std::invalid_argument for a base_url that is not an absolute
  // http/https URL, and boost::system::system_error when the TLS context
  // cannot be set up (e.g. an unreadable ca_file): configuration errors
  // surface at start-up, not per call.
  explicit openai_provider(openai_config config);
  ~openai_provider() override;

  std::string_view name() const override { return "openai"; }

  boost::asio::awaitable<chat_outcome> stream_chat(
      const chat_request& request, std::function<void(std::string_view)> on_delta) override;

  struct impl;  // opaque: parsed URL and TLS context, defined in the .cpp

 private:
  std::shared_ptr<impl> impl_;  // shared with every call in flight, which may outlive *this
};

std::unique_ptr<chat_provider> make_openai_provider(openai_config config);

}  // namespace sluice::llm

namespace boost::system {
template <>
struct is_error_code_enum<sluice::llm::openai_errc> : std::true_type {};
}  // namespace boost::system
