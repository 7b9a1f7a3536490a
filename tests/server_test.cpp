// The HTTP/SSE server on real sockets (127.0.0.1, port 0), with a real
// http_server object and the blocking test client. No sleeps: every wait is a
// read with a bounded deadline.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "app/bench_producer.hpp"
#include "core/segment_memory.hpp"
#include "support/test_client.hpp"
#include "transport/http_server.hpp"

namespace sluice {
namespace {

using test::http_connection;
using test::recorded_event;
using test::request;
using test::sse_reader;
namespace json = boost::json;

class ServerTest : public ::testing::Test {
 protected:
  void start(const std::function<void(transport::server_config&)>& tweak = {},
             const std::function<void(transport::http_server&)>& before_start = {}) {
    transport::server_config c;
    c.port = 0;
    c.threads = 2;
    if (tweak) tweak(c);
    server_ = std::make_unique<transport::http_server>(c);
    app::add_bench_routes(*server_);
    if (before_start) before_start(*server_);
    server_->start();
  }
  void TearDown() override {
    if (server_) server_->shutdown();
  }
  std::uint16_t port() const { return server_->port(); }

  test::http_response publish(const std::string& id, const std::string& body,
                              const std::string& query = "",
                              const std::string& content_type = "application/json") {
    return request(port(), "POST", "/v1/streams/" + id + "/events" + query, body,
                   {{"Content-Type", content_type}});
  }
  json::value status(const std::string& id) {
    auto r = request(port(), "GET", "/v1/streams/" + id);
    EXPECT_EQ(r.status(), 200) << r.body;
    return json::parse(r.body);
  }
  static std::string error_code(const test::http_response& r) {
    return std::string(json::parse(r.body).at("error").at("code").as_string());
  }
  // ndjson body of events {"n":from}..{"n":to}
  static std::string ndjson(int from, int to, const std::string& pad = "") {
    std::string b;
    for (int i = from; i <= to; ++i)
      b += "{\"n\":" + std::to_string(i) + (pad.empty() ? "" : ",\"pad\":\"" + pad + "\"") + "}\n";
    return b;
  }
  static std::vector<recorded_event> expected(int from, int to, const std::string& pad = "") {
    std::vector<recorded_event> v;
    for (int i = from; i <= to; ++i)
      v.push_back({std::to_string(i), "message",
                   "{\"n\":" + std::to_string(i) + (pad.empty() ? "" : ",\"pad\":\"" + pad + "\"") + "}"});
    return v;
  }

