// HTTP request routing: the stream API's HTTP adapter (publish, subscribe,
// status, cancel, share links: request -> streams::stream_service op ->
// reply), run routes, health, metrics and static files. Producers add their
// own routes with add().
//
// admit() runs the browser-facing checks (Host, Origin, Content-Type) and
// authenticates an HTTP request or a WebSocket upgrade once; every stream
// operation's access check is then the op layer's (streams/stream_service.hpp,
// see docs/security.md).
//
// Thread-safety: add() only before the server starts; dispatch() from any
// worker thread concurrently.
#pragma once

#include <map>
#include <string>
#include <utility>

#include "auth/jwt.hpp"
#include "core/stream_registry.hpp"
#include "streams/stream_service.hpp"
#include "transport/http_types.hpp"
#include "transport/metrics.hpp"
#include "transport/server_config.hpp"
#include "transport/static_files.hpp"

namespace sluice::transport {

class router {
 public:
  // Reads the JWT key when config.auth.mode is jwt, and refuses --auth none
  // on a non-loopback host without insecure_no_auth: throws
  // std::runtime_error with a message for the operator.
  router(streams::stream_service& service, metrics& m, const server_config& config);

  // The checks made once per HTTP request (and at a WebSocket upgrade,
  // `websocket` true) before dispatch: the Host header on loopback binds, the
  // Origin of state-changing requests and upgrades, the Content-Type of
  // POSTs, and the token. Sets req.principal and req.subject; an error reply
  // when the request must be refused.
  std::optional<http_reply> admit(request_context& req, bool websocket);

  // CORS response headers for a request from a configured --allowed-origins
  // origin (empty otherwise).
  std::vector<std::pair<std::string, std::string>> cors_headers(const request_context& req) const;

  // The verifier of --auth jwt (null with --auth none).
  const auth::verifier* verifier() const { return service_.verifier(); }

  // An exact-path route. Later additions for the same method and path win.
  // It needs a token with sluice.run (it makes the server work).
  void add(std::string method, std::string path, route_handler handler);
  // POST `path` starts (or attaches to) a run through the service's
  // run_launcher, as `endpoint`: the JSON body is the run request; the answer
  // is the run's SSE stream, or its final event's data when the request asks
  // not to stream.
  void add_run_route(std::string path, std::string endpoint);

  handler_result dispatch(request_context& req);

  // Where a subscriber of `stream` starts, honouring req.last_event_id: a
  // stream_reply, or 204 when the client already has the final event.
  // Shared by GET /v1/streams/{id}/events and producers that answer with
  // their own stream (their POST is retried by clients with Last-Event-ID).
  handler_result subscribe(request_context& req, std::shared_ptr<core::stream_log> stream);

  core::stream_registry& registry() { return service_.registry(); }
  streams::stream_service& service() { return service_; }

  // Serve the web page's files for GET requests no route claims.
  void serve_static(std::filesystem::path root);

 private:
  handler_result publish(request_context& req, std::string_view id);
  handler_result subscribe_route(request_context& req, std::string_view id);
  handler_result status(request_context& req, std::string_view id);
  handler_result cancel(request_context& req, std::string_view id);
  handler_result share_link(request_context& req, std::string_view id);
  handler_result run(request_context& req, std::string_view endpoint);
  handler_result preflight(const request_context& req);
  bool origin_allowed(const request_context& req) const;
  bool listed_origin(std::string_view origin) const;

  streams::stream_service& service_;
  metrics& metrics_;
  const server_config& config_;
  std::map<std::pair<std::string, std::string>, route_handler> routes_;
  std::optional<static_files> static_;
  bool loopback_bind_ = false;
};

// True for a loopback address literal or "localhost" (the bind check).
bool is_loopback_host(std::string_view host);
// True when a Host header value (name[:port] or [v6][:port]) names this
// machine's loopback: localhost, *.localhost, 127.0.0.0/8 or [::1].
bool is_loopback_host_header(std::string_view host);
// 401 unauthorized with WWW-Authenticate: Bearer.
http_reply unauthorized(std::string_view message);
// A budget's refusal (see docs/security.md, Resource budgets): json_error with `status` (429 or
// 503) and Retry-After: `retry_after_s`.
http_reply json_refusal(unsigned status, std::string_view code, std::string_view message,
                        int retry_after_s = 1);
// An op's refusal as HTTP: json_error of its status, code and message, with
// Retry-After when it has one and WWW-Authenticate on 401.
http_reply error_reply(const streams::op_error& e);
// Where a reader starts, as HTTP: the SSE stream (a history_truncated notice
// first when the start is gone), or 204 when the client has the final event.
handler_result cursor_reply(const streams::cursor_start& c);
// The op layer's reader options from a request (Last-Event-ID, ?coalesce).
streams::subscribe_input subscribe_input_of(const request_context& req);

using streams::parse_event_id;

}  // namespace sluice::transport
