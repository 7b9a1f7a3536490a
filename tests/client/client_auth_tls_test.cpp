// The C++ clients' bearer token, Content-Type and wss://, on real sockets:
//   - sse_client and ws_client send `Authorization: Bearer TOKEN` (seen by a
//     recording server), POSTs carry Content-Type: application/json, and the
//     token appears in no status detail or error;
//   - ws_client over wss:// through a TLS proxy (tests/llm_openai/
//     tls_test_proxy) in front of a real Sluice server: trusted with the test
//     CA, refused with a clear error for an untrusted certificate or another
//     host's;
//   - `sluice watch` (SSE and --ws) and `sluice ask --server` send --token or
//     $SLUICE_TOKEN and never print it.
// Waits are io_context runs or process exits bounded by a deadline; nothing
// sleeps.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "client/recording_server.hpp"
#include "client/sse_client.hpp"
#include "client/ws_client.hpp"
#include "llm_openai/tls_test_proxy.hpp"
#include "transport/http_server.hpp"

namespace sluice {
namespace {

namespace net = boost::asio;
using test::recording_server;
using test::seen_request;

constexpr std::string_view kToken = "tok-Secret_123.abc~+/=";

std::vector<std::string> answer(std::string_view bytes) {
  return {std::string(bytes)};
}

std::string unauthorized_response() {
  const std::string body =
      R"({"error":{"code":"unauthorized","message":"a valid bearer token is required"}})";
  return "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nWWW-Authenticate: "
         "Bearer\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

// --- sse_client ------------------------------------------------------------

struct sse_run {
  std::vector<std::string> details;  // every status detail
  std::vector<client::sse_client_error> errors;
  std::optional<client::sse_status> end;

  explicit sse_run(client::sse_client_options o) {
    net::io_context io(1);
    client::sse_client c(io.get_executor(), std::move(o));
    c.on_status([this](client::sse_status s, std::string_view d) {
      details.emplace_back(d);
      if (s == client::sse_status::closed || s == client::sse_status::failed) end = s;
    });
    c.on_error([this](const client::sse_client_error& e) { errors.push_back(e); });
    c.start();
    io.run_for(std::chrono::seconds(60));
  }
};

TEST(SseClientAuth, SendsTheBearerTokenOnEveryRequest) {
  recording_server server(
      [](const seen_request&, std::size_t) { return answer(test::no_content_response); });
  client::sse_client_options o;
  o.url = "http://127.0.0.1:" + std::to_string(server.port()) + "/v1/streams/s/events";
  o.headers.emplace_back("Authorization", "Bearer " + std::string(kToken));
  sse_run r(o);
  EXPECT_EQ(r.end, client::sse_status::closed);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].line, "GET /v1/streams/s/events HTTP/1.1");
  EXPECT_EQ(requests[0].header("authorization"), "Bearer " + std::string(kToken));
  for (const auto& d : r.details) EXPECT_EQ(d.find(kToken), std::string::npos) << d;
}

TEST(SseClientAuth, QueryTokenIsRedactedInStatusDetails) {
  recording_server server(
      [](const seen_request&, std::size_t) { return answer(test::no_content_response); });
  client::sse_client_options o;
  o.url = "http://127.0.0.1:" + std::to_string(server.port()) +
          "/v1/streams/s/events?access_token=" + std::string(kToken);
  sse_run r(o);
  EXPECT_EQ(r.end, client::sse_status::closed);
  ASSERT_FALSE(r.details.empty());
  EXPECT_NE(r.details[0].find("access_token=REDACTED"), std::string::npos) << r.details[0];
  for (const auto& d : r.details) EXPECT_EQ(d.find(kToken), std::string::npos) << d;
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_NE(server.requests()[0].line.find(kToken), std::string::npos);
}

TEST(SseClientAuth, PostCarriesJsonContentTypeAndTheToken) {
  recording_server server(
      [](const seen_request&, std::size_t) { return answer(test::no_content_response); });
  client::sse_client_options o;
  o.url = "http://127.0.0.1:" + std::to_string(server.port()) + "/AutoAgent";
  o.method = "POST";
  o.body = R"({"query":"q"})";
  o.headers.emplace_back("Authorization", "Bearer " + std::string(kToken));
  sse_run r(o);
  EXPECT_EQ(r.end, client::sse_status::closed);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].line, "POST /AutoAgent HTTP/1.1");
  EXPECT_EQ(requests[0].header("content-type"), "application/json");
  EXPECT_EQ(requests[0].header("authorization"), "Bearer " + std::string(kToken));
}