  std::unique_ptr<transport::http_server> server_;
};

TEST_F(ServerTest, PublishedEventReachesWaitingSubscriber) {
  start();
  http_connection c(port());
  c.send_request("GET", "/v1/streams/s1/events");
  sse_reader r(c);  // the head arrives once the subscription is registered
  EXPECT_EQ(r.head().status, 200);
  EXPECT_EQ(r.head().header("content-type"), "text/event-stream; charset=utf-8");
  EXPECT_EQ(r.head().header("cache-control"), "no-cache");
  EXPECT_EQ(r.head().header("x-accel-buffering"), "no");
  EXPECT_TRUE(r.head().chunked());

  auto p = publish("s1", R"({"hi":1})");
  EXPECT_EQ(p.status(), 200);
  EXPECT_EQ(p.body, R"({"sequence":1})");
  ASSERT_TRUE(r.read_until([&] { return r.events.size() == 1; }));
  EXPECT_EQ(r.events[0], (recorded_event{"1", "message", R"({"hi":1})"}));
  ASSERT_EQ(r.retries.size(), 1u);
  EXPECT_EQ(r.retries[0], 1000u);

  // Data with line breaks is framed as several data: lines and arrives intact
  // (line ends normalised to LF, as the SSE format defines).
  EXPECT_EQ(publish("s1", "{\"a\":\r\n[1,\n2]}", "?event=multi&final=true").status(), 200);
  ASSERT_TRUE(r.read_to_end());
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(r.events[1], (recorded_event{"2", "multi", "{\"a\":\n[1,\n2]}"}));
}

TEST_F(ServerTest, NdjsonPublishesManyEventsAtomically) {
  start();
  auto p = publish("nd", ndjson(1, 3), "", "application/x-ndjson");
  EXPECT_EQ(p.status(), 200);
  EXPECT_EQ(p.body, R"({"sequences":[1,2,3]})");
  // A bad line rejects the whole body.
  auto bad = publish("nd", "{\"ok\":1}\n{oops\n", "", "application/x-ndjson");
  EXPECT_EQ(bad.status(), 400);
  EXPECT_EQ(error_code(bad), "malformed_json");
  EXPECT_EQ(status("nd").at("last_sequence").as_int64(), 3);
}

TEST_F(ServerTest, ReplayFromEveryLastEventIdOfA1000EventStream) {
  start();
  for (int i = 1; i <= 1000; i += 250)
    ASSERT_EQ(publish("replay", ndjson(i, i + 249), i + 249 == 1000 ? "?final=true" : "",
                      "application/x-ndjson")
                  .status(),
              200);
  const auto all = expected(1, 1000);
  for (int last = 0; last <= 1000; ++last) {
    http_connection c(port());
    c.send_request("GET", "/v1/streams/replay/events", "",
                   {{"Last-Event-ID", std::to_string(last)}});
    sse_reader r(c);
    if (last == 1000) {
      EXPECT_EQ(r.head().status, 204) << "a client that has the final event is told to stop";
      continue;
    }
    ASSERT_EQ(r.head().status, 200);
    ASSERT_TRUE(r.read_to_end()) << "last=" << last;
    ASSERT_EQ(r.events.size(), static_cast<std::size_t>(1000 - last)) << "last=" << last;
    EXPECT_TRUE(std::equal(r.events.begin(), r.events.end(), all.begin() + last))
        << "last=" << last;
  }
  // ?last_event_id= works like the header.
  auto q = request(port(), "GET", "/v1/streams/replay/events?last_event_id=998");
  EXPECT_EQ(q.status(), 200);
  EXPECT_NE(q.body.find("id: 999\n"), std::string::npos);
  EXPECT_NE(q.body.find("id: 1000\n"), std::string::npos);
  EXPECT_EQ(q.body.find("id: 998\n"), std::string::npos);
}

TEST_F(ServerTest, ClientCutMidStreamResumesWithIdenticalTranscript) {
  start();
  ASSERT_EQ(publish("cut", ndjson(1, 300), "", "application/x-ndjson").status(), 200);
  std::vector<recorded_event> got;
  std::string resume_from;
  {
    http_connection c(port());
    c.send_request("GET", "/v1/streams/cut/events");
    sse_reader r(c);
    ASSERT_TRUE(r.read_until([&] { return r.events.size() >= 137; }));
    got = r.events;
    resume_from = r.last_event_id();
    c.close();  // abrupt: mid-stream, maybe mid-event
  }
  // More is published while the client is away.
  ASSERT_EQ(publish("cut", ndjson(301, 500), "", "application/x-ndjson").status(), 200);
  http_connection c(port());
  c.send_request("GET", "/v1/streams/cut/events", "", {{"Last-Event-ID", resume_from}});
  sse_reader r(c);
  ASSERT_TRUE(r.read_until([&] { return r.events.size() + got.size() >= 500; }));
  ASSERT_EQ(publish("cut", ndjson(501, 501), "?final=true").status(), 200);
  ASSERT_TRUE(r.read_to_end());
  got.insert(got.end(), r.events.begin(), r.events.end());
  EXPECT_EQ(got, expected(1, 501));
  auto m = request(port(), "GET", "/metrics");
  EXPECT_NE(m.body.find("sluice_resumes_total 1\n"), std::string::npos) << m.body;
}

TEST_F(ServerTest, StalledSubscriberNeitherBlocksOthersNorIsDropped) {
  start();
  const std::string pad(1000, 'x');
  http_connection stalled(port(), 4096);
  stalled.send_request("GET", "/v1/streams/slow/events");
  sse_reader stalled_reader(stalled);  // head read; then it reads nothing for a while
  http_connection fast(port());
  fast.send_request("GET", "/v1/streams/slow/events");
  sse_reader fast_reader(fast);

  // ~10 MB: more than the kernel buffers between server and stalled client hold
  // (tcp_wmem's maximum is 4 MiB), less than the 16 MiB retained per stream.
  for (int i = 1; i <= 10000; i += 500)
    ASSERT_EQ(publish("slow", ndjson(i, i + 499, pad), i + 499 == 10000 ? "?final=true" : "",
                      "application/x-ndjson")
                  .status(),
              200);
  ASSERT_TRUE(fast_reader.read_to_end());
  EXPECT_EQ(fast_reader.events, expected(1, 10000, pad));
  // The stalled reader is still subscribed, lagging; it was not dropped.
  EXPECT_EQ(status("slow").at("subscribers").as_int64(), 1);
  ASSERT_TRUE(stalled_reader.read_to_end());
  EXPECT_EQ(stalled_reader.events, expected(1, 10000, pad));
}

TEST_F(ServerTest, ResumeBehindRetentionGetsErrorEvent) {
  start([](auto& c) { c.registry.retention.max_events = 10; });
  ASSERT_EQ(publish("ret", ndjson(1, 30), "", "application/x-ndjson").status(), 200);
  {
    http_connection c(port());
    c.send_request("GET", "/v1/streams/ret/events", "", {{"Last-Event-ID", "5"}});
    sse_reader r(c);
    ASSERT_TRUE(r.read_to_end());
    ASSERT_EQ(r.events.size(), 1u);
    EXPECT_EQ(r.events[0].type, "error");
    auto d = json::parse(r.events[0].data);
    EXPECT_EQ(d.at("code").as_string(), "resume_window_exceeded");
    EXPECT_EQ(d.at("first_available").as_int64(), 21);
  }
  {
    // A new subscriber is told that the history is truncated, then gets what is retained.
    http_connection c(port());
    c.send_request("GET", "/v1/streams/ret/events");
    sse_reader r(c);
    ASSERT_TRUE(r.read_until([&] { return r.events.size() == 11; }));
    EXPECT_EQ(r.events[0].type, "notice");
    EXPECT_EQ(json::parse(r.events[0].data).at("first_available").as_int64(), 21);
    EXPECT_EQ(std::vector<recorded_event>(r.events.begin() + 1, r.events.end()), expected(21, 30));
  }
  auto m = request(port(), "GET", "/metrics");
  EXPECT_NE(m.body.find("sluice_retention_errors_total 1\n"), std::string::npos);
}

TEST_F(ServerTest, LaggingLiveSubscriberFallingOutOfRetentionIsTold) {
  start([](auto& c) { c.registry.retention.max_events = 10; });
  const std::string pad(1000, 'y');
  http_connection c(port(), 4096);
  c.send_request("GET", "/v1/streams/lag/events");
  sse_reader r(c);
  for (int i = 1; i <= 1000; i += 100)
    ASSERT_EQ(publish("lag", ndjson(i, i + 99, pad), "", "application/x-ndjson").status(), 200);
  ASSERT_TRUE(r.read_to_end());
  ASSERT_GE(r.events.size(), 1u);
  const auto& last = r.events.back();
  ASSERT_EQ(last.type, "error");
  auto err = json::parse(last.data);
  EXPECT_EQ(err.at("code").as_string(), "resume_window_exceeded");
  // Everything before the error is the exact, gap-free prefix, and the error
  // says where the retained window starts: after a gap, never silently.
  std::vector<recorded_event> prefix(r.events.begin(), r.events.end() - 1);
  EXPECT_EQ(prefix, expected(1, static_cast<int>(prefix.size()), pad));
  EXPECT_GT(err.at("first_available").as_int64(), static_cast<std::int64_t>(prefix.size()) + 1);
}

TEST_F(ServerTest, HeartbeatWhenIdle) {
  start([](auto& c) { c.heartbeat_interval = std::chrono::milliseconds(100); });
  http_connection c(port());
  c.send_request("GET", "/v1/streams/idle/events");
  sse_reader r(c);
  ASSERT_TRUE(r.read_until([&] { return r.comments.size() >= 2; }));
  EXPECT_EQ(r.comments[0], " heartbeat");
  EXPECT_TRUE(r.events.empty());
  auto m = request(port(), "GET", "/metrics");
  EXPECT_NE(m.body.find("sluice_heartbeats_total"), std::string::npos);
}

TEST_F(ServerTest, HeartbeatDataStyleForSeedClients) {
  start([](auto& c) {
    c.heartbeat_interval = std::chrono::milliseconds(100);
    c.heartbeat = transport::heartbeat_style::data;
  });
  http_connection c(port());
  c.send_request("GET", "/v1/streams/idle2/events");
  sse_reader r(c);
  ASSERT_TRUE(r.read_until([&] { return !r.events.empty(); }));
  EXPECT_EQ(r.events[0].data, "heartbeat");
}

TEST_F(ServerTest, CancelEndsStreamForSubscribers) {
  start();
  http_connection c(port());
  c.send_request("GET", "/v1/streams/run1/events");
  sse_reader r(c);
  ASSERT_EQ(publish("run1", R"({"step":1})").status(), 200);
  auto cancel = request(port(), "POST", "/v1/streams/run1/cancel?reason=user%20stop");
  EXPECT_EQ(cancel.status(), 200);
  EXPECT_EQ(cancel.body, R"({"cancelled":true,"sequence":2})");
  ASSERT_TRUE(r.read_to_end());
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(r.events[1], (recorded_event{"2", "cancelled", R"({"reason":"user stop"})"}));
  EXPECT_EQ(status("run1").at("state").as_string(), "cancelled");
  auto again = request(port(), "POST", "/v1/streams/run1/cancel");
  EXPECT_EQ(again.status(), 409);
  EXPECT_EQ(error_code(again), "stream_ended");
  auto pub = publish("run1", "{}");
  EXPECT_EQ(pub.status(), 409);
  EXPECT_EQ(error_code(pub), "stream_ended");
  EXPECT_EQ(request(port(), "POST", "/v1/streams/nope/cancel").status(), 404);
}

TEST_F(ServerTest, GzipStreamIsDecodableEventByEvent) {
  start();
  http_connection c(port());
  c.send_request("GET", "/v1/streams/gz/events", "", {{"Accept-Encoding", "gzip, deflate"}});
  sse_reader r(c, /*gzip=*/true);
  EXPECT_EQ(r.head().header("content-encoding"), "gzip");
  // Each event is decodable before the next one is published (flushed per write).
  for (int i = 1; i <= 3; ++i) {
    ASSERT_EQ(publish("gz", "{\"n\":" + std::to_string(i) + "}").status(), 200);
    ASSERT_TRUE(r.read_until([&] { return r.events.size() == static_cast<std::size_t>(i); }));
  }
  ASSERT_EQ(publish("gz", ndjson(4, 400), "?final=true", "application/x-ndjson").status(), 200);
  ASSERT_TRUE(r.read_to_end());
  EXPECT_EQ(r.events, expected(1, 400));
}

TEST_F(ServerTest, GracefulShutdownEndsStreamsCleanly) {
  start();
  http_connection c(port());
  c.send_request("GET", "/v1/streams/sd/events");
  sse_reader r(c);
  ASSERT_EQ(publish("sd", R"({"a":1})").status(), 200);
  ASSERT_TRUE(r.read_until([&] { return r.events.size() == 1; }));
  std::thread stopper([this] { server_->shutdown(); });
  // The response ends with the last chunk (clients reconnect and resume).
  EXPECT_TRUE(r.read_to_end());
  EXPECT_TRUE(c.wait_closed());
  stopper.join();
  server_.reset();
}

TEST_F(ServerTest, DeltasAreCoalescedLosslesslyForLaggingReaders) {
  start();
  std::string body, text;
  for (int i = 1; i <= 100; ++i) {
    std::string piece = "tok" + std::to_string(i) + (i % 7 == 0 ? "\\n\\\"q\\\" " : " ");
    body += "{\"t\":\"" + piece + "\",\"messageId\":\"m1\"}\n";
  }
  ASSERT_EQ(publish("co", body, "?delta=m1&delta_field=t", "application/x-ndjson").status(), 200);
  ASSERT_EQ(publish("co", R"({"done":true})", "?final=true").status(), 200);
  http_connection c(port());
  c.send_request("GET", "/v1/streams/co/events");
  sse_reader r(c);
  ASSERT_TRUE(r.read_to_end());
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(r.events[0].id, "100");
  auto d = json::parse(r.events[0].data);
  EXPECT_EQ(d.at("coalesced").as_array(), json::parse("[1,100]").as_array());
  std::string want;
  for (int i = 1; i <= 100; ++i)
    want += "tok" + std::to_string(i) + (i % 7 == 0 ? "\n\"q\" " : " ");
  EXPECT_EQ(d.at("t").as_string(), want);
  EXPECT_EQ(r.events[1].id, "101");
  // ?coalesce=false opts out: every event on its own.
  auto plain = request(port(), "GET", "/v1/streams/co/events?coalesce=false");
  EXPECT_NE(plain.body.find("id: 1\n"), std::string::npos);
  EXPECT_NE(plain.body.find("id: 57\n"), std::string::npos);
}

TEST_F(ServerTest, BenchTokensStreamsTheWorkload) {
  start();
  http_connection c(port());
  c.send_request("POST", "/v1/bench/tokens", R"({"tokens":50,"bytes":8,"rate":0})");
  sse_reader r(c);
  ASSERT_TRUE(r.read_to_end());
  ASSERT_EQ(r.events.size(), 50u);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(r.events[i].id, std::to_string(i + 1));
    auto d = json::parse(r.events[i].data);
    EXPECT_EQ(d.at("seq").as_int64(), i + 1);
    EXPECT_GT(d.at("ts").as_int64(), 0);
    EXPECT_EQ(d.at("t").as_string().size(), 8u);
  }
  http_connection paced(port());
  paced.send_request("POST", "/v1/bench/tokens", R"({"tokens":5,"bytes":3,"rate":1000})");
  sse_reader pr(paced);
  ASSERT_TRUE(pr.read_to_end());
  EXPECT_EQ(pr.events.size(), 5u);
  EXPECT_EQ(request(port(), "POST", "/v1/bench/tokens", R"({"tokens":-1})").status(), 400);
}

TEST_F(ServerTest, BenchTokensRejectsOutOfRangeNumbersWithoutCreatingAStream) {
  start();
  // Casting any of these to an integer or a duration would be undefined
  // behaviour; each is refused before any stream exists.
  for (const char* body :
       {R"({"tokens":10,"rate":1e308})", R"({"tokens":10,"rate":1e-300})",
        R"({"tokens":10,"rate":-1})", R"({"tokens":1e308})", R"({"tokens":2.5})", R"({"tokens":0})",
        R"({"tokens":10000001})", R"({"tokens":10,"bytes":-1})", R"({"tokens":10,"bytes":1e300})",
        R"({"tokens":10,"bytes":65537})", R"({"tokens":"10"})", R"({"tokens":10,"rate":null})"}) {
    auto r =
        request(port(), "POST", "/v1/bench/tokens", body, {{"Content-Type", "application/json"}});
    EXPECT_EQ(r.status(), 400) << body;
    EXPECT_EQ(error_code(r), "invalid_argument") << body;
  }
  const auto counts = server_->registry().counts();
  EXPECT_EQ(counts.open + counts.finished + counts.cancelled, 0u);
  // The limits themselves are accepted.
  auto ok = request(port(), "POST", "/v1/bench/tokens", R"({"tokens":2,"bytes":0,"rate":1000000})",
                    {{"Content-Type", "application/json"}});
  EXPECT_EQ(ok.status(), 200);
}

TEST_F(ServerTest, BenchTokensStopsWhenTheReaderLeaves) {
  start();
  {
    http_connection c(port());
    c.send_request("POST", "/v1/bench/tokens", R"({"tokens":10000000,"bytes":8,"rate":0})",
                   {{"Content-Type", "application/json"}});
    sse_reader r(c);
    ASSERT_TRUE(r.read_until([&] { return r.events.size() >= 1000; }));
  }  // the client disconnects after 1,000 of 10M events
  // The producer sees its reader gone and cancels the stream (bounded wait).
  core::registry_counts counts;
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
       std::chrono::steady_clock::now() < until;) {
    counts = server_->registry().counts();
    if (counts.cancelled == 1) break;
    std::this_thread::yield();
  }
  EXPECT_EQ(counts.cancelled, 1u);
  EXPECT_EQ(counts.open, 0u);
}

