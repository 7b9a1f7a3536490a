#include "fake_openai_server.hpp"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cstdio>
#include <exception>

namespace sluice::test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = net::ip::tcp;

namespace {

constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);

// One HTTP/1.1 chunk of the chunked transfer coding.
std::string http_chunk(std::string_view payload) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", payload.size());
  return size + std::string(payload) + "\r\n";
}

constexpr std::string_view last_chunk = "0\r\n\r\n";

std::string sse_data(std::string_view data) {
  return "data: " + std::string(data) + "\n\n";
}

constexpr std::string_view stream_header =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/event-stream\r\n"
    "Cache-Control: no-cache\r\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n";

// A chat.completion.chunk as OpenAI sends it.
std::string completion_chunk(const std::string& model, json::value delta,
                             json::value finish_reason) {
  json::object choice{{"index", 0},
                      {"delta", std::move(delta)},
                      {"logprobs", nullptr},
                      {"finish_reason", std::move(finish_reason)}};
  json::object chunk{
      {"id", "chatcmpl-fake"},           {"object", "chat.completion.chunk"},
      {"created", 1700000000},           {"model", model},
      {"system_fingerprint", "fp_fake"}, {"choices", json::array{std::move(choice)}}};
  return json::serialize(chunk);
}

std::string role_chunk(const std::string& model) {
  return completion_chunk(model, json::object{{"role", "assistant"}, {"content", ""}}, nullptr);
}

std::string content_chunk(const std::string& model, const std::string& text) {
  return completion_chunk(model, json::object{{"content", text}}, nullptr);
}

std::string usage_chunk(const std::string& model) {
  json::object chunk{
      {"id", "chatcmpl-fake"},
      {"object", "chat.completion.chunk"},
      {"created", 1700000000},
      {"model", model},
      {"choices", json::array{}},
      {"usage", json::object{{"prompt_tokens", fake_openai_server::prompt_tokens},
                             {"completion_tokens", fake_openai_server::completion_tokens},
                             {"total_tokens", fake_openai_server::prompt_tokens +
                                                  fake_openai_server::completion_tokens}}}};
  return json::serialize(chunk);
}

std::string error_response(unsigned status, std::string_view reason, std::string_view message,
                           std::string_view type) {
  std::string body = json::serialize(json::object{
      {"error",
       json::object{{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}}}});
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

net::awaitable<bool> send(tcp::socket& socket, std::string_view bytes) {
  auto [ec, n] = co_await net::async_write(socket, net::buffer(bytes), tuple_awaitable);
  (void)n;
  co_return !ec;
}

net::awaitable<bool> send_event(tcp::socket& socket, std::string_view data) {
  co_return co_await send(socket, http_chunk(sse_data(data)));
}

}  // namespace

const std::vector<std::string>& fake_openai_server::content_pieces() {
  // Includes a quote, a newline and multi-byte UTF-8 so escaping matters.
  static const std::vector<std::string> pieces{"Hel", "lo, \"wor", "ld\"!\n", "Grüße ", "世界"};
  return pieces;
}

fake_openai_server::fake_openai_server()
    : acceptor_(ioc_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)), gate_(ioc_) {
  port_ = acceptor_.local_endpoint().port();
  gate_.expires_at(net::steady_timer::time_point::max());
  net::co_spawn(ioc_, accept_loop(), [](std::exception_ptr e) {
    if (e) ADD_FAILURE() << "fake server accept loop threw";
  });
  thread_ = std::thread([this] { ioc_.run(); });
}

fake_openai_server::~fake_openai_server() {
  ioc_.stop();
  thread_.join();
}

std::string fake_openai_server::base_url() const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/v1";
}

void fake_openai_server::script(std::vector<fake_behaviour> behaviours) {
  std::lock_guard lock(mutex_);
  script_.assign(behaviours.begin(), behaviours.end());
}

void fake_openai_server::release() {
  // Sticky: a release that arrives before the hold began its wait (the
  // client can read the first delta before the server's send completes)
  // must not be lost.
  net::post(ioc_, [this] {
    released_ = true;
    gate_.cancel();
  });
}

std::vector<recorded_request> fake_openai_server::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

bool fake_openai_server::wait_for_client_closes(std::size_t n,
                                                std::chrono::milliseconds deadline) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, deadline, [&] { return client_closes_ >= n; });
}

net::awaitable<void> fake_openai_server::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(tuple_awaitable);
    if (ec) co_return;
    net::co_spawn(ioc_, session(std::move(socket)), [](std::exception_ptr e) {
      if (e) ADD_FAILURE() << "fake server session threw";
    });
  }
}

