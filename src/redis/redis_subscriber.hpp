// A Pub/Sub connection: subscribes to channels, delivers their messages, and
// after a lost connection reconnects (with backoff) and subscribes to every
// channel again. Messages published while it was disconnected are lost (that
// is Pub/Sub): `on_resubscribed` tells the owner to catch up by reading what
// it may have missed (e.g. re-reading each stream after its last sequence).
//
// Thread-safety: as redis_client (one executor; callbacks run on it, must not
// throw and must not destroy the subscriber).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "redis/redis_client.hpp"

namespace sluice::redis {

struct redis_subscriber_handlers {
  std::function<void(std::string_view channel, std::string_view payload)> on_message;
  // After a reconnection, once every channel wanted is subscribed again.
  std::function<void()> on_resubscribed;
};

class redis_subscriber {
 public:
  redis_subscriber(boost::asio::any_io_executor ex, redis_client_options options,
                   redis_subscriber_handlers handlers);
  ~redis_subscriber();  // stop()s
  redis_subscriber(const redis_subscriber&) = delete;
  redis_subscriber& operator=(const redis_subscriber&) = delete;

  void start();
  void stop();

  // Wants `channel` from now on and waits until Redis confirms the
  // subscription (messages published after that are delivered), at most
  // request_timeout (then store_unavailable: the channel stays wanted and is
  // subscribed when a connection is made).
  boost::asio::awaitable<boost::system::error_code> subscribe(std::string channel);
  // Stops wanting `channel` (no wait).
  void unsubscribe(const std::string& channel);

  bool connected() const;
  std::size_t channels() const;  // wanted
  std::uint64_t connections() const;

  class impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace sluice::redis
