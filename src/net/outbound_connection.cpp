#include "net/outbound_connection.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <charconv>
#include <memory>

namespace sluice::outbound {

namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
using boost::system::error_code;

namespace {
constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);
}  // namespace

bool is_timeout(const error_code& ec) {
  return ec == beast::error::timeout || ec == net::error::timed_out;
}

ssl::context make_tls_client_context(bool verify, const std::string& ca_file) {
  ssl::context tls(ssl::context::tls_client);
  tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  if (verify) {
    tls.set_default_verify_paths();
    if (!ca_file.empty()) tls.load_verify_file(ca_file);
  }
  return tls;
}

net::awaitable<boost::system::result<std::vector<tcp::endpoint>>> resolve(
    const http_url& u, std::optional<deadline> lookup_deadline) {
  if (u.host_is_ip) {
    std::uint16_t port = 0;
    const auto [end, pec] = std::from_chars(u.port.data(), u.port.data() + u.port.size(), port);
    error_code aec;
    const auto address = net::ip::make_address(u.host, aec);
    // A port that is not a plain number is left to the resolver to refuse.
    if (pec == std::errc() && end == u.port.data() + u.port.size() && !aec)
      co_return std::vector<tcp::endpoint>{tcp::endpoint(address, port)};
  }

  auto ex = co_await net::this_coro::executor;
  // Shared with the timer's handler, which may still run after this frame is
  // gone (it had fired just before the lookup finished).
  auto resolver = std::make_shared<tcp::resolver>(ex);
  auto timed_out = std::make_shared<bool>(false);
  std::optional<net::steady_timer> timer;
  if (lookup_deadline) {
    timer.emplace(ex);
    timer->expires_at(*lookup_deadline);
    timer->async_wait([resolver, timed_out](error_code ec) {
      if (ec) return;  // cancelled: the lookup finished first
      *timed_out = true;
      resolver->cancel();
    });
  }
  auto [ec, results] = co_await resolver->async_resolve(u.host, u.port, tuple_awaitable);
  if (timer) timer->cancel();
  if (*timed_out) co_return error_code(net::error::timed_out);
  if (ec) co_return ec;
  std::vector<tcp::endpoint> endpoints;
  for (const auto& r : results) endpoints.push_back(r.endpoint());
  co_return endpoints;
}

net::awaitable<error_code> connect(beast::tcp_stream& stream,
                                   const std::vector<tcp::endpoint>& endpoints, deadline by) {
  stream.expires_at(by);
  auto [ec, endpoint] = co_await stream.async_connect(endpoints, tuple_awaitable);
  (void)endpoint;
  if (!ec) {
    error_code ignored;
    stream.socket().set_option(tcp::no_delay(true), ignored);
  }
  co_return ec;
}

net::awaitable<tls_handshake_result> tls_handshake(ssl::stream<beast::tcp_stream>& stream,
                                                   const http_url& u, bool verify, deadline by) {
  // Set by the verify callback, which runs inside the handshake on this
  // thread. The stream keeps the callback afterwards (a renegotiation would
  // run it again), so the flag is shared with it rather than on this frame.
  auto host_mismatch = std::make_shared<bool>(false);
  // SNI carries names only, never address literals (RFC 6066).
  if (!u.host_is_ip) SSL_set_tlsext_host_name(stream.native_handle(), u.host.c_str());
  if (verify) {
    stream.set_verify_mode(ssl::verify_peer);
    stream.set_verify_callback([check = ssl::host_name_verification(u.host), host_mismatch](
                                   bool preverified, ssl::verify_context& ctx) {
      const bool ok = check(preverified, ctx);
      if (preverified && !ok) *host_mismatch = true;
      return ok;
    });
  } else {
    stream.set_verify_mode(ssl::verify_none);
  }
  beast::get_lowest_layer(stream).expires_at(by);
  auto [ec] = co_await stream.async_handshake(ssl::stream_base::client, tuple_awaitable);
  tls_handshake_result r;
  r.ec = ec;
  if (ec && verify) {
    const long result = SSL_get_verify_result(stream.native_handle());
    if (*host_mismatch) {
      r.host_mismatch = true;
      r.verify_error = "certificate does not match host " + u.host;
    } else if (result != X509_V_OK) {
      r.untrusted_reason = X509_verify_cert_error_string(result);
      r.verify_error = "certificate: " + r.untrusted_reason;
    }
  }
  co_return r;
}

void close(beast::tcp_stream& stream) {
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.close();
}

}  // namespace sluice::outbound
