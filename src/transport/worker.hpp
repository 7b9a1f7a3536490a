// Internal to the transport: one event-loop thread and what lives on it.
// A connection stays on the worker that accepted it for its whole life.
//
// Thread-safety: a worker's members are touched only by its own thread, except
// `ioc` (post from anywhere) and the shared `server_context` (see below).
#pragma once

#include <atomic>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/stream_registry.hpp"
#include "transport/metrics.hpp"
#include "transport/routes.hpp"
#include "transport/server_config.hpp"

namespace sluice::transport {

namespace net = boost::asio;
using tcp = net::ip::tcp;
// A connection's socket, bound by type to its worker's io_context: the socket
// and every operation pending on it then carry an 8-byte executor instead of
// a polymorphic any_io_executor (56 bytes, held by the socket, by each
// operation's work guard and by Beast's stream state and timer). A connection
// never leaves the worker that accepted it, so nothing is lost.
using tcp_socket = net::basic_stream_socket<tcp, net::io_context::executor_type>;
using auto_unlink_hook =
    boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>>;
// Links an SSE subscriber into its worker's ready list (see worker::ready).
struct ready_tag;
class sse_subscriber;
using ready_hook =
    boost::intrusive::list_base_hook<boost::intrusive::tag<ready_tag>,
                                     boost::intrusive::link_mode<boost::intrusive::auto_unlink>>;
using ready_list = boost::intrusive::list<sse_subscriber, boost::intrusive::base_hook<ready_hook>,
                                          boost::intrusive::constant_time_size<false>>;

// Open connections per client address, for --max-connections-per-ip.
// Thread-safe.
class address_counts {
 public:
  // Counts one more connection from `address`; false (nothing counted) when
  // it already has `limit` (0: no limit).
  bool acquire(const std::string& address, std::size_t limit) {
    std::lock_guard lock(mutex_);
    std::size_t& n = counts_[address];
    if (limit != 0 && n >= limit) {
      if (n == 0) counts_.erase(address);
      return false;
    }
    ++n;
    return true;
  }
  void release(const std::string& address) {
    std::lock_guard lock(mutex_);
    auto it = counts_.find(address);
    if (it != counts_.end() && --it->second == 0) counts_.erase(it);
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, std::size_t> counts_;  // guarded by mutex_
};

// The op layer's settings from the server's; loads the --auth jwt key (throws
// std::runtime_error naming the problem).
streams::service_config service_config_of(const server_config& config);

// Shared by all workers; immutable after start except the atomics and the
// thread-safe registry, router (dispatch) and metrics.
struct server_context {
  server_config config;
  core::stream_registry registry;
  transport::metrics metrics;
  streams::stream_service streams;  // the stream ops both transports adapt
  router routes;
  std::atomic<bool> stopping{false};
  std::atomic<std::int64_t> rejecting{0};  // connections being answered 503
  address_counts addresses;                // open connections per client address

  explicit server_context(server_config c)
      : config(std::move(c)),
        registry(config.registry),
        streams(registry, service_config_of(config), &metrics),
        routes(streams, metrics, config) {}
};

// Counts an open connection for --max-connections; moves with the socket.
class connection_token {
 public:
  connection_token() = default;
  // `address`: when not empty, a slot already acquired in ctx->addresses,
  // released with the token.
  explicit connection_token(server_context* ctx, std::string address = {})
      : ctx_(ctx), address_(std::move(address)) {
    ctx_->metrics.open_connections.fetch_add(1, std::memory_order_relaxed);
  }
  connection_token(connection_token&& o) noexcept
      : ctx_(std::exchange(o.ctx_, nullptr)), address_(std::move(o.address_)) {}
  connection_token& operator=(connection_token&& o) noexcept {
    if (this != &o) {
      release();
      ctx_ = std::exchange(o.ctx_, nullptr);
      address_ = std::move(o.address_);
    }
    return *this;
  }
  ~connection_token() { release(); }
  // The client's address given at construction ("" for a default token).
  const std::string& address() const { return address_; }

 private:
  void release() {
    if (ctx_) {
      ctx_->metrics.open_connections.fetch_sub(1, std::memory_order_relaxed);
      if (!address_.empty()) ctx_->addresses.release(address_);
    }
    ctx_ = nullptr;
    address_.clear();
  }
  server_context* ctx_ = nullptr;
  std::string address_;
};

class sse_subscriber;

// A long-lived connection other than SSE (a WebSocket session) that the
// worker's sweep (keep-alive, write stalls) and shutdown reach. Called on the
// worker's thread; either call may unlink it.
class swept_connection : public auto_unlink_hook {
 public:
  virtual void sweep(std::int64_t now_us) = 0;
  virtual void begin_shutdown() = 0;