// Reads until the client closes (EOF or reset) and counts that.
net::awaitable<void> fake_openai_server::wait_for_client_close(tcp::socket& socket) {
  char scratch[512];
  for (;;) {
    auto [ec, n] = co_await socket.async_read_some(net::buffer(scratch), tuple_awaitable);
    (void)n;
    if (ec) break;
  }
  std::lock_guard lock(mutex_);
  ++client_closes_;
  changed_.notify_all();
}

net::awaitable<void> fake_openai_server::session(tcp::socket socket) {
  beast::flat_buffer buffer;
  http::request<http::string_body> req;
  auto [rec, rn] = co_await http::async_read(socket, buffer, req, tuple_awaitable);
  (void)rn;
  if (rec) {
    // Not HTTP (e.g. a TLS ClientHello): answer as a plain HTTP server would.
    co_await send(socket,
                  "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    co_await wait_for_client_close(socket);
    co_return;
  }

  recorded_request record;
  record.method = std::string(req.method_string());
  record.target = std::string(req.target());
  if (auto it = req.find(http::field::authorization); it != req.end())
    record.authorization = std::string(it->value());
  if (auto it = req.find(http::field::content_type); it != req.end())
    record.content_type = std::string(it->value());
  boost::system::error_code jec;
  record.body = json::parse(req.body(), jec);
  std::string model = "unknown";
  if (const auto* o = record.body.if_object()) {
    if (const auto* m = o->if_contains("model"); m && m->is_string())
      model = std::string(m->get_string());
  }
  fake_behaviour behaviour = fake_behaviour::normal;
  {
    std::lock_guard lock(mutex_);
    if (!script_.empty()) {
      behaviour = script_.front();
      script_.pop_front();
    }
    requests_.push_back(std::move(record));
    changed_.notify_all();
  }

  const auto& pieces = content_pieces();
  switch (behaviour) {
    case fake_behaviour::http_429:
      co_await send(socket,
                    error_response(429, "Too Many Requests", rate_limit_message, "requests"));
      break;
    case fake_behaviour::http_500:
      co_await send(socket, error_response(500, "Internal Server Error", server_error_message,
                                           "server_error"));
      break;
    case fake_behaviour::stall_before_headers:
      break;
    case fake_behaviour::normal:
    case fake_behaviour::hold_after_first_delta:
    case fake_behaviour::no_done: {
      co_await send(socket, stream_header);
      co_await send(socket, http_chunk(": keep-alive\n\n"));  // comments are ignored
      co_await send_event(socket, role_chunk(model));
      for (std::size_t i = 0; i < pieces.size(); ++i) {
        std::string event = sse_data(content_chunk(model, pieces[i]));
        if (i == 1) {
          // One event split across two HTTP chunks (and two writes).
          co_await send(socket, http_chunk(std::string_view(event).substr(0, 17)));
          co_await send(socket, http_chunk(std::string_view(event).substr(17)));
        } else {
          co_await send(socket, http_chunk(event));
        }
        if (i == 0 && behaviour == fake_behaviour::hold_after_first_delta) {
          if (!released_) {
            auto [ec] = co_await gate_.async_wait(tuple_awaitable);
            (void)ec;
          }
          released_ = false;
        }
      }
      co_await send_event(socket, completion_chunk(model, json::object{}, "stop"));
      co_await send_event(socket, usage_chunk(model));
      if (behaviour != fake_behaviour::no_done) co_await send_event(socket, "[DONE]");
      co_await send(socket, last_chunk);
      break;
    }
    case fake_behaviour::cut_mid_stream: {
      co_await send(socket, stream_header);
      co_await send_event(socket, role_chunk(model));
      co_await send_event(socket, content_chunk(model, pieces[0]));
      co_await send_event(socket, content_chunk(model, pieces[1]));
      boost::system::error_code ignored;
      socket.shutdown(tcp::socket::shutdown_both, ignored);
      socket.close(ignored);
      co_return;
    }
    case fake_behaviour::stall:
      co_await send(socket, stream_header);
      co_await send_event(socket, role_chunk(model));
      co_await send_event(socket, content_chunk(model, pieces[0]));
      break;
    case fake_behaviour::malformed_chunk:
      co_await send(socket, stream_header);
      co_await send_event(socket, role_chunk(model));
      co_await send_event(socket, content_chunk(model, pieces[0]));
      co_await send_event(socket, "{\"choices\": [oops");
      break;
    case fake_behaviour::chunk_without_choices:
      co_await send(socket, stream_header);
      co_await send_event(socket, role_chunk(model));
      co_await send_event(socket, R"({"id":"chatcmpl-fake","object":"chat.completion.chunk"})");
      break;
    case fake_behaviour::error_event:
      co_await send(socket, stream_header);
      co_await send_event(socket, role_chunk(model));
      co_await send_event(
          socket, R"({"error":{"message":"The model is overloaded","type":"server_error"}})");
      break;
  }
  co_await wait_for_client_close(socket);
}

}  // namespace sluice::test
