#include "support/chaos_proxy.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <exception>
#include <mutex>
#include <random>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace sluice::test {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using boost::system::error_code;

namespace {
constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);

void log_exception(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    std::fprintf(stderr, "chaos_proxy: %s\n", x.what());
  }
}
}  // namespace

// Per connection; shared by its two pumps (both on the proxy's one thread).
struct proxy_connection {
  proxy_connection(net::io_context& io, tcp::socket c) : client(std::move(c)), server(io) {}
  tcp::socket client;
  tcp::socket server;
  std::size_t budget = 0;  // bytes left in the counted direction(s)
  bool reset = false;
  bool closed = false;
  std::size_t index = 0;  // into impl::seen
};

struct chaos_proxy::impl {
  explicit impl(chaos_proxy_options o) : opt(std::move(o)), rng(opt.seed) {}

  chaos_proxy_options opt;
  net::io_context io{1};
  tcp::acceptor acceptor{io};
  std::thread thread;
  std::mt19937_64 rng;  // proxy thread only
  std::atomic<bool> cutting{true};
  std::atomic<std::size_t> cuts{0}, connected{0}, open{0};
  mutable std::mutex mutex;
  std::vector<proxied_connection> seen;  // guarded by mutex
  std::vector<std::weak_ptr<proxy_connection>> live;  // proxy thread only
  bool stopped = false;
  std::uint16_t port = 0;  // set by start()

  bool counts(bool downstream) const {
    using d = chaos_proxy_options::direction;
    return opt.counted == d::both || (downstream ? opt.counted == d::downstream
                                                 : opt.counted == d::upstream);
  }

  void close(proxy_connection& c, bool reset) {
    if (c.closed) return;
    c.closed = true;
    --open;
    error_code ignored;
    for (tcp::socket* s : {&c.client, &c.server}) {
      if (reset) s->set_option(net::socket_base::linger(true, 0), ignored);
      else s->shutdown(tcp::socket::shutdown_both, ignored);
      s->close(ignored);
    }
  }

  void capture(const proxy_connection& c, bool downstream, const char* p, std::size_t n) {
    std::lock_guard lock(mutex);
    std::string& into = downstream ? seen[c.index].from_server : seen[c.index].from_client;
    if (into.size() < opt.capture_bytes)
      into.append(p, std::min(n, opt.capture_bytes - into.size()));
  }

  net::awaitable<void> pump(std::shared_ptr<proxy_connection> c, bool downstream) {
    tcp::socket& from = downstream ? c->server : c->client;
    tcp::socket& to = downstream ? c->client : c->server;
    std::array<char, 16 * 1024> buf;
    for (;;) {
      auto [ec, n] = co_await from.async_read_some(net::buffer(buf), tuple_awaitable);
      if (ec || c->closed) break;
      const bool cut_here = counts(downstream) && c->budget > 0 && cutting &&
                            cuts < opt.max_cuts;
      const std::size_t allowed = cut_here ? std::min(n, c->budget) : n;
      capture(*c, downstream, buf.data(), allowed);
      auto [wec, wn] = co_await net::async_write(to, net::buffer(buf.data(), allowed),
                                                 tuple_awaitable);
      (void)wn;
      if (wec || c->closed) break;
      if (cut_here) {
        c->budget -= allowed;
        if (c->budget == 0) {
          ++cuts;
          {
            std::lock_guard lock(mutex);
            seen[c->index].was_cut = true;
          }
          close(*c, c->reset);
          co_return;
        }
      }
    }
    close(*c, false);
  }

  net::awaitable<void> serve(std::shared_ptr<proxy_connection> c) {
    tcp::resolver resolver(io);
    auto [rec, eps] = co_await resolver.async_resolve(
        opt.upstream_host, std::to_string(opt.upstream_port), tuple_awaitable);
    if (rec) co_return close(*c, false);
    auto [cec, ep] = co_await net::async_connect(c->server, eps, tuple_awaitable);
    (void)ep;
    if (cec || c->closed) co_return close(*c, false);
    error_code ignored;
    c->client.set_option(tcp::no_delay(true), ignored);
    c->server.set_option(tcp::no_delay(true), ignored);
    ++connected;
    net::co_spawn(io, pump(c, false), log_exception);
    net::co_spawn(io, pump(c, true), log_exception);
  }

  net::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, sock] = co_await acceptor.async_accept(tuple_awaitable);
      if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
      if (ec) continue;
      // Drawn for every connection, so the sequence depends only on the seed.
      std::uniform_int_distribution<std::size_t> pick(std::max<std::size_t>(opt.min_cut_bytes, 1),
                                                      std::max(opt.max_cut_bytes, opt.min_cut_bytes));
      std::bernoulli_distribution use_reset(std::clamp(opt.reset_ratio, 0.0, 1.0));
      const std::size_t budget = pick(rng);
      const bool reset = use_reset(rng);
      if (open >= opt.max_connections) {
        error_code ignored;
        sock.close(ignored);
        continue;
      }
      auto c = std::make_shared<proxy_connection>(io, std::move(sock));
      c->budget = budget;
      c->reset = reset;
      {
        std::lock_guard lock(mutex);
        c->index = seen.size();
        seen.push_back(proxied_connection{{}, {}, budget, false});
      }
      ++open;
      std::erase_if(live, [](const auto& w) { return w.expired(); });
      live.push_back(c);
      net::co_spawn(io, serve(c), log_exception);
    }
  }
};

chaos_proxy::chaos_proxy(chaos_proxy_options options)
    : impl_(std::make_unique<impl>(std::move(options))) {}

chaos_proxy::~chaos_proxy() { stop(); }

void chaos_proxy::start() {
  impl& p = *impl_;
  tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
  p.acceptor.open(ep.protocol());
  p.acceptor.set_option(tcp::acceptor::reuse_address(true));
  p.acceptor.bind(ep);
  p.acceptor.listen();
  p.port = p.acceptor.local_endpoint().port();
  net::co_spawn(p.io, p.accept_loop(), log_exception);
  p.thread = std::thread([&p] { p.io.run(); });
}

std::uint16_t chaos_proxy::port() const { return impl_->port; }

void chaos_proxy::stop() {
  impl& p = *impl_;
  if (p.stopped || !p.thread.joinable()) return;
  p.stopped = true;
  net::post(p.io, [&p] {
    error_code ignored;
    p.acceptor.close(ignored);
    for (auto& w : p.live)
      if (auto c = w.lock()) p.close(*c, false);
  });
  p.thread.join();
}

void chaos_proxy::set_cutting(bool on) { impl_->cutting = on; }
std::size_t chaos_proxy::cuts() const { return impl_->cuts; }
std::size_t chaos_proxy::connections() const { return impl_->connected; }

std::vector<proxied_connection> chaos_proxy::connections_seen() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->seen;
}

}  // namespace sluice::test
