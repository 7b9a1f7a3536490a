// An asynchronous Redis client on Boost.Asio: one connection (TCP or TLS),
// pipelined (every command queued while a write is in flight goes out in the
// next single write; replies are matched to commands in order), reconnecting
// with exponential backoff and jitter, and typed errors instead of exceptions.
//
// Failure contract:
// - While not connected, a command fails at once with store_unavailable (it is
//   not queued for later: the caller decides whether to retry, e.g. answer
//   503 with Retry-After).
// - A command in flight when the connection breaks, or whose reply does not
//   come within request_timeout (the connection is then closed and made
//   again), fails with store_unavailable: its outcome is unknown.
// - Redis's own error replies (-ERR, -NOSCRIPT, ...) are values
//   (resp_value::kind::error), not failures: the caller knows what they mean.
//
// Thread-safety: a redis_client and every coroutine that calls it run on one
// executor (one io_context thread; the conventions' one-context-per-thread
// model). Another thread reaches it through net::post / co_spawn on
// executor(). No exception leaves the client's coroutines: failures are
// logged and become error codes.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "redis/redis_error.hpp"
#include "redis/redis_url.hpp"
#include "redis/resp_reader.hpp"

namespace sluice::redis {

struct redis_client_options {
  redis_endpoint endpoint;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds request_timeout{5000};
  std::chrono::milliseconds backoff_initial{50};
  std::chrono::milliseconds backoff_max{2000};
  // Commands written or waiting to be written; beyond it a command fails with
  // store_unavailable at once (a budget: Redis is not keeping up).
  std::size_t max_pending_commands = 100'000;
  bool tls_verify = true;  // rediss://: verify the chain and the host name
  std::string ca_file;     // rediss://: a PEM CA trusted besides the system's
  resp_limits limits;
};

using command_args = std::vector<std::string>;

// command_args from its words: make_args("SET", key, value). (GCC 12 cannot
// keep an initializer list's array alive across co_await, so in coroutines
// write co_await c.command(make_args(...)), not c.command({...}).)
template <class... A>
command_args make_args(A&&... a) {
  command_args v;
  v.reserve(sizeof...(a));
  (v.emplace_back(std::forward<A>(a)), ...);
  return v;
}

class redis_client {
 public:
  // Throws (configuration time only) when the TLS context cannot be made.
  redis_client(boost::asio::any_io_executor ex, redis_client_options options);
  ~redis_client();  // stop()s
  redis_client(const redis_client&) = delete;
  redis_client& operator=(const redis_client&) = delete;

  // Starts connecting (in the background, with reconnection). Once.
  void start();
  // Closes the connection; pending and later commands fail with shutting_down.
  void stop();

  boost::asio::awaitable<boost::system::result<resp_value>> command(command_args args);
  // All commands in one write; one reply per command, in order. Fails as a
  // whole (store_unavailable, ...) or returns exactly commands.size() replies.
  boost::asio::awaitable<boost::system::result<std::vector<resp_value>>> pipeline(
      std::vector<command_args> commands);
  // Already-encoded commands (resp_reader::append_command), `count` of them.
  boost::asio::awaitable<boost::system::result<std::vector<resp_value>>> pipeline_encoded(
      std::string wire, std::size_t count);

  bool connected() const;
  // Waits until connected, or `timeout` (store_unavailable), or stopped.
  boost::asio::awaitable<boost::system::error_code> wait_connected(
      std::chrono::milliseconds timeout);
  // Why the last connection attempt failed (words, no password); empty if none.
  std::string last_error() const;
  // How many times a connection was established (1 after the first).
  std::uint64_t connections() const;

  boost::asio::any_io_executor executor() const;

  class impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace sluice::redis
