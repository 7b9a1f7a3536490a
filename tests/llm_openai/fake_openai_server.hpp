// An OpenAI-compatible /v1/chat/completions server for tests: listens on
// 127.0.0.1 (port chosen by the OS), runs its own io_context on its own thread
// and answers each request as scripted, speaking the real wire format
// (HTTP/1.1, chunked transfer encoding, one SSE `data: {...}` event per chunk,
// `data: [DONE]`).
//
// Thread-safety: every public member may be called from any thread.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sluice::test {

enum class fake_behaviour {
  normal,                  // the whole stream: role, content deltas, finish, usage, [DONE]
  hold_after_first_delta,  // role + first delta, then waits for release() before the rest
  http_429,                // 429 with an OpenAI error body
  http_500,                // 500 with an OpenAI error body
  cut_mid_stream,          // role + two deltas, then closes the connection
  stall,                   // role + first delta, then sends nothing more
  stall_before_headers,    // reads the request and never answers
  malformed_chunk,         // role + first delta, then data that is not JSON
  chunk_without_choices,   // role, then a JSON chunk with no "choices"
  error_event,             // role, then data: {"error": {...}}
  no_done,                 // the whole stream and the chunked terminator, but no [DONE]
};

struct recorded_request {
  std::string method;
  std::string target;
  std::string authorization;  // empty when absent
  std::string content_type;
  boost::json::value body;  // null when the body was not JSON
};

class fake_openai_server {
 public:
  // What `normal` streams as content deltas, in order.
  static const std::vector<std::string>& content_pieces();
  static constexpr std::int64_t prompt_tokens = 12;
  static constexpr std::int64_t completion_tokens = 5;
  static constexpr const char* rate_limit_message = "Rate limit reached for requests";
  static constexpr const char* server_error_message =
      "The server had an error while processing your request";

  fake_openai_server();
  ~fake_openai_server();
  fake_openai_server(const fake_openai_server&) = delete;
  fake_openai_server& operator=(const fake_openai_server&) = delete;

  unsigned short port() const { return port_; }
  std::string base_url() const;  // "http://127.0.0.1:<port>/v1"

  // The next requests are answered with these, in order; `normal` afterwards.
  void script(std::vector<fake_behaviour> behaviours);
  // Lets a hold_after_first_delta answer continue.
  void release();

  std::vector<recorded_request> requests() const;
  // Waits until `n` connections in total have been closed by the client (EOF
  // or reset seen by the server); false if `deadline` passes first.
  bool wait_for_client_closes(std::size_t n, std::chrono::milliseconds deadline) const;

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> session(boost::asio::ip::tcp::socket socket);
  boost::asio::awaitable<void> wait_for_client_close(boost::asio::ip::tcp::socket& socket);

  // Declared first: destroyed last, after everything that refers to it.
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer gate_;  // hold_after_first_delta waits on it; used on ioc_ only
  bool released_ = false;           // release() came (on ioc_ only)
  unsigned short port_ = 0;

  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::deque<fake_behaviour> script_;       // guarded by mutex_
  std::vector<recorded_request> requests_;  // guarded by mutex_
  std::size_t client_closes_ = 0;           // guarded by mutex_

  std::thread thread_;
};

}  // namespace sluice::test
