// client::ws_client against a real in-process server, directly and through
// the cutting TCP proxy (tests/support/chaos_proxy). Waits are io_context runs
// bounded by a deadline; nothing sleeps and nothing is timed.
#include "client/ws_client.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <thread>

#include "core/coalescer.hpp"
#include "support/chaos_proxy.hpp"
#include "transport/http_server.hpp"

namespace sluice {
namespace {

namespace json = boost::json;
namespace net = boost::asio;

struct delivered {
  std::string stream;
  std::uint64_t id;
  std::string type, data;
  std::uint64_t first, last;
  bool operator==(const delivered&) const = default;
};

// Runs one ws_client to its end on a private io_context.
struct client_run {
  net::io_context ioc;
  client::ws_client c;
  std::vector<delivered> events;
  std::vector<std::string> ended;
  std::vector<client::ws_client_error> errors;
  std::vector<client::ws_status> statuses;
  std::size_t opens = 0;

  explicit client_run(client::ws_client_options o) : c(ioc.get_executor(), std::move(o)) {
    c.on_event([this](std::string_view s, std::uint64_t id, std::string_view type,
                      std::string_view data, std::uint64_t first, std::uint64_t last) {
      events.push_back({std::string(s), id, std::string(type), std::string(data), first, last});
    });
    c.on_stream_end([this](std::string_view s) { ended.emplace_back(s); });
    c.on_error([this](const client::ws_client_error& e) { errors.push_back(e); });
    c.on_status([this](client::ws_status s, std::string_view) {
      statuses.push_back(s);
      if (s == client::ws_status::open) ++opens;
    });
  }
  // Until the client has ended (its work is done) or the deadline.
  void run() {
    c.start();
    ioc.run_for(std::chrono::seconds(110));
  }
  client::ws_status last_status() const { return statuses.back(); }
};

class WsClientTest : public ::testing::Test {
 protected:
  void start(const std::function<void(transport::server_config&)>& tweak = {}) {
    transport::server_config c;
    c.port = 0;
    c.threads = 2;
    if (tweak) tweak(c);
    server_ = std::make_unique<transport::http_server>(c);
    server_->start();
  }
  void TearDown() override {
    if (server_) server_->shutdown();
  }
  std::shared_ptr<core::stream_log> log(const std::string& id) {
    return server_->registry().get_or_create(id).value();
  }
  client::ws_client_options options(std::uint16_t port) {
    client::ws_client_options o;
    o.url = "ws://127.0.0.1:" + std::to_string(port) + "/v1/ws";
    o.backoff_base = std::chrono::milliseconds(0);
    o.jitter_seed = 1;
    return o;
  }
  static std::string n(int i) { return "{\"n\":" + std::to_string(i) + "}"; }

  std::unique_ptr<transport::http_server> server_;
};

TEST_F(WsClientTest, FollowsSeveralStreamsToTheirEnds) {
  start();
  for (int i = 1; i <= 5; ++i) log("a")->publish("message", n(i), i == 5);
  for (int i = 1; i <= 3; ++i) log("b")->publish("step", n(i), i == 3);
  client_run r(options(server_->port()));
  r.c.subscribe("a", 2);
  r.c.subscribe("b");
  r.run();
  std::vector<delivered> a, b;
  for (const auto& e : r.events) (e.stream == "a" ? a : b).push_back(e);
  EXPECT_EQ(a, (std::vector<delivered>{{"a", 3, "message", n(3), 3, 3},
                                       {"a", 4, "message", n(4), 4, 4},
                                       {"a", 5, "message", n(5), 5, 5}}));
  EXPECT_EQ(b, (std::vector<delivered>{{"b", 1, "step", n(1), 1, 1},
                                       {"b", 2, "step", n(2), 2, 2},
                                       {"b", 3, "step", n(3), 3, 3}}));
  EXPECT_EQ(r.ended.size(), 2u);
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.last_status(), client::ws_status::closed);
}

TEST_F(WsClientTest, ReportsResumeWindowExceeded) {
  start([](auto& c) { c.registry.retention.max_events = 5; });
  for (int i = 1; i <= 12; ++i) log("w")->publish("message", n(i));
  client_run r(options(server_->port()));
  r.c.subscribe("w", 1);
  r.run();
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].code, "resume_window_exceeded");
  EXPECT_EQ(r.errors[0].stream, "w");
  EXPECT_EQ(r.errors[0].first_available, 8u);
  EXPECT_TRUE(r.events.empty());
  EXPECT_EQ(r.last_status(), client::ws_status::failed);
}

