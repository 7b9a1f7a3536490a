// sse_client against a real in-process http_server on 127.0.0.1 (port 0),
// directly and through the cutting TCP proxy. Every wait is on a condition
// with a bounded deadline; nothing asserts durations and nothing sleeps.
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include "client/sse_client.hpp"
#include "support/chaos_proxy.hpp"
#include "support/test_client.hpp"
#include "transport/http_server.hpp"

namespace sluice {
namespace {

namespace json = boost::json;
using client::sse_status;
using namespace std::chrono_literals;

struct received_event {
  std::string id, type, data;  // id: the event's own id ("" when its block had none)
  std::uint64_t first = 0, last = 0;
  std::string last_event_id;  // lastEventId
};

// One sse_client on its own io_context thread, recording every callback.
class client_run {
 public:
  explicit client_run(client::sse_client_options options)
      : client_(io_.get_executor(), std::move(options)) {
    client_.on_event([this](const client::sse_client_event& e) {
      std::lock_guard lock(mutex_);
      events_.push_back({std::string(e.own_id), std::string(e.type), std::string(e.data),
                         e.first_seq, e.last_seq, std::string(e.last_event_id)});
      cv_.notify_all();
    });
    client_.on_status([this](sse_status s, std::string_view detail) {
      std::lock_guard lock(mutex_);
      statuses_.emplace_back(s, std::string(detail));
      if (s == sse_status::closed || s == sse_status::failed) done_ = true;
      cv_.notify_all();
    });
    client_.on_error([this](const client::sse_client_error& e) {
      std::lock_guard lock(mutex_);
      errors_.push_back(e);
      cv_.notify_all();
    });
  }
  ~client_run() {
    client_.cancel();
    if (thread_.joinable()) thread_.join();
  }

  void start() {
    client_.start();
    thread_ = std::thread([this] { io_.run(); });  // returns when the client has ended
  }
  void cancel() { client_.cancel(); }

  // Waits (bounded) until `pred` holds on the recorded state.
  bool wait(const std::function<bool()>& pred, std::chrono::seconds limit = 90s) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, limit, pred);
  }
  bool wait_done() {
    return wait([this] { return done_; });
  }
  bool wait_events(std::size_t n) {
    return wait([this, n] { return events_.size() >= n || done_; }) && events_.size() >= n;
  }

  std::vector<received_event> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }
  std::vector<std::pair<sse_status, std::string>> statuses() const {
    std::lock_guard lock(mutex_);
    return statuses_;
  }
  std::vector<sse_status> status_kinds() const {
    std::vector<sse_status> v;
    for (const auto& s : statuses()) v.push_back(s.first);
    return v;
  }
  std::vector<client::sse_client_error> errors() const {
    std::lock_guard lock(mutex_);
    return errors_;
  }
  // Unlocked access for wait() predicates (called with the lock held).
  const std::vector<received_event>& events_locked() const { return events_; }
  const std::vector<std::pair<sse_status, std::string>>& statuses_locked() const {
    return statuses_;
  }

 private:
  boost::asio::io_context io_{1};
  client::sse_client client_;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<received_event> events_;
  std::vector<std::pair<sse_status, std::string>> statuses_;
  std::vector<client::sse_client_error> errors_;
  bool done_ = false;
};

class SseClientTest : public ::testing::Test {
 protected:
  void start_server(const std::function<void(transport::server_config&)>& tweak = {}) {
    transport::server_config c;
    c.port = 0;
    c.threads = 2;
    if (tweak) tweak(c);
    server_ = std::make_unique<transport::http_server>(c);
    // A producer-style POST that answers with a stream, like POST /AutoAgent:
    // {"requestId": ID} attaches to stream ID and honours Last-Event-ID.
    transport::router& routes = server_->routes();
    routes.add("POST", "/test/run", [this, &routes](transport::request_context& req)
                                        -> transport::handler_result {
      boost::system::error_code ec;
      json::value v = json::parse(req.body, ec);
      if (ec || !v.is_object() || !v.as_object().contains("requestId"))
        return transport::json_error(400, "invalid_request", "requestId missing");
      auto log = server_->registry().get_or_create(v.at("requestId").as_string());
      if (!log) return transport::json_error(503, "too_many_streams", "limit");
      return routes.subscribe(req, *log);
    });
    server_->start();
  }
  void TearDown() override {
    if (server_) server_->shutdown();
  }
  std::uint16_t port() const { return server_->port(); }

