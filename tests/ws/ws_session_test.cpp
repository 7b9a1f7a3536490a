// GET /v1/ws on real sockets (127.0.0.1, port 0) with a real http_server and
// a blocking Beast client. No sleeps: every wait is a read with a deadline.
#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "support/test_client.hpp"
#include "transport/http_server.hpp"
#include "ws/ws_test_client.hpp"

namespace sluice {
namespace {

namespace json = boost::json;
using test::ws_connection;
namespace ws_beast = boost::beast;
namespace ws_net = boost::asio;

class WsTest : public ::testing::Test {
 protected:
  void start(const std::function<void(transport::server_config&)>& tweak = {}) {
    transport::server_config c;
    c.port = 0;
    c.threads = 2;
    if (tweak) tweak(c);
    server_ = std::make_unique<transport::http_server>(c);
    if (launcher_) server_->set_run_launcher(launcher_);
    server_->start();
  }
  void TearDown() override {
    if (server_) server_->shutdown();
  }
  std::uint16_t port() const { return server_->port(); }

  std::shared_ptr<core::stream_log> log(const std::string& id) {
    return server_->registry().get_or_create(id).value();
  }
  // {"stream":S,"id":N,"event":T,"data":D}, exactly as the server frames it.
  static std::string frame(const std::string& stream, std::uint64_t id, const std::string& data,
                           const std::string& event = "message") {
    return "{\"stream\":\"" + stream + "\",\"id\":" + std::to_string(id) + ",\"event\":\"" + event +
           "\",\"data\":" + data + "}";
  }
  static std::string n(int i) { return "{\"n\":" + std::to_string(i) + "}"; }
  static std::string end(const std::string& stream) {
    return "{\"op\":\"end\",\"stream\":\"" + stream + "\"}";
  }
  static json::object subscribe(const std::string& stream) {
    return {{"op", "subscribe"}, {"stream", stream}};
  }

