// The openai provider against fake_openai_server on 127.0.0.1: streaming,
// request contents, every upstream failure mode, the read timeout,
// cancellation (and that it closes the upstream connection) and TLS errors.
#include "llm/openai/openai_provider.hpp"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <stdexcept>

#include "fake_openai_server.hpp"
#include "tls_test_proxy.hpp"

namespace sluice::llm {
namespace {

namespace net = boost::asio;
namespace json = boost::json;
using test::fake_behaviour;
using test::fake_openai_server;
using namespace std::chrono_literals;

// Bounds every wait in this file; tests never get near it unless broken.
constexpr auto deadline = 20s;

std::string joined_pieces() {
  std::string all;
  for (const auto& p : fake_openai_server::content_pieces()) all += p;
  return all;
}

chat_request hello_request() {
  chat_request r;
  r.messages = {{"system", "You are terse."}, {"user", "Say hello \"world\"."}};
  r.temperature = 0.5;
  r.max_tokens = 64;
  return r;
}

openai_config config_for(const fake_openai_server& server) {
  openai_config c;
  c.base_url = server.base_url();
  c.model = "fake-model-1";
  c.api_key = "sk-test-123";
  c.connect_timeout = 5s;
  c.read_timeout = 10s;
  return c;
}

struct chat_run {
  bool completed = false;
  chat_outcome outcome;
  std::vector<std::string> deltas;
  bool caller_throw_flag_restored = false;
};

// Runs one call on a fresh io_context in this thread, inside a caller
// coroutine (as an agent would await it). `after_delta` runs after each delta
// is recorded and may emit the cancellation signal.
chat_run run_chat(
    chat_provider& provider, const chat_request& request,
    std::function<void(chat_run&, net::io_context&, net::cancellation_signal&)> after_delta = {}) {
  net::io_context ioc;
  net::cancellation_signal signal;
  chat_run run;
  auto on_delta = [&](std::string_view d) {
    run.deltas.emplace_back(d);
    if (after_delta) after_delta(run, ioc, signal);
  };
  auto caller = [&]() -> net::awaitable<chat_outcome> {
    chat_outcome out = co_await provider.stream_chat(request, on_delta);
    run.caller_throw_flag_restored = co_await net::this_coro::throw_if_cancelled();
    co_return out;
  };
  net::co_spawn(
      ioc, caller(),
      net::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e, chat_outcome out) {
        if (e) {
          ADD_FAILURE() << "stream_chat threw";
          return;
        }
        run.completed = true;
        run.outcome = std::move(out);
      }));
  ioc.run_for(deadline);
  EXPECT_TRUE(run.completed) << "the call did not complete within the deadline";
  return run;
}

void expect_contains(const std::string& haystack, std::string_view needle) {
  EXPECT_NE(haystack.find(needle), std::string::npos)
      << "\"" << haystack << "\" does not contain \"" << needle << "\"";
}

TEST(OpenaiProvider, StreamsDeltasInOrderWithFinishReasonAndUsage) {
  fake_openai_server server;
  openai_provider provider(config_for(server));
  EXPECT_EQ(provider.name(), "openai");

  chat_run run = run_chat(provider, hello_request());

  EXPECT_FALSE(run.outcome.ec) << run.outcome.error_message;
  EXPECT_EQ(run.deltas, fake_openai_server::content_pieces());
  EXPECT_EQ(run.outcome.text, joined_pieces());
  EXPECT_EQ(run.outcome.finish_reason, "stop");
  EXPECT_EQ(run.outcome.usage.prompt_tokens, fake_openai_server::prompt_tokens);
  EXPECT_EQ(run.outcome.usage.completion_tokens, fake_openai_server::completion_tokens);
  EXPECT_TRUE(run.caller_throw_flag_restored);
  EXPECT_TRUE(server.wait_for_client_closes(1, deadline));
}