  void publish(const std::string& id, const std::string& body, const std::string& query = "",
               const std::string& content_type = "application/x-ndjson") {
    auto r = test::request(port(), "POST", "/v1/streams/" + id + "/events" + query, body,
                           {{"Content-Type", content_type}});
    ASSERT_EQ(r.status(), 200) << r.body;
  }
  static std::string ndjson(int from, int to) {
    std::string b;
    for (int i = from; i <= to; ++i) b += "{\"n\":" + std::to_string(i) + "}\n";
    return b;
  }
  static std::string url(std::uint16_t port, const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(port) + path;
  }
  static client::sse_client_options options(std::string u) {
    client::sse_client_options o;
    o.url = std::move(u);
    o.backoff_base = 0ms;  // tests never wait on the clock
    o.jitter_seed = 1;
    return o;
  }
  // Events 1..n of the {"n":i} shape, each delivered exactly once, in order.
  static void expect_plain_sequence(const std::vector<received_event>& got, int from, int to) {
    ASSERT_EQ(got.size(), static_cast<std::size_t>(to - from + 1));
    for (int i = from; i <= to; ++i) {
      const auto& e = got[i - from];
      EXPECT_EQ(e.id, std::to_string(i));
      EXPECT_EQ(e.type, "message");
      EXPECT_EQ(e.data, "{\"n\":" + std::to_string(i) + "}");
      EXPECT_EQ(e.first, static_cast<std::uint64_t>(i));
      EXPECT_EQ(e.last, static_cast<std::uint64_t>(i));
    }
  }

  std::unique_ptr<transport::http_server> server_;
};

// ---------------------------------------------------------------------------
// The chaos test: a 10,000-event stream of plain events and delta runs, read
// through a proxy that cuts the connection after a random number of bytes,
// many times. The transcript must equal what was published: nothing lost,
// nothing repeated, in order (merged deltas compared by reassembled text).

struct published_event {
  std::string type, data;  // data as published (one ndjson line)
};

// Plain events as "P type data"; consecutive deltas of one message as one
// entry "D key: text" with their texts concatenated.
std::vector<std::string> transcript(const std::vector<std::pair<std::string, std::string>>& evs) {
  std::vector<std::string> out;
  std::string open_key;
  for (const auto& [type, data] : evs) {
    if (type != "delta") {
      out.push_back("P " + type + " " + data);
      open_key.clear();
      continue;
    }
    json::value v = json::parse(data);
    const std::string key(v.at("k").as_string());
    const std::string text(v.at("t").as_string());
    if (!open_key.empty() && open_key == key) {
      out.back() += text;
    } else {
      out.push_back("D " + key + ": " + text);
      open_key = key;
    }
  }
  return out;
}

class SseClientChaosTest : public SseClientTest, public ::testing::WithParamInterface<bool> {};

