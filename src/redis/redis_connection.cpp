#include "redis/redis_connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <vector>

#include "net/http_url.hpp"
#include "net/outbound_connection.hpp"
#include "redis/redis_error.hpp"

namespace sluice::redis {

namespace net = boost::asio;
namespace beast = boost::beast;
using boost::system::error_code;

namespace {

constexpr std::size_t read_buffer_size = 64 * 1024;
constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);

}  // namespace

redis_connection::redis_connection(net::any_io_executor ex, net::ssl::context* tls,
                                   resp_limits limits)
    : ex_(std::move(ex)),
      tls_ctx_(tls),
      reader_(limits),
      read_buffer_(std::make_unique<char[]>(read_buffer_size)) {}

redis_connection::~redis_connection() = default;

beast::tcp_stream& redis_connection::lowest() {
  return tls_ ? beast::get_lowest_layer(*tls_) : *plain_;
}

net::awaitable<error_code> redis_connection::open(const redis_endpoint& e, bool verify,
                                                  std::chrono::steady_clock::time_point by,
                                                  std::string& detail) {
  outbound::http_url u;
  u.https = e.tls;
  u.host = e.host;
  u.port = e.port;
  u.host_is_ip = e.host_is_ip;
  auto endpoints = co_await outbound::resolve(u, by);
  if (!endpoints) {
    detail = "cannot resolve " + e.host + ": " + endpoints.error().message();
    co_return redis_errc::store_unavailable;
  }
  if (e.tls) {
    if (tls_ctx_ == nullptr) {
      detail = "rediss:// without a TLS context";
      co_return redis_errc::tls_failed;
    }
    tls_.emplace(ex_, *tls_ctx_);
  } else {
    plain_.emplace(ex_);
  }
  if (auto ec = co_await outbound::connect(lowest(), *endpoints, by)) {
    detail = "cannot connect to " + e.redacted() + ": " + ec.message();
    co_return redis_errc::store_unavailable;
  }
  error_code ignored;
  lowest().socket().set_option(net::socket_base::keep_alive(true), ignored);
  if (tls_) {
    auto hs = co_await outbound::tls_handshake(*tls_, u, verify, by);
    if (hs.ec) {
      detail = "TLS handshake with " + e.redacted() +
               " failed: " + (hs.verify_error.empty() ? hs.ec.message() : hs.verify_error);
      co_return redis_errc::tls_failed;
    }
  }
  // AUTH, SELECT and a PING in one write; their replies in order. The PING
  // makes "connected" mean "Redis answers" (a hung Redis still accepts TCP
  // connections).
  std::string hello;
  std::vector<const char*> names;
  if (e.password) {
    if (e.username.empty())
      resp_reader::append_command(hello, {"AUTH", *e.password});
    else
      resp_reader::append_command(hello, {"AUTH", e.username, *e.password});
    names.push_back("AUTH");
  }
  if (e.db != 0) {
    resp_reader::append_command(hello, {"SELECT", std::to_string(e.db)});
    names.push_back("SELECT");
  }
  resp_reader::append_command(hello, {"PING"});
  names.push_back("PING");
  lowest().expires_at(by);
  if (auto ec = co_await write(hello)) {
    detail = "connection to " + e.redacted() + " lost before it answered";
    co_return redis_errc::store_unavailable;
  }
  for (const char* name : names) {
    auto r = co_await read_reply();
    if (!r) {
      detail = "no answer to " + std::string(name) + " from " + e.redacted() + ": " +
               r.error().message();
      co_return r.error() == redis_errc::store_unavailable ? r.error()
                                                           : error_code(redis_errc::protocol_error);
    }
    if (r->is_error()) {
      // Redis's own text (e.g. "WRONGPASS invalid username-password pair"):
      // it never repeats the password.
      detail = "Redis at " + e.redacted() + " refused " + name + ": " + r->str.substr(0, 200);
      co_return std::string_view(name) == "PING" ? error_code(redis_errc::server_error)
                                                 : error_code(redis_errc::auth_failed);
    }
  }
  lowest().expires_never();
  co_return error_code{};
}

net::awaitable<error_code> redis_connection::write(std::string_view bytes) {
  error_code ec;
  if (tls_) {
    std::tie(ec, std::ignore) =
        co_await net::async_write(*tls_, net::buffer(bytes.data(), bytes.size()), tuple_awaitable);
  } else {
    std::tie(ec, std::ignore) = co_await net::async_write(
        *plain_, net::buffer(bytes.data(), bytes.size()), tuple_awaitable);
  }
  co_return ec ? error_code(redis_errc::store_unavailable) : error_code{};
}

net::awaitable<boost::system::result<resp_value>> redis_connection::read_reply() {
  for (;;) {
    auto next = reader_.next();
    if (!next) co_return next.error();
    if (*next) co_return std::move(**next);
    error_code ec;
    std::size_t n = 0;
    if (tls_) {
      std::tie(ec, n) = co_await tls_->async_read_some(
          net::buffer(read_buffer_.get(), read_buffer_size), tuple_awaitable);
    } else {
      std::tie(ec, n) = co_await plain_->async_read_some(
          net::buffer(read_buffer_.get(), read_buffer_size), tuple_awaitable);
    }
    if (ec) co_return error_code(redis_errc::store_unavailable);
    if (auto fec = reader_.feed(std::string_view(read_buffer_.get(), n))) co_return fec;
  }
}

void redis_connection::close() {
  if (plain_ || tls_) outbound::close(lowest());
}

}  // namespace sluice::redis
