// Opening an outbound HTTP(S) connection, step by step: resolve, connect, TLS
// handshake (SNI, peer and host-name verification), close. Each step returns
// its outcome as a value and the caller words its own error (what is a retry,
// what is fatal, which error category): that is protocol logic and stays in
// the client.
//
// Every step runs on the awaiting coroutine's executor and takes its
// cancellation: a terminal cancellation ends the pending connect or handshake
// with operation_aborted (a DNS lookup only when it returns).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "net/http_url.hpp"

namespace sluice::outbound {

using tcp = boost::asio::ip::tcp;
using deadline = std::chrono::steady_clock::time_point;

// A timeout of beast::tcp_stream's expiry or of the operating system.
bool is_timeout(const boost::system::error_code& ec);

// A client context for TLS 1.2 and later; with `verify`, it trusts the system's
// default CA paths plus `ca_file` (PEM) when not empty. Throws
// boost::system::system_error when the CA paths or file cannot be loaded.
// Configured once, then only used to create connections (OpenSSL allows that
// from any thread).
boost::asio::ssl::context make_tls_client_context(bool verify, const std::string& ca_file);

// The endpoints of u: the address itself for an address literal, else a DNS
// lookup. With `lookup_deadline`, a lookup still running then is abandoned
// with boost::asio::error::timed_out; without, it is unbounded (Asio cannot
// cut getaddrinfo short).
boost::asio::awaitable<boost::system::result<std::vector<tcp::endpoint>>> resolve(
    const http_url& u, std::optional<deadline> lookup_deadline = std::nullopt);

// Connects to the first endpoint that accepts before `by` (after it:
// beast::error::timeout) and turns Nagle's algorithm off.
boost::asio::awaitable<boost::system::error_code> connect(
    boost::beast::tcp_stream& stream, const std::vector<tcp::endpoint>& endpoints, deadline by);

struct tls_handshake_result {
  boost::system::error_code ec;
  // Filled only when the handshake failed with verification on, to name the
  // cause that ec alone ("certificate verify failed") hides:
  bool host_mismatch = false;    // a trusted chain, but for another name
  std::string untrusted_reason;  // else why the chain is not trusted (OpenSSL's text)
  // "certificate does not match host <host>" or "certificate: <untrusted_reason>";
  // empty when verification is not why the handshake failed.
  std::string verify_error;
};

// The client handshake, finished before `by` (after it: beast::error::timeout).
// SNI names u.host unless it is an address literal (RFC 6066); with `verify`,
// the peer's chain and its host name (u.host) are checked.
boost::asio::awaitable<tls_handshake_result> tls_handshake(
    boost::asio::ssl::stream<boost::beast::tcp_stream>& stream, const http_url& u, bool verify,
    deadline by);

// Shuts the socket down both ways and closes it; errors are ignored. A TLS
// stream is closed through its lowest layer without close_notify: waiting for
// the peer's could stall, and the TCP close tells the server.
void close(boost::beast::tcp_stream& stream);

}  // namespace sluice::outbound
