// Hostile clients against a real in-process server on real sockets
// (127.0.0.1, port 0): every access-control rule on HTTP/SSE and WebSocket,
// the browser-facing checks (Origin, Content-Type, Host, CORS, page headers),
// share links, the no-existence-oracle rule, and the built binary's refusals.
// After each test the server still answers /healthz. Nothing sleeps: every
// wait is a read with a bounded deadline.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "agents/run_service.hpp"
#include "agents/search_service.hpp"
#include "app/agent_routes.hpp"
#include "auth/jwt.hpp"
#include "search/corpus_indexer.hpp"
#include "support/test_client.hpp"
#include "test_corpus.hpp"
#include "transport/http_server.hpp"

namespace sluice {
namespace {

namespace json = boost::json;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using test::http_connection;
using test::sse_reader;
using headers = std::vector<std::pair<std::string, std::string>>;

const std::string secret = "an-hs256-secret-of-at-least-32-bytes!!";

std::int64_t now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string token(const std::string& sub, std::vector<std::string> publish,
                  std::vector<std::string> subscribe, bool run = false, bool admin = false,
                  std::int64_t exp_offset = 3600) {
  auth::token_claims c;
  c.sub = sub;
  c.publish = std::move(publish);
  c.subscribe = std::move(subscribe);
  c.run = run;
  c.admin = admin;
  c.iat = now();
  c.exp = now() + exp_offset;
  return auth::mint_hs256(secret, c);
}

headers bearer(const std::string& t, headers more = {}) {
  more.emplace_back("Authorization", "Bearer " + t);
  return more;
}

std::string code_of(const test::http_response& r) {
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("error")) return "(no error: " + r.body + ")";
  return std::string(v.at("error").at("code").as_string());
}

// A raw request exactly as written (no Host or Content-Type added).
test::http_response raw(std::uint16_t port, const std::string& text) {
  http_connection c(port);
  c.send(text);
  test::http_response r;
  r.head = c.read_head();
  r.body = c.read_body_to_end();
  return r;
}

// A WebSocket client that can send any upgrade headers and reports a refused
// upgrade's HTTP status.
class ws_client {
 public:
  ws_client(std::uint16_t port, const std::string& target, const headers& hs,
            const std::string& host = "127.0.0.1")
      : ws_(ioc_) {
    auto& sock = ws_.next_layer();
    sock.open(boost::asio::ip::tcp::v4());
    timeval tv{20, 0};
    ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sock.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    ws_.set_option(websocket::stream_base::decorator([hs](websocket::request_type& req) {
      for (const auto& [k, v] : hs) req.set(k, v);
    }));
    boost::system::error_code ec;
    ws_.handshake(response_, host, target, ec);
    status = response_.result_int();
    accepted = !ec;
  }
  json::object call(const std::string& text) {
    ws_.text(true);
    ws_.write(boost::asio::buffer(text));
    return read();
  }
  json::object read() {
    beast::flat_buffer buf;
    ws_.read(buf);
    auto d = buf.cdata();
    return json::parse(std::string_view(static_cast<const char*>(d.data()), d.size())).as_object();
  }
  unsigned status = 0;
  bool accepted = false;

