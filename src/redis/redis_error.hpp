// Typed errors of the Redis layer: the client (connection, protocol) and the
// stream store built on it. A caller maps them to protocol answers, e.g.
// store_unavailable to 503 with Retry-After.
#pragma once

#include <boost/system/error_code.hpp>
#include <type_traits>

namespace sluice::redis {

enum class redis_errc {
  // Redis cannot be reached now (not connected, connection lost, reply timed
  // out). For a command that was in flight when the connection broke, the
  // outcome is unknown: it may or may not have been applied.
  store_unavailable = 1,
  protocol_error,    // the peer sent bytes that are not RESP
  reply_too_large,   // a reply beyond the reader's limits (bulk, elements, bytes)
  unexpected_reply,  // well-formed RESP of the wrong shape for the command
  server_error,      // Redis answered -ERR (see the reply text)
  auth_failed,       // AUTH or SELECT refused at connect
  tls_failed,        // TLS handshake or certificate verification failed
  shutting_down,     // the client was stopped
  // Stream store outcomes.
  invalid_argument,        // a stream id, request id or batch the store refuses
  stream_not_found,        // no such stream in Redis (never created, or expired)
  stream_ended,            // publish into a finished or cancelled stream
  history_truncated,       // the stream's epoch differs: its history was lost
  resume_window_exceeded,  // the events after the cursor were trimmed away
  lease_lost,              // the run's lease expired and was claimed elsewhere
  has_producer,            // an external publish into a stream a run's producer writes
  sequence_conflict,       // a producer's batch does not continue at the stream's next sequence
};

const boost::system::error_category& redis_category() noexcept;
boost::system::error_code make_error_code(redis_errc e) noexcept;

}  // namespace sluice::redis

template <>
struct boost::system::is_error_code_enum<sluice::redis::redis_errc> : std::true_type {};