 protected:
  ~swept_connection() = default;
};

// A request-phase connection, linked so shutdown can close it.
struct session_link : auto_unlink_hook {
  tcp_socket* socket = nullptr;
};

struct worker {
  explicit worker(server_context& c, unsigned idx) : ctx(c), index(idx), sweep_timer(ioc) {}

  server_context& ctx;
  const unsigned index;
  net::io_context ioc{1};
  std::optional<tcp::acceptor> acceptor;
  net::steady_timer sweep_timer;
  boost::intrusive::list<sse_subscriber, boost::intrusive::base_hook<auto_unlink_hook>,
                         boost::intrusive::constant_time_size<false>>
      subscribers;
  // Subscribers woken on this thread, waiting for one posted drain to pump
  // them: a publish that wakes a thousand subscribers here costs one post,
  // not a thousand. Unlinks itself when a subscriber is destroyed.
  ready_list ready;
  // A drain of `ready` is posted (at most one at a time). Publishes on this
  // thread also drain it at once through core::after_publish (flush_ready).
  bool drain_posted = false;
  bool draining = false;  // a drain_ready is on this thread's stack
  boost::intrusive::list<swept_connection, boost::intrusive::base_hook<auto_unlink_hook>,
                         boost::intrusive::constant_time_size<false>>
      swept;
  boost::intrusive::list<session_link, boost::intrusive::base_hook<auto_unlink_hook>,
                         boost::intrusive::constant_time_size<false>>
      sessions;
  // What an SSE write needs only while it is being made, shared by this
  // worker's subscribers so that an idle one holds neither: the gathered
  // buffer list (an asynchronous write copies it), and read batches, which a
  // subscriber takes for a read and keeps only while a write from it is in
  // flight (see take_batch / give_back_batch).
  std::vector<net::const_buffer> write_buffers;
  std::vector<std::unique_ptr<core::read_batch>> spare_batches;
  std::unique_ptr<core::read_batch> take_batch() {
    if (spare_batches.empty()) return std::make_unique<core::read_batch>();
    auto b = std::move(spare_batches.back());
    spare_batches.pop_back();
    return b;
  }
  // `b` must be cleared. Keeps a bounded number (with their capacity).
  void give_back_batch(std::unique_ptr<core::read_batch> b) {
    if (spare_batches.size() < max_spare_batches) spare_batches.push_back(std::move(b));
  }
  static constexpr std::size_t max_spare_batches = 64;
  std::thread thread;
};

// An allocator for the handler of a long-lived asynchronous operation (the
// read or wait that stays pending on an idle connection). Asio's default
// (std::allocator) goes through a per-thread recycling cache that hands an
// operation any cached block at least as large as it needs: the wait of an
// idle subscriber would then hold, for the connection's whole life, the
// ~560-byte block of the HTTP read that ran before it. This allocates the
// operation's exact size.
template <class T>
struct exact_allocator {
  using value_type = T;
  exact_allocator() noexcept = default;
  template <class U>
  exact_allocator(const exact_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>().deallocate(p, n); }
  template <class U>
  bool operator==(const exact_allocator<U>&) const noexcept {
    return true;
  }
};

// `handler` with exact_allocator as its associated allocator and `ioc`'s own
// executor type as its associated executor (the operation then stores an
// 8-byte executor for it, never a polymorphic one: 112 bytes in all for a
// wait on a tcp_socket).
template <class Handler>
auto exact_alloc(net::io_context& ioc, Handler&& handler) {
  return net::bind_allocator(
      exact_allocator<void>(),
      net::bind_executor(ioc.get_executor(), std::forward<Handler>(handler)));
}

// Monotonic microseconds, for timeouts.
std::int64_t steady_us();

// Runs the HTTP request loop on `socket` (a new or handed-back connection).
// `reject`: answer the first request 503 and close: too_many_connections, or
// too_many_connections_from_address when `per_address`.
void start_http_session(worker& w, tcp_socket socket, connection_token token, bool reject,
                        bool per_address = false);

}  // namespace sluice::transport