 private:
  boost::asio::io_context ioc_;
  websocket::stream<boost::asio::ip::tcp::socket> ws_;
  websocket::response_type response_;
};

std::string str(const json::object& o, const char* k) {
  const auto* v = o.if_contains(k);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

class AuthServer : public ::testing::Test {
 protected:
  void start(auth::auth_mode mode = auth::auth_mode::jwt,
             const std::function<void(transport::server_config&)>& tweak = {}) {
    dir_ = std::filesystem::temp_directory_path() /
           ("sluice-auth-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / "secret") << secret << "\n";
    index_ = corpus_.index_path();
    ASSERT_TRUE(search::build_index(corpus_.corpus_dir(), index_));
    search_ = std::make_unique<agents::search_service>(index_, 1);
    agents::agent_env env;
    env.search = search_.get();
    env.builtin_delta_pause = std::chrono::milliseconds(0);
    transport::server_config c;
    c.port = 0;
    c.threads = 2;
    c.auth.mode = mode;
    if (mode == auth::auth_mode::jwt) c.auth.jwt_secret_file = (dir_ / "secret").string();
    if (tweak) tweak(c);
    server_ = std::make_unique<transport::http_server>(c);
    runs_ = std::make_unique<agents::run_service>(server_->registry(), env,
                                                  std::chrono::milliseconds(0));
    app::add_agent_routes(*server_, *runs_);
    app::add_agent_ws_start(*server_, *runs_);
    server_->start();
  }
  void TearDown() override {
    if (server_) {
      // Whatever a test threw at it, the server still answers.
      auto h = test::request(port(), "GET", "/healthz");
      EXPECT_EQ(h.status(), 200);
      EXPECT_EQ(h.body, R"({"status":"ok"})");
      server_->shutdown();
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::uint16_t port() const { return server_->port(); }

  test::http_response publish(const std::string& id, const std::string& tok,
                              const std::string& body = R"({"n":1})",
                              const std::string& query = "") {
    return test::request(port(), "POST", "/v1/streams/" + id + "/events" + query, body,
                         tok.empty() ? headers{} : bearer(tok));
  }
  test::http_response get(const std::string& target, const std::string& tok = "",
                          headers more = {}) {
    return test::request(port(), "GET", target, "", tok.empty() ? more : bearer(tok, more));
  }
  // Opens an SSE subscription and reads the events published so far (the
  // stream is ended first so the response ends).
  std::vector<test::recorded_event> read_ended(const std::string& target, const headers& hs) {
    http_connection c(port());
    c.send_request("GET", target, "", hs);
    sse_reader r(c);
    EXPECT_EQ(r.head().status, 200);
    EXPECT_TRUE(r.read_to_end());
    return r.events;
  }

  std::filesystem::path dir_;
  testing::temp_corpus corpus_;
  std::filesystem::path index_;
  // Destroyed in reverse: runs, then the search pool (its threads post to the
  // server's io_contexts), then the server.
  std::unique_ptr<transport::http_server> server_;
  std::unique_ptr<agents::search_service> search_;
  std::unique_ptr<agents::run_service> runs_;
};

const std::string alice_tok = token("alice", {"team1-*"}, {}, true);
const std::string bob_tok = token("bob", {"team2-*"}, {"team2-*"}, true);
const std::string reader_tok = token("carol", {}, {"team1-*"});

TEST_F(AuthServer, MissingOrInvalidTokensGet401WithWwwAuthenticate) {
  start();
  const std::string expired = token("alice", {"*"}, {"*"}, true, true, -3600);
  const std::string forged = token("alice", {"*"}, {"*"}) + "x";
  const std::string none_alg =
      "eyJhbGciOiJub25lIn0."
      "eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OSwic2x1aWNlIjp7InB1Ymxpc2giOlsiKiJdfX0.";
  for (const std::string& t : {std::string(), expired, forged, none_alg}) {
    for (auto r : {publish("team1-a", t), get("/v1/streams/team1-a/events", t),
                   get("/v1/streams/team1-a", t), get("/metrics", t),
                   test::request(port(), "POST", "/v1/streams/team1-a/cancel", "",
                                 t.empty() ? headers{} : bearer(t)),
                   test::request(port(), "POST", "/v1/agent/runs", R"({"query":"q"})",
                                 t.empty() ? headers{} : bearer(t))}) {
      EXPECT_EQ(r.status(), 401) << r.body;
      EXPECT_EQ(code_of(r), "unauthorized");
      EXPECT_EQ(r.head.header("www-authenticate"), "Bearer realm=\"sluice\"");
      EXPECT_EQ(r.body.find(secret), std::string::npos);
      if (!t.empty()) {
        EXPECT_EQ(r.body.find(t), std::string::npos);  // never echoed
      }
    }
    ws_client ws(port(), t.empty() ? "/v1/ws" : "/v1/ws?access_token=" + t, {});
    EXPECT_FALSE(ws.accepted);
    EXPECT_EQ(ws.status, 401u);
  }
  // Another scheme than Bearer is an invalid token, not anonymous.
  auto basic = get("/v1/streams/x", "", {{"Authorization", "Basic YTpi"}});
  EXPECT_EQ(basic.status(), 401);
  EXPECT_EQ(server_->registry().find("team1-a"), nullptr);  // nothing was created
}

TEST_F(AuthServer, PublishNeedsAPublishPatternCoveringTheId) {
  start();
  auto ok = publish("team1-a", alice_tok);
  EXPECT_EQ(ok.status(), 200) << ok.body;
  EXPECT_EQ(server_->registry().find("team1-a")->owner(), "alice");
  auto no = publish("team2-a", alice_tok);
  EXPECT_EQ(no.status(), 403);
  EXPECT_EQ(code_of(no), "forbidden");
  auto reader = publish("team1-a", reader_tok);
  EXPECT_EQ(reader.status(), 403);
  EXPECT_EQ(server_->registry().find("team2-a"), nullptr);
  // The token may come as ?access_token= too.
  auto q = test::request(port(), "POST", "/v1/streams/team1-b/events?access_token=" + alice_tok,
                         R"({"n":1})");
  EXPECT_EQ(q.status(), 200) << q.body;
}

TEST_F(AuthServer, SubscribeAndStatusNeedAPatternOrOwnershipWithoutAnExistenceOracle) {
  start();
  ASSERT_EQ(publish("team1-a", alice_tok, R"({"n":1})", "?final=true").status(), 200);
  // carol has a subscribe pattern: reads it.
  auto events = read_ended("/v1/streams/team1-a/events", bearer(reader_tok));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, R"({"n":1})");
  EXPECT_EQ(get("/v1/streams/team1-a", reader_tok).status(), 200);
  // alice has no subscribe pattern but owns it.
  EXPECT_EQ(read_ended("/v1/streams/team1-a/events", bearer(alice_tok)).size(), 1u);
  EXPECT_EQ(get("/v1/streams/team1-a", alice_tok).status(), 200);
  // bob neither: the stream looks exactly like one that does not exist.
  auto theirs = get("/v1/streams/team1-a", bob_tok);
  auto missing = get("/v1/streams/team1-zzz", bob_tok);
  EXPECT_EQ(theirs.status(), 404);
  EXPECT_EQ(theirs.body, missing.body);
  EXPECT_EQ(code_of(theirs), "stream_not_found");
  auto sub_theirs = get("/v1/streams/team1-a/events", bob_tok);
  auto sub_missing = get("/v1/streams/team1-zzz/events", bob_tok);
  EXPECT_EQ(sub_theirs.status(), 404);
  EXPECT_EQ(sub_theirs.body, sub_missing.body);
  EXPECT_EQ(server_->registry().find("team1-zzz"), nullptr);
}

TEST_F(AuthServer, CancelNeedsOwnershipOrAPublishPattern) {
  start();
  ASSERT_EQ(publish("team1-a", alice_tok).status(), 200);
  ASSERT_EQ(publish("team1-b", alice_tok).status(), 200);
  auto cancel = [&](const std::string& id, const std::string& t) {
    return test::request(port(), "POST", "/v1/streams/" + id + "/cancel", "", bearer(t));
  };
  auto by_reader = cancel("team1-a", reader_tok);  // may read, may not cancel
  EXPECT_EQ(by_reader.status(), 404);
  EXPECT_EQ(by_reader.body, cancel("team1-nope", reader_tok).body);
  EXPECT_EQ(cancel("team1-a", bob_tok).status(), 404);
  EXPECT_EQ(server_->registry().find("team1-a")->status().state, core::stream_state::open);
  EXPECT_EQ(cancel("team1-a", alice_tok).status(), 200);  // owner
  const std::string publisher = token("dave", {"team1-*"}, {});
  EXPECT_EQ(cancel("team1-b", publisher).status(), 200);  // a publish pattern
}

TEST_F(AuthServer, MetricsNeedAdminOrMetricsPublic) {
  start();
  EXPECT_EQ(get("/metrics").status(), 401);
  auto not_admin = get("/metrics", alice_tok);
  EXPECT_EQ(not_admin.status(), 403);
  EXPECT_EQ(code_of(not_admin), "forbidden");
  auto admin = get("/metrics", token("ops", {}, {}, false, true));
  EXPECT_EQ(admin.status(), 200);
  EXPECT_NE(admin.body.find("sluice_"), std::string::npos);
}

TEST_F(AuthServer, MetricsPublicServesMetricsWithoutAToken) {
  start(auth::auth_mode::jwt, [](transport::server_config& c) { c.auth.metrics_public = true; });
  EXPECT_EQ(get("/metrics").status(), 200);
}

TEST_F(AuthServer, RunsNeedTheRunClaimAndBelongToTheirSubject) {
  start();
  auto no_run =
      test::request(port(), "POST", "/v1/agent/runs", R"({"query":"q"})", bearer(reader_tok));
  EXPECT_EQ(no_run.status(), 403);
  EXPECT_EQ(code_of(no_run), "forbidden");
  for (const char* path : {"/AutoAgent", "/v1/tool/deepsearch"})
    EXPECT_EQ(test::request(port(), "POST", path, R"({"query":"q"})", bearer(reader_tok)).status(),
              403);
  // alice starts a run with her own id; it is hers.
  http_connection c(port());
  c.send_request("POST", "/v1/agent/runs",
                 R"({"query":"What is FTS5?","requestId":"alice-run-1","agentType":"plan_solve"})",
                 bearer(alice_tok));
  sse_reader r(c);
  ASSERT_EQ(r.head().status, 200);
  ASSERT_TRUE(r.read_to_end());
  EXPECT_FALSE(r.events.empty());
  EXPECT_EQ(server_->registry().find("alice-run-1")->owner(), "alice");
  // bob attaching by requestId gets what a run that does not exist gives a
  // resume: 404 stream_not_found, with the same body.
  auto attach = test::request(port(), "POST", "/v1/agent/runs",
                              R"({"query":"q","requestId":"alice-run-1"})", bearer(bob_tok));
  auto resume_missing =
      test::request(port(), "POST", "/v1/agent/runs", R"({"query":"q","requestId":"nobody-run"})",
                    bearer(bob_tok, {{"Last-Event-ID", "3"}}));
  EXPECT_EQ(attach.status(), 404);
  EXPECT_EQ(attach.body, resume_missing.body);
  EXPECT_EQ(attach.body, get("/v1/streams/alice-run-1", bob_tok).body);
  EXPECT_EQ(server_->registry().find("nobody-run"), nullptr);
  // alice may attach to her own run again (a retried POST).
  http_connection again(port());
  again.send_request("POST", "/v1/agent/runs", R"({"query":"q","requestId":"alice-run-1"})",
                     bearer(alice_tok, {{"Last-Event-ID", r.events.back().id}}));
  EXPECT_EQ(again.read_head().status, 204);
}

TEST_F(AuthServer, WebSocketOpsFollowTheSameRulesAsHttp) {
  start();
  ASSERT_EQ(publish("team1-a", alice_tok, R"({"n":1})").status(), 200);
  // bob's socket, authenticated once at the upgrade by ?access_token=.
  ws_client bob(port(), "/v1/ws?access_token=" + bob_tok, {});
  ASSERT_TRUE(bob.accepted);
  auto e1 = bob.call(R"({"op":"subscribe","stream":"team1-a"})");
  EXPECT_EQ(str(e1, "code"), "stream_not_found");
  auto e1b = bob.call(R"({"op":"subscribe","stream":"team1-nope"})");
  EXPECT_EQ(str(e1b, "code"), "stream_not_found");
  EXPECT_EQ(str(e1, "message"), str(e1b, "message"));
  auto e2 = bob.call(R"({"op":"publish","stream":"team1-a","data":{"forged":true}})");
  EXPECT_EQ(str(e2, "code"), "forbidden");
  auto e3 = bob.call(R"({"op":"cancel","stream":"team1-a"})");
  EXPECT_EQ(str(e3, "code"), "stream_not_found");
  auto e4 = bob.call(R"({"op":"start","request":{"query":"q","requestId":"team1-a"}})");
  EXPECT_EQ(str(e4, "code"), "stream_not_found");
  auto ok = bob.call(R"({"op":"publish","stream":"team2-x","data":{"n":2}})");
  EXPECT_EQ(str(ok, "op"), "published");
  EXPECT_EQ(server_->registry().find("team2-x")->owner(), "bob");
  EXPECT_EQ(server_->registry().find("team1-a")->status().last_sequence, 1u);  // nothing forged
  // carol (read-only, no run) with the Authorization header on the upgrade.
  ws_client carol(port(), "/v1/ws", bearer(reader_tok));
  ASSERT_TRUE(carol.accepted);
  auto no_run = carol.call(R"({"op":"start","request":{"query":"q"}})");
  EXPECT_EQ(str(no_run, "code"), "forbidden");
  auto sub = carol.call(R"({"op":"subscribe","stream":"team1-a"})");
  EXPECT_EQ(str(sub, "stream"), "team1-a");
  EXPECT_EQ(sub.at("id").as_int64(), 1);
  // alice starts a run over WebSocket: she owns it.
  ws_client alice(port(), "/v1/ws", bearer(alice_tok));
  ASSERT_TRUE(alice.accepted);
  auto started = alice.call(R"({"op":"start","request":{"query":"q","requestId":"alice-ws-1"}})");
  EXPECT_EQ(str(started, "op"), "started");
  EXPECT_EQ(server_->registry().find("alice-ws-1")->owner(), "alice");
}

TEST_F(AuthServer, ServerGeneratedRunIdsAreRandomAndOwned) {
  start();
  ws_client alice(port(), "/v1/ws", bearer(alice_tok));
  ASSERT_TRUE(alice.accepted);
  auto started = alice.call(R"({"op":"start","request":{"query":"q"}})");
  ASSERT_EQ(str(started, "op"), "started");
  const std::string id = str(started, "stream");
  EXPECT_EQ(id.size(), 4u + 32u);
  EXPECT_EQ(id.rfind("run-", 0), 0u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef", 4), std::string::npos);
  EXPECT_EQ(server_->registry().find(id)->owner(), "alice");
}

TEST_F(AuthServer, OriginMustMatchOnStateChangingRequestsAndUpgrades) {
  start(auth::auth_mode::jwt,
        [](transport::server_config& c) { c.auth.allowed_origins = {"https://app.example"}; });
  const std::string own = "http://127.0.0.1";  // the test client sends Host: 127.0.0.1
  auto evil = test::request(port(), "POST", "/v1/streams/team1-a/events", "{}",
                            bearer(alice_tok, {{"Origin", "https://evil.example"}}));
  EXPECT_EQ(evil.status(), 403);
  EXPECT_EQ(code_of(evil), "origin_not_allowed");
  auto null_origin = test::request(port(), "POST", "/v1/streams/team1-a/events", "{}",
                                   bearer(alice_tok, {{"Origin", "null"}}));
  EXPECT_EQ(null_origin.status(), 403);
  EXPECT_EQ(server_->registry().find("team1-a"), nullptr);
  auto same = test::request(port(), "POST", "/v1/streams/team1-a/events", "{}",
                            bearer(alice_tok, {{"Origin", own}}));
  EXPECT_EQ(same.status(), 200) << same.body;
  EXPECT_EQ(same.head.header("access-control-allow-origin"), "");  // same origin: no CORS
  auto listed = test::request(port(), "POST", "/v1/streams/team1-a/events", "{}",
                              bearer(alice_tok, {{"Origin", "https://app.example"}}));
  EXPECT_EQ(listed.status(), 200);
  EXPECT_EQ(listed.head.header("access-control-allow-origin"), "https://app.example");
  EXPECT_EQ(listed.head.header("vary"), "Origin");
  ws_client bad(port(), "/v1/ws", bearer(alice_tok, {{"Origin", "https://evil.example"}}));
  EXPECT_FALSE(bad.accepted);
  EXPECT_EQ(bad.status, 403u);
  ws_client good(port(), "/v1/ws", bearer(alice_tok, {{"Origin", own}}));
  EXPECT_TRUE(good.accepted);
  // A GET from another origin is not state-changing; it gets no CORS grant.
  auto read = get("/healthz", "", {{"Origin", "https://evil.example"}});
  EXPECT_EQ(read.status(), 200);
  EXPECT_EQ(read.head.header("access-control-allow-origin"), "");
}

TEST_F(AuthServer, CorsPreflightAndSseOnlyForConfiguredOrigins) {
  start(auth::auth_mode::jwt,
        [](transport::server_config& c) { c.auth.allowed_origins = {"https://app.example"}; });
  auto pre = test::request(port(), "OPTIONS", "/v1/streams/team1-a/events", "",
                           {{"Origin", "https://app.example"},
                            {"Access-Control-Request-Method", "POST"},
                            {"Access-Control-Request-Headers", "authorization,content-type"}});
  EXPECT_EQ(pre.status(), 204);
  EXPECT_EQ(pre.head.header("access-control-allow-origin"), "https://app.example");
  EXPECT_EQ(pre.head.header("access-control-allow-methods"), "GET, POST, OPTIONS");
  EXPECT_EQ(pre.head.header("access-control-allow-headers"),
            "Authorization, Content-Type, Last-Event-ID");
  auto evil = test::request(
      port(), "OPTIONS", "/v1/streams/team1-a/events", "",
      {{"Origin", "https://evil.example"}, {"Access-Control-Request-Method", "POST"}});
  EXPECT_EQ(evil.status(), 403);
  EXPECT_EQ(evil.head.header("access-control-allow-origin"), "");
  ASSERT_EQ(publish("team1-a", alice_tok, "{}", "?final=true").status(), 200);
  http_connection c(port());
  c.send_request("GET", "/v1/streams/team1-a/events", "",
                 bearer(reader_tok, {{"Origin", "https://app.example"}}));
  sse_reader r(c);
  EXPECT_EQ(r.head().status, 200);
  EXPECT_EQ(r.head().header("access-control-allow-origin"), "https://app.example");
  EXPECT_TRUE(r.read_to_end());
}

TEST_F(AuthServer, JsonEndpointsRefuseSimpleFormContentTypes) {
  start(auth::auth_mode::none);
  for (std::string ct :
       {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
        "application/jsonp", "application/json-seq"}) {
    auto r = test::request(port(), "POST", "/v1/streams/s/events", "{}", {{"Content-Type", ct}});
    EXPECT_EQ(r.status(), 415) << ct;
    EXPECT_EQ(code_of(r), "unsupported_media_type");
    auto a =
        test::request(port(), "POST", "/AutoAgent", R"({"query":"q"})", {{"Content-Type", ct}});
    EXPECT_EQ(a.status(), 415) << ct;
  }
  EXPECT_EQ(server_->registry().find("s"), nullptr);
  // A body without any Content-Type is refused as well.
  auto bare =
      raw(port(),
          "POST /v1/streams/s/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}");
  EXPECT_EQ(bare.status(), 415);
  EXPECT_EQ(test::request(port(), "POST", "/v1/streams/s/events", "{}",
                          {{"Content-Type", "Application/JSON; charset=utf-8"}})
                .status(),
            200);
  EXPECT_EQ(test::request(port(), "POST", "/v1/streams/s/events", "{}\n{}\n",
                          {{"Content-Type", "application/x-ndjson"}})
                .status(),
            200);
  // An empty POST (cancel) needs no Content-Type.
  auto cancel = raw(
      port(), "POST /v1/streams/s/cancel HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(cancel.status(), 200) << cancel.body;
}

TEST_F(AuthServer, LoopbackBindAnswersOnlyLoopbackHostNames) {
  start(auth::auth_mode::none);
  const std::string p = std::to_string(port());
  auto with_host = [&](const std::string& host) {
    return raw(port(), "GET /healthz HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n");
  };
  for (std::string h :
       {std::string("evil.example"), "evil.example:" + p, std::string("127.0.0.1.evil.example"),
        std::string("10.0.0.1"), "[::2]:" + p, std::string("localhost.evil.example")}) {
    auto r = with_host(h);
    EXPECT_EQ(r.status(), 421) << h;
    EXPECT_EQ(code_of(r), "host_not_allowed");
  }
  for (std::string h :
       {std::string("localhost"), "localhost:" + p, "LOCALHOST:" + p, "127.0.0.1:" + p,
        std::string("127.1.2.3"), "[::1]:" + p, "app.localhost:" + p})
    EXPECT_EQ(with_host(h).status(), 200) << h;
  // The WebSocket upgrade too.
  ws_client ws(port(), "/v1/ws", {}, "evil.example");
  EXPECT_FALSE(ws.accepted);
  EXPECT_EQ(ws.status, 421u);
}

TEST_F(AuthServer, ShareLinksReadOneStreamOnlyAndExpire) {
  start();
  ASSERT_EQ(publish("team1-a", alice_tok, R"({"n":1})", "?final=true").status(), 200);
  ASSERT_EQ(publish("team1-b", alice_tok, R"({"n":2})").status(), 200);
  const auto before = now();
  auto link = test::request(port(), "POST", "/v1/streams/team1-a/links", "", bearer(alice_tok));
  ASSERT_EQ(link.status(), 200) << link.body;
  auto o = json::parse(link.body).as_object();
  ASSERT_EQ(o.size(), 4u);
  EXPECT_EQ(str(o, "stream"), "team1-a");
  const std::string t = str(o, "token");
  ASSERT_FALSE(t.empty());
  EXPECT_EQ(str(o, "url"), "/v1/streams/team1-a/events?access_token=" + t);
  const auto exp = o.at("expires_at").as_int64();
  EXPECT_GE(exp, before + 86'400);
  EXPECT_LE(exp, now() + 86'400);
  // The link reads its stream, with no other credential.
  auto events = read_ended(str(o, "url"), {});
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, R"({"n":1})");
  // And nothing else.
  EXPECT_EQ(get("/v1/streams/team1-b/events?access_token=" + t).status(), 404);
  auto pub = test::request(port(), "POST", "/v1/streams/team1-a/events?access_token=" + t, "{}");
  EXPECT_EQ(pub.status(), 403);
  EXPECT_EQ(test::request(port(), "POST", "/v1/streams/team1-a/cancel?access_token=" + t).status(),
            404);
  EXPECT_EQ(test::request(port(), "POST", "/v1/streams/team1-a/links?access_token=" + t).status(),
            404);
  EXPECT_EQ(test::request(port(), "POST", "/v1/agent/runs?access_token=" + t, R"({"query":"q"})")
                .status(),
            403);
  ws_client ws(port(), "/v1/ws?access_token=" + t, {});
  ASSERT_TRUE(ws.accepted);
  EXPECT_EQ(str(ws.call(R"({"op":"publish","stream":"team1-a","data":1})"), "code"), "forbidden");
  EXPECT_EQ(str(ws.call(R"({"op":"subscribe","stream":"team1-b"})"), "code"), "stream_not_found");
  // Owner only: others (even readers) get the 404 of a missing stream.
  auto by_reader =
      test::request(port(), "POST", "/v1/streams/team1-a/links", "", bearer(reader_tok));
  EXPECT_EQ(by_reader.status(), 404);
  EXPECT_EQ(
      by_reader.body,
      test::request(port(), "POST", "/v1/streams/team1-none/links", "", bearer(alice_tok)).body);
  // An expired link is refused.
  const std::string old = server_->routes().verifier()->mint_link("team1-a", now() - 7200, 3600);
  auto expired = get("/v1/streams/team1-a/events?access_token=" + old);
  EXPECT_EQ(expired.status(), 401);
  EXPECT_EQ(code_of(expired), "unauthorized");
}

TEST_F(AuthServer, ShareLinksWithAuthNoneHaveNoToken) {
  start(auth::auth_mode::none);
  ASSERT_EQ(publish("s1", "").status(), 200);
  auto link = test::request(port(), "POST", "/v1/streams/s1/links");
  ASSERT_EQ(link.status(), 200);
  EXPECT_EQ(link.body,
            R"({"stream":"s1","token":null,"expires_at":null,"url":"/v1/streams/s1/events"})");
  EXPECT_EQ(test::request(port(), "POST", "/v1/streams/nope/links").status(), 404);
}

TEST_F(AuthServer, AuthNoneAllowsEveryoneAsBefore) {
  start(auth::auth_mode::none);
  ASSERT_EQ(publish("s1", "", R"({"n":1})", "?final=true").status(), 200);
  EXPECT_EQ(server_->registry().find("s1")->owner(), "127.0.0.1");
  EXPECT_EQ(read_ended("/v1/streams/s1/events", {}).size(), 1u);
  EXPECT_EQ(get("/v1/streams/s1").status(), 200);
  EXPECT_EQ(get("/metrics").status(), 200);
  ws_client ws(port(), "/v1/ws", {});
  ASSERT_TRUE(ws.accepted);
  EXPECT_EQ(str(ws.call(R"({"op":"publish","stream":"s2","data":1})"), "op"), "published");
}

TEST_F(AuthServer, ThePageIsServedWithCspNosniffAndNoFraming) {
  start(auth::auth_mode::jwt);
  std::filesystem::create_directories(dir_ / "web");
  std::ofstream(dir_ / "web" / "index.html") << "<!doctype html><title>x</title>";
  server_->routes().serve_static(dir_ / "web");  // (before traffic: no request is in flight)
  auto page = get("/");                          // the page itself needs no token
  ASSERT_EQ(page.status(), 200);
  const std::string csp = page.head.header("content-security-policy");
  EXPECT_NE(csp.find("default-src 'self'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << csp;
  EXPECT_EQ(page.head.header("x-content-type-options"), "nosniff");
  EXPECT_EQ(page.head.header("x-frame-options"), "DENY");
  EXPECT_EQ(page.head.header("referrer-policy"), "no-referrer");
}

TEST(AuthConfig, TheServerRefusesNonLoopbackWithoutAuthUnlessInsecure) {
  transport::server_config c;
  c.host = "0.0.0.0";
  c.port = 0;
  try {
    transport::http_server s(c);
    ADD_FAILURE() << "constructed";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("--auth jwt"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("--insecure-no-auth"), std::string::npos);
  }
  c.auth.insecure_no_auth = true;
  EXPECT_NO_THROW(transport::http_server s(c));
}

// The built binary.
struct run_result {
  int exit_code = -1;
  std::string output;
};

run_result run_binary(const std::string& args) {
  const std::string cmd = std::string(SLUICE_BINARY) + " " + args + " 2>&1";
  run_result r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int st = ::pclose(p);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

TEST(Binary, RefusesANonLoopbackHostWithoutAuth) {
  auto r = run_binary("serve --host 0.0.0.0 --port 0 --web-root /nonexistent");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--auth jwt"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--insecure-no-auth"), std::string::npos) << r.output;
}

TEST(Binary, RefusesABadKeyFileWithAClearMessage) {
  auto r = run_binary(
      "serve --auth jwt --jwt-secret-file /nonexistent/secret --port 0 --web-root /nonexistent");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--jwt-secret-file /nonexistent/secret: cannot open the file"),
            std::string::npos)
      << r.output;
}

TEST(Binary, TokenCommandMintsATokenTheServerAccepts) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("sluice-token-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "secret") << secret << "\n";
  auto r = run_binary("token --jwt-secret-file " + (dir / "secret").string() +
                      " --sub alice --publish 'team1-*' --subscribe 'team1-*' --run --ttl 1h");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string tok = r.output;
  while (!tok.empty() && tok.back() == '\n') tok.pop_back();
  auto v = auth::verifier::from_secret(secret);
  auto out = v->verify(tok, now());
  ASSERT_TRUE(out.who) << out.error;
  EXPECT_EQ(out.who->subject, "alice");
  EXPECT_EQ(out.who->publish, std::vector<std::string>{"team1-*"});
  EXPECT_EQ(out.who->subscribe, std::vector<std::string>{"team1-*"});
  EXPECT_TRUE(out.who->run);
  EXPECT_FALSE(out.who->admin);
  EXPECT_GE(out.who->expires_at, now() + 3500);
  EXPECT_LE(out.who->expires_at, now() + 3600);
  auto bad = run_binary("token --jwt-secret-file " + (dir / "secret").string() +
                        " --sub a --publish 'a*b'");
  EXPECT_NE(bad.exit_code, 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sluice
