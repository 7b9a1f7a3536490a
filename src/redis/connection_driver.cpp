#include "redis/connection_driver.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <random>

#include "net/outbound_connection.hpp"

namespace sluice::redis {

namespace net = boost::asio;
using clock = std::chrono::steady_clock;

connection_driver::connection_driver(net::any_io_executor ex, const redis_client_options& options,
                                     std::string who)
    : ex_(std::move(ex)), opts_(options), who_(std::move(who)), backoff_timer_(ex_) {
  if (opts_.endpoint.tls)
    tls_.emplace(outbound::make_tls_client_context(opts_.tls_verify, opts_.ca_file));
}

void connection_driver::start(std::shared_ptr<void> keep_alive, handlers h) {
  if (started_) return;
  started_ = true;
  net::co_spawn(ex_, loop(std::move(keep_alive), std::move(h)), [who = who_](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      spdlog::error("{}: connection loop failed (a bug): {}", who, x.what());
    } catch (...) {
      spdlog::error("{}: connection loop failed (a bug)", who);
    }
  });
}

void connection_driver::stop() {
  if (stopped_) return;
  stopped_ = true;
  backoff_timer_.cancel();
  if (conn_) conn_->close();
}

net::awaitable<void> connection_driver::loop(std::shared_ptr<void> keep_alive, handlers h) {
  std::minstd_rand jitter(std::random_device{}());
  auto backoff = opts_.backoff_initial;
  while (!stopped_) {
    auto conn = std::make_unique<redis_connection>(ex_, tls_ ? &*tls_ : nullptr, opts_.limits);
    std::string detail;
    // Visible to stop() while connecting, so it can cut the attempt short.
    conn_ = conn.get();
    const auto ec = co_await conn->open(opts_.endpoint, opts_.tls_verify,
                                        clock::now() + opts_.connect_timeout, detail);
    if (stopped_) break;
    if (ec) {
      conn_ = nullptr;
      h.failed(detail);
      // Full jitter: a uniform wait in [backoff/2, backoff].
      const auto ms = backoff.count() / 2 +
                      static_cast<long>(jitter() % static_cast<unsigned>(backoff.count() / 2 + 1));
      backoff_timer_.expires_after(std::chrono::milliseconds(ms));
      (void)co_await backoff_timer_.async_wait(net::as_tuple(net::use_awaitable));
      backoff = std::min(backoff * 2, opts_.backoff_max);
      continue;
    }
    backoff = opts_.backoff_initial;
    co_await h.session(*conn);
    conn_ = nullptr;
    conn->close();
  }
  conn_ = nullptr;
  (void)keep_alive;
}

}  // namespace sluice::redis
