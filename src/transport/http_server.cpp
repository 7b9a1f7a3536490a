#include "transport/http_server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <future>
#include <thread>

#include "core/after_publish.hpp"
#include "core/log_text.hpp"
#include "transport/sse_subscriber.hpp"
#include "transport/worker.hpp"

namespace sluice::transport {

namespace {

using reuse_port = net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

constexpr std::int64_t max_rejecting = 1024;
constexpr int max_accepts_per_turn = 64;

std::chrono::milliseconds sweep_period(const server_config& c) {
  auto p = std::min<std::chrono::milliseconds>(c.heartbeat_interval / 4, std::chrono::seconds(1));
  return std::max<std::chrono::milliseconds>(p, std::chrono::milliseconds(5));
}

void log_exception(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("worker task failed: {}", ex.what());
  }
}

}  // namespace

streams::service_config service_config_of(const server_config& config) {
  streams::service_config s;
  if (config.auth.mode == auth::auth_mode::jwt) s.verifier = auth::verifier::load(config.auth);
  s.link_ttl_s = config.auth.link_ttl_s;
  s.coalesce = config.coalesce;
  return s;
}

http_server::http_server(server_config config)
    : ctx_(std::make_unique<server_context>(std::move(config))) {}

http_server::~http_server() {
  if (running_) shutdown();
  workers_.clear();
}

router& http_server::routes() {
  return ctx_->routes;
}
void http_server::set_run_launcher(std::shared_ptr<const streams::run_launcher> launcher) {
  ctx_->streams.set_run_launcher(std::move(launcher));
}
streams::stream_service& http_server::streams() {
  return ctx_->streams;
}
core::stream_registry& http_server::registry() {
  return ctx_->registry;
}
metrics& http_server::stats() {
  return ctx_->metrics;
}
const server_config& http_server::config() const {
  return ctx_->config;
}

void http_server::start() {
  unsigned n = ctx_->config.threads ? ctx_->config.threads : std::thread::hardware_concurrency();
  if (n == 0) n = 1;
  auto address = net::ip::make_address(ctx_->config.host);
  std::uint16_t port = ctx_->config.port;
  for (unsigned i = 0; i < n; ++i) {
    auto w = std::make_unique<worker>(*ctx_, i);
    tcp::endpoint ep(address, port);
    w->acceptor.emplace(w->ioc);
    w->acceptor->open(ep.protocol());
    w->acceptor->set_option(tcp::acceptor::reuse_address(true));
    w->acceptor->set_option(reuse_port(true));
    w->acceptor->bind(ep);  // throws system_error (e.g. address in use)
    w->acceptor->listen(4096);
    w->acceptor->non_blocking(true);              // see accept_loop
    port = w->acceptor->local_endpoint().port();  // port 0: the others share the chosen one
    workers_.push_back(std::move(w));
  }
  port_ = port;
  for (auto& w : workers_) {
    accept_loop(*w);
    schedule_sweep(*w);
    w->thread = std::thread([this, wp = w.get()] {
      ctx_->metrics.register_worker_thread();
      // Publishes made on this thread write to the subscribers they woke at
      // once (bounded per pass), not after the whole queue of this loop.
      core::set_after_publish_hook(&sse_subscriber::flush_ready, wp);
      auto guard = net::make_work_guard(wp->ioc);
      // The last line: handlers catch at their own edge, but an exception
      // that still escapes one must not end the process (std::terminate)
      // and every stream on it. Log it as the bug it is and keep serving.
      for (;;) {
        try {
          wp->ioc.run();
          break;
        } catch (const std::exception& e) {
          spdlog::critical("bug: an exception escaped a handler on worker {}: {}", wp->index,
                           core::log_escape(e.what()));
        } catch (...) {
          spdlog::critical("bug: an exception escaped a handler on worker {}", wp->index);
        }
      }
    });
  }
  running_ = true;
  spdlog::info("sluice listening on http://{}:{} with {} worker thread(s)", ctx_->config.host,
               port_, n);
}

