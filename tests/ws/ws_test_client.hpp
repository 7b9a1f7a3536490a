// A small blocking WebSocket client for tests (Beast, synchronous), on real
// sockets. Every read has a bounded deadline (SO_RCVTIMEO): a test that waits
// too long fails instead of hanging; nothing sleeps.
#pragma once

#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>

namespace sluice::test {

namespace ws_net = boost::asio;
namespace ws_beast = boost::beast;

struct ws_connect_options {
  bool deflate = false;
  int rcvbuf = 0;  // > 0: shrink the receive buffer (a slow reader)
  int timeout_ms = 20'000;
  std::size_t read_message_max = 64u << 20;
};

class ws_connection {
 public:
  ws_connection(std::uint16_t port, ws_connect_options o = {}) : ws_(ioc_) {
    auto& sock = ws_.next_layer();
    sock.open(ws_net::ip::tcp::v4());
    if (o.rcvbuf > 0) {
      int v = o.rcvbuf;
      ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    }
    timeval tv{o.timeout_ms / 1000, (o.timeout_ms % 1000) * 1000};
    ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sock.connect({ws_net::ip::make_address("127.0.0.1"), port});
    if (o.deflate) {
      ws_beast::websocket::permessage_deflate pmd;
      pmd.client_enable = true;
      ws_.set_option(pmd);
    }
    ws_.read_message_max(o.read_message_max);
    ws_.handshake(response_, "127.0.0.1", "/v1/ws");
  }

  const ws_beast::websocket::response_type& handshake_response() const { return response_; }

  void send(std::string_view text) {
    ws_.text(true);
    ws_.write(ws_net::buffer(text));
  }
  void send(const char* text) { send(std::string_view(text)); }
  void send(const std::string& text) { send(std::string_view(text)); }
  void send(const boost::json::object& o) { send(std::string_view(boost::json::serialize(o))); }

  // The next text message; throws boost::system::system_error on a close,
  // an error or the deadline.
  std::string read_text() {
    buf_.clear();
    ws_.read(buf_);
    const auto d = buf_.cdata();
    return std::string(static_cast<const char*>(d.data()), d.size());
  }
  boost::json::object read() {
    last_text_ = read_text();
    return boost::json::parse(last_text_).as_object();
  }
  std::string last_text_;

  // Reads until the server closes; returns its close code (0 if the
  // connection ended without a close frame).
  int read_until_closed() {
    for (;;) {
      boost::system::error_code ec;
      buf_.clear();
      ws_.read(buf_, ec);
      if (ec == ws_beast::websocket::error::closed) return ws_.reason().code;
      if (ec) {
        // Beast 1.81's teardown may reset the connection right after the
        // close frame; the code was still received.
        last_error_ = ec;
        return ws_.reason().code;
      }
    }
  }

  ws_beast::websocket::stream<ws_net::ip::tcp::socket>& stream() { return ws_; }
  ws_net::io_context& ioc() { return ioc_; }

 private:
  ws_net::io_context ioc_;
  ws_beast::websocket::stream<ws_net::ip::tcp::socket> ws_;
  ws_beast::websocket::response_type response_;
  ws_beast::flat_buffer buf_;

 public:
  boost::system::error_code last_error_;
};

}  // namespace sluice::test