TEST_F(ServerTest, KeepAliveConnectionIsReusedAfterStreamEnds) {
  start();
  ASSERT_EQ(publish("ka", R"({"x":1})", "?final=true").status(), 200);
  http_connection c(port());
  c.send_request("GET", "/v1/streams/ka/events");
  {
    sse_reader r(c);
    ASSERT_TRUE(r.read_to_end());
    EXPECT_EQ(r.events.size(), 1u);
  }
  c.send_request("GET", "/healthz");
  auto h = c.read_head();
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(c.read_body_to_end(), R"({"status":"ok"})");
}

// ---- Bad input: a clear JSON error, nothing else changes. ----

class BadInputTest : public ServerTest {
 protected:
  void SetUp() override {
    start([](auto& c) {
      c.max_body_bytes = 1024;
      c.max_connections = 64;
      c.header_timeout = std::chrono::milliseconds(300);
    });
    ASSERT_EQ(publish("control", R"({"keep":1})").status(), 200);
  }
  void TearDown() override {
    // The control stream is untouched by whatever the test sent.
    auto st = status("control");
    EXPECT_EQ(st.at("last_sequence").as_int64(), 1);
    EXPECT_EQ(st.at("state").as_string(), "open");
    ServerTest::TearDown();
  }
};

TEST_F(BadInputTest, OversizedBodyIs413) {
  auto r = publish("big", "{\"a\":\"" + std::string(2000, 'x') + "\"}");
  EXPECT_EQ(r.status(), 413);
  EXPECT_EQ(error_code(r), "body_too_large");
  EXPECT_EQ(request(port(), "GET", "/v1/streams/big").status(), 404);
}

