// Settings of the HTTP/SSE transport. Defaults are the documented defaults of
// `sluice serve` (see README.md).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "auth/auth_config.hpp"
#include "core/stream_registry.hpp"

namespace sluice::transport {

enum class heartbeat_style { comment, data };

// Per-client budgets of the transport (see docs/security.md, Resource budgets). 0 disables one.
// Stream and memory budgets live in core::registry_config, run budgets in
// the agents' run_service.
struct budget_config {
  // Open connections from one client address; more get 503
  // too_many_connections_from_address with Retry-After.
  std::size_t max_connections_per_ip = 1'000;
  // WebSocket ops per second per socket (a token bucket holding up to
  // ws_ops_burst); an op over it gets an error frame `rate_limited`, and
  // ws_max_refused_in_a_row refused ops in a row close the socket (1008).
  double ws_ops_per_s = 100;
  double ws_ops_burst = 200;
  int ws_max_refused_in_a_row = 64;
  // isStream:false (final_event_reply): answered 504 final_reply_timeout when
  // the run has not ended in this time; the run is then unread and the
  // detach grace cancels it.
  std::chrono::milliseconds final_reply_timeout{300'000};
};

struct server_config {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  unsigned threads = 0;  // 0: one per core
  std::size_t max_connections = 10'000;
  std::size_t max_body_bytes = 1u << 20;
  std::size_t max_header_bytes = 8u << 10;
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds heartbeat_interval{10'000};
  heartbeat_style heartbeat = heartbeat_style::comment;
  std::chrono::milliseconds write_stall_timeout{30'000};
  std::chrono::milliseconds max_stream_duration{3'600'000};
  std::chrono::milliseconds shutdown_deadline{5'000};
  std::uint32_t retry_hint_ms = 1'000;
  std::size_t write_batch_bytes = 256u << 10;  // upper bound of one gathered write
  bool coalesce = true;
  int gzip_level = 6;
  int gzip_window_bits = 12;  // 4 KiB window: ~30 KiB of zlib state per gzip stream
  int gzip_mem_level = 5;
  // WebSocket (/v1/ws), see docs/websocket.md.
  std::size_t ws_max_message_bytes = 64u << 10;  // larger client messages: close 1009
  std::size_t ws_max_streams_per_socket = 64;
  std::size_t ws_batch_bytes = 64u << 10;  // one log batch per subscribed stream at most
  bool ws_deflate = true;                  // permessage-deflate when the client offers it
  int ws_deflate_window_bits = 10;         // 1 KiB window (9..15)
  int ws_deflate_mem_level = 4;            // 1..9
  int ws_deflate_level = 6;
  core::registry_config registry;
  // Access control and browser-facing checks (docs/security.md).
  auth::auth_config auth;
  budget_config budgets;
};

}  // namespace sluice::transport
