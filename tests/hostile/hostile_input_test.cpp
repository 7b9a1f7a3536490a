// Hostile input against the real server on real sockets (127.0.0.1, port 0):
// numbers out of range, exceptions in handlers, HEAD framing, control
// characters for the log, upstream failures in client-facing errors. After
// each case the server still answers /healthz. No sleeps: every wait is a
// read with a bounded deadline.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <boost/json/parse.hpp>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "agents/run_service.hpp"
#include "app/agent_routes.hpp"
#include "core/log_text.hpp"
#include "llm/openai/openai_provider.hpp"
#include "search/corpus_indexer.hpp"
#include "support/test_client.hpp"
#include "test_corpus.hpp"
#include "transport/http_server.hpp"
#include "ws/ws_test_client.hpp"

namespace sluice {
namespace {

namespace json = boost::json;
namespace net = boost::asio;
using test::http_connection;
using test::request;
using test::sse_reader;
using test::ws_connection;

constexpr const char* huge_agent_type = R"({"query":"q","agentType":9223372036854775808})";

// Captures every log line of the default logger while alive.
class log_capture {
 public:
  log_capture() {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    sink->set_pattern("%v");
    previous_ = spdlog::default_logger();
    auto logger = std::make_shared<spdlog::logger>("capture", sink);
    logger->set_level(spdlog::level::trace);
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~log_capture() { spdlog::set_default_logger(previous_); }
  std::string text() {
    spdlog::default_logger()->flush();
    return out_.str();
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

class HostileInputTest : public ::testing::Test {
 protected:
  void start(llm::chat_provider* model = nullptr,
             const std::function<void(transport::http_server&)>& before_start = {}) {
    index_ = corpus_.index_path();
    ASSERT_TRUE(search::build_index(corpus_.corpus_dir(), index_));
    search_ = std::make_unique<agents::search_service>(index_, 1);
    agents::agent_env env;
    env.search = search_.get();
    env.model = model;
    env.builtin_delta_pause = std::chrono::milliseconds(0);
    transport::server_config c;
    c.port = 0;
    c.threads = 2;
    server_ = std::make_unique<transport::http_server>(c);
    runs_ = std::make_unique<agents::run_service>(server_->registry(), env,
                                                  std::chrono::milliseconds(0));
    app::add_agent_routes(*server_, *runs_);
    app::add_agent_ws_start(*server_, *runs_);
    if (before_start) before_start(*server_);
    server_->start();
  }
  void TearDown() override {
    if (server_) {
      expect_healthy();
      server_->shutdown();
    }
  }
  std::uint16_t port() const { return server_->port(); }
  void expect_healthy() {
    auto r = request(port(), "GET", "/healthz");
    EXPECT_EQ(r.status(), 200);
    EXPECT_EQ(r.body, R"({"status":"ok"})");
  }
  static std::string code_of(const test::http_response& r) {
    return std::string(json::parse(r.body).at("error").at("code").as_string());
  }

  testing::temp_corpus corpus_;
  std::filesystem::path index_;
  // Destroyed in reverse: runs, then the search pool (its threads post to the
  // server's io_contexts), then the server.
  std::unique_ptr<transport::http_server> server_;
  std::unique_ptr<agents::search_service> search_;
  std::unique_ptr<agents::run_service> runs_;
};

// The message that once ended the process (std::terminate on an I/O thread).
TEST_F(HostileInputTest, WsStartWithAgentTypeTwoToThe63IsAnErrorFrame) {
  start();
  ws_connection c(port());
  c.send(std::string(R"({"op":"start","request":)") + huge_agent_type + "}");
  auto m = c.read();
  EXPECT_EQ(m.at("op"), "error") << c.last_text_;
  EXPECT_EQ(m.at("code"), "invalid_agent_type") << c.last_text_;
  // The socket and the server go on.
  c.send(R"({"op":"ping"})");
  EXPECT_EQ(c.read().at("op"), "pong");
}

TEST_F(HostileInputTest, HttpNumbersOutOfRangeAre400) {
  start();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {huge_agent_type, "invalid_agent_type"},
      {R"({"query":"q","agentType":18446744073709551615})", "invalid_agent_type"},
      {R"({"query":"q","agentType":-9223372036854775808})", "invalid_agent_type"},
      {R"({"query":"q","agentType":3.5})", "invalid_agent_type"},
      {R"({"query":"q","agentType":1e400})", "invalid_agent_type"},  // (parsed as infinity)
      {R"({"query":"q","maxSteps":1e300})", "invalid_request"},
      {R"({"query":"q","maxSteps":9223372036854775808})", "invalid_request"},
      {R"({"query":"q","maxLoop":-9223372036854775808})", "invalid_request"},
      {R"({"query":"q","maxLoop":4294967297})", "invalid_request"},
      {R"({"query":"q","maxLoop":2.0})", "invalid_request"},
  };
  for (const auto& [body, code] : cases) {
    for (const char* path : {"/AutoAgent", "/v1/tool/deepsearch"}) {
      if (std::string(path) == "/v1/tool/deepsearch" && code == "invalid_agent_type") continue;
      auto r = request(port(), "POST", path, body, {{"Content-Type", "application/json"}});
      EXPECT_EQ(r.status(), 400) << path << " " << body << " -> " << r.body;
      EXPECT_EQ(code_of(r), code) << path << " " << body;
    }
  }
  EXPECT_EQ(server_->registry().size(), 0u) << "a refused request creates nothing";
}

TEST_F(HostileInputTest, WsBadNumbersInOpsAreErrorFrames) {
  start();
  ws_connection c(port());
  c.send(R"({"op":"subscribe","stream":"s","lastEventId":18446744073709551615})");
  EXPECT_EQ(c.read().at("code"), "invalid_last_event_id");
  c.send(R"({"op":"subscribe","stream":"s","lastEventId":-1})");
  EXPECT_EQ(c.read().at("code"), "invalid_last_event_id");
  c.send(R"({"op":"start","request":{"query":"q","maxSteps":1e300}})");
  EXPECT_EQ(c.read().at("code"), "invalid_request");
  c.send(R"({"op":"publish","stream":"s","data":1,"final":2})");
  EXPECT_EQ(c.read().at("code"), "invalid_message");
  c.send(R"({"op":"ping"})");
  EXPECT_EQ(c.read().at("op"), "pong");
}

// A handler that throws (a bug) answers an internal error without its text,
// logs it escaped, and the connection and the server go on.
TEST_F(HostileInputTest, WsHandlerExceptionIsAnInternalErrorFrameNotACrash) {
  log_capture log;
  start(nullptr, [](transport::http_server& s) {
    struct throwing_launcher final : streams::run_launcher {
      streams::op_result<streams::run_plan> plan(std::string_view,
                                                 const json::value&) const override {
        throw std::runtime_error("secret detail\n\x1b[31mFORGED LINE");
      }
    };
    s.set_run_launcher(std::make_shared<throwing_launcher>());
  });
  ws_connection c(port());
  c.send(R"({"op":"start","request":{"query":"q"}})");
  auto m = c.read();
  EXPECT_EQ(m.at("op"), "error");
  EXPECT_EQ(m.at("code"), "internal_error");
  EXPECT_EQ(c.last_text_.find("secret"), std::string::npos) << c.last_text_;
  c.send(R"({"op":"ping"})");
  EXPECT_EQ(c.read().at("op"), "pong");
  const std::string text = log.text();
  EXPECT_NE(text.find("secret detail\\n\\x1b[31mFORGED LINE"), std::string::npos) << text;
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_EQ(text.find("\nFORGED"), std::string::npos);
}

TEST_F(HostileInputTest, HttpHandlerExceptionIsLoggedEscapedAndAnswered500) {
  log_capture log;
  start(nullptr, [](transport::http_server& s) {
    s.routes().add("GET", "/boom\n\x1b[2Jforged",
                   [](transport::request_context&) -> transport::handler_result {
                     throw std::runtime_error("internal path /etc/sluice\r\nX: y");
                   });
  });
  auto r = request(port(), "GET", "/boom%0A%1B%5B2Jforged");
  EXPECT_EQ(r.status(), 500);
  EXPECT_EQ(code_of(r), "internal_error");
  EXPECT_EQ(r.body.find("/etc/sluice"), std::string::npos) << r.body;
  const std::string text = log.text();
  EXPECT_NE(text.find("/boom\\n\\x1b[2Jforged"), std::string::npos) << text;
  EXPECT_NE(text.find("/etc/sluice\\r\\nX: y"), std::string::npos) << text;
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_EQ(text.find('\r'), std::string::npos);
}

// HEAD gets the headers a GET would get and no body: the next request on the
// keep-alive connection is read and answered in frame.
TEST_F(HostileInputTest, HeadHasNoBodyAndKeepAliveStaysFramed) {
  const auto root = corpus_.root() / "web-root";
  std::filesystem::create_directories(root);
  const std::string page = "<!doctype html><title>Sluice</title><p>hello</p>\n";
  std::ofstream(root / "index.html") << page;
  start(nullptr, [&](transport::http_server& s) { s.routes().serve_static(root); });

  http_connection c(port());
  c.send_request("HEAD", "/index.html");
  auto head = c.read_head();
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-length"), std::to_string(page.size()));
  // HEAD on an API route: 405 with headers only.
  c.send_request("HEAD", "/healthz");
  auto h405 = c.read_head();
  EXPECT_EQ(h405.status, 405);
  c.send_request("GET", "/index.html");
  auto get = c.read_head();
  EXPECT_EQ(get.status, 200) << "the response to GET is read where it starts";
  EXPECT_EQ(c.read_body_to_end(), page);
  c.send_request("GET", "/healthz");
  EXPECT_EQ(c.read_head().status, 200);
  EXPECT_EQ(c.read_body_to_end(), R"({"status":"ok"})");
}

// A failing model server: the client's error names no host, port or
// exception text; the log has the detail.
TEST_F(HostileInputTest, UpstreamFailureReachesClientsWithoutHostOrPort) {
  unsigned short dead_port;
  {
    net::io_context ioc;
    net::ip::tcp::acceptor probe(ioc, {net::ip::make_address("127.0.0.1"), 0});
    dead_port = probe.local_endpoint().port();
  }  // closed: nothing listens there now
  llm::openai_config oc;
  oc.base_url = "http://127.0.0.1:" + std::to_string(dead_port) + "/v1";
  oc.model = "m";
  llm::openai_provider model(oc);
  log_capture log;
  start(&model);
  http_connection c(port());
  c.send_request("POST", "/AutoAgent", R"({"query":"How does SQLite rank?","agentType":"react"})",
                 {{"Content-Type", "application/json"}});
  sse_reader r(c);
  ASSERT_EQ(r.head().status, 200);
  ASSERT_TRUE(r.read_to_end());
  ASSERT_FALSE(r.events.empty());
  const std::string last = r.events.back().data;
  const auto fin = json::parse(last).as_object();
  EXPECT_EQ(fin.at("messageType"), "error") << last;
  const std::string message(fin.at("message").as_string());
  EXPECT_NE(message.find("upstream_unreachable"), std::string::npos) << message;
  for (const auto& e : r.events) {
    EXPECT_EQ(e.data.find("127.0.0.1"), std::string::npos) << e.data;
    EXPECT_EQ(e.data.find(std::to_string(dead_port)), std::string::npos) << e.data;
  }
  const std::string text = log.text();
  EXPECT_NE(text.find("127.0.0.1:" + std::to_string(dead_port)), std::string::npos) << text;
}

TEST(LogEscape, ControlCharactersAndInvalidUtf8AreEscaped) {
  EXPECT_EQ(core::log_escape("plain /v1/streams/a"), "plain /v1/streams/a");
  EXPECT_EQ(core::log_escape("a\nb\rc\td"), "a\\nb\\rc\\td");
  EXPECT_EQ(core::log_escape(std::string("\x00\x1b[31m\x7f", 7)), "\\x00\\x1b[31m\\x7f");
  EXPECT_EQ(core::log_escape("back\\slash"), "back\\\\slash");
  EXPECT_EQ(core::log_escape("caf\xc3\xa9 \xe4\xbd\xa0"), "caf\xc3\xa9 \xe4\xbd\xa0");
  EXPECT_EQ(core::log_escape("\xc3"), "\\xc3");                    // truncated sequence
  EXPECT_EQ(core::log_escape("\xc2\x85"), "\\xc2\\x85");           // C1 control (NEL)
  EXPECT_EQ(core::log_escape("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // surrogate
  EXPECT_EQ(core::log_escape("\xc0\xaf"), "\\xc0\\xaf");           // overlong '/'
  EXPECT_EQ(core::log_escape(std::string(600, 'a'), 512), std::string(512, 'a') + "...");
}

}  // namespace
}  // namespace sluice