TEST_F(BadInputTest, MalformedJsonIs400) {
  for (std::string body : std::vector<std::string>{"{\"a\":", "not json", "", "{\"a\":1} trailing"}) {
    auto r = publish("mj", body);
    EXPECT_EQ(r.status(), 400) << body;
    EXPECT_EQ(error_code(r), "malformed_json") << body;
  }
  EXPECT_EQ(request(port(), "GET", "/v1/streams/mj").status(), 404);
}

TEST_F(BadInputTest, BadStreamIdsAre400AndNeverReachTheWire) {
  for (std::string id : std::vector<std::string>{"bad%0Aid", "bad%0D%0Aevent:%20x", "a%20b", "a%00b",
                         std::string(129, 'a'), "%E4%BD%A0"}) {
    auto sub = request(port(), "GET", "/v1/streams/" + id + "/events");
    EXPECT_EQ(sub.status(), 400) << id;
    EXPECT_EQ(error_code(sub), "invalid_stream_id") << id;
    EXPECT_EQ(publish(id, "{}").status(), 400) << id;
  }
  EXPECT_EQ(request(port(), "GET", "/v1/streams/" + std::string(128, 'a')).status(), 404);
}

TEST_F(BadInputTest, EventNamesThatCouldInjectFieldsAre400) {
  for (std::string ev : std::vector<std::string>{"x%0Adata:%20evil", "x%0D", "a%20b", "", "x%3Ay%0A%0Aid:%209"}) {
    auto r = publish("ev", "{}", "?event=" + ev);
    EXPECT_EQ(r.status(), 400) << ev;
    EXPECT_EQ(error_code(r), "invalid_event_name") << ev;
  }
  EXPECT_EQ(request(port(), "GET", "/v1/streams/ev").status(), 404);
}

