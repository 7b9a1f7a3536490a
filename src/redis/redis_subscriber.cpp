#include "redis/redis_subscriber.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <deque>
#include <optional>
#include <set>
#include <utility>

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
constexpr std::size_t channels_per_command = 512;
}  // namespace

class redis_subscriber::impl : public std::enable_shared_from_this<impl> {
 public:
  impl(net::any_io_executor ex, redis_client_options o, redis_subscriber_handlers h)
      : ex_(std::move(ex)),
        opts_(std::move(o)),
        handlers_(std::move(h)),
        driver_(ex_, opts_, "redis subscriber"),
        writer_wake_(ex_) {
    writer_wake_.expires_at(clock::time_point::max());
  }

  void start() {
    driver_.start(shared_from_this(), {[this](redis_connection& c) { return session(c); },
                                       [this](const std::string& detail) {
                                         if (detail != last_error_)
                                           spdlog::warn("redis subscriber: {} (retrying)", detail);
                                         last_error_ = detail;
                                       }});
  }

  void stop() {
    if (stopped_) return;
    stopped_ = true;
    driver_.stop();
    writer_wake_.cancel();
    changed_.notify_all();
  }

  net::awaitable<error_code> subscribe(std::string channel) {
    auto self = shared_from_this();
    if (stopped_) co_return redis_errc::shutting_down;
    if (wanted_.insert(channel).second && connected_) {
      ops_.emplace_back(true, channel);
      writer_wake_.cancel();
    }
    const auto deadline = clock::now() + opts_.request_timeout;
    while (!stopped_ && wanted_.count(channel) && !confirmed_.count(channel) &&
           clock::now() < deadline) {
      co_await changed_.wait_until(deadline);
    }
    if (stopped_) co_return redis_errc::shutting_down;
    co_return confirmed_.count(channel) ? error_code{} : error_code(redis_errc::store_unavailable);
  }

  void unsubscribe(const std::string& channel) {
    if (wanted_.erase(channel) == 0) return;
    if (connected_) {
      ops_.emplace_back(false, channel);
      writer_wake_.cancel();
    }
  }

  bool connected() const { return connected_; }
  std::size_t channels() const { return wanted_.size(); }
  std::uint64_t connections() const { return connections_; }

 private:
  // One connection's life (see connection_driver): every wanted channel is
  // subscribed again; a reconnection is announced once all are confirmed.
  net::awaitable<void> session(redis_connection& c) {
    last_error_.clear();
    conn_ = &c;
    connected_ = true;
    ++connections_;
    ops_.clear();
    for (const auto& ch : wanted_) ops_.emplace_back(true, ch);
    resubscribe_pending_ = connections_ > 1;
    ping_sent_.reset();
    if (resubscribe_pending_ && wanted_.empty()) announce_resubscribed();
    changed_.notify_all();
    co_await (reader() || writer());
    connected_ = false;
    conn_ = nullptr;
    confirmed_.clear();
    if (!stopped_) spdlog::warn("redis subscriber: connection lost; reconnecting");
    changed_.notify_all();
  }

  void announce_resubscribed() {
    resubscribe_pending_ = false;
    if (!handlers_.on_resubscribed) return;
    try {
      handlers_.on_resubscribed();
    } catch (const std::exception& x) {
      spdlog::error("redis subscriber: on_resubscribed threw (a bug): {}", x.what());
    }
  }

