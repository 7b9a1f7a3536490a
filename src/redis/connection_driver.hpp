// The connection loop redis_client and redis_subscriber share: connect
// (TCP or TLS, AUTH, SELECT, within connect_timeout); on failure wait with
// exponential backoff and full jitter (backoff_initial doubling to
// backoff_max) and try again; on success run the owner's session until it
// returns, close the connection, and start over until stopped.
//
// Thread-safety: one executor, like its owners.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "redis/redis_client.hpp"
#include "redis/redis_connection.hpp"

namespace sluice::redis {

class connection_driver {
 public:
  struct handlers {
    // Runs while connected; the connection is closed when it returns.
    std::function<boost::asio::awaitable<void>(redis_connection&)> session;
    // A connection attempt failed; `detail` says why in words (no password).
    std::function<void(const std::string& detail)> failed;
  };

  // Throws (configuration time only) when the TLS context cannot be made.
  // `who` names the owner in log lines ("redis client").
  connection_driver(boost::asio::any_io_executor ex, const redis_client_options& options,
                    std::string who);

  // Spawns the loop once; it holds `keep_alive` (its owner) while it runs.
  void start(std::shared_ptr<void> keep_alive, handlers h);
  // Ends the loop: the backoff wait is cut short, the connection (being
  // made or made) is closed.
  void stop();
  bool stopped() const { return stopped_; }

 private:
  boost::asio::awaitable<void> loop(std::shared_ptr<void> keep_alive, handlers h);

  boost::asio::any_io_executor ex_;
  const redis_client_options& opts_;  // the owner's, which outlives the driver
  const std::string who_;
  std::optional<boost::asio::ssl::context> tls_;
  redis_connection* conn_ = nullptr;  // while connecting or connected
  boost::asio::steady_timer backoff_timer_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace sluice::redis