TEST(OpenaiProvider, SendsTheChatCompletionsRequest) {
  fake_openai_server server;
  openai_provider provider(config_for(server));
  chat_run run = run_chat(provider, hello_request());
  ASSERT_FALSE(run.outcome.ec) << run.outcome.error_message;

  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  const auto& r = requests[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/v1/chat/completions");
  EXPECT_EQ(r.authorization, "Bearer sk-test-123");
  EXPECT_EQ(r.content_type, "application/json");
  ASSERT_TRUE(r.body.is_object());
  const json::object& body = r.body.get_object();
  EXPECT_EQ(body.at("model"), "fake-model-1");
  EXPECT_EQ(body.at("stream"), true);
  EXPECT_EQ(body.at("temperature").to_number<double>(), 0.5);
  EXPECT_EQ(body.at("max_tokens").to_number<int>(), 64);
  EXPECT_EQ(body.at("stream_options"), (json::object{{"include_usage", true}}));
  json::array expected_messages{
      json::object{{"role", "system"}, {"content", "You are terse."}},
      json::object{{"role", "user"}, {"content", "Say hello \"world\"."}}};
  EXPECT_EQ(body.at("messages"), expected_messages);
}

TEST(OpenaiProvider, OmitsAuthorizationWithoutKeyAndMaxTokensWhenZero) {
  fake_openai_server server;
  openai_config config = config_for(server);
  config.api_key.clear();
  config.max_tokens = 0;  // no cap configured either
  config.base_url += "/";  // a trailing slash does not double the separator
  openai_provider provider(config);
  chat_request request = hello_request();
  request.max_tokens = 0;

  chat_run run = run_chat(provider, request);
  ASSERT_FALSE(run.outcome.ec) << run.outcome.error_message;

  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].target, "/v1/chat/completions");
  EXPECT_EQ(requests[0].authorization, "");
  ASSERT_TRUE(requests[0].body.is_object());
  EXPECT_FALSE(requests[0].body.get_object().contains("max_tokens"));
}

// --llm-max-tokens: every call carries the configured cap; a request's own
// smaller max_tokens wins, a larger one is cut to the cap.
TEST(OpenaiProvider, EveryCallSendsTheConfiguredMaxTokensCap) {
  fake_openai_server server;
  openai_config config = config_for(server);
  config.max_tokens = 100;
  openai_provider provider(config);
  for (int asked : {0, 64, 5000}) {
    chat_request request = hello_request();
    request.max_tokens = asked;
    chat_run run = run_chat(provider, request);
    ASSERT_FALSE(run.outcome.ec) << run.outcome.error_message;
  }
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].body.at("max_tokens").to_number<int>(), 100);
  EXPECT_EQ(requests[1].body.at("max_tokens").to_number<int>(), 64);
  EXPECT_EQ(requests[2].body.at("max_tokens").to_number<int>(), 100);
}

// The server holds the rest of the stream until the client has seen the first
// delta: a client that waited for the whole body would never get it.
TEST(OpenaiProvider, ForwardsDeltasBeforeTheResponseEnds) {
  fake_openai_server server;
  server.script({fake_behaviour::hold_after_first_delta});
  openai_provider provider(config_for(server));

  chat_run run = run_chat(provider, hello_request(),
                          [&](chat_run& r, net::io_context&, net::cancellation_signal&) {
                            if (r.deltas.size() == 1) server.release();
                          });
  EXPECT_FALSE(run.outcome.ec) << run.outcome.error_message;
  EXPECT_EQ(run.outcome.text, joined_pieces());
  EXPECT_EQ(run.outcome.finish_reason, "stop");
}

TEST(OpenaiProvider, Http429ReportsStatusAndServerMessage) {
  fake_openai_server server;
  server.script({fake_behaviour::http_429});
  openai_provider provider(config_for(server));

  chat_run run = run_chat(provider, hello_request());
  EXPECT_EQ(run.outcome.ec, openai_errc::http_status);
  expect_contains(run.outcome.error_detail, "HTTP 429");
  expect_contains(run.outcome.error_detail, fake_openai_server::rate_limit_message);
  EXPECT_EQ(run.outcome.error_message,
            "the model server answered with HTTP status 429 (upstream_http_status)");
  EXPECT_TRUE(run.deltas.empty());
  EXPECT_TRUE(server.wait_for_client_closes(1, deadline));
}

TEST(OpenaiProvider, Http500ReportsStatusAndServerMessage) {
  fake_openai_server server;
  server.script({fake_behaviour::http_500});
  openai_provider provider(config_for(server));

  chat_run run = run_chat(provider, hello_request());
  EXPECT_EQ(run.outcome.ec, openai_errc::http_status);
  expect_contains(run.outcome.error_detail, "HTTP 500");
  expect_contains(run.outcome.error_detail, fake_openai_server::server_error_message);
}

