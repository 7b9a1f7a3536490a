#include "fake_searxng_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/url/parse.hpp>
#include <cstdio>
#include <exception>

namespace sluice::test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = net::ip::tcp;

namespace {
constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);

// Test servers must not drop exceptions silently (detached would).
void report(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    std::fprintf(stderr, "fake_searxng_server: %s\n", x.what());
  }
}
}  // namespace

std::string results_json(const std::vector<fake_result>& results) {
  json::array a;
  for (const auto& r : results) {
    json::object o;
    o["url"] = r.url;
    o["title"] = r.title;
    o["content"] = r.content;
    o["engine"] = "fake";
    o["score"] = 1.0;
    a.push_back(std::move(o));
  }
  json::object root;
  root["query"] = "";
  root["number_of_results"] = 0;
  root["results"] = std::move(a);
  return json::serialize(root);
}

fake_searxng_server::fake_searxng_server(handler h)
    : acceptor_(ioc_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)),
      handler_(std::move(h)) {
  port_ = acceptor_.local_endpoint().port();
  net::co_spawn(ioc_, accept_loop(), report);
  thread_ = std::thread([this] { ioc_.run(); });
}

fake_searxng_server::~fake_searxng_server() {
  ioc_.stop();
  thread_.join();
}

std::vector<recorded_search> fake_searxng_server::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

net::awaitable<void> fake_searxng_server::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(tuple_awaitable);
    if (ec) co_return;
    net::co_spawn(ioc_, serve(std::move(socket)), report);
  }
}

net::awaitable<void> fake_searxng_server::serve(tcp::socket socket) {
  beast::flat_buffer buffer;
  http::request<http::string_body> req;
  auto [rec, rn] = co_await http::async_read(socket, buffer, req, tuple_awaitable);
  (void)rn;
  if (rec) co_return;
  recorded_search r;
  auto target = boost::urls::parse_origin_form(req.target());
  if (target) {
    r.path = std::string(target->path());
    for (auto p : target->params()) {
      r.params.emplace_back(p.key, p.value);
      if (p.key == "q") r.q = p.value;
      if (p.key == "format") r.format = p.value;
    }
  }
  r.accept = std::string(req[http::field::accept]);
  {
    std::lock_guard lock(mutex_);
    requests_.push_back(r);
  }
  fake_reply reply = handler_(r);
  if (reply.stall) {
    net::steady_timer forever(co_await net::this_coro::executor,
                              net::steady_timer::time_point::max());
    co_await forever.async_wait(tuple_awaitable);
    co_return;
  }
  http::response<http::string_body> res{static_cast<http::status>(reply.status), 11};
  res.set(http::field::server, "fake-searxng");
  if (!reply.content_type.empty()) res.set(http::field::content_type, reply.content_type);
  res.set(http::field::connection, "close");
  res.body() = std::move(reply.body);
  res.prepare_payload();
  co_await http::async_write(socket, res, tuple_awaitable);
  boost::system::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
}

unsigned short refused_port() {
  net::io_context ioc;
  tcp::acceptor a(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  const unsigned short port = a.local_endpoint().port();
  a.close();
  return port;
}

}  // namespace sluice::test
