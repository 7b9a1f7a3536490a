// Hostile clients against a real server on real sockets, one per budget of
// the transport and the stream registry (docs/security.md, Resource budgets). Each test checks
// that the budget is answered in protocol (status, code, Retry-After or an
// in-band error), that an innocent client (another address, another stream)
// keeps getting every event meanwhile, and that /healthz answers afterwards.
// No sleeps as synchronisation: every wait is a read with a deadline or a
// condition polled up to a deadline.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <chrono>
#include <functional>
#include <thread>

#include "app/config.hpp"
#include "budgets/address_client.hpp"
#include "support/test_client.hpp"
#include "transport/http_server.hpp"
#include "ws/ws_test_client.hpp"

namespace sluice {
namespace {

using test::address_connection;
using test::http_connection;
using test::recorded_event;
using test::request;
using test::sse_reader;
namespace json = boost::json;

// Polls `cond` until it holds or `limit` passes.
bool eventually(const std::function<bool()>& cond,
                std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

std::string code_of(const std::string& body) {
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("error")) return "";
  return std::string(v.at("error").at("code").as_string());
}

class BudgetsTest : public ::testing::Test {
 protected:
  void start(const std::function<void(transport::server_config&)>& tweak = {},
             const std::function<void(transport::http_server&)>& before_start = {}) {
    transport::server_config c;
    c.port = 0;
    c.threads = 2;
    if (tweak) tweak(c);
    server_ = std::make_unique<transport::http_server>(c);
    if (before_start) before_start(*server_);
    server_->start();
  }
  void TearDown() override {
    if (server_) server_->shutdown();
  }
  std::uint16_t port() const { return server_->port(); }

  test::http_response publish(const std::string& id, const std::string& body,
                              const std::string& query = "") {
    return request(port(), "POST", "/v1/streams/" + id + "/events" + query, body,
                   {{"Content-Type", "application/json"}});
  }
  void expect_healthy() {
    auto h = request(port(), "GET", "/healthz");
    EXPECT_EQ(h.status(), 200) << h.body;
  }
  static std::vector<recorded_event> numbered(int from, int to) {
    std::vector<recorded_event> v;
    for (int i = from; i <= to; ++i)
      v.push_back({std::to_string(i), "message", "{\"n\":" + std::to_string(i) + "}"});
    return v;
  }