  std::shared_ptr<const streams::run_launcher> launcher_;
  std::unique_ptr<transport::http_server> server_;
};

// Reads messages until `ends` streams have sent "end"; returns them per stream
// (events and the end) and in arrival order.
struct transcript {
  std::map<std::string, std::vector<std::string>> per_stream;
  std::vector<std::string> all;
};
transcript read_until_ends(ws_connection& c, std::size_t ends) {
  transcript t;
  std::size_t seen = 0;
  while (seen < ends) {
    std::string m = c.read_text();
    json::object o = json::parse(m).as_object();
    t.all.push_back(m);
    if (auto* s = o.if_contains("stream"); s && s->is_string())
      t.per_stream[std::string(s->as_string())].push_back(m);
    if (o.if_contains("op") && o.at("op") == "end") ++seen;
  }
  return t;
}

TEST_F(WsTest, SeveralStreamsMultiplexedOnOneSocketWithExactTranscripts) {
  start();
  ws_connection c(port());
  for (const char* s : {"a", "b", "c"}) c.send(subscribe(s));
  // Subscriptions are registered in order; a ping answered means all three are.
  c.send(json::object{{"op", "ping"}});
  EXPECT_EQ(c.read_text(), R"({"op":"pong"})");
  for (int i = 1; i <= 20; ++i) {
    log("a")->publish("message", n(i), i == 20);
    if (i <= 10) log("b")->publish("tick", n(i), i == 10);
  }
  // c: multi-line JSON data (a raw newline between tokens) and an event type.
  log("c")->publish("plan", "{\"x\":\n1}", false);
  log("c")->publish("message", "[1,2,\"three\"]", true);

  transcript t = read_until_ends(c, 3);
  std::vector<std::string> want_a, want_b;
  for (int i = 1; i <= 20; ++i) want_a.push_back(frame("a", i, n(i)));
  want_a.push_back(end("a"));
  for (int i = 1; i <= 10; ++i) want_b.push_back(frame("b", i, n(i), "tick"));
  want_b.push_back(end("b"));
  EXPECT_EQ(t.per_stream["a"], want_a);
  EXPECT_EQ(t.per_stream["b"], want_b);
  EXPECT_EQ(t.per_stream["c"],
            (std::vector<std::string>{frame("c", 1, "{\"x\":\n1}", "plan"),
                                      frame("c", 2, "[1,2,\"three\"]"), end("c")}));
  // Data is the JSON value, not a string.
  EXPECT_TRUE(json::parse(t.per_stream["c"][1]).at("data").is_array());
  EXPECT_EQ(t.all.size(), want_a.size() + want_b.size() + 3);
}

TEST_F(WsTest, SubscribeWithLastEventIdReplaysExactly) {
  start();
  for (int i = 1; i <= 10; ++i) log("r")->publish("message", n(i), i == 10);
  for (std::uint64_t last = 0; last <= 10; ++last) {
    ws_connection c(port());
    json::object sub = subscribe("r");
    sub["lastEventId"] = last;
    c.send(sub);
    transcript t = read_until_ends(c, 1);
    std::vector<std::string> want;
    for (std::uint64_t i = last + 1; i <= 10; ++i) want.push_back(frame("r", i, n(int(i))));
    want.push_back(end("r"));
    EXPECT_EQ(t.all, want) << "lastEventId " << last;
  }
  ws_connection c(port());
  c.send(R"({"op":"subscribe","stream":"r","lastEventId":"7"})");  // a string works too
  EXPECT_EQ(read_until_ends(c, 1).all,
            (std::vector<std::string>{frame("r", 8, n(8)), frame("r", 9, n(9)),
                                      frame("r", 10, n(10)), end("r")}));
  c.send(R"({"op":"subscribe","stream":"q","lastEventId":11})");
  auto e = c.read();
  EXPECT_EQ(e.at("code"), "unknown_last_event_id");
  EXPECT_EQ(e.at("stream"), "q");
  c.send(R"({"op":"subscribe","stream":"q2","lastEventId":"x"})");
  EXPECT_EQ(c.read().at("code"), "invalid_last_event_id");
}

TEST_F(WsTest, ResumeWindowExceededIsAnOpErrorWithFirstAvailable) {
  start([](auto& c) { c.registry.retention.max_events = 5; });
  for (int i = 1; i <= 12; ++i) log("w")->publish("message", n(i));
  ws_connection c(port());
  c.send(R"({"op":"subscribe","stream":"w","lastEventId":2})");
  auto e = c.read();
  EXPECT_EQ(e.at("op"), "error");
  EXPECT_EQ(e.at("code"), "resume_window_exceeded");
  EXPECT_EQ(e.at("stream"), "w");
  EXPECT_EQ(e.at("first_available"), 8);
  // Without lastEventId: told that history is truncated, then the window.
  c.send(subscribe("w"));
  auto notice = c.read();
  EXPECT_EQ(notice.at("op"), "notice");
  EXPECT_EQ(notice.at("code"), "history_truncated");
  EXPECT_EQ(notice.at("first_available"), 8);
  for (int i = 8; i <= 12; ++i) EXPECT_EQ(c.read_text(), frame("w", i, n(i)));
}

TEST_F(WsTest, CoalescedDeltasArriveMergedWithTheLastId) {
  start();
  for (const char* piece : {"Hel", "lo, ", "wor", "ld"})
    test::request(port(), "POST", "/v1/streams/d/events?delta=m1&event=answer",
                  std::string("{\"text\":\"") + piece + "\",\"k\":1}");
  log("d")->publish("message", "{\"done\":true}", true);
  ws_connection c(port());
  c.send(subscribe("d"));
  transcript t = read_until_ends(c, 1);
  ASSERT_EQ(t.all.size(), 3u);
  EXPECT_EQ(t.all[0],
            frame("d", 4, R"({"coalesced":[1,4],"text":"Hello, world","k":1})", "answer"));
  EXPECT_EQ(t.all[1], frame("d", 5, R"({"done":true})"));
}

TEST_F(WsTest, CancelEndsTheStreamForItsSubscribers) {
  start();
  ws_connection c(port());
  c.send(subscribe("k"));
  log("k")->publish("message", n(1));
  EXPECT_EQ(c.read_text(), frame("k", 1, n(1)));
  c.send(R"({"op":"cancel","stream":"k","reason":"user"})");
  // The ack and the cancelled event may come in either order.
  std::vector<std::string> got{c.read_text(), c.read_text(), c.read_text()};
  std::sort(got.begin(), got.end());
  std::vector<std::string> want{R"({"op":"cancelled","stream":"k","sequence":2})",
                                frame("k", 2, R"({"reason":"user"})", "cancelled"), end("k")};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  c.send(R"({"op":"cancel","stream":"k"})");
  EXPECT_EQ(c.read().at("code"), "stream_ended");
  c.send(R"({"op":"cancel","stream":"nope"})");
  EXPECT_EQ(c.read().at("code"), "stream_not_found");
}

TEST_F(WsTest, PublishAndItsErrors) {
  start();
  ws_connection sub(port());
  sub.send(subscribe("p"));
  sub.send(json::object{{"op", "ping"}});
  EXPECT_EQ(sub.read_text(), R"({"op":"pong"})");

  ws_connection c(port());
  c.send(R"({"op":"publish","stream":"p","data":{"a":[1,2]}})");
  EXPECT_EQ(c.read_text(), R"({"op":"published","stream":"p","sequence":1})");
  c.send(R"({"op":"publish","stream":"p","event":"done","data":"bye","final":true})");
  EXPECT_EQ(c.read_text(), R"({"op":"published","stream":"p","sequence":2})");
  EXPECT_EQ(sub.read_text(), frame("p", 1, R"({"a":[1,2]})"));
  EXPECT_EQ(sub.read_text(), frame("p", 2, R"("bye")", "done"));
  EXPECT_EQ(sub.read_text(), end("p"));

  c.send(R"({"op":"publish","stream":"p","data":1})");
  auto e = c.read();
  EXPECT_EQ(e.at("code"), "stream_ended");
  EXPECT_EQ(e.at("stream"), "p");
  c.send(R"({"op":"publish","stream":"bad id","data":1})");
  EXPECT_EQ(c.read().at("code"), "invalid_stream_id");
  c.send(R"({"op":"publish","stream":7,"data":1})");
  EXPECT_EQ(c.read().at("code"), "invalid_stream_id");
  c.send(R"({"op":"publish","stream":"p2","event":"no spaces","data":1})");
  EXPECT_EQ(c.read().at("code"), "invalid_event_name");
  c.send(R"({"op":"publish","stream":"p2"})");
  EXPECT_EQ(c.read().at("code"), "invalid_message");
  c.send(R"({"op":"publish","stream":"p2","data":{"no_text":1},"delta":"m"})");
  EXPECT_EQ(c.read().at("code"), "invalid_delta");
}

// A message longer than the server's first read (it reads an idle socket
// with a small buffer) arrives whole: as one large frame, and as a message
// fragmented into many small frames.
TEST_F(WsTest, LongAndFragmentedMessagesAreReadWhole) {
  start();
  ws_connection c(port());
  const std::string text(5000, 'x');
  const std::string big = R"({"op":"publish","stream":"big","data":")" + text + R"("})";
  c.send(big);
  EXPECT_EQ(c.read_text(), R"({"op":"published","stream":"big","sequence":1})");
  auto& ws = c.stream();
  ws.text(true);
  for (std::size_t at = 0; at < big.size(); at += 100) {
    const std::size_t n = std::min<std::size_t>(100, big.size() - at);
    ws.write_some(at + n == big.size(), boost::asio::buffer(big.data() + at, n));
  }
  EXPECT_EQ(c.read_text(), R"({"op":"published","stream":"big","sequence":2})");
  c.send(json::object{{"op", "ping"}});
  EXPECT_EQ(c.read_text(), R"({"op":"pong"})");
  auto r = log("big")->status();
  EXPECT_EQ(r.last_sequence, 2u);
}

TEST_F(WsTest, UnsubscribeStopsFrames) {
  start();
  ws_connection c(port());
  c.send(subscribe("u"));
  log("u")->publish("message", n(1));
  EXPECT_EQ(c.read_text(), frame("u", 1, n(1)));
  c.send(R"({"op":"unsubscribe","stream":"u"})");
  EXPECT_EQ(c.read_text(), R"({"op":"unsubscribed","stream":"u"})");
  log("u")->publish("message", n(2));
  c.send(json::object{{"op", "ping"}});
  EXPECT_EQ(c.read_text(), R"({"op":"pong"})");  // no frame of u before it
  c.send(R"({"op":"unsubscribe","stream":"u"})");
  EXPECT_EQ(c.read().at("code"), "not_subscribed");
  // Subscribing again resumes where asked.
  c.send(R"({"op":"subscribe","stream":"u","lastEventId":1})");
  EXPECT_EQ(c.read_text(), frame("u", 2, n(2)));
  c.send(subscribe("u"));
  EXPECT_EQ(c.read().at("code"), "already_subscribed");
}

TEST_F(WsTest, OversizedMessageIsClosedWith1009) {
  start([](auto& c) { c.ws_max_message_bytes = 64u << 10; });
  ws_connection c(port());
  c.send(R"({"op":"ping"})");
  EXPECT_EQ(c.read_text(), R"({"op":"pong"})");
  c.send("{\"op\":\"ping\",\"pad\":\"" + std::string(70'000, 'x') + "\"}");
  EXPECT_EQ(c.read_until_closed(), 1009) << c.last_error_.message();
}

TEST_F(WsTest, TooManyStreamsIsAnOpErrorAndTheSocketStaysUsable) {
  start([](auto& c) { c.ws_max_streams_per_socket = 64; });
  ws_connection c(port());
  for (int i = 0; i < 64; ++i) c.send(subscribe("s" + std::to_string(i)));
  c.send(subscribe("s64"));
  auto e = c.read();
  EXPECT_EQ(e.at("code"), "too_many_subscriptions");
  EXPECT_EQ(e.at("stream"), "s64");
  log("s63")->publish("message", n(1), true);
  EXPECT_EQ(c.read_text(), frame("s63", 1, n(1)));
  EXPECT_EQ(c.read_text(), end("s63"));
  // The ended stream freed a slot.
  c.send(subscribe("s64"));
  log("s64")->publish("message", n(1));
  EXPECT_EQ(c.read_text(), frame("s64", 1, n(1)));
}

TEST_F(WsTest, MalformedMessagesAreOpErrorsAndTheSocketStaysUsable) {
  start();
  ws_connection c(port());
  c.send("{not json");
  EXPECT_EQ(c.read().at("code"), "malformed_json");
  c.send("[1,2]");
  EXPECT_EQ(c.read().at("code"), "invalid_message");
  c.send(R"({"op":"dance"})");
  EXPECT_EQ(c.read().at("code"), "unknown_op");
  c.send(R"({"op":"subscribe","stream":"../x"})");
  EXPECT_EQ(c.read().at("code"), "invalid_stream_id");
  c.send(R"({"op":"start","request":{}})");
  EXPECT_EQ(c.read().at("code"), "start_unavailable");
  c.send(R"({"op":"ping"})");
  EXPECT_EQ(c.read_text(), R"({"op":"pong"})");
  c.send(subscribe("m"));
  log("m")->publish("message", n(1));
  EXPECT_EQ(c.read_text(), frame("m", 1, n(1)));
}

TEST_F(WsTest, EndlessInvalidMessagesCloseWith1008) {
  start();
  ws_connection c(port());
  for (int i = 0; i < 64; ++i) c.send("nope");
  int errors = 0;
  for (;;) {
    boost::system::error_code ec;
    ws_beast::flat_buffer b;
    c.stream().read(b, ec);
    if (ec) break;
    ++errors;
  }
  EXPECT_EQ(errors, 64);
  EXPECT_EQ(c.stream().reason().code, 1008);
}

TEST_F(WsTest, BinaryMessagesCloseWith1003) {
  start();
  ws_connection c(port());
  c.stream().binary(true);
  c.stream().write(ws_net::buffer(std::string("{}")));
  EXPECT_EQ(c.read_until_closed(), 1003);
}

TEST_F(WsTest, SlowReaderIsNotDroppedAndGetsEverything) {
  start([](auto& c) { c.registry.retention.max_bytes = 64u << 20; });
  ws_connection c(port(), {.rcvbuf = 4096});
  c.send(subscribe("slow"));
  c.send(json::object{{"op", "ping"}});
  EXPECT_EQ(c.read_text(), R"({"op":"pong"})");
  // ~6 MB published while the client reads nothing.
  const std::string pad(6000, 'p');
  const int events = 1000;
  for (int i = 1; i <= events; ++i)
    log("slow")->publish("message", "{\"n\":" + std::to_string(i) + ",\"pad\":\"" + pad + "\"}",
                         i == events);
  for (int i = 1; i <= events; ++i)
    ASSERT_EQ(c.read_text(),
              frame("slow", i, "{\"n\":" + std::to_string(i) + ",\"pad\":\"" + pad + "\"}"));
  EXPECT_EQ(c.read_text(), end("slow"));
}

TEST_F(WsTest, DeflateIsNegotiatedWhenOfferedAndCarriesTheSameFrames) {
  start();
  ws_connection plain(port());
  EXPECT_EQ(plain.handshake_response()[ws_beast::http::field::sec_websocket_extensions], "");
  ws_connection c(port(), {.deflate = true});
  const std::string ext(c.handshake_response()[ws_beast::http::field::sec_websocket_extensions]);
  EXPECT_NE(ext.find("permessage-deflate"), std::string::npos) << ext;
  EXPECT_NE(ext.find("server_max_window_bits=10"), std::string::npos) << ext;
  c.send(subscribe("z"));
  const std::string pad(3000, 'z');
  for (int i = 1; i <= 50; ++i)
    log("z")->publish("message", "{\"n\":" + std::to_string(i) + ",\"t\":\"" + pad + "\"}",
                      i == 50);
  for (int i = 1; i <= 50; ++i)
    ASSERT_EQ(c.read_text(),
              frame("z", i, "{\"n\":" + std::to_string(i) + ",\"t\":\"" + pad + "\"}"));
  EXPECT_EQ(c.read_text(), end("z"));
}

TEST_F(WsTest, DeflateCanBeTurnedOff) {
  start([](auto& c) { c.ws_deflate = false; });
  ws_connection c(port(), {.deflate = true});
  EXPECT_EQ(c.handshake_response()[ws_beast::http::field::sec_websocket_extensions], "");
  c.send(R"({"op":"ping"})");
  EXPECT_EQ(c.read_text(), R"({"op":"pong"})");
}

// The producer behind "start", plugged into the op layer as app/ plugs agents.
class test_launcher final : public streams::run_launcher {
 public:
  explicit test_launcher(std::function<core::stream_registry&()> registry)
      : registry_(std::move(registry)) {}
  streams::op_result<streams::run_plan> plan(std::string_view,
                                             const json::value& req) const override {
    const auto* q = req.as_object().if_contains("query");
    if (q == nullptr || !q->is_string())
      return streams::op_error{"invalid_request", 400, "\"query\" must be a string", 0};
    streams::run_plan p;
    p.request_id = "run-" + std::string(q->as_string());
    p.launch = [&reg = registry_(), id = p.request_id](
                   const ws_net::any_io_executor&,
                   std::string_view) -> streams::op_result<streams::run_started> {
      if (auto existing = reg.find(id)) return streams::run_started{existing, false};
      auto l = reg.create(id).value();
      l->publish("plan", R"({"steps":2})");
      l->publish("answer", R"({"text":"42"})", true);
      return streams::run_started{l, true};
    };
    return p;
  }

 private:
  std::function<core::stream_registry&()> registry_;
};

TEST_F(WsTest, StartUsesTheRegisteredHandler) {
  launcher_ = std::make_shared<test_launcher>(
      [this]() -> core::stream_registry& { return server_->registry(); });
  start();
  ws_connection c(port());
  c.send(R"({"op":"start","request":{"query":"q1"}})");
  transcript t = read_until_ends(c, 1);
  EXPECT_EQ(t.all, (std::vector<std::string>{R"({"op":"started","stream":"run-q1","created":true})",
                                             frame("run-q1", 1, R"({"steps":2})", "plan"),
                                             frame("run-q1", 2, R"({"text":"42"})", "answer"),
                                             end("run-q1")}));
  // A retried start attaches and resumes after lastEventId.
  c.send(R"({"op":"start","request":{"query":"q1"},"lastEventId":1})");
  t = read_until_ends(c, 1);
  EXPECT_EQ(t.all, (std::vector<std::string>{
                       R"({"op":"started","stream":"run-q1","created":false})",
                       frame("run-q1", 2, R"({"text":"42"})", "answer"), end("run-q1")}));
  c.send(R"({"op":"start","request":{"query":1}})");
  EXPECT_EQ(c.read().at("code"), "invalid_request");
  c.send(R"({"op":"start"})");
  EXPECT_EQ(c.read().at("code"), "invalid_request");
}

TEST_F(WsTest, IdleConnectionsGetServerPings) {
  start([](auto& c) { c.heartbeat_interval = std::chrono::milliseconds(20); });
  ws_connection c(port());
  bool pinged = false;
  c.stream().control_callback([&](ws_beast::websocket::frame_type kind, std::string_view) {
    if (kind == ws_beast::websocket::frame_type::ping) {
      pinged = true;
      c.stream().next_layer().cancel();
    }
  });
  // Wait (bounded by the socket deadline) for a ping while nothing is published.
  ws_beast::flat_buffer b;
  c.stream().async_read(b, [](boost::system::error_code, std::size_t) {});
  while (!pinged && c.ioc().run_one_for(std::chrono::seconds(20)) > 0) {
  }
  EXPECT_TRUE(pinged);
}

TEST_F(WsTest, ShutdownClosesWith1001) {
  start();
  ws_connection c(port());
  c.send(subscribe("x"));
  c.send(R"({"op":"ping"})");
  EXPECT_EQ(c.read_text(), R"({"op":"pong"})");
  std::thread stopper([this] { server_->shutdown(); });
  const int code = c.read_until_closed();
  stopper.join();
  server_.reset();
  EXPECT_EQ(code, 1001);
}

TEST_F(WsTest, PlainGetIsAskedToUpgrade) {
  start();
  auto r = test::request(port(), "GET", "/v1/ws");
  EXPECT_EQ(r.status(), 426);
}

}  // namespace
}  // namespace sluice
