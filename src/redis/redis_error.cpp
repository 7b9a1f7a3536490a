#include "redis/redis_error.hpp"

#include <string>

namespace sluice::redis {
namespace {

class category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "sluice.redis"; }
  std::string message(int ev) const override {
    switch (static_cast<redis_errc>(ev)) {
      case redis_errc::store_unavailable:
        return "store_unavailable: Redis is not reachable";
      case redis_errc::protocol_error:
        return "protocol_error: Redis sent bytes that are not RESP";
      case redis_errc::reply_too_large:
        return "reply_too_large: a Redis reply exceeds the reader's limits";
      case redis_errc::unexpected_reply:
        return "unexpected_reply: a Redis reply of the wrong shape";
      case redis_errc::server_error:
        return "server_error: Redis refused the command";
      case redis_errc::auth_failed:
        return "auth_failed: Redis refused AUTH or SELECT";
      case redis_errc::tls_failed:
        return "tls_failed: the TLS handshake with Redis failed";
      case redis_errc::shutting_down:
        return "shutting_down: the Redis client was stopped";
      case redis_errc::invalid_argument:
        return "invalid_argument";
      case redis_errc::stream_not_found:
        return "stream_not_found";
      case redis_errc::stream_ended:
        return "stream_ended: the stream is finished";
      case redis_errc::history_truncated:
        return "history_truncated: the stream's history was lost (epoch changed)";
      case redis_errc::resume_window_exceeded:
        return "resume_window_exceeded: the events after the cursor are no longer retained";
      case redis_errc::lease_lost:
        return "lease_lost: the run's lease expired";
      case redis_errc::has_producer:
        return "has_producer: a run's producer writes this stream";
      case redis_errc::sequence_conflict:
        return "sequence_conflict: the batch does not continue at the stream's next sequence";
    }
    return "unknown redis error";
  }
};

}  // namespace

const boost::system::error_category& redis_category() noexcept {
  static const category c;
  return c;
}

boost::system::error_code make_error_code(redis_errc e) noexcept {
  return {static_cast<int>(e), redis_category()};
}

}  // namespace sluice::redis
