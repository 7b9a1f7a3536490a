#include "redis/redis_client.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <deque>
#include <optional>

#include "redis/async_event.hpp"
#include "redis/connection_driver.hpp"
#include "redis/redis_connection.hpp"

namespace sluice::redis {

namespace net = boost::asio;
using boost::system::error_code;
using clock = std::chrono::steady_clock;
using namespace boost::asio::experimental::awaitable_operators;

namespace {

constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);

struct request {
  explicit request(net::any_io_executor ex) : timer(std::move(ex)) {}
  std::string wire;
  std::size_t expected = 0;
  std::vector<resp_value> replies;
  error_code ec;
  bool done = false;
  net::steady_timer timer;  // cancelled when done

  void finish(error_code e) {
    if (done) return;
    done = true;
    ec = e;
    timer.cancel();
  }
};

}  // namespace

class redis_client::impl : public std::enable_shared_from_this<impl> {
 public:
  impl(net::any_io_executor ex, redis_client_options o)
      : ex_(std::move(ex)),
        opts_(std::move(o)),
        driver_(ex_, opts_, "redis client"),
        writer_wake_(ex_) {
    writer_wake_.expires_at(clock::time_point::max());
  }

  void start() {
    driver_.start(shared_from_this(), {[this](redis_connection& c) { return session(c); },
                                       [this](const std::string& detail) {
                                         if (detail != last_error_)
                                           spdlog::warn("redis client: {} (retrying with backoff)",
                                                        detail);
                                         last_error_ = detail;
                                         state_changed_.notify_all();
                                       }});
  }

  void stop() {
    if (stopped_) return;
    stopped_ = true;
    driver_.stop();
    writer_wake_.cancel();
    fail_all(redis_errc::shutting_down);
    state_changed_.notify_all();
  }

  net::awaitable<boost::system::result<std::vector<resp_value>>> exec(std::string wire,
                                                                      std::size_t count) {
    auto self = shared_from_this();
    if (stopped_) co_return error_code(redis_errc::shutting_down);
    if (!connected_) co_return error_code(redis_errc::store_unavailable);
    if (count == 0) co_return std::vector<resp_value>{};
    if (pending_commands_ + count > opts_.max_pending_commands)
      co_return error_code(redis_errc::store_unavailable);
    auto req = std::make_shared<request>(ex_);
    req->wire = std::move(wire);
    req->expected = count;
    req->replies.reserve(count);
    pending_commands_ += count;
    outbox_.push_back(req);
    writer_wake_.cancel();
    req->timer.expires_after(opts_.request_timeout);
    const auto generation = generation_;
    if (!req->done) {
      auto [ec] = co_await req->timer.async_wait(tuple_awaitable);
      if (!req->done) {
        if (ec == net::error::operation_aborted) {
          // The caller was cancelled: the request stays queued (its reply
          // keeps the order) and is dropped when it comes.
          co_return error_code(net::error::operation_aborted);
        }
        // No reply in time: the connection is presumed dead.
        if (generation == generation_ && conn_) {
          spdlog::warn("redis client: no reply from {} within {} ms; reconnecting",
                       opts_.endpoint.redacted(), opts_.request_timeout.count());
          conn_->close();
        }
        req->finish(redis_errc::store_unavailable);
      }
    }
    if (req->ec) co_return req->ec;
    co_return std::move(req->replies);
  }

  net::awaitable<error_code> wait_connected(std::chrono::milliseconds timeout) {
    auto self = shared_from_this();
    const auto deadline = clock::now() + timeout;
    while (!connected_ && !stopped_ && clock::now() < deadline)
      co_await state_changed_.wait_until(deadline);
    if (stopped_) co_return redis_errc::shutting_down;
    co_return connected_ ? error_code{} : error_code(redis_errc::store_unavailable);
  }

  bool connected() const { return connected_; }
  std::string last_error() const { return last_error_; }
  std::uint64_t connections() const { return connections_; }
  net::any_io_executor executor() const { return ex_; }

