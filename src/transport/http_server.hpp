// The HTTP/SSE server: N worker threads, each with its own io_context and its
// own SO_REUSEPORT acceptor; a connection lives on the worker that accepted it.
//
// Thread-safety: construct, add routes, start() and shutdown() from one
// (control) thread. registry() and stats() are thread-safe.
#pragma once

#include <cstdint>
#include <memory>

#include "core/stream_registry.hpp"
#include "transport/metrics.hpp"
#include "transport/routes.hpp"
#include "transport/server_config.hpp"

namespace sluice::transport {

struct server_context;
struct worker;

class http_server {
 public:
  explicit http_server(server_config config);
  ~http_server();  // shuts down if still running

  router& routes();
  // The producer behind runs: HTTP run routes (router::add_run_route) and
  // {"op":"start"} on /v1/ws (before start()).
  void set_run_launcher(std::shared_ptr<const streams::run_launcher> launcher);
  streams::stream_service& streams();
  core::stream_registry& registry();
  metrics& stats();
  const server_config& config() const;

  // Binds and starts the workers. Throws std::system_error when it cannot bind.
  void start();
  std::uint16_t port() const { return port_; }

  // Graceful: stop accepting, end every SSE response (clients reconnect and
  // resume), close idle connections, wait up to the shutdown deadline, stop.
  void shutdown();

  // Blocks until SIGINT or SIGTERM, then shuts down.
  void run_until_signal();

 private:
  void sweep(worker& w);
  void schedule_sweep(worker& w);
  void accept_loop(worker& w);

  std::unique_ptr<server_context> ctx_;
  std::vector<std::unique_ptr<worker>> workers_;
  std::uint16_t port_ = 0;
  bool running_ = false;
};

}  // namespace sluice::transport
