// TLS for the openai provider tests without certificate files in the repo: a
// throw-away self-signed certificate made with OpenSSL at run time, and a
// TLS-terminating proxy that relays each connection in clear to a backend
// (the plain fake_openai_server), closing both sides when either ends.
//
// Thread-safety: tls_test_proxy runs its own io_context on its own thread;
// its public members may be called from any thread.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <filesystem>
#include <string>
#include <thread>

namespace sluice::test {

struct test_certificate {
  std::string cert_pem;
  std::string key_pem;
};

// A self-signed certificate (P-256, valid from an hour ago for a day) whose
// subjectAltName is `subject_alt_name` in OpenSSL config syntax, e.g.
// "IP:127.0.0.1" or "DNS:example.test". Throws std::runtime_error on failure.
test_certificate make_self_signed_certificate(const std::string& subject_alt_name);

// A file removed when this object is destroyed.
class temp_file {
 public:
  explicit temp_file(const std::string& contents);
  ~temp_file();
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

class tls_test_proxy {
 public:
  tls_test_proxy(const test_certificate& certificate, unsigned short backend_port);
  ~tls_test_proxy();
  tls_test_proxy(const tls_test_proxy&) = delete;
  tls_test_proxy& operator=(const tls_test_proxy&) = delete;

  unsigned short port() const { return port_; }

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> relay(boost::asio::ip::tcp::socket client);

  boost::asio::io_context ioc_;  // first: destroyed last
  boost::asio::ssl::context tls_;
  boost::asio::ip::tcp::acceptor acceptor_;
  unsigned short backend_port_;
  unsigned short port_ = 0;
  std::thread thread_;
};

}  // namespace sluice::test