// Real sockets: a stream that began an epoch. The client resumes with the
// whole id "N-E" and gets the rest; an id of a lost history is reported as
// history_truncated (in protocol), never continued.
TEST_F(WsClientTest, ResumesWithEpochIdsAndReportsHistoryTruncated) {
  start();
  log("e")->publish("message", n(1));
  ASSERT_TRUE(log("e")->begin_epoch("k1"));
  for (int i = 2; i <= 4; ++i) log("e")->publish("message", n(i), i == 4);
  {
    client_run r(options(server_->port()));
    ASSERT_TRUE(r.c.subscribe("e", std::string_view("2-k1")));
    r.run();
    EXPECT_EQ(r.events, (std::vector<delivered>{{"e", 3, "message", n(3), 3, 3},
                                                {"e", 4, "message", n(4), 4, 4}}));
    EXPECT_EQ(r.c.last_event_id("e"), "4-k1");
    EXPECT_TRUE(r.errors.empty());
    EXPECT_EQ(r.last_status(), client::ws_status::closed);
  }
  {
    client_run r(options(server_->port()));
    ASSERT_TRUE(r.c.subscribe("e", std::string_view("3")));  // after the boundary (2)
    r.run();
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].code, "history_truncated");
    EXPECT_EQ(r.errors[0].stream, "e");
    EXPECT_EQ(r.errors[0].first_available, 1u);
    EXPECT_TRUE(r.events.empty());
    EXPECT_EQ(r.last_status(), client::ws_status::failed);
  }
  client_run bad(options(server_->port()));
  EXPECT_FALSE(bad.c.subscribe("e", std::string_view("3-K1")));
}

TEST_F(WsClientTest, GivesUpAfterMaxAttempts) {
  // A port with nothing listening: bind one, note it, close it.
  net::io_context probe;
  net::ip::tcp::acceptor acc(probe, {net::ip::make_address("127.0.0.1"), 0});
  const auto port = acc.local_endpoint().port();
  acc.close();
  auto o = options(port);
  o.max_attempts = 3;
  client_run r(o);
  r.c.subscribe("x");
  r.run();
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].code, "attempts_exhausted");
  EXPECT_EQ(r.last_status(), client::ws_status::failed);
}

// 10,000 events (plus a stream of deltas) consumed through a proxy that cuts
// the connection after a random number of bytes, many times, while a producer
// is still publishing: every event arrives exactly once, in order.
class WsChaosTest : public WsClientTest, public ::testing::WithParamInterface<bool> {};

TEST_P(WsChaosTest, ProxyCutsManyTimesAndTheTranscriptIsExact) {
  const bool deflate = GetParam();
  start([](auto& c) { c.registry.retention.max_bytes = 64u << 20; });
  test::chaos_proxy_options po;
  po.upstream_port = server_->port();
  po.seed = 42;
  po.min_cut_bytes = 1;
  po.max_cut_bytes = deflate ? 4 * 1024 : 16 * 1024;
  po.max_cuts = 1000;
  test::chaos_proxy proxy(po);
  proxy.start();

  constexpr int total = 10'000;
  constexpr int deltas = 2'000;
  auto big = log("big");
  auto ans = log("ans");
  auto event_data = [](int i) {
    return "{\"n\":" + std::to_string(i) + ",\"pad\":\"" + std::string(40 + i % 50, 'a' + i % 26) +
           "\"}";
  };
  std::string full_text;
  auto publish_range = [&](int from, int to) {
    for (int i = from; i <= to; ++i) {
      big->publish(i % 7 == 0 ? "tick" : "message", event_data(i), i == total);
      if (i <= deltas) {
        json::object o;
        o["text"] = "w" + std::to_string(i) + " ";
        auto d = core::make_delta_event("answer", "m1", "text", o).value();
        ans->publish(d, i == deltas);
      }
    }
  };
  for (int i = 1; i <= deltas; ++i) full_text += "w" + std::to_string(i) + " ";
  publish_range(1, total / 2);
  std::thread producer([&] { publish_range(total / 2 + 1, total); });

  auto o = options(proxy.port());
  o.max_attempts = 0;
  o.deflate = deflate;
  client_run r(o);
  r.c.subscribe("big");
  r.c.subscribe("ans");
  r.run();
  producer.join();

  std::vector<delivered> got_big;
  std::string got_text;
  std::uint64_t next_delta = 1;
  for (const auto& e : r.events) {
    if (e.stream == "big") {
      got_big.push_back(e);
      continue;
    }
    ASSERT_EQ(e.first, next_delta) << "delta ranges must tile 1..N";
    next_delta = e.last + 1;
    got_text += std::string(json::parse(e.data).at("text").as_string());
  }
  ASSERT_EQ(got_big.size(), static_cast<std::size_t>(total));
  for (int i = 1; i <= total; ++i) {
    const auto& e = got_big[static_cast<std::size_t>(i - 1)];
    ASSERT_EQ(e, (delivered{"big", static_cast<std::uint64_t>(i), i % 7 == 0 ? "tick" : "message",
                            event_data(i), static_cast<std::uint64_t>(i),
                            static_cast<std::uint64_t>(i)}));
  }
  EXPECT_EQ(next_delta, static_cast<std::uint64_t>(deltas + 1));
  EXPECT_EQ(got_text, full_text);
  EXPECT_EQ(r.ended.size(), 2u);
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.last_status(), client::ws_status::closed);
  std::printf("chaos: %zu cuts, %zu opens, %llu duplicates dropped\n", proxy.cuts(), r.opens,
              static_cast<unsigned long long>(r.c.duplicates_dropped()));
  EXPECT_GE(proxy.cuts(), 20u);
  EXPECT_GE(r.opens, 10u);
}

INSTANTIATE_TEST_SUITE_P(Deflate, WsChaosTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "deflate" : "plain"; });

}  // namespace
}  // namespace sluice