TEST_F(BadInputTest, PublishToFinishedStreamIs409) {
  ASSERT_EQ(publish("fin", "{}", "?final=true").status(), 200);
  auto r = publish("fin", "{}");
  EXPECT_EQ(r.status(), 409);
  EXPECT_EQ(error_code(r), "stream_ended");
  EXPECT_EQ(status("fin").at("last_sequence").as_int64(), 1);
}

TEST_F(BadInputTest, NonNumericLastEventIdIs400) {
  for (std::string v : std::vector<std::string>{"abc", "-1", "1e3", "1 2", "99999999999999999999"}) {
    auto r = request(port(), "GET", "/v1/streams/control/events", "", {{"Last-Event-ID", v}});
    EXPECT_EQ(r.status(), 400) << v;
    EXPECT_EQ(error_code(r), "invalid_last_event_id") << v;
  }
  auto ahead = request(port(), "GET", "/v1/streams/control/events", "", {{"Last-Event-ID", "7"}});
  EXPECT_EQ(ahead.status(), 409);
  EXPECT_EQ(error_code(ahead), "unknown_last_event_id");
  EXPECT_EQ(request(port(), "GET", "/v1/streams/fresh/events?last_event_id=3").status(), 409);
  EXPECT_EQ(request(port(), "GET", "/v1/streams/fresh").status(), 404);
}