TEST_P(SseClientChaosTest, TenThousandEventsThroughACuttingProxyArriveExactlyOnce) {
  const bool gzip = GetParam();
  constexpr int total = 10'000;
  start_server();

  // Batches of 1..150 events: plain `step` events, or deltas of a message
  // (m1 first; sometimes the same message continues after a plain batch).
  std::mt19937 rng(20240601);
  std::vector<published_event> published;
  std::vector<std::pair<std::string, std::string>> batches;  // query, ndjson body
  std::string last_key;
  int messages = 0;
  while (static_cast<int>(published.size()) < total) {
    const int left = total - static_cast<int>(published.size());
    const int size = std::min<int>(left, std::uniform_int_distribution<int>(1, 150)(rng));
    const bool delta = rng() % 2 == 0;
    std::string query, body;
    if (delta) {
      const std::string key =
          (!last_key.empty() && rng() % 3 == 0) ? last_key : "m" + std::to_string(++messages);
      last_key = key;
      query = "?event=delta&delta=" + key + "&delta_field=t";
      for (int i = 0; i < size; ++i) {
        const std::size_t seq = published.size() + 1;
        // Multi-byte UTF-8, quotes and line breaks survive merging and cuts.
        std::string text = "δ" + std::to_string(seq) + (seq % 7 == 0 ? "\n\"q\"\\" : "") + " ";
        std::string line = "{\"t\":" + json::serialize(json::string(text)) + ",\"k\":\"" + key + "\"}";
        published.push_back({"delta", line});
        body += line + "\n";
      }
    } else {
      query = "?event=step";
      for (int i = 0; i < size; ++i) {
        std::string line = "{\"n\":" + std::to_string(published.size() + 1) + ",\"s\":\"plain\"}";
        published.push_back({"step", line});
        body += line + "\n";
      }
    }
    if (static_cast<int>(published.size()) == total) query += "&final=true";
    batches.emplace_back(std::move(query), std::move(body));
  }

  test::chaos_proxy_options po;
  po.upstream_port = port();
  po.seed = gzip ? 11 : 7;
  po.min_cut_bytes = 1;
  // A gzip body is several times smaller: smaller pieces keep the cut count up.
  po.max_cut_bytes = gzip ? 2 * 1024 : 12 * 1024;
  po.max_cuts = 2000;
  test::chaos_proxy proxy(po);
  proxy.start();

  // Half is published before the client connects (it reads from behind, so
  // deltas are merged), the rest while it reads.
  std::size_t b = 0;
  std::size_t count = 0;
  for (; b < batches.size() && count < total / 2; ++b) {
    publish("chaos", batches[b].second, batches[b].first);
    count += std::count(batches[b].second.begin(), batches[b].second.end(), '\n');
  }
  auto o = options(url(proxy.port(), "/v1/streams/chaos/events"));
  o.gzip = gzip;
  o.max_attempts = 50;
  client_run c(o);
  c.start();
  for (; b < batches.size(); ++b) publish("chaos", batches[b].second, batches[b].first);

  ASSERT_TRUE(c.wait_done()) << "the stream did not end; events so far: " << c.events().size();
  const auto statuses = c.statuses();
  ASSERT_EQ(statuses.back().first, sse_status::closed) << statuses.back().second;
  EXPECT_EQ(statuses.back().second, "stream ended (HTTP 204)");
  EXPECT_TRUE(c.errors().empty());

  const auto got = c.events();
  // Sequence coverage: 1..total, contiguous, no overlap.
  std::uint64_t next = 1;
  std::size_t merged = 0;
  for (const auto& e : got) {
    ASSERT_EQ(e.first, next) << "event id " << e.id;
    ASSERT_GE(e.last, e.first);
    ASSERT_EQ(e.id, std::to_string(e.last));
    if (e.last > e.first) ++merged;
    next = e.last + 1;
  }
  EXPECT_EQ(next, static_cast<std::uint64_t>(total + 1));

  std::vector<std::pair<std::string, std::string>> want, have;
  for (const auto& p : published) want.emplace_back(p.type, p.data);
  for (const auto& e : got) have.emplace_back(e.type, e.data);
  const auto want_t = transcript(want), have_t = transcript(have);
  ASSERT_EQ(have_t.size(), want_t.size());
  for (std::size_t i = 0; i < want_t.size(); ++i) ASSERT_EQ(have_t[i], want_t[i]) << "entry " << i;

  EXPECT_GT(merged, 0u) << "no delta run was merged: coalescing was not exercised";
  EXPECT_GE(proxy.cuts(), 20u);
  // The connections resumed with Last-Event-ID (all but those cut before the
  // first event was dispatched).
  const auto seen = proxy.connections_seen();
  const auto resumed = std::count_if(seen.begin(), seen.end(), [](const auto& c) {
    return c.from_client.find("\r\nLast-Event-ID: ") != std::string::npos;
  });
  EXPECT_GE(resumed, 20);
  std::printf("chaos (gzip=%d): %zu events (%zu merged) over %zu connections, %zu cuts\n", gzip,
              got.size(), merged, seen.size(), proxy.cuts());
}

