// A small blocking HTTP/1.1 + SSE client for tests, on real sockets.
// Every read has a bounded deadline (SO_RCVTIMEO): a test that waits too long
// fails instead of hanging; nothing sleeps.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <zlib.h>

#include "core/sse_parser.hpp"

namespace sluice::test {

struct timeout_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct response_head {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  bool chunked() const;
  std::string header(const std::string& name) const;
};

struct http_response {
  response_head head;
  std::string body;
  int status() const { return head.status; }
};

class http_connection {
 public:
  // Connects to 127.0.0.1:port. `rcvbuf` > 0 shrinks the receive buffer.
  explicit http_connection(std::uint16_t port, int rcvbuf = 0, int timeout_ms = 10'000);
  ~http_connection();
  http_connection(const http_connection&) = delete;
  http_connection& operator=(const http_connection&) = delete;

  void send(const std::string& raw);
  void send_request(const std::string& method, const std::string& target,
                    const std::string& body = "",
                    const std::vector<std::pair<std::string, std::string>>& headers = {});
  response_head read_head();
  // Reads the next piece of the (de-chunked) body into `out`. False once the
  // body has ended (last chunk, or Content-Length reached) or the peer closed.
  bool read_body_some(std::string& out);
  std::string read_body_to_end();
  // True when the peer closes (EOF or reset) before the deadline.
  bool wait_closed();
  bool body_ended() const { return body_ended_; }
  void close();
  int fd() const { return fd_; }

 private:
  bool fill();  // reads more into buf_; false on EOF
  std::string take_line();

  int fd_ = -1;
  std::string buf_;
  std::size_t pos_ = 0;
  bool chunked_ = false;
  std::int64_t remaining_ = -1;  // content-length left, -1 unknown
  bool body_ended_ = false;
  bool eof_ = false;
};

http_response request(std::uint16_t port, const std::string& method, const std::string& target,
                      const std::string& body = "",
                      const std::vector<std::pair<std::string, std::string>>& headers = {});

struct recorded_event {
  std::string id, type, data;
  bool operator==(const recorded_event&) const = default;
};

// Reads an SSE response from a connection and records what a client sees.
class sse_reader : public core::sse_listener {
 public:
  // Sends nothing: the caller has sent the request. Reads the head.
  explicit sse_reader(http_connection& conn, bool gzip = false);
  ~sse_reader() override;

  // Reads until `done()` is true or the response ends. Returns done().
  bool read_until(const std::function<bool()>& done);
  bool read_to_end();  // until the response ends; true if it did
  const response_head& head() const { return head_; }

  std::vector<recorded_event> events;
  std::vector<std::string> comments;
  std::vector<std::uint64_t> retries;
  bool ended() const { return conn_.body_ended(); }
  const std::string& last_event_id() const { return parser_.last_event_id(); }
  std::size_t body_bytes = 0;  // bytes of the body as received (compressed if gzip)

  void on_event(const core::sse_event& e) override;
  void on_retry(std::uint64_t ms) override { retries.push_back(ms); }
  void on_comment(std::string_view text) override { comments.emplace_back(text); }

 private:
  bool read_some();
  http_connection& conn_;
  response_head head_;
  core::sse_parser parser_;
  bool gzip_;
  z_stream z_{};
};

}  // namespace sluice::test
