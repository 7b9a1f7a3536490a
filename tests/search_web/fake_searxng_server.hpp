// A SearXNG stand-in for tests: listens on 127.0.0.1 (port chosen by the OS),
// runs its own io_context on its own thread and answers each
// `GET .../search?q=...&format=json` with what the handler returns for the
// decoded query (one request per connection, then close, as SearXNG behind
// `Connection: close`).
//
// Thread-safety: the handler runs on the server's thread; every public member
// may be called from any thread.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace sluice::test {

struct fake_reply {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  bool stall = false;  // read the request, never answer (until destruction)
};

struct recorded_search {
  std::string path;                                         // e.g. "/search"
  std::string q;                                            // decoded
  std::string format;                                       // decoded
  std::vector<std::pair<std::string, std::string>> params;  // all, decoded, in order
  std::string accept;
};

struct fake_result {
  std::string url, title, content;
};

// {"query": ..., "results": [{"url","title","content","engine":"fake","score":1.0}, ...]}
std::string results_json(const std::vector<fake_result>& results);

class fake_searxng_server {
 public:
  using handler = std::function<fake_reply(const recorded_search&)>;
  explicit fake_searxng_server(handler h);
  ~fake_searxng_server();
  fake_searxng_server(const fake_searxng_server&) = delete;
  fake_searxng_server& operator=(const fake_searxng_server&) = delete;

  unsigned short port() const { return port_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<recorded_search> requests() const;

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);

  boost::asio::io_context ioc_;  // first: destroyed last
  boost::asio::ip::tcp::acceptor acceptor_;
  handler handler_;
  unsigned short port_ = 0;
  mutable std::mutex mutex_;
  std::vector<recorded_search> requests_;  // guarded by mutex_
  std::thread thread_;
};

// A port on 127.0.0.1 that nothing listens on (bound by the OS, then closed).
unsigned short refused_port();

}  // namespace sluice::test