TEST(OpenaiProvider, CutMidStreamIsAnErrorAndKeepsThePartialText) {
  fake_openai_server server;
  server.script({fake_behaviour::cut_mid_stream});
  openai_provider provider(config_for(server));

  chat_run run = run_chat(provider, hello_request());
  EXPECT_EQ(run.outcome.ec, openai_errc::stream_truncated);
  expect_contains(run.outcome.error_detail, "cut the stream before data: [DONE]");
  const auto& pieces = fake_openai_server::content_pieces();
  EXPECT_EQ(run.outcome.text, pieces[0] + pieces[1]);
  EXPECT_EQ(run.outcome.finish_reason, "");
}

TEST(OpenaiProvider, MalformedChunkIsAnErrorAndClosesTheConnection) {
  fake_openai_server server;
  server.script({fake_behaviour::malformed_chunk});
  openai_provider provider(config_for(server));

  chat_run run = run_chat(provider, hello_request());
  EXPECT_EQ(run.outcome.ec, openai_errc::malformed_chunk);
  expect_contains(run.outcome.error_detail, "malformed chunk");
  expect_contains(run.outcome.error_detail, "not a JSON object");
  expect_contains(run.outcome.error_detail, "[oops");
  EXPECT_EQ(run.outcome.text, fake_openai_server::content_pieces()[0]);
  EXPECT_TRUE(server.wait_for_client_closes(1, deadline));
}

TEST(OpenaiProvider, ChunkWithoutChoicesIsMalformed) {
  fake_openai_server server;
  server.script({fake_behaviour::chunk_without_choices});
  openai_provider provider(config_for(server));

  chat_run run = run_chat(provider, hello_request());
  EXPECT_EQ(run.outcome.ec, openai_errc::malformed_chunk);
  expect_contains(run.outcome.error_detail, "no \"choices\"");
}

TEST(OpenaiProvider, ErrorEventInTheStreamIsReported) {
  fake_openai_server server;
  server.script({fake_behaviour::error_event});
  openai_provider provider(config_for(server));

  chat_run run = run_chat(provider, hello_request());
  EXPECT_EQ(run.outcome.ec, openai_errc::upstream_error);
  expect_contains(run.outcome.error_detail, "The model is overloaded");
}

// A server that ends the HTTP message properly after finish_reason but never
// sends [DONE] has still completed the answer.
TEST(OpenaiProvider, CleanEndWithoutDoneAfterFinishReasonSucceeds) {
  fake_openai_server server;
  server.script({fake_behaviour::no_done});
  openai_provider provider(config_for(server));

  chat_run run = run_chat(provider, hello_request());
  EXPECT_FALSE(run.outcome.ec) << run.outcome.error_message;
  EXPECT_EQ(run.outcome.text, joined_pieces());
  EXPECT_EQ(run.outcome.finish_reason, "stop");
  EXPECT_EQ(run.outcome.usage.completion_tokens, fake_openai_server::completion_tokens);
}

TEST(OpenaiProvider, ReadTimeoutOnAStalledStream) {
  fake_openai_server server;
  server.script({fake_behaviour::stall});
  openai_config config = config_for(server);
  config.read_timeout = 200ms;
  openai_provider provider(config);

  chat_run run = run_chat(provider, hello_request());
  EXPECT_EQ(run.outcome.ec, net::error::timed_out);
  expect_contains(run.outcome.error_detail, "no bytes from upstream");
  expect_contains(run.outcome.error_detail, "200 ms");
  EXPECT_EQ(run.outcome.text, fake_openai_server::content_pieces()[0]);
  EXPECT_TRUE(server.wait_for_client_closes(1, deadline));
}

TEST(OpenaiProvider, ReadTimeoutWhenTheServerNeverAnswers) {
  fake_openai_server server;
  server.script({fake_behaviour::stall_before_headers});
  openai_config config = config_for(server);
  config.read_timeout = 200ms;
  openai_provider provider(config);

  chat_run run = run_chat(provider, hello_request());
  EXPECT_EQ(run.outcome.ec, net::error::timed_out);
  expect_contains(run.outcome.error_detail, "no response from");
  EXPECT_TRUE(server.wait_for_client_closes(1, deadline));
}

