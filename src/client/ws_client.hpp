// ws_client: many resumable stream subscriptions over one WebSocket (GET
// /v1/ws, see docs/websocket.md), never losing an event and never repeating one.
//
// What it does
//   - Connects to ws://host[:port]/v1/ws, or wss:// (TLS 1.2+, SNI, the peer's
//     chain and host name verified against the system CAs plus `ca_file`, as
//     the SSE client does; a verification failure is final:
//     tls_verification_failed), offering permessage-deflate unless told not
//     to, with the extra `headers` (e.g. Authorization) on the handshake.
//   - A refused upgrade with a 4xx status (401 unauthorized, 403 forbidden,
//     ...; not 408 or 429) is final: failed, with the server's JSON error code.
//   - On every connection, subscribes to each stream that has not ended with
//     {"op":"subscribe","stream":ID,"lastEventId":N}, N = the highest sequence
//     delivered for that stream (omitted while nothing was delivered and no
//     start position was given), and re-sends the start ops not yet answered.
//     A start request without a requestId gets one generated here, so a start
//     re-sent after a cut attaches to the same run instead of starting another.
//   - Reconnects whenever the connection ends before every stream has ended:
//     exponential backoff with full jitter (reconnect_backoff.hpp); the server
//     closing with 1001 (shutdown) is an ordinary cut. `max_attempts`
//     consecutive attempts that never open -> failed (attempts_exhausted).
//   - Stall detection: Beast's idle timeout pings the server after half of
//     `stall_timeout` without traffic and drops the connection after all of it.
//   - Delivery per stream (delivery_filter.hpp): in order, duplicates dropped
//     by id; a merged delta event ("coalesced":[a,b] in its data) counts as a..b.
//   - {"op":"end"} ends a stream (on_stream_end). A per-stream error
//     (resume_window_exceeded with first_available, stream_not_found,
//     unknown_last_event_id, ...) goes to on_error and stops that stream.
//     When no stream is left, the client closes the socket and ends with
//     closed (every stream ended) or failed (some stream failed).
//
// Callbacks run on the client's executor, one at a time. The last callback is
// on_status(closed) or on_status(failed).
//
// Thread-safety: add streams/starts, set handlers and call start() before the
// executor runs anything of the client. cancel() is thread-safe. The executor
// must not run the client's handlers concurrently (an io_context run by one
// thread, or a strand). Destroy the client on its executor's thread or after
// its io_context has stopped; no callback runs after the destructor returns.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/json/fwd.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::client {

enum class ws_status {
  connecting,    // an attempt starts (detail: URL)
  open,          // the handshake succeeded (detail: "permessage-deflate" or "")
  reconnecting,  // the connection ended early; another attempt follows (detail: why, delay)
  closed,        // every stream ended, or cancel() (detail says which)
  failed,        // stopped for good; on_error was called before
};
const char* to_string(ws_status s);

struct ws_client_options {
  std::string url;  // ws://host[:port]/v1/ws or wss://...
  bool deflate = true;
  // wss only: verify the certificate chain (system CAs plus ca_file) and the
  // host name.
  bool verify_tls = true;
  std::string ca_file;
  // Extra handshake request headers (e.g. Authorization: Bearer ...). Their
  // values are never put in a status detail or an error; one with CR, LF or
  // NUL fails the client (invalid_header) before connecting.
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds connect_timeout{10'000};  // TCP connect + handshake
  std::chrono::milliseconds stall_timeout{30'000};
  std::chrono::milliseconds backoff_base{1'000};  // 0: reconnect at once (tests)
  std::chrono::milliseconds backoff_cap{30'000};
  std::optional<std::uint64_t> jitter_seed;
  unsigned max_attempts = 10;  // 0: no limit
  std::size_t max_message_bytes = 64u << 20;
};

struct ws_client_error {
  // The server's code ("resume_window_exceeded", "stream_not_found", ...) or
  // the client's own: "invalid_url", "invalid_header", "tls_verification_failed",
  // "http_error" (a refused upgrade without a JSON error), "attempts_exhausted",
  // "callback_threw".
  std::string code;
  std::string message;
  std::string stream;                 // "" when not about one stream
  std::uint64_t first_available = 0;  // resume_window_exceeded, history_truncated
};

// One delivered event. `data` is the event's JSON data as text; first..last
// are the sequences it covers (a..b for a merged delta event). A server notice
// (e.g. history_truncated) arrives with type "notice" and first = last = 0.
// Views are valid only during the call.
using ws_event_handler =
    std::function<void(std::string_view stream, std::uint64_t id, std::string_view type,
                       std::string_view data, std::uint64_t first_seq, std::uint64_t last_seq)>;
using ws_stream_end_handler = std::function<void(std::string_view stream)>;
using ws_status_handler = std::function<void(ws_status status, std::string_view detail)>;
using ws_error_handler = std::function<void(const ws_client_error& error)>;
// Answer to a start op: the stream the run writes to.
using ws_started_handler = std::function<void(std::string_view stream, bool created)>;

class ws_client {
 public:
  ws_client(boost::asio::any_io_executor executor, ws_client_options options);
  ~ws_client();
  ws_client(const ws_client&) = delete;
  ws_client& operator=(const ws_client&) = delete;

  // Before start(). `last_event_id`: resume after it (0: from the first
  // retained event).
  void subscribe(std::string stream, std::uint64_t last_event_id = 0);
  // The same with an event id as the server gave it: "N" or "N-EPOCH"
  // (false, nothing added, for anything else).
  bool subscribe(std::string stream, std::string_view last_event_id);
  // The whole id (N or N-EPOCH) of the highest event delivered on `stream`
  // ("" before any).
  std::string last_event_id(std::string_view stream) const;
  // Before start(): {"op":"start","request":request}; the started stream is
  // then followed like a subscribed one.
  void start_run(const boost::json::object& request);

  void on_event(ws_event_handler h);
  void on_stream_end(ws_stream_end_handler h);
  void on_status(ws_status_handler h);
  void on_error(ws_error_handler h);
  void on_started(ws_started_handler h);

  void start();
  void cancel();

  // Highest sequence delivered for `stream` (0: none). On the executor.
  std::uint64_t highest_delivered(std::string_view stream) const;
  // Duplicates dropped over all streams. On the executor.
  std::uint64_t duplicates_dropped() const;

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace sluice::client
