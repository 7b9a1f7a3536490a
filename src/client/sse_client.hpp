// sse_client: a resumable Server-Sent Events subscription that never loses an
// event and never repeats one.
//
// What it does
//   - HTTP/1.1 GET (or POST with a body, e.g. POST /AutoAgent) to an http:// or
//     https:// URL (TLS with peer verification on by default, SNI), asking for
//     `Accept-Encoding: gzip` (decoded incrementally); chunked, sized and
//     close-delimited bodies.
//   - Reconnects whenever a response ends for any reason other than the
//     stream's end, resuming with `Last-Event-ID` = the WHATWG "last event ID
//     string" (the last id committed by a blank line, as an EventSource does). A retried POST
//     sends the same body plus Last-Event-ID (the server attaches to the same
//     run by its requestId).
//       * 204 No Content                      -> closed (the stream is over)
//       * 2xx text/event-stream               -> open; when the response ends
//         (cleanly or cut) -> reconnecting, then the next attempt
//       * 429/503 with Retry-After            -> retried after Retry-After
//       * any other status                    -> failed, with the server's
//         JSON error {"error":{"code","message"}} given to on_error
//     Delays: exponential backoff with jitter above a floor (base 1 s, cap
//     30 s, see reconnect_backoff.hpp); the server's `retry:` replaces the
//     base, so no reconnection comes sooner than it. `max_attempts` consecutive
//     attempts that never reach "open" -> failed (attempts_exhausted).
//   - Stall detection: when nothing at all arrives (not even a heartbeat
//     comment) for `stall_timeout`, the connection is dropped and resumed.
//   - Delivery (see delivery_filter.hpp): in order, duplicates removed by
//     sequence number; a merged delta event ("coalesced":[a,b]) counts as
//     a..b; events without an id are delivered as they are. An
//     `event: error` resume_window_exceeded goes to on_error (with
//     first_available) and the client stops (failed): the application
//     always learns that events are missing.
//
// Callbacks run on the client's executor, one at a time, never concurrently
// and never from inside start() or cancel(). Each status change is reported
// once, in this order per attempt: connecting, then open or (reconnecting |
// closed | failed). The last callback is always on_status(closed) or
// on_status(failed); on_error comes just before failed.
//
// Thread-safety: set the handlers and call start() before the executor runs
// anything of the client (or on the executor). cancel() is thread-safe and may
// be called from any thread, any number of times, also from a callback. The
// executor must not run the client's handlers concurrently: an io_context run
// by one thread, or a strand. Destroy the client on its executor's thread or
// after its io_context has stopped, and before that io_context is destroyed;
// the destructor cancels, and no callback runs after it returns.
#pragma once

#include <boost/asio/any_io_executor.hpp>
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

enum class sse_status {
  connecting,    // an attempt starts (detail: method, URL, Last-Event-ID)
  open,          // a 2xx event-stream response arrived (detail: status, encoding)
  reconnecting,  // the response ended or failed; another attempt follows (detail: why, delay)
  closed,        // the stream ended (204) or cancel() was called (detail says which)
  failed,        // stopped for good; on_error was called just before
};
const char* to_string(sse_status s);

struct sse_client_options {
  std::string url;                                // http://host[:port]/path[?query] or https://...
  std::string method = "GET";                     // "GET" or "POST"
  std::string body;                               // sent with every attempt when not empty
  std::string content_type = "application/json";  // of the body
  // Extra request headers (e.g. Authorization). Their values are never put in
  // a status detail or an error; a value with CR, LF or NUL, or over 16 KiB,
  // fails the client (invalid_header) before anything is sent.
  std::vector<std::pair<std::string, std::string>> headers;
  // Resume after this id from the first attempt on (e.g. `--last-event-id`);
  // events up to it (when it is a sequence number) count as delivered.
  std::string last_event_id;
  bool gzip = true;  // send Accept-Encoding: gzip

  // https only: verify the certificate chain (system CAs plus ca_file) and the
  // host name. A verification failure is final (failed, tls_verification_failed).
  bool verify_tls = true;
  std::string ca_file;

  std::chrono::milliseconds connect_timeout{10'000};  // TCP connect + TLS handshake
  // Nothing received for this long (3 x the server's 10 s heartbeat) -> drop
  // the connection and resume. Also bounds sending the request.
  std::chrono::milliseconds stall_timeout{30'000};

  // Reconnection delay (reconnect_backoff.hpp): at least the base (the
  // server's `retry:` when it sent one), growing x2 per failed attempt since
  // the last open response, jitter above that floor, at most cap. base == 0:
  // reconnect at once, and the server's `retry:` is ignored (tests). cap also
  // bounds a server's Retry-After.
  std::chrono::milliseconds backoff_base{1'000};
  std::chrono::milliseconds backoff_cap{30'000};
  std::optional<std::uint64_t> jitter_seed;  // fixed: reproducible delays
  // Consecutive attempts without reaching "open" before failing; 0 = no limit.
  unsigned max_attempts = 10;

  // An event (data buffer) larger than this fails the client (event_too_large):
  // a bound on memory against a server that never ends an event.
  std::size_t max_event_bytes = 64u << 20;
};

// Why the client stopped (on_error), or the in-stream resume_window_exceeded.
struct sse_client_error {
  // The server's code (e.g. "stream_not_found", "unknown_last_event_id",
  // "resume_window_exceeded") or the client's own: "invalid_url",
  // "invalid_header", "last_event_id_too_long" (over 16 KiB: it cannot be sent
  // back as a header), "http_error" (a non-2xx without a JSON error), "not_event_stream",
  // "tls_verification_failed", "attempts_exhausted", "event_too_large",
  // "invalid_gzip", "callback_threw".
  std::string code;
  std::string message;
  unsigned http_status = 0;           // the response status when there was one
  std::uint64_t first_available = 0;  // resume_window_exceeded: oldest event still retained
};

// One dispatched event. The views are valid only during the call.
struct sse_client_event {
  // The event's lastEventId as an EventSource gives it (the WHATWG "last event
  // ID string"): the last id the stream set, which persists across events
  // until an `id:` changes it (also one in a block without data) and is ""
  // after an empty `id:`. This is the resume point (Last-Event-ID).
  std::string_view last_event_id;
  // The id field of this event's own block: has_own_id says whether the block
  // had one (then own_id == last_event_id); "" and false otherwise.
  std::string_view own_id;
  bool has_own_id = false;
  std::string_view type;  // "message" when the block had no event field
  std::string_view data;
  // The sequence numbers the event covers: equal for a plain event with a
  // numeric own id, a..b for a merged delta event, 0..0 without one.
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;
};

using sse_event_handler = std::function<void(const sse_client_event& event)>;
using sse_status_handler = std::function<void(sse_status status, std::string_view detail)>;
using sse_error_handler = std::function<void(const sse_client_error& error)>;

class sse_client {
 public:
  sse_client(boost::asio::any_io_executor executor, sse_client_options options);
  ~sse_client();
  sse_client(const sse_client&) = delete;
  sse_client& operator=(const sse_client&) = delete;

  void on_event(sse_event_handler h);
  void on_status(sse_status_handler h);
  void on_error(sse_error_handler h);

  // Starts the first attempt on the executor. Once only. An invalid URL is
  // reported as failed (invalid_url) through the callbacks, not thrown.
  void start();

  // Stops at once: the connection (or the backoff wait) is abandoned and the
  // client ends with on_status(closed, "cancelled") unless it had already ended.
  void cancel();

  struct impl;  // defined in sse_client.cpp

 private:
  std::shared_ptr<impl> impl_;  // shared with the running coroutine
};

}  // namespace sluice::client