// The test emits a terminal cancellation while the server is stalled
// mid-stream: the call ends with operation_aborted and the server sees its
// connection closed.
TEST(OpenaiProvider, CancellationMidStreamClosesTheUpstreamConnection) {
  fake_openai_server server;
  server.script({fake_behaviour::stall});
  openai_provider provider(config_for(server));  // read timeout 10 s: never reached

  chat_run run =
      run_chat(provider, hello_request(),
               [](chat_run&, net::io_context& ioc, net::cancellation_signal& signal) {
                 net::post(ioc, [&signal] { signal.emit(net::cancellation_type::terminal); });
               });
  EXPECT_EQ(run.outcome.ec, net::error::operation_aborted) << run.outcome.error_message;
  EXPECT_EQ(run.outcome.text, fake_openai_server::content_pieces()[0]);
  EXPECT_TRUE(run.caller_throw_flag_restored);
  EXPECT_TRUE(server.wait_for_client_closes(1, deadline))
      << "the server did not see the connection closed";
}

TEST(OpenaiProvider, CancellationBeforeTheResponseClosesTheUpstreamConnection) {
  fake_openai_server server;
  server.script({fake_behaviour::stall_before_headers});
  openai_provider provider(config_for(server));

  // Cancel once the server has the request (the client is waiting for headers).
  net::io_context ioc;
  net::cancellation_signal signal;
  std::optional<chat_outcome> outcome;
  net::co_spawn(
      ioc, provider.stream_chat(hello_request(), {}),
      net::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e, chat_outcome out) {
        EXPECT_FALSE(e);
        outcome = std::move(out);
      }));
  std::thread canceller([&] {
    // Waits for the request on the server, then cancels on the client's thread.
    for (auto until = std::chrono::steady_clock::now() + deadline;
         server.requests().empty() && std::chrono::steady_clock::now() < until;) {
      std::this_thread::yield();
    }
    net::post(ioc, [&] { signal.emit(net::cancellation_type::terminal); });
  });
  ioc.run_for(deadline);
  canceller.join();
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->ec, net::error::operation_aborted);
  EXPECT_TRUE(server.wait_for_client_closes(1, deadline));
}

TEST(OpenaiProvider, ConnectionRefused) {
  unsigned short port;
  {
    net::io_context ioc;
    net::ip::tcp::acceptor probe(ioc, {net::ip::make_address("127.0.0.1"), 0});
    port = probe.local_endpoint().port();
  }  // closed: nothing listens on `port` now
  openai_config config;
  config.base_url = "http://127.0.0.1:" + std::to_string(port) + "/v1";
  config.model = "m";
  openai_provider provider(config);

  chat_run run = run_chat(provider, hello_request());
  EXPECT_EQ(run.outcome.ec, net::error::connection_refused);
  expect_contains(run.outcome.error_detail, "cannot connect to 127.0.0.1:" + std::to_string(port));
  expect_contains(run.outcome.error_detail, "refused");
  // Clients are told what failed, never where: no host, no port.
  EXPECT_EQ(run.outcome.error_message, "the model server could not be reached (upstream_unreachable)");
}

TEST(OpenaiProvider, HttpsToAPlainHttpServerFailsWithATlsError) {
  fake_openai_server server;
  openai_config config = config_for(server);
  config.base_url = "https://127.0.0.1:" + std::to_string(server.port()) + "/v1";
  openai_provider provider(config);

  chat_run run = run_chat(provider, hello_request());
  EXPECT_TRUE(run.outcome.ec);
  EXPECT_NE(run.outcome.ec, net::error::operation_aborted);
  expect_contains(run.outcome.error_detail, "TLS handshake with 127.0.0.1:");
  expect_contains(run.outcome.error_detail, "failed");
  EXPECT_TRUE(run.deltas.empty());
  EXPECT_TRUE(server.requests().empty()) << "no HTTP request may reach the server in clear";
}

// https through a TLS proxy (run-time self-signed certificate) in front of
// the plain fake server.
struct tls_fixture {
  explicit tls_fixture(const std::string& subject_alt_name)
      : certificate(test::make_self_signed_certificate(subject_alt_name)),
        ca_file(certificate.cert_pem),
        proxy(certificate, server.port()) {}