TEST(SseClientAuth, UnauthorizedIsFinalAndTheTokenIsNotInTheError) {
  recording_server server(
      [](const seen_request&, std::size_t) { return answer(unauthorized_response()); });
  client::sse_client_options o;
  o.url = "http://127.0.0.1:" + std::to_string(server.port()) + "/v1/streams/s/events";
  o.headers.emplace_back("Authorization", "Bearer " + std::string(kToken));
  sse_run r(o);
  EXPECT_EQ(r.end, client::sse_status::failed);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].code, "unauthorized");
  EXPECT_EQ(r.errors[0].http_status, 401u);
  EXPECT_EQ(r.errors[0].message.find(kToken), std::string::npos);
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(SseClientAuth, HeaderWithLineBreakIsRefusedWithoutEchoingIt) {
  recording_server server(
      [](const seen_request&, std::size_t) { return answer(test::no_content_response); });
  client::sse_client_options o;
  o.url = "http://127.0.0.1:" + std::to_string(server.port()) + "/x";
  o.headers.emplace_back("Authorization", "Bearer secret\r\nX-Evil: 1");
  sse_run r(o);
  EXPECT_EQ(r.end, client::sse_status::failed);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].code, "invalid_header");
  EXPECT_EQ(r.errors[0].message.find("secret"), std::string::npos);
  EXPECT_TRUE(server.requests().empty());
}

// --- ws_client ---------------------------------------------------------------

struct ws_run {
  std::vector<std::string> details;
  std::vector<client::ws_client_error> errors;
  std::vector<client::ws_status> statuses;
  std::vector<std::string> events;  // "id type data"

  ws_run(client::ws_client_options o, const std::string& stream) {
    net::io_context io(1);
    client::ws_client c(io.get_executor(), std::move(o));
    c.subscribe(stream);
    c.on_event([this](std::string_view, std::uint64_t id, std::string_view type,
                      std::string_view data, std::uint64_t, std::uint64_t) {
      events.push_back(std::to_string(id) + " " + std::string(type) + " " + std::string(data));
    });
    c.on_status([this](client::ws_status s, std::string_view d) {
      statuses.push_back(s);
      details.emplace_back(d);
    });
    c.on_error([this](const client::ws_client_error& e) { errors.push_back(e); });
    c.start();
    io.run_for(std::chrono::seconds(60));
  }
  client::ws_status last() const {
    return statuses.empty() ? client::ws_status::connecting : statuses.back();
  }
};

client::ws_client_options ws_options(const std::string& url) {
  client::ws_client_options o;
  o.url = url;
  o.backoff_base = std::chrono::milliseconds(0);
  o.max_attempts = 3;
  return o;
}

TEST(WsClientAuth, TokenOnTheHandshakeAndA401IsFinal) {
  recording_server server(
      [](const seen_request&, std::size_t) { return answer(unauthorized_response()); });
  auto o = ws_options("ws://127.0.0.1:" + std::to_string(server.port()) + "/v1/ws");
  o.headers.emplace_back("Authorization", "Bearer " + std::string(kToken));
  ws_run r(o, "s");
  EXPECT_EQ(r.last(), client::ws_status::failed);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].code, "unauthorized");
  EXPECT_NE(r.errors[0].message.find("401"), std::string::npos) << r.errors[0].message;
  EXPECT_EQ(r.errors[0].message.find(kToken), std::string::npos);
  for (const auto& d : r.details) EXPECT_EQ(d.find(kToken), std::string::npos) << d;
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u) << "a refused upgrade is not retried";
  EXPECT_EQ(requests[0].line, "GET /v1/ws HTTP/1.1");
  EXPECT_EQ(requests[0].header("authorization"), "Bearer " + std::string(kToken));
  EXPECT_EQ(requests[0].header("upgrade"), "websocket");
}

TEST(WsClientAuth, HeaderWithLineBreakIsRefused) {
  recording_server server(
      [](const seen_request&, std::size_t) { return answer(unauthorized_response()); });
  auto o = ws_options("ws://127.0.0.1:" + std::to_string(server.port()) + "/v1/ws");
  o.headers.emplace_back("Authorization", "Bearer secret\nX: y");
  ws_run r(o, "s");
  EXPECT_EQ(r.last(), client::ws_status::failed);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].code, "invalid_header");
  EXPECT_EQ(r.errors[0].message.find("secret"), std::string::npos);
  EXPECT_TRUE(server.requests().empty());
}

// wss:// through a TLS-terminating proxy in front of a real Sluice server.
class WssTest : public ::testing::Test {
 protected:
  void SetUp() override {
    transport::server_config c;
    c.port = 0;
    c.threads = 1;
    server_ = std::make_unique<transport::http_server>(c);
    server_->start();
    auto log = server_->registry().get_or_create("tls-stream").value();
    for (int i = 1; i <= 3; ++i) log->publish("step", "{\"n\":" + std::to_string(i) + "}", i == 3);
  }
  void TearDown() override { server_->shutdown(); }
  std::unique_ptr<transport::http_server> server_;
};