TEST_F(BadInputTest, OversizedHeadersAre431) {
  auto r = request(port(), "GET", "/healthz", "", {{"X-Big", std::string(10000, 'h')}});
  EXPECT_EQ(r.status(), 431);
  EXPECT_EQ(error_code(r), "headers_too_large");
}

TEST_F(BadInputTest, SlowHeadersAreClosedAtTheHeaderTimeout) {
  http_connection c(port());
  c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n");  // and never the blank line
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(BadInputTest, CancelReasonMustBeCleanText) {
  for (std::string reason : std::vector<std::string>{"%FF%FE", "a%0Ab", std::string(300, 'r')}) {
    auto r = request(port(), "POST", "/v1/streams/control/cancel?reason=" + reason);
    EXPECT_EQ(r.status(), 400) << reason;
    EXPECT_EQ(error_code(r), "invalid_reason");
  }
}

TEST_F(BadInputTest, UnknownPathsAndMethods) {
  auto r = request(port(), "GET", "/nope");
  EXPECT_EQ(r.status(), 404);
  EXPECT_EQ(error_code(r), "not_found");
  auto m = request(port(), "DELETE", "/v1/streams/control/events");
  EXPECT_EQ(m.status(), 405);
  auto d = publish("dl", "{\"no_text\":1}", "?delta=m1");
  EXPECT_EQ(d.status(), 400);
  EXPECT_EQ(error_code(d), "invalid_delta");
}

TEST_F(ServerTest, TooManyConnectionsIs503WithRetryAfter) {
  start([](auto& c) { c.max_connections = 3; });
  std::vector<std::unique_ptr<http_connection>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<http_connection>(port()));
    held.back()->send_request("GET", "/healthz");  // answered: the server holds it
    EXPECT_EQ(held.back()->read_head().status, 200);
    held.back()->read_body_to_end();
  }
  auto r = request(port(), "GET", "/healthz");
  EXPECT_EQ(r.status(), 503);
  EXPECT_EQ(r.head.header("retry-after"), "1");
  EXPECT_EQ(error_code(r), "too_many_connections");
  held.pop_back();  // one leaves: a new connection is served again
  bool served = false;
  for (int i = 0; i < 10'000 && !served; ++i) {  // bounded: the close may not have been seen yet
    auto again = request(port(), "GET", "/healthz");
    served = again.status() == 200;
    if (!served) {
      ASSERT_EQ(again.status(), 503);
    }
  }
  EXPECT_TRUE(served);
}