  net::awaitable<void> reader() {
    for (;;) {
      auto reply = co_await conn_->read_reply();
      if (!reply) {
        if (reply.error() != redis_errc::store_unavailable)
          spdlog::error("redis subscriber: {}; closing the connection", reply.error().message());
        co_return;
      }
      // Pub/Sub pushes: [kind, channel, payload-or-count]; our health PING
      // is answered ["pong", ""] (or +PONG while nothing is subscribed).
      const auto& v = *reply;
      if ((v.type == resp_value::kind::status && v.str == "PONG") ||
          (v.is_array() && v.elements.size() == 2 && v.elements[0].is_string() &&
           v.elements[0].str == "pong")) {
        ping_sent_.reset();
        continue;
      }
      if (!v.is_array() || v.elements.size() != 3 || !v.elements[0].is_string() ||
          !v.elements[1].is_string()) {
        if (v.is_error()) {
          spdlog::error("redis subscriber: Redis refused a command: {}", v.str.substr(0, 200));
          co_return;
        }
        spdlog::error("redis subscriber: unexpected reply; closing the connection");
        co_return;
      }
      const auto& kind = v.elements[0].str;
      const auto& channel = v.elements[1].str;
      if (kind == "message") {
        if (handlers_.on_message && v.elements[2].is_string()) {
          try {
            handlers_.on_message(channel, v.elements[2].str);
          } catch (const std::exception& x) {
            spdlog::error("redis subscriber: on_message threw (a bug): {}", x.what());
          }
        }
      } else if (kind == "subscribe") {
        if (wanted_.count(channel)) confirmed_.insert(channel);
        if (resubscribe_pending_ && confirmed_.size() == wanted_.size()) announce_resubscribed();
        changed_.notify_all();
      } else if (kind == "unsubscribe") {
        confirmed_.erase(channel);
        changed_.notify_all();
      }
    }
  }

  net::awaitable<void> writer() {
    std::string buffer;
    for (;;) {
      if (ops_.empty()) {
        // Idle: a PING every half request_timeout finds a dead connection
        // (a half-open TCP connection would otherwise look quiet for hours).
        writer_wake_.expires_after(opts_.request_timeout / 2);
        auto [ec] = co_await writer_wake_.async_wait(tuple_awaitable);
        auto cs = co_await net::this_coro::cancellation_state;
        if (cs.cancelled() != net::cancellation_type::none || stopped_) co_return;
        if (!ec) {
          const auto now = clock::now();
          if (ping_sent_) {
            if (now - *ping_sent_ > opts_.request_timeout) {
              spdlog::warn("redis subscriber: no PONG within {} ms; reconnecting",
                           opts_.request_timeout.count());
              co_return;
            }
          } else {
            ping_sent_ = now;
            buffer.clear();
            resp_reader::append_command(buffer, {"PING"});
            if (co_await conn_->write(buffer)) co_return;
          }
        }
        continue;
      }
      // Consecutive operations of one kind share a command.
      buffer.clear();
      while (!ops_.empty()) {
        const bool sub = ops_.front().first;
        std::vector<std::string> args{sub ? "SUBSCRIBE" : "UNSUBSCRIBE"};
        while (!ops_.empty() && ops_.front().first == sub && args.size() <= channels_per_command) {
          args.push_back(std::move(ops_.front().second));
          ops_.pop_front();
        }
        resp_reader::append_command(buffer, args);
      }
      if (co_await conn_->write(buffer)) co_return;
    }
  }

  net::any_io_executor ex_;
  redis_client_options opts_;
  redis_subscriber_handlers handlers_;
  connection_driver driver_;
  redis_connection* conn_ = nullptr;  // while connected
  std::set<std::string> wanted_;
  std::set<std::string> confirmed_;
  std::deque<std::pair<bool, std::string>> ops_;  // (subscribe?, channel) to write
  net::steady_timer writer_wake_;
  async_event changed_;
  bool stopped_ = false;
  bool connected_ = false;
  bool resubscribe_pending_ = false;
  std::optional<clock::time_point> ping_sent_;  // a health PING awaits its PONG
  std::uint64_t connections_ = 0;
  std::string last_error_;
};

redis_subscriber::redis_subscriber(net::any_io_executor ex, redis_client_options options,
                                   redis_subscriber_handlers handlers)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(options), std::move(handlers))) {}
redis_subscriber::~redis_subscriber() {
  impl_->stop();
}
void redis_subscriber::start() {
  impl_->start();
}
void redis_subscriber::stop() {
  impl_->stop();
}
net::awaitable<error_code> redis_subscriber::subscribe(std::string channel) {
  co_return co_await impl_->subscribe(std::move(channel));
}
void redis_subscriber::unsubscribe(const std::string& channel) {
  impl_->unsubscribe(channel);
}
bool redis_subscriber::connected() const {
  return impl_->connected();
}
std::size_t redis_subscriber::channels() const {
  return impl_->channels();
}
std::uint64_t redis_subscriber::connections() const {
  return impl_->connections();
}

}  // namespace sluice::redis