 private:
  // One connection's life (see connection_driver): commands flow while it
  // lasts; what is in flight when it ends fails (its outcome is unknown).
  net::awaitable<void> session(redis_connection& c) {
    if (!last_error_.empty())
      spdlog::info("redis client: connected to {}", opts_.endpoint.redacted());
    last_error_.clear();
    conn_ = &c;
    connected_ = true;
    ++connections_;
    state_changed_.notify_all();
    co_await (reader() || writer());
    connected_ = false;
    conn_ = nullptr;
    ++generation_;
    fail_all(stopped_ ? redis_errc::shutting_down : redis_errc::store_unavailable);
    if (!stopped_) {
      last_error_ = "connection to " + opts_.endpoint.redacted() + " lost";
      spdlog::warn("redis client: {}", last_error_);
    }
    state_changed_.notify_all();
  }

  net::awaitable<void> reader() {
    for (;;) {
      auto reply = co_await conn_->read_reply();
      if (!reply) {
        if (reply.error() != redis_errc::store_unavailable)
          spdlog::error("redis client: {}; closing the connection", reply.error().message());
        co_return;
      }
      if (inflight_.empty()) {
        spdlog::error("redis client: a reply without a command; closing the connection");
        co_return;
      }
      auto& req = inflight_.front();
      req->replies.push_back(std::move(*reply));
      if (req->replies.size() == req->expected) {
        pending_commands_ -= req->expected;
        req->finish({});
        inflight_.pop_front();
      }
    }
  }

  net::awaitable<void> writer() {
    std::string buffer;
    for (;;) {
      if (outbox_.empty()) {
        (void)co_await writer_wake_.async_wait(tuple_awaitable);
        auto cs = co_await net::this_coro::cancellation_state;
        if (cs.cancelled() != net::cancellation_type::none || stopped_) co_return;
        continue;
      }
      buffer.clear();
      while (!outbox_.empty()) {
        auto req = std::move(outbox_.front());
        outbox_.pop_front();
        buffer += req->wire;
        req->wire = std::string();
        inflight_.push_back(std::move(req));
      }
      if (co_await conn_->write(buffer)) co_return;
      // Don't keep a buffer that grew to the largest batch.
      if (buffer.capacity() > (1u << 20)) buffer = std::string();
    }
  }

  void fail_all(error_code ec) {
    for (auto& r : inflight_) r->finish(ec);
    for (auto& r : outbox_) r->finish(ec);
    inflight_.clear();
    outbox_.clear();
    pending_commands_ = 0;
  }

  net::any_io_executor ex_;
  redis_client_options opts_;
  connection_driver driver_;
  redis_connection* conn_ = nullptr;               // while connected
  std::deque<std::shared_ptr<request>> outbox_;    // not yet written
  std::deque<std::shared_ptr<request>> inflight_;  // written, replies pending
  std::size_t pending_commands_ = 0;
  net::steady_timer writer_wake_;
  async_event state_changed_;
  bool stopped_ = false;
  bool connected_ = false;
  std::uint64_t generation_ = 0;
  std::uint64_t connections_ = 0;
  std::string last_error_;
};

redis_client::redis_client(net::any_io_executor ex, redis_client_options options)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(options))) {}

redis_client::~redis_client() {
  impl_->stop();
}

void redis_client::start() {
  impl_->start();
}
void redis_client::stop() {
  impl_->stop();
}

net::awaitable<boost::system::result<resp_value>> redis_client::command(command_args args) {
  std::string wire;
  resp_reader::append_command(wire, args);
  auto r = co_await impl_->exec(std::move(wire), 1);
  if (!r) co_return r.error();
  co_return std::move(r->front());
}

net::awaitable<boost::system::result<std::vector<resp_value>>> redis_client::pipeline(
    std::vector<command_args> commands) {
  std::string wire;
  for (const auto& c : commands) resp_reader::append_command(wire, c);
  co_return co_await impl_->exec(std::move(wire), commands.size());
}

net::awaitable<boost::system::result<std::vector<resp_value>>> redis_client::pipeline_encoded(
    std::string wire, std::size_t count) {
  co_return co_await impl_->exec(std::move(wire), count);
}

bool redis_client::connected() const {
  return impl_->connected();
}

net::awaitable<error_code> redis_client::wait_connected(std::chrono::milliseconds timeout) {
  co_return co_await impl_->wait_connected(timeout);
}

std::string redis_client::last_error() const {
  return impl_->last_error();
}
std::uint64_t redis_client::connections() const {
  return impl_->connections();
}
net::any_io_executor redis_client::executor() const {
  return impl_->executor();
}

}  // namespace sluice::redis