void http_server::accept_loop(worker& w) {
  net::co_spawn(
      w.ioc,
      [this, &w]() -> net::awaitable<void> {
        int burst = 0;
        for (;;) {
          // Take the connections already queued without a turn of the event
          // loop (up to max_accepts_per_turn): under load one turn comes per
          // round of a thousand busy writers, and one accept per turn would
          // make new clients wait behind them for their first event.
          // The peer's address comes with the accept (no getpeername).
          boost::system::error_code ec = net::error::would_block;
          tcp_socket socket(w.ioc);
          tcp::endpoint peer;
          if (burst++ < max_accepts_per_turn) w.acceptor->accept(socket, peer, ec);
          if (ec == net::error::would_block || ec == net::error::try_again) {
            burst = 0;
            std::tie(ec, socket) =
                co_await w.acceptor->async_accept(w.ioc, peer, net::as_tuple(net::use_awaitable));
          }
          if (ec == net::error::operation_aborted || !w.acceptor->is_open()) co_return;
          if (ec) {
            // EMFILE and friends: back off briefly instead of spinning.
            spdlog::warn("accept failed: {}", ec.message());
            net::steady_timer t(w.ioc, std::chrono::milliseconds(50));
            co_await t.async_wait(net::as_tuple(net::use_awaitable));
            continue;
          }
          boost::system::error_code oec;
          socket.set_option(tcp::no_delay(true), oec);
          // Non-blocking for good, now: Asio then skips the FIONBIO it would
          // do before the first asynchronous operation, and the SSE
          // subscriber's writes (which need it) find it set.
          socket.non_blocking(true, oec);
          auto& m = ctx_->metrics;
          if (m.open_connections.load(std::memory_order_relaxed) >=
              static_cast<std::int64_t>(ctx_->config.max_connections)) {
            if (ctx_->rejecting.fetch_add(1) >= max_rejecting) {
              ctx_->rejecting.fetch_sub(1);
              m.local().add(m.local().rejected_connections, 1);
              continue;  // overwhelmed: the socket closes without a reply
            }
            // run_session releases the `rejecting` slot when it ends.
            start_http_session(w, std::move(socket), connection_token(), true);
            continue;
          }
          // --max-connections-per-ip: one address cannot take every slot.
          std::string address = peer.address().to_string();
          if (!address.empty() &&
              !ctx_->addresses.acquire(address, ctx_->config.budgets.max_connections_per_ip)) {
            if (ctx_->rejecting.fetch_add(1) >= max_rejecting) {
              ctx_->rejecting.fetch_sub(1);
              m.local().add(m.local().rejected_connections, 1);
              continue;
            }
            start_http_session(w, std::move(socket), connection_token(), true, true);
            continue;
          }
          start_http_session(w, std::move(socket), connection_token(ctx_.get(), address), false);
        }
      },
      log_exception);
}

void http_server::schedule_sweep(worker& w) {
  w.sweep_timer.expires_after(sweep_period(ctx_->config));
  w.sweep_timer.async_wait([this, &w](boost::system::error_code ec) {
    if (ec) return;
    sweep(w);
    schedule_sweep(w);
  });
}

void http_server::sweep(worker& w) {
  const std::int64_t now = steady_us();
  // sweep() may unlink the subscriber it is called on: advance first.
  for (auto it = w.subscribers.begin(); it != w.subscribers.end();) {
    auto& s = *it++;
    s.sweep(now);
  }
  for (auto it = w.swept.begin(); it != w.swept.end();) {
    auto& s = *it++;
    s.sweep(now);
  }
  if (w.index == 0) {
    static thread_local std::int64_t last_registry_sweep = 0;
    if (now - last_registry_sweep >= 1'000'000) {
      last_registry_sweep = now;
      ctx_->registry.sweep(core::realtime_us());
    }
  }
}

void http_server::shutdown() {
  if (!running_) return;
  running_ = false;
  ctx_->stopping.store(true);
  spdlog::info("shutting down: ending {} stream(s), {} connection(s)",
               ctx_->metrics.open_subscribers.load(), ctx_->metrics.open_connections.load());
  for (auto& w : workers_) {
    net::post(w->ioc, [wp = w.get()] {
      boost::system::error_code ec;
      wp->acceptor->close(ec);
      wp->sweep_timer.cancel();
      for (auto& l : wp->sessions) l.socket->close(ec);
      for (auto it = wp->subscribers.begin(); it != wp->subscribers.end();) {
        auto& s = *it++;
        s.begin_shutdown();
      }
      for (auto it = wp->swept.begin(); it != wp->swept.end();) {
        auto& s = *it++;
        s.begin_shutdown();
      }
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + ctx_->config.shutdown_deadline;
  while (ctx_->metrics.open_connections.load() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (auto left = ctx_->metrics.open_connections.load(); left > 0)
    spdlog::warn("shutdown deadline reached with {} connection(s) open", left);
  for (auto& w : workers_) w->ioc.stop();
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
  // Destroy connections while their io_context still exists.
  for (auto& w : workers_) {
    w->ioc.restart();
    w->ioc.poll();
  }
  // The workers (and their io_contexts) live on until ~http_server: other
  // threads (e.g. a search pool finishing a task) may still post to them.
  spdlog::info("stopped");
}

void http_server::run_until_signal() {
  net::io_context signals_ioc(1);
  net::signal_set signals(signals_ioc, SIGINT, SIGTERM);
  signals.async_wait(
      [](boost::system::error_code, int sig) { spdlog::info("received signal {}", sig); });
  signals_ioc.run();
  shutdown();
}

}  // namespace sluice::transport
