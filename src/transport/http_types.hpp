// What route handlers see and return. Free of Beast so that producers wired in
// app/ can register routes without compiling HTTP machinery.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "auth/principal.hpp"
#include "core/stream_log.hpp"

namespace sluice::transport {

struct request_context {
  std::string_view method;                                 // upper-case, e.g. "GET"
  std::string_view target;                                 // as received
  std::string path;                                        // percent-decoded
  std::vector<std::pair<std::string, std::string>> query;  // percent-decoded
  std::string_view body;
  std::string_view content_type;
  std::optional<std::string_view> last_event_id;  // header (preferred) or ?last_event_id
  bool accepts_gzip = false;
  // The peer's IP address (text) and who is asking: the token's `sub` with
  // --auth jwt, else the peer's address. Per-subject budgets key on `subject`.
  std::string client_address;
  std::string subject;
  // Request headers the access checks read ("" when absent). `authorization`
  // may hold a secret: never log it (nor `target`, which may carry
  // ?access_token=).
  std::string_view authorization;
  std::string_view origin;
  std::string_view host;
  // Who is asking, set by router::admit (HTTP) or from the WebSocket's
  // upgrade; null: no token was presented (with --auth jwt).
  std::shared_ptr<const auth::principal> principal;
  // The connection's event loop: producers started by a handler run here.
  boost::asio::any_io_executor executor;

  std::optional<std::string_view> param(std::string_view name) const;
};

// A complete (non-streaming) response.
struct http_reply {
  unsigned status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, the reply is sent only after this calls its argument (from any
  // thread): with true as it is, with false as 503 store_unavailable. The
  // publish route sets it with --fsync always (see core/stream_store.hpp).
  std::function<void(std::function<void(bool)>)> before_send;
};

// Serve `stream` as SSE to this connection, from `next_seq`.
struct stream_reply {
  std::shared_ptr<core::stream_log> stream;
  std::uint64_t next_seq = 1;
  bool coalesce = true;
  std::string preamble;       // extra SSE bytes after the retry hint (e.g. a notice)
  std::string extra_headers;  // "Name: value\r\n" lines added to the head (CORS)
};

// Wait for `stream`'s final event and answer with its data as a JSON body
// (for clients that asked not to stream, e.g. isStream: false).
struct final_event_reply {
  std::shared_ptr<core::stream_log> stream;
};

struct deferred_reply;
using handler_result = std::variant<http_reply, stream_reply, final_event_reply, deferred_reply>;

// An answer that comes later (an op waiting for a shared store, see
// streams::stream_backend): the session calls `start` once with a
// completion, which it may call from any thread with the real result.
struct deferred_reply {
  std::function<void(std::function<void(handler_result)>)> start;
};
using route_handler = std::function<handler_result(request_context&)>;

// {"error":{"code":...,"message":...}} with `status`.
http_reply json_error(unsigned status, std::string_view code, std::string_view message);
http_reply json_ok(std::string body, unsigned status = 200);

}  // namespace sluice::transport