INSTANTIATE_TEST_SUITE_P(Encodings, SseClientChaosTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Gzip" : "Identity"; });

// ---------------------------------------------------------------------------

TEST_F(SseClientTest, StreamEndsWith204AndStatusSequence) {
  start_server();
  publish("s", ndjson(1, 3), "?final=true");
  client_run c(options(url(port(), "/v1/streams/s/events")));
  c.start();
  ASSERT_TRUE(c.wait_done());
  expect_plain_sequence(c.events(), 1, 3);
  EXPECT_EQ(c.status_kinds(),
            (std::vector<sse_status>{sse_status::connecting, sse_status::open,
                                     sse_status::reconnecting, sse_status::connecting,
                                     sse_status::closed}));
  const auto st = c.statuses();
  EXPECT_EQ(st[0].second, "GET " + url(port(), "/v1/streams/s/events"));
  EXPECT_EQ(st[2].second.rfind("response ended", 0), 0u) << st[2].second;
  EXPECT_EQ(st[3].second, "GET " + url(port(), "/v1/streams/s/events") + " (Last-Event-ID: 3)");
  EXPECT_EQ(st[4].second, "stream ended (HTTP 204)");
  EXPECT_TRUE(c.errors().empty());

  // A client that already has the final event is closed at once.
  auto o = options(url(port(), "/v1/streams/s/events"));
  o.last_event_id = "3";
  client_run done(o);
  done.start();
  ASSERT_TRUE(done.wait_done());
  EXPECT_TRUE(done.events().empty());
  EXPECT_EQ(done.status_kinds(),
            (std::vector<sse_status>{sse_status::connecting, sse_status::closed}));
}

TEST_F(SseClientTest, StartsAfterTheGivenLastEventId) {
  start_server();
  publish("s", ndjson(1, 10), "?final=true");
  auto o = options(url(port(), "/v1/streams/s/events"));
  o.last_event_id = "6";
  client_run c(o);
  c.start();
  ASSERT_TRUE(c.wait_done());
  expect_plain_sequence(c.events(), 7, 10);
}

TEST_F(SseClientTest, ResumeWindowExceededReachesOnErrorAndStops) {
  start_server([](transport::server_config& c) { c.registry.retention.max_events = 10; });
  publish("w", ndjson(1, 50));  // events 41..50 are retained
  auto o = options(url(port(), "/v1/streams/w/events"));
  o.last_event_id = "5";
  client_run c(o);
  c.start();
  ASSERT_TRUE(c.wait_done());
  EXPECT_TRUE(c.events().empty());
  const auto errors = c.errors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].code, "resume_window_exceeded");
  EXPECT_EQ(errors[0].first_available, 41u);
  EXPECT_EQ(c.status_kinds(),
            (std::vector<sse_status>{sse_status::connecting, sse_status::open, sse_status::failed}));

  // A new reader is told the history is truncated (an event without an id,
  // delivered as it is), then gets 41..50; cancel() closes it.
  client_run fresh(options(url(port(), "/v1/streams/w/events")));
  fresh.start();
  ASSERT_TRUE(fresh.wait_events(11));
  auto got = fresh.events();
  EXPECT_EQ(got[0].id, "");
  EXPECT_EQ(got[0].type, "notice");
  EXPECT_EQ(got[0].data, R"({"code":"history_truncated","first_available":41})");
  EXPECT_EQ(got[0].first, 0u);
  got.erase(got.begin());
  expect_plain_sequence(got, 41, 50);
  fresh.cancel();
  ASSERT_TRUE(fresh.wait_done());
  EXPECT_EQ(fresh.statuses().back(), (std::pair<sse_status, std::string>{sse_status::closed, "cancelled"}));
  EXPECT_TRUE(fresh.errors().empty());
}

TEST_F(SseClientTest, StalledConnectionIsDroppedAndResumedWithLastEventId) {
  // No heartbeats from the server; the client gives up on silence quickly.
  start_server([](transport::server_config& c) { c.heartbeat_interval = std::chrono::hours(1); });
  test::chaos_proxy_options po;
  po.upstream_port = port();
  test::chaos_proxy proxy(po);  // a pass-through: it only records the requests
  proxy.set_cutting(false);
  proxy.start();

  publish("quiet", ndjson(1, 3));
  auto o = options(url(proxy.port(), "/v1/streams/quiet/events"));
  o.stall_timeout = 300ms;
  client_run c(o);
  c.start();
  ASSERT_TRUE(c.wait_events(3));
  ASSERT_TRUE(c.wait([&] {
    for (const auto& [s, d] : c.statuses_locked())
      if (s == sse_status::reconnecting && d.rfind("stalled", 0) == 0) return true;
    return false;
  }));
  // The next connection asked to resume after event 3.
  ASSERT_TRUE(c.wait(
      [&] {
        const auto seen = proxy.connections_seen();
        return seen.size() >= 2 && seen[1].from_client.find("\r\n\r\n") != std::string::npos;
      },
      30s));
  const auto seen = proxy.connections_seen();
  EXPECT_EQ(seen[0].from_client.find("Last-Event-ID"), std::string::npos);
  EXPECT_NE(seen[1].from_client.find("\r\nLast-Event-ID: 3\r\n"), std::string::npos)
      << seen[1].from_client;

  publish("quiet", ndjson(4, 4), "?final=true");
  ASSERT_TRUE(c.wait_done());
  expect_plain_sequence(c.events(), 1, 4);
  EXPECT_EQ(c.statuses().back().first, sse_status::closed);
}