TEST_F(ServerTest, StaticFilesServeTheBuiltPageAndNothingOutsideIt) {
  namespace fs = std::filesystem;
  const fs::path base = fs::temp_directory_path() / ("sluice-static-" + std::to_string(::getpid()));
  fs::remove_all(base);
  fs::create_directories(base / "dist/assets");
  auto write = [](const fs::path& p, const std::string& text) { std::ofstream(p) << text; };
  write(base / "dist/index.html", "<!doctype html><title>Sluice</title>");
  write(base / "dist/assets/app-1234.js", "console.log(1)");
  write(base / "secret.txt", "outside");
  fs::create_symlink(base / "secret.txt", base / "dist/leak.txt");
  start({}, [&](transport::http_server& s) { s.routes().serve_static(base / "dist"); });

  auto index = request(port(), "GET", "/");
  EXPECT_EQ(index.status(), 200);
  EXPECT_EQ(index.head.header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(index.head.header("cache-control"), "no-cache");
  EXPECT_EQ(index.body, "<!doctype html><title>Sluice</title>");
  auto js = request(port(), "GET", "/assets/app-1234.js");
  EXPECT_EQ(js.status(), 200);
  EXPECT_EQ(js.head.header("content-type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(js.head.header("cache-control"), "public, max-age=31536000, immutable");
  for (std::string bad : std::vector<std::string>{"/../secret.txt", "/%2e%2e/secret.txt",
                                                  "/assets/..%2f..%2fsecret.txt", "/leak.txt",
                                                  "/.hidden", "/assets//x", "/nope.js"}) {
    auto r = request(port(), "GET", bad);
    EXPECT_EQ(r.status(), 404) << bad;
    EXPECT_EQ(r.body.find("outside"), std::string::npos) << bad;
  }
  // The API keeps its own answers.
  EXPECT_EQ(request(port(), "GET", "/v1/nothing").status(), 404);
  EXPECT_EQ(request(port(), "GET", "/healthz").body, R"({"status":"ok"})");
  fs::remove_all(base);
}

TEST_F(ServerTest, MetricsAreExported) {
  start();
  ASSERT_EQ(publish("m", ndjson(1, 5), "?final=true", "application/x-ndjson").status(), 200);
  auto sub = request(port(), "GET", "/v1/streams/m/events");
  ASSERT_EQ(sub.status(), 200);
  // Delivery is counted when the server sees its write complete, which can be
  // just after the client has read the bytes: wait for it (bounded).
  test::http_response m;
  for (int i = 0; i < 5000; ++i) {
    m = request(port(), "GET", "/metrics");
    if (m.body.find("sluice_events_delivered_total 5\n") != std::string::npos) break;
  }
  EXPECT_EQ(m.status(), 200);
  EXPECT_NE(m.head.header("content-type").find("text/plain"), std::string::npos);
  for (const char* needle :
       {"sluice_events_published_total 5\n", "sluice_events_delivered_total 5\n",
        "sluice_streams{state=\"finished\"} 1\n", "sluice_open_connections ",
        "sluice_publish_to_write_latency_us_bucket{le=\"+Inf\"} 1\n",
        "sluice_coalesced_events_total 0\n", "sluice_log_memory_bytes{state=\"reserved\"} ",
        "sluice_log_memory_bytes{state=\"free\"} "})
    EXPECT_NE(m.body.find(needle), std::string::npos) << needle << "\n" << m.body;
  // The finished stream's segment is in the pool's use (the pool is off
  // under AddressSanitizer: then it is 0).
  const std::string in_use = "sluice_log_memory_bytes{state=\"in_use\"} ";
  const auto at = m.body.find(in_use);
  ASSERT_NE(at, std::string::npos) << m.body;
  const auto bytes = std::stoull(m.body.substr(at + in_use.size()));
  if (core::segment_memory::round_up(5000) == 8192) {
    EXPECT_GE(bytes, 4096u);
  }
}

}  // namespace
}  // namespace sluice