TEST_F(WssTest, TrustedThroughTheTestCa) {
  const auto cert = test::make_self_signed_certificate("IP:127.0.0.1");
  test::temp_file ca(cert.cert_pem);
  test::tls_test_proxy proxy(cert, server_->port());
  auto o = ws_options("wss://127.0.0.1:" + std::to_string(proxy.port()) + "/v1/ws");
  o.ca_file = ca.path().string();
  ws_run r(o, "tls-stream");
  EXPECT_TRUE(r.errors.empty()) << (r.errors.empty() ? "" : r.errors[0].message);
  EXPECT_EQ(r.last(), client::ws_status::closed);
  EXPECT_EQ(r.events,
            (std::vector<std::string>{"1 step {\"n\":1}", "2 step {\"n\":2}", "3 step {\"n\":3}"}));
}

TEST_F(WssTest, UntrustedCertificateFailsClearlyAndIsNotRetried) {
  const auto cert = test::make_self_signed_certificate("IP:127.0.0.1");
  const auto other = test::make_self_signed_certificate("IP:127.0.0.1");
  test::temp_file ca(other.cert_pem);  // trusts another certificate
  test::tls_test_proxy proxy(cert, server_->port());
  auto o = ws_options("wss://127.0.0.1:" + std::to_string(proxy.port()) + "/v1/ws");
  o.ca_file = ca.path().string();
  ws_run r(o, "tls-stream");
  EXPECT_EQ(r.last(), client::ws_status::failed);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].code, "tls_verification_failed");
  EXPECT_NE(r.errors[0].message.find("certificate"), std::string::npos) << r.errors[0].message;
  EXPECT_TRUE(r.events.empty());
  EXPECT_EQ(std::count(r.statuses.begin(), r.statuses.end(), client::ws_status::connecting), 1);
}

TEST_F(WssTest, CertificateForAnotherHostFails) {
  const auto cert = test::make_self_signed_certificate("DNS:example.test");
  test::temp_file ca(cert.cert_pem);
  test::tls_test_proxy proxy(cert, server_->port());
  auto o = ws_options("wss://127.0.0.1:" + std::to_string(proxy.port()) + "/v1/ws");
  o.ca_file = ca.path().string();
  ws_run r(o, "tls-stream");
  EXPECT_EQ(r.last(), client::ws_status::failed);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].code, "tls_verification_failed");
  EXPECT_NE(r.errors[0].message.find("does not match host 127.0.0.1"), std::string::npos)
      << r.errors[0].message;
}

// --- the command-line clients -------------------------------------------------

struct process_result {
  std::string out;  // stdout and stderr
  int code = -1;
};

process_result run(const std::string& command) {
  process_result r;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string bin() {
  return "timeout 60 " SLUICE_BIN;
}

TEST(CliAuth, WatchSendsTokenFromTheFlag) {
  recording_server server(
      [](const seen_request&, std::size_t) { return answer(test::no_content_response); });
  const auto r = run(bin() + " watch --token '" + std::string(kToken) +
                     "' --server http://127.0.0.1:" + std::to_string(server.port()) + " s1");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find(kToken), std::string::npos) << r.out;
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].header("authorization"), "Bearer " + std::string(kToken));
}

TEST(CliAuth, WatchSendsTokenFromTheEnvironment) {
  recording_server server(
      [](const seen_request&, std::size_t) { return answer(test::no_content_response); });
  const auto r = run("SLUICE_TOKEN='" + std::string(kToken) + "' " + bin() +
                     " watch --server http://127.0.0.1:" + std::to_string(server.port()) + " s1");
  EXPECT_EQ(r.code, 0) << r.out;
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].header("authorization"), "Bearer " + std::string(kToken));
}

TEST(CliAuth, WatchWsSendsTokenAndDoesNotPrintIt) {
  recording_server server(
      [](const seen_request&, std::size_t) { return answer(unauthorized_response()); });
  const auto r = run(bin() + " watch --ws --token '" + std::string(kToken) +
                     "' --server http://127.0.0.1:" + std::to_string(server.port()) + " s1");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("unauthorized"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(kToken), std::string::npos) << r.out;
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].header("authorization"), "Bearer " + std::string(kToken));
}

TEST(CliAuth, AskPostsJsonWithTheToken) {
  recording_server server(
      [](const seen_request&, std::size_t) { return answer(unauthorized_response()); });
  const auto r = run(bin() + " ask --server http://127.0.0.1:" + std::to_string(server.port()) +
                     " --token '" + std::string(kToken) + "' 'what is sse'");
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("unauthorized"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(kToken), std::string::npos) << r.out;
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].line, "POST /AutoAgent HTTP/1.1");
  EXPECT_EQ(server.requests()[0].header("content-type"), "application/json");
  EXPECT_EQ(server.requests()[0].header("authorization"), "Bearer " + std::string(kToken));
}

TEST(CliAuth, MalformedTokenIsRefusedWithoutPrintingIt) {
  const auto r = run(bin() + " watch --token 'sec ret' --server http://127.0.0.1:9 s1");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_EQ(r.out.find("sec ret"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace sluice
