// A small real-socket HTTP server for client tests: it accepts connections on
// 127.0.0.1 (port 0) one after the other, records each request's line and
// headers, and writes what the test's responder returns for it (one write
// per piece, Nagle off), then closes the connection. Request bodies are not
// read beyond what arrives with the head.
//
// Thread-safety: the server runs on its own thread; requests() may be called
// from any thread.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace sluice::test {

// One request as the server saw it: header names lower-cased, values without
// leading spaces.
struct seen_request {
  std::string line;
  std::map<std::string, std::string> headers;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

inline constexpr std::string_view no_content_response =
    "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";

class recording_server {
 public:
  // (request, its index from 0) -> the bytes to answer with, in pieces.
  using responder = std::function<std::vector<std::string>(const seen_request&, std::size_t)>;

  explicit recording_server(responder r)
      : respond_(std::move(r)),
        acceptor_(io_,
                  boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { serve(); });
  }
  ~recording_server() {
    stop_ = true;
    boost::system::error_code ec;
    // Wake the blocking accept with a connection of our own, closed at once
    // (EOF for the request read that follows the accept).
    boost::asio::ip::tcp::socket s(io_);
    s.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port_),
              ec);
    s.close(ec);
    thread_.join();
  }
  recording_server(const recording_server&) = delete;
  recording_server& operator=(const recording_server&) = delete;

  unsigned short port() const { return port_; }
  std::vector<seen_request> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  static seen_request parse_head(const std::string& head) {
    seen_request r;
    std::size_t pos = head.find("\r\n");
    r.line = head.substr(0, pos);
    while (pos != std::string::npos) {
      const std::size_t next = head.find("\r\n", pos + 2);
      const std::string h =
          head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
      if (const std::size_t colon = h.find(':'); colon != std::string::npos) {
        std::string name = h.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string value = h.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        r.headers[name] = value;
      }
      pos = next;
    }
    return r;
  }

  void serve() {
    namespace net = boost::asio;
    using tcp = net::ip::tcp;
    while (!stop_) {
      tcp::socket s(io_);
      boost::system::error_code ec;
      acceptor_.accept(s, ec);
      if (ec || stop_) return;
      s.set_option(tcp::no_delay(true), ec);
      net::streambuf buf;
      net::read_until(s, buf, "\r\n\r\n", ec);
      if (ec) continue;
      std::string head(static_cast<const char*>(buf.data().data()), buf.size());
      seen_request r = parse_head(head.substr(0, head.find("\r\n\r\n")));
      std::size_t index;
      {
        std::lock_guard lock(mutex_);
        index = requests_.size();
        requests_.push_back(r);
      }
      for (const auto& piece : respond_(r, index)) {
        net::write(s, net::buffer(piece), ec);
        if (ec) break;
      }
      s.shutdown(tcp::socket::shutdown_both, ec);
      s.close(ec);
    }
  }

  responder respond_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<seen_request> requests_;
  std::thread thread_;
};

}  // namespace sluice::test