  openai_config config(bool trust_certificate) const {
    openai_config c = config_for(server);
    c.base_url = "https://127.0.0.1:" + std::to_string(proxy.port()) + "/v1";
    if (trust_certificate) c.ca_file = ca_file.path().string();
    return c;
  }

  fake_openai_server server;
  test::test_certificate certificate;
  test::temp_file ca_file;
  test::tls_test_proxy proxy;
};

TEST(OpenaiProvider, HttpsStreamsWithAVerifiedCertificate) {
  tls_fixture tls("IP:127.0.0.1");
  openai_provider provider(tls.config(/*trust_certificate=*/true));

  chat_run run = run_chat(provider, hello_request());
  EXPECT_FALSE(run.outcome.ec) << run.outcome.error_message;
  EXPECT_EQ(run.deltas, fake_openai_server::content_pieces());
  EXPECT_EQ(run.outcome.finish_reason, "stop");
  EXPECT_EQ(run.outcome.usage.prompt_tokens, fake_openai_server::prompt_tokens);
  auto requests = tls.server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].authorization, "Bearer sk-test-123");
  EXPECT_TRUE(tls.server.wait_for_client_closes(1, deadline));
}

TEST(OpenaiProvider, HttpsRejectsAnUntrustedCertificate) {
  tls_fixture tls("IP:127.0.0.1");
  openai_provider provider(tls.config(/*trust_certificate=*/false));

  chat_run run = run_chat(provider, hello_request());
  EXPECT_TRUE(run.outcome.ec);
  expect_contains(run.outcome.error_detail, "TLS handshake with 127.0.0.1:");
  expect_contains(run.outcome.error_detail, "certificate verify failed");
  expect_contains(run.outcome.error_detail, "self-signed");
  EXPECT_TRUE(tls.server.requests().empty());
}

TEST(OpenaiProvider, HttpsRejectsACertificateForAnotherHost) {
  tls_fixture tls("DNS:example.test");
  openai_provider provider(tls.config(/*trust_certificate=*/true));

  chat_run run = run_chat(provider, hello_request());
  EXPECT_TRUE(run.outcome.ec);
  expect_contains(run.outcome.error_detail, "certificate verify failed");
  expect_contains(run.outcome.error_detail, "certificate does not match host 127.0.0.1");
  EXPECT_TRUE(tls.server.requests().empty());
}

TEST(OpenaiProvider, HttpsWithoutVerificationAcceptsAnyCertificate) {
  tls_fixture tls("DNS:example.test");
  openai_config config = tls.config(/*trust_certificate=*/false);
  config.verify_tls = false;
  openai_provider provider(config);

  chat_run run = run_chat(provider, hello_request());
  EXPECT_FALSE(run.outcome.ec) << run.outcome.error_message;
  EXPECT_EQ(run.outcome.text, joined_pieces());
}

TEST(OpenaiProvider, HttpsCancellationMidStreamClosesTheUpstreamConnection) {
  tls_fixture tls("IP:127.0.0.1");
  tls.server.script({fake_behaviour::stall});
  openai_provider provider(tls.config(/*trust_certificate=*/true));

  chat_run run =
      run_chat(provider, hello_request(),
               [](chat_run&, net::io_context& ioc, net::cancellation_signal& signal) {
                 net::post(ioc, [&signal] { signal.emit(net::cancellation_type::terminal); });
               });
  EXPECT_EQ(run.outcome.ec, net::error::operation_aborted) << run.outcome.error_message;
  EXPECT_EQ(run.outcome.text, fake_openai_server::content_pieces()[0]);
  // The proxy closes its backend connection when the client's ends.
  EXPECT_TRUE(tls.server.wait_for_client_closes(1, deadline));
}

TEST(OpenaiProvider, RejectsBadBaseUrls) {
  for (const char* url : {"", "not a url", "ftp://example.com/v1", "127.0.0.1:8080/v1"}) {
    openai_config config;
    config.base_url = url;
    EXPECT_THROW(openai_provider{config}, std::invalid_argument) << url;
  }
}

}  // namespace
}  // namespace sluice::llm