TEST_F(SseClientTest, PostIsRetriedWithItsBodyAndLastEventId) {
  start_server();
  publish("r1", ndjson(1, 500), "?final=true");
  test::chaos_proxy_options po;
  po.upstream_port = port();
  po.seed = 3;
  po.min_cut_bytes = 200;
  po.max_cut_bytes = 1500;
  test::chaos_proxy proxy(po);
  proxy.start();

  auto o = options(url(proxy.port(), "/test/run"));
  o.method = "POST";
  o.body = R"({"requestId":"r1","query":"x"})";
  o.gzip = false;
  o.max_attempts = 50;
  client_run c(o);
  c.start();
  ASSERT_TRUE(c.wait_done());
  EXPECT_EQ(c.statuses().back().second, "stream ended (HTTP 204)");
  expect_plain_sequence(c.events(), 1, 500);
  EXPECT_GE(proxy.cuts(), 3u);
  const auto seen = proxy.connections_seen();
  ASSERT_GE(seen.size(), 4u);
  for (std::size_t i = 0; i < seen.size(); ++i) {
    const std::string& req = seen[i].from_client;
    EXPECT_EQ(req.rfind("POST /test/run HTTP/1.1\r\n", 0), 0u) << req;
    EXPECT_NE(req.find("Content-Type: application/json\r\n"), std::string::npos) << req;
    EXPECT_EQ(req.substr(req.size() - o.body.size()), o.body) << req;
    EXPECT_EQ(req.find("Last-Event-ID") != std::string::npos, i > 0) << req;
  }
}

TEST_F(SseClientTest, GzipResponseIsDecodedIncrementally) {
  start_server();
  publish("g", ndjson(1, 200), "?final=true");
  for (bool gzip : {true, false}) {
    test::chaos_proxy_options po;
    po.upstream_port = port();
    test::chaos_proxy proxy(po);
    proxy.set_cutting(false);
    proxy.start();
    auto o = options(url(proxy.port(), "/v1/streams/g/events"));
    o.gzip = gzip;
    client_run c(o);
    c.start();
    ASSERT_TRUE(c.wait_done());
    expect_plain_sequence(c.events(), 1, 200);
    const auto seen = proxy.connections_seen();
    ASSERT_FALSE(seen.empty());
    std::string head = seen[0].from_server.substr(0, seen[0].from_server.find("\r\n\r\n"));
    std::transform(head.begin(), head.end(), head.begin(), ::tolower);
    EXPECT_EQ(head.find("content-encoding: gzip") != std::string::npos, gzip) << head;
    EXPECT_EQ(seen[0].from_client.find("Accept-Encoding: gzip") != std::string::npos, gzip);
    EXPECT_EQ(c.statuses()[1].second, gzip ? "HTTP 200, gzip" : "HTTP 200");
  }
}

TEST_F(SseClientTest, HttpErrorReachesOnErrorWithTheServersCode) {
  start_server();
  publish("e", ndjson(1, 3));
  auto o = options(url(port(), "/v1/streams/e/events"));
  o.last_event_id = "999";
  client_run c(o);
  c.start();
  ASSERT_TRUE(c.wait_done());
  const auto errors = c.errors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].code, "unknown_last_event_id");
  EXPECT_EQ(errors[0].http_status, 409u);
  EXPECT_FALSE(errors[0].message.empty());
  EXPECT_EQ(c.status_kinds(), (std::vector<sse_status>{sse_status::connecting, sse_status::failed}));
}

TEST_F(SseClientTest, UnreachableServerFailsAfterMaxAttempts) {
  // A port that was just free: connections are refused.
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  const std::uint16_t dead = a.local_endpoint().port();
  a.close();
  auto o = options(url(dead, "/v1/streams/x/events"));
  o.max_attempts = 3;
  client_run c(o);
  c.start();
  ASSERT_TRUE(c.wait_done());
  const auto errors = c.errors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].code, "attempts_exhausted");
  EXPECT_EQ(c.status_kinds(),
            (std::vector<sse_status>{sse_status::connecting, sse_status::reconnecting,
                                     sse_status::connecting, sse_status::reconnecting,
                                     sse_status::connecting, sse_status::failed}));
}

TEST_F(SseClientTest, InvalidUrlFails) {
  client_run c(options("ftp://example.com/x"));
  c.start();
  ASSERT_TRUE(c.wait_done());
  ASSERT_EQ(c.errors().size(), 1u);
  EXPECT_EQ(c.errors()[0].code, "invalid_url");
  EXPECT_EQ(c.status_kinds(), (std::vector<sse_status>{sse_status::failed}));
}

}  // namespace
}  // namespace sluice
