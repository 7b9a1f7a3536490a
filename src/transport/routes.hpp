// Request routing and the stream API (publish, subscribe, status, cancel,
// health, metrics). Producers add their own routes with add().
//
// Thread-safety: add() only before the server starts; dispatch() from any
// worker thread concurrently.
#pragma once

#include <map>
#include <string>
#include <utility>

#include "core/stream_registry.hpp"
#include "transport/http_types.hpp"
#include "transport/metrics.hpp"
#include "transport/server_config.hpp"
#include "transport/static_files.hpp"

namespace sluice::transport {

class router {
 public:
  router(core::stream_registry& registry, metrics& m, const server_config& config);

  // An exact-path route. Later additions for the same method and path win.
  void add(std::string method, std::string path, route_handler handler);

  handler_result dispatch(request_context& req);

  // Where a subscriber of `stream` starts, honouring req.last_event_id: a
  // stream_reply, or 204 when the client already has the final event.
  // Shared by GET /v1/streams/{id}/events and producers that answer with
  // their own stream (their POST is retried by clients with Last-Event-ID).
  handler_result subscribe(request_context& req, std::shared_ptr<core::stream_log> stream);

  core::stream_registry& registry() { return registry_; }

  // Serve the web page's files for GET requests no route claims.
  void serve_static(std::filesystem::path root);

 private:
  handler_result publish(request_context& req, std::string_view id);
  handler_result subscribe_route(request_context& req, std::string_view id);
  handler_result status(std::string_view id);
  handler_result cancel(request_context& req, std::string_view id);

  core::stream_registry& registry_;
  metrics& metrics_;
  const server_config& config_;
  std::map<std::pair<std::string, std::string>, route_handler> routes_;
  std::optional<static_files> static_;
};

// A budget's refusal (see docs/budgets.md): json_error with `status` (429 or
// 503) and Retry-After: `retry_after_s`.
http_reply json_refusal(unsigned status, std::string_view code, std::string_view message,
                        int retry_after_s = 1);
// The refusal for a stream registry error (too_many_streams: 503,
// too_many_streams_for_subject: 429, memory_budget_exceeded: 503).
http_reply registry_refusal(const boost::system::error_code& ec);

// Parses a Last-Event-ID value: decimal digits only, fits in 63 bits.
std::optional<std::uint64_t> parse_event_id(std::string_view s);

}  // namespace sluice::transport
