// One connection to Redis (TCP, or TLS for rediss://): connect, authenticate,
// select the database, then raw writes and replies read one at a time. The
// building block of redis_client and redis_subscriber, which add pipelining,
// reconnection and Pub/Sub on top. Not thread-safe: one coroutine writes and
// one reads at a time, on one executor.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "redis/redis_url.hpp"
#include "redis/resp_reader.hpp"

namespace sluice::redis {

class redis_connection {
 public:
  // `tls` must outlive the connection and be set for a rediss:// endpoint.
  redis_connection(boost::asio::any_io_executor ex, boost::asio::ssl::context* tls,
                   resp_limits limits);
  ~redis_connection();

  // Resolves, connects, completes TLS (verifying the certificate and host name
  // when `verify`), then AUTH and SELECT as the endpoint says, all before
  // `by`. On failure, `detail` says why in words (never the password):
  // store_unavailable (cannot connect / timed out), tls_failed, auth_failed.
  boost::asio::awaitable<boost::system::error_code> open(const redis_endpoint& e, bool verify,
                                                         std::chrono::steady_clock::time_point by,
                                                         std::string& detail);

  // Writes all of `bytes`.
  boost::asio::awaitable<boost::system::error_code> write(std::string_view bytes);
  // The next reply; store_unavailable when the connection ends,
  // protocol_error / reply_too_large for bad bytes.
  boost::asio::awaitable<boost::system::result<resp_value>> read_reply();

  // Closes the socket; pending operations end with an error.
  void close();

 private:
  boost::beast::tcp_stream& lowest();

  boost::asio::any_io_executor ex_;
  boost::asio::ssl::context* tls_ctx_;
  std::optional<boost::beast::tcp_stream> plain_;
  std::optional<boost::asio::ssl::stream<boost::beast::tcp_stream>> tls_;
  resp_reader reader_;
  std::unique_ptr<char[]> read_buffer_;
};

}  // namespace sluice::redis