  std::unique_ptr<transport::http_server> server_;
};

// ---- --memory-budget ----

TEST_F(BudgetsTest, MemoryBudgetEvictsFinishedStreamsSoPublishingGoesOn) {
  start([](auto& c) { c.registry.memory_budget_bytes = 256u << 10; });
  http_connection rc(port());
  rc.send_request("GET", "/v1/streams/good/events");
  sse_reader reader(rc);
  ASSERT_EQ(reader.head().status, 200);
  const std::string junk = "{\"pad\":\"" + std::string(16 << 10, 'j') + "\"}";
  // The flood: 64 finished streams of 16 KiB (4x the budget), interleaved
  // with the innocent stream's events. Every publish is accepted: the oldest
  // finished streams make room.
  for (int i = 1; i <= 64; ++i) {
    auto r = publish("junk-" + std::to_string(i), junk, "?final=true");
    ASSERT_EQ(r.status(), 200) << i << ": " << r.body;
    ASSERT_EQ(publish("good", "{\"n\":" + std::to_string(i) + "}").status(), 200);
  }
  ASSERT_TRUE(reader.read_until([&] { return reader.events.size() >= 64; }));
  EXPECT_EQ(reader.events, numbered(1, 64));
  EXPECT_LE(server_->registry().memory_used(), (256 << 10) + (20 << 10));
  EXPECT_EQ(request(port(), "GET", "/v1/streams/junk-1").status(), 404) << "the oldest went first";
  EXPECT_EQ(request(port(), "GET", "/v1/streams/junk-64").status(), 200) << "the newest stays";
  expect_healthy();
}

TEST_F(BudgetsTest, MemoryBudgetHeldByOpenStreamsRefusesPublishesWith503) {
  start([](auto& c) { c.registry.memory_budget_bytes = 64u << 10; });
  ASSERT_EQ(publish("good", "{\"n\":1}").status(), 200);
  http_connection rc(port());
  rc.send_request("GET", "/v1/streams/good/events");
  sse_reader reader(rc);
  const std::string big = "{\"pad\":\"" + std::string(16 << 10, 'h') + "\"}";
  test::http_response refused;
  int accepted = 0;
  for (int i = 0; i < 20 && refused.status() == 0; ++i) {
    auto r = publish("hold-" + std::to_string(i), big);
    if (r.status() == 200)
      ++accepted;
    else
      refused = r;
  }
  ASSERT_EQ(refused.status(), 503) << refused.body;
  EXPECT_EQ(code_of(refused.body), "memory_budget_exceeded");
  EXPECT_EQ(refused.head.header("retry-after"), "5");
  EXPECT_LE(accepted, 5);
  // A producer already running (an agent run publishes in-process) goes on,
  // and its reader gets every event.
  auto good = server_->registry().find("good");
  for (int i = 2; i <= 100; ++i) good->publish("message", "{\"n\":" + std::to_string(i) + "}");
  ASSERT_TRUE(reader.read_until([&] { return reader.events.size() >= 100; }));
  EXPECT_EQ(reader.events, numbered(1, 100));
  // The hostile streams end: they become evictable and publishing resumes.
  for (int i = 0; i < accepted; ++i)
    ASSERT_EQ(request(port(), "POST", "/v1/streams/hold-" + std::to_string(i) + "/cancel").status(),
              200);
  EXPECT_TRUE(eventually([&] { return publish("good", "{\"n\":101}").status() == 200; }));
  expect_healthy();
}

// ---- --pending-stream-s ----

TEST_F(BudgetsTest, PendingSubscriptionExpiresWithStreamNotStartedAndIsFreed) {
  start([](auto& c) { c.registry.pending_limit_us = 300'000; });
  http_connection later_c(port());
  later_c.send_request("GET", "/v1/streams/later/events");
  sse_reader later(later_c);
  ASSERT_EQ(later.head().status, 200);
  ASSERT_EQ(publish("later", "{\"n\":1}").status(), 200);

  http_connection ghost_c(port());
  ghost_c.send_request("GET", "/v1/streams/ghost/events");
  sse_reader ghost(ghost_c);
  ASSERT_EQ(ghost.head().status, 200);
  ASSERT_TRUE(ghost.read_to_end());
  EXPECT_EQ(
      ghost.events,
      (std::vector<recorded_event>{
          {"1", "error",
           R"({"code":"stream_not_started","message":"nothing was published to this stream within 300 ms"})"}}));
  EXPECT_TRUE(eventually([&] {
    return request(port(), "GET", "/v1/streams/ghost").status() == 404;
  })) << "an expired pending stream is freed once its subscriber has gone";
  // The stream published to within the limit is an ordinary stream: it
  // outlived the sweep that expired `ghost` (created after it).
  ASSERT_EQ(publish("later", "{\"n\":2}").status(), 200);
  ASSERT_TRUE(later.read_until([&] { return later.events.size() >= 2; }));
  EXPECT_EQ(later.events, numbered(1, 2));
  expect_healthy();
}

TEST_F(BudgetsTest, WebSocketSubscribersOfAPendingStreamAreToldTheSame) {
  start([](auto& c) { c.registry.pending_limit_us = 300'000; });
  test::ws_connection ws(port());
  ws.send(R"({"op":"subscribe","stream":"ghost"})");
  json::object frame;
  do frame = ws.read();
  while (!frame.contains("event"));
  EXPECT_EQ(frame.at("stream"), "ghost");
  EXPECT_EQ(frame.at("id"), 1);
  EXPECT_EQ(frame.at("event"), "error");
  EXPECT_EQ(frame.at("data").at("code"), "stream_not_started");
  expect_healthy();
}

TEST_F(BudgetsTest, WebSocketPublishOverTheMemoryBudgetIsAnErrorFrame) {
  start([](auto& c) { c.registry.memory_budget_bytes = 32u << 10; });
  test::ws_connection ws(port());
  const std::string pad(16 << 10, 'w');
  json::object refused;
  for (int i = 0; i < 6 && refused.empty(); ++i) {
    ws.send(R"({"op":"publish","stream":"w-)" + std::to_string(i) + R"(","data":{"pad":")" + pad +
            "\"}}");
    auto m = ws.read();
    if (m.at("op") == "error") refused = m;
  }
  ASSERT_FALSE(refused.empty());
  EXPECT_EQ(refused.at("code"), "memory_budget_exceeded");
  // The socket stays usable.
  ws.send(R"({"op":"ping"})");
  EXPECT_EQ(ws.read().at("op"), "pong");
  expect_healthy();
}

// ---- --max-streams-per-subject ----

TEST_F(BudgetsTest, SubscribingToRandomIdsStopsAtTheSubjectsStreamLimit) {
  start([](auto& c) { c.registry.max_streams_per_owner = 20; });
  http_connection rc(port());
  rc.send_request("GET", "/v1/streams/good/events");
  sse_reader reader(rc);
  ASSERT_EQ(reader.head().status, 200);
  // The hostile client (another address) subscribes to ids nobody publishes.
  test::simple_response refused;
  int opened = 0;
  for (int i = 0; i < 40 && refused.status == 0; ++i) {
    address_connection h(port(), "127.0.0.2");
    h.send("GET", "/v1/streams/random-" + std::to_string(i) + "/events");
    auto r = h.read_response();
    if (r.status == 200)
      ++opened;
    else
      refused = r;
  }
  EXPECT_EQ(opened, 20);
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_EQ(code_of(refused.body), "too_many_streams_for_subject");
  EXPECT_EQ(refused.headers["retry-after"], "5");
  EXPECT_EQ(server_->registry().owned_by("127.0.0.2"), 20u);
  // Publishing to new ids is refused the same way ...
  address_connection h(port(), "127.0.0.2");
  auto p = h.request("POST", "/v1/streams/another/events", "{}");
  EXPECT_EQ(p.status, 429);
  // ... while the innocent client creates streams and reads every event.
  for (int i = 1; i <= 50; ++i)
    ASSERT_EQ(publish("good", "{\"n\":" + std::to_string(i) + "}").status(), 200);
  ASSERT_TRUE(reader.read_until([&] { return reader.events.size() >= 50; }));
  EXPECT_EQ(reader.events, numbered(1, 50));
  ASSERT_EQ(publish("good-2", "{}").status(), 200);
  expect_healthy();
}

// ---- --max-connections-per-ip ----

TEST_F(BudgetsTest, ConnectionsPerAddressAreCappedWith503AndFreedOnClose) {
  start([](auto& c) { c.budgets.max_connections_per_ip = 4; });
  http_connection rc(port());
  rc.send_request("GET", "/v1/streams/good/events");
  sse_reader reader(rc);
  ASSERT_EQ(reader.head().status, 200);
  std::vector<std::unique_ptr<address_connection>> held;
  for (int i = 0; i < 4; ++i) {  // accepted and answered: counted for certain
    held.push_back(std::make_unique<address_connection>(port(), "127.0.0.2"));
    ASSERT_EQ(held.back()->request("GET", "/healthz").status, 200);
  }
  address_connection fifth(port(), "127.0.0.2");
  auto r = fifth.request("GET", "/healthz");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(code_of(r.body), "too_many_connections_from_address");
  EXPECT_EQ(r.headers["retry-after"], "1");
  // Another address is unaffected: new connections, publishes, every event.
  for (int i = 1; i <= 20; ++i)
    ASSERT_EQ(publish("good", "{\"n\":" + std::to_string(i) + "}").status(), 200);
  ASSERT_TRUE(reader.read_until([&] { return reader.events.size() >= 20; }));
  EXPECT_EQ(reader.events, numbered(1, 20));
  // Closing one frees its slot.
  held.pop_back();
  EXPECT_TRUE(eventually([&] {
    address_connection again(port(), "127.0.0.2");
    return again.request("GET", "/healthz").status == 200;
  }));
  expect_healthy();
}

// ---- --ws-ops-per-s ----

TEST_F(BudgetsTest, WebSocketOpsOverTheRateGetRateLimitedThenTheSocketIsClosed) {
  start([](auto& c) {
    c.budgets.ws_ops_per_s = 0.001;  // no refill within the test
    c.budgets.ws_ops_burst = 10;
    c.budgets.ws_max_refused_in_a_row = 20;
  });
  test::ws_connection good_ws(port());
  good_ws.send(R"({"op":"subscribe","stream":"good"})");
  http_connection rc(port());
  rc.send_request("GET", "/v1/streams/good/events");
  sse_reader reader(rc);

  test::ws_connection hostile(port());
  for (int i = 0; i < 40; ++i) hostile.send(R"({"op":"ping"})");
  int pongs = 0, limited = 0;
  for (int i = 0; i < 30; ++i) {
    auto m = hostile.read();
    if (m.at("op") == "pong")
      ++pongs;
    else if (m.at("op") == "error" && m.at("code") == "rate_limited")
      ++limited;
  }
  EXPECT_EQ(pongs, 10);
  EXPECT_EQ(limited, 20);
  EXPECT_EQ(hostile.read_until_closed(), 1008);

  // Both readers of the other stream get every event.
  for (int i = 1; i <= 30; ++i)
    ASSERT_EQ(publish("good", "{\"n\":" + std::to_string(i) + "}").status(), 200);
  ASSERT_TRUE(reader.read_until([&] { return reader.events.size() >= 30; }));
  EXPECT_EQ(reader.events, numbered(1, 30));
  int frames = 0;
  while (frames < 30) {
    auto m = good_ws.read();
    if (m.contains("event") || m.contains("data")) {
      ++frames;
      EXPECT_EQ(json::serialize(m.at("data")), "{\"n\":" + std::to_string(frames) + "}");
    }
  }
  expect_healthy();
}

// ---- --final-reply-timeout-s, and a client that leaves (isStream:false) ----

class FinalReplyTest : public BudgetsTest {
 protected:
  void start_with_timeout(std::chrono::milliseconds timeout) {
    start([timeout](auto& c) { c.budgets.final_reply_timeout = timeout; },
          [](transport::http_server& s) {
            s.routes().add("POST", "/test/final",
                           [&s](transport::request_context&) -> transport::handler_result {
                             auto log = s.registry().get_or_create("run-1");
                             return transport::final_event_reply{*log};
                           });
          });
  }
  std::size_t subscribers() {
    auto log = server_->registry().find("run-1");
    return log ? log->status().subscribers : 0;
  }
};

TEST_F(FinalReplyTest, ARunPastTheDeadlineIsAnswered504AndLeftUnread) {
  start_with_timeout(std::chrono::milliseconds(300));
  auto r = request(port(), "POST", "/test/final", "{}", {{"Content-Type", "application/json"}});
  EXPECT_EQ(r.status(), 504) << r.body;
  EXPECT_EQ(code_of(r.body), "final_reply_timeout");
  EXPECT_EQ(subscribers(), 0u) << "nobody reads the run now: the detach grace cancels it";
  // A run that ends in time is answered with its final event.
  server_->registry().find("run-1")->publish("message", R"({"answer":42})", true);
  auto ok = request(port(), "POST", "/test/final", "{}", {{"Content-Type", "application/json"}});
  EXPECT_EQ(ok.status(), 200);
  EXPECT_EQ(ok.body, R"({"answer":42})");
  expect_healthy();
}

TEST_F(FinalReplyTest, AClientThatLeavesStopsTheWaitAtOnce) {
  start_with_timeout(std::chrono::hours(1));
  {
    http_connection c(port());
    c.send_request("POST", "/test/final", "{}", {{"Content-Type", "application/json"}});
    ASSERT_TRUE(eventually([&] { return subscribers() == 1; }));
  }  // the client goes away without waiting for the answer
  EXPECT_TRUE(eventually([&] { return subscribers() == 0; }))
      << "the server noticed the disconnect and stopped reading the run";
  expect_healthy();
}

// ---- --memory-budget parsing ----

TEST(MemoryBudgetFlag, SizesWithSuffixesAndPercentagesOfRam) {
  const std::uint64_t ram = 8ull << 30;
  EXPECT_EQ(app::parse_memory_size("0", ram), 0u);
  EXPECT_EQ(app::parse_memory_size("1048576", ram), 1048576u);
  EXPECT_EQ(app::parse_memory_size("512M", ram), 512u << 20);
  EXPECT_EQ(app::parse_memory_size("512MiB", ram), 512u << 20);
  EXPECT_EQ(app::parse_memory_size("2G", ram), 2ull << 30);
  EXPECT_EQ(app::parse_memory_size("2gb", ram), 2ull << 30);
  EXPECT_EQ(app::parse_memory_size("64k", ram), 64u << 10);
  EXPECT_EQ(app::parse_memory_size("25%", ram), 2ull << 30);
  EXPECT_EQ(app::parse_memory_size("100%", ram), ram);
  for (const char* bad : {"", "G", "-1", "1X", "101%", "12 M", "99999999999999999999", "16777216T"})
    EXPECT_FALSE(app::parse_memory_size(bad, ram)) << bad;
}

}  // namespace
}  // namespace sluice
