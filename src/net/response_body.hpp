// Reading a response body piecewise (buffer_body): each piece is handed on as
// soon as it arrives, which streamed responses (server-sent events) need.
// Header-only because it is a template over the stream (plain or TLS).
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstddef>
#include <span>
#include <utility>

namespace sluice::outbound {

// Reads the next piece of a buffer_body response into `into`, giving up after
// `timeout` without a byte (beast::error::timeout); returns the error
// (need_buffer folded into success) and the number of body bytes stored.
template <class Stream>
boost::asio::awaitable<std::pair<boost::system::error_code, std::size_t>> read_body_some(
    Stream& stream, boost::beast::flat_buffer& buffer,
    boost::beast::http::response_parser<boost::beast::http::buffer_body>& parser,
    std::span<char> into, std::chrono::milliseconds timeout) {
  namespace http = boost::beast::http;
  parser.get().body().data = into.data();
  parser.get().body().size = into.size();
  boost::beast::get_lowest_layer(stream).expires_after(timeout);
  auto [ec, n] = co_await http::async_read_some(stream, buffer, parser,
                                                boost::asio::as_tuple(boost::asio::use_awaitable));
  (void)n;
  if (ec == http::error::need_buffer) ec = {};
  co_return std::pair{ec, into.size() - parser.get().body().size};
}

}  // namespace sluice::outbound
