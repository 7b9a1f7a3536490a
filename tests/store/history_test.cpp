// History older than memory keeps, served from the durable log's files, on
// real sockets (SSE and WebSocket) with a real http_server and a real store
// on real files: new readers and resumes at the start, in the middle of the
// disk part, exactly at memory's boundary and in memory get the exact
// transcript; also while the stream is still being published, after a
// restart, after the memory budget's eviction, and at the disk horizon.
// No sleeps: every wait is a read with a deadline.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/json/parse.hpp>
#include <filesystem>
#include <thread>

#include "store/durable_log.hpp"
#include "support/test_client.hpp"
#include "transport/http_server.hpp"
#include "ws/ws_test_client.hpp"

namespace sluice {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

std::string data_of(std::uint64_t i) {
  return "{\"n\":" + std::to_string(i) + ",\"pad\":\"history\"}";
}

struct temp_dir {
  fs::path path;
  temp_dir() {
    char tmpl[] = "/tmp/sluice_history_XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

class HistoryTest : public ::testing::Test {
 protected:
  static constexpr std::size_t memory_events = 200;

  void start(std::size_t memory_budget = 0) {
    transport::server_config c;
    c.port = 0;
    c.threads = 2;
    c.registry.retention = {memory_events, 1u << 20};
    c.registry.memory_budget_bytes = memory_budget;
    server_ = std::make_unique<transport::http_server>(c);
    store_ = std::make_shared<store::durable_log>(dc_);
    recovered_ = store_->recover(server_->registry());
    server_->start();
  }
  void stop() {
    if (server_) server_->shutdown();
    server_.reset();
    store_.reset();  // the registry held it too: written and synced once both are gone
  }
  void TearDown() override { stop(); }
  std::uint16_t port() const { return server_->port(); }
  core::stream_registry& registry() { return server_->registry(); }

  // Publishes events from..to (data_of), the last one final when `final`.
  void publish(const std::string& id, std::uint64_t from, std::uint64_t to, bool final) {
    auto log = registry().get_or_create(id).value();
    for (std::uint64_t i = from; i <= to; ++i) {
      const auto out = log->publish("message", data_of(i), final && i == to);
      ASSERT_EQ(out.status, core::publish_status::ok);
      ASSERT_EQ(out.first_sequence, i);
    }
  }

  // An SSE read of the stream from `last_event_id` (empty: a new reader) to
  // its end.
  std::vector<test::recorded_event> read_sse(const std::string& id,
                                             const std::string& last_event_id) {
    test::http_connection c(port());
    std::vector<std::pair<std::string, std::string>> headers;
    if (!last_event_id.empty()) headers.emplace_back("Last-Event-ID", last_event_id);
    c.send_request("GET", "/v1/streams/" + id + "/events", "", headers);
    test::sse_reader r(c);
    EXPECT_EQ(r.head().status, 200);
    EXPECT_TRUE(r.read_to_end());
    return r.events;
  }

  // Checks events are exactly from..to (data_of), the last one final.
  static void expect_exact(const std::vector<test::recorded_event>& events, std::uint64_t from,
                           std::uint64_t to) {
    ASSERT_EQ(events.size(), to - from + 1);
    for (std::uint64_t i = from; i <= to; ++i) {
      const auto& e = events[i - from];
      ASSERT_EQ(e.id, std::to_string(i));
      ASSERT_EQ(e.data, data_of(i));
      ASSERT_EQ(e.type, "message");
    }
  }

  // A WebSocket subscription from `last_event_id` (0: a new reader) to "end";
  // returns the event frames' ids after checking each frame's exact bytes.
  std::vector<std::uint64_t> read_ws(const std::string& id, std::uint64_t last_event_id,
                                     bool resume) {
    test::ws_connection c(port());
    json::object sub{{"op", "subscribe"}, {"stream", id}};
    if (resume) sub["lastEventId"] = last_event_id;
    c.send(sub);
    std::vector<std::uint64_t> ids;
    for (;;) {
      const std::string m = c.read_text();
      json::object o = json::parse(m).as_object();
      if (auto* op = o.if_contains("op")) {
        if (*op == "end") break;
        if (*op == "subscribed" || *op == "notice") continue;
        ADD_FAILURE() << "unexpected " << m;
        break;
      }
      const std::uint64_t n = o.at("id").to_number<std::uint64_t>();
      EXPECT_EQ(m, "{\"stream\":\"" + id + "\",\"id\":" + std::to_string(n) +
                       ",\"event\":\"message\",\"data\":" + data_of(n) + "}");
      ids.push_back(n);
    }
    return ids;
  }
  static std::vector<std::uint64_t> range(std::uint64_t from, std::uint64_t to) {
    std::vector<std::uint64_t> v;
    for (std::uint64_t i = from; i <= to; ++i) v.push_back(i);
    return v;
  }

  // Resumes at every interesting point, by SSE and WebSocket.
  void check_readers(const std::string& id, std::uint64_t last) {
    const core::stream_status st = registry().find(id)->status();
    ASSERT_EQ(st.first_sequence, 1u);  // the whole history is available (from disk)
    // Memory keeps only its bounded tail.
    const auto mem = registry().find(id);
    std::uint64_t mem_first = 0;
    {
      // The first event memory holds: a reader at it needs no disk.
      const core::stream_status s = mem->status();
      ASSERT_LE(s.retained_events, memory_events);
      mem_first = s.last_sequence - s.retained_events + 1;
    }
    ASSERT_GT(mem_first, 1000u);
    // New reader: everything, no history_truncated notice.
    expect_exact(read_sse(id, ""), 1, last);
    EXPECT_EQ(read_ws(id, 0, false), range(1, last));
    for (std::uint64_t after : {std::uint64_t{0}, std::uint64_t{1}, last / 2, last / 2 + 7,
                                mem_first - 2, mem_first - 1, mem_first, last - 1}) {
      SCOPED_TRACE("Last-Event-ID " + std::to_string(after));
      expect_exact(read_sse(id, std::to_string(after)), after + 1, last);
      EXPECT_EQ(read_ws(id, after, true), range(after + 1, last));
    }
  }

  temp_dir dir_;
  store::durable_config dc_{.dir = dir_.path};
  std::unique_ptr<transport::http_server> server_;
  std::shared_ptr<store::durable_log> store_;
  store::recovery_stats recovered_;
};

TEST_F(HistoryTest, LongStreamIsReplayedFromDiskExactlyAndMemoryStaysBounded) {
  dc_.segment_bytes = 256u << 10;  // several files, several index points each
  start();
  constexpr std::uint64_t n = 50'000;
  publish("long", 1, n, true);
  store_->flush();
  // Memory holds the tail only: the registry's retained-bytes figure.
  const core::stream_status st = registry().find("long")->status();
  EXPECT_EQ(st.retained_events, memory_events);
  EXPECT_EQ(registry().memory_used(), static_cast<std::int64_t>(st.retained_bytes));
  EXPECT_LT(registry().memory_used(), 20'000);
  check_readers("long", n);
  // Reading did not pull the run into memory.
  EXPECT_EQ(registry().memory_used(), static_cast<std::int64_t>(st.retained_bytes));

  // After a restart: the same from the files.
  stop();
  start();
  EXPECT_EQ(recovered_.streams, 1u);
  EXPECT_EQ(recovered_.events, n);
  EXPECT_LT(registry().memory_used(), 20'000);
  check_readers("long", n);
}

TEST_F(HistoryTest, ReaderBehindMemoryContinuesIntoLiveEventsWhilePublishing) {
  start();
  constexpr std::uint64_t n = 30'000;
  publish("live", 1, 10'000, false);
  // Readers from the start while 20,000 more events are published (the
  // writer's rounds, the unwritten tail and memory all take turns).
  test::http_connection sse(port());
  sse.send_request("GET", "/v1/streams/live/events", "", {{"Last-Event-ID", "0"}});
  test::sse_reader reader(sse);
  ASSERT_EQ(reader.head().status, 200);
  std::vector<std::uint64_t> ws_ids;
  std::thread ws_thread([&] { ws_ids = read_ws("live", 0, true); });
  std::thread producer([&] { publish("live", 10'001, n, true); });
  EXPECT_TRUE(reader.read_to_end());
  producer.join();
  ws_thread.join();
  expect_exact(reader.events, 1, n);
  EXPECT_EQ(ws_ids, range(1, n));
}

TEST_F(HistoryTest, FinishedStreamEvictedByTheMemoryBudgetStaysReplayableFromDisk) {
  start(/*memory_budget=*/1u << 20);
  publish("evicted", 1, 5'000, true);
  publish("other", 1, 100, true);
  store_->flush();
  const std::int64_t before = registry().memory_used();
  EXPECT_GE(registry().evict_finished(0), 1u);
  // Kept in the registry with its final event only; the rest is on disk.
  auto log = registry().find("evicted");
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->status().retained_events, 1u);
  EXPECT_LT(registry().memory_used(), before);
  expect_exact(read_sse("evicted", ""), 1, 5'000);
  expect_exact(read_sse("evicted", "4998"), 4'999, 5'000);
  EXPECT_EQ(read_ws("evicted", 2'500, true), range(2'501, 5'000));
  EXPECT_EQ(log->status().retained_events, 1u);
  // And after a restart.
  stop();
  start(1u << 20);
  expect_exact(read_sse("evicted", "10"), 11, 5'000);
}

TEST_F(HistoryTest, ResumeBeforeTheDiskHorizonIsTold) {
  dc_.segment_bytes = 8u << 10;
  dc_.disk_retention = {1'000, 1u << 30};
  start();
  constexpr std::uint64_t n = 5'000;
  publish("short", 1, n, true);
  store_->flush();
  const std::uint64_t first = registry().find("short")->status().first_sequence;
  // Disk keeps about 1,000 events (whole files), more than memory's 200.
  ASSERT_GT(first, 1u);
  ASSERT_LE(first, n - 1'000 + 1);
  ASSERT_LT(first, n - memory_events);
  // A resume behind the horizon: resume_window_exceeded with the horizon.
  {
    test::http_connection c(port());
    c.send_request("GET", "/v1/streams/short/events", "", {{"Last-Event-ID", "5"}});
    test::sse_reader r(c);
    ASSERT_TRUE(r.read_to_end());
    ASSERT_EQ(r.events.size(), 1u);
    EXPECT_EQ(r.events[0].type, "error");
    const auto o = json::parse(r.events[0].data).as_object();
    EXPECT_EQ(o.at("code"), "resume_window_exceeded");
    EXPECT_EQ(o.at("first_available").to_number<std::uint64_t>(), first);
  }
  {
    test::ws_connection c(port());
    c.send(json::object{{"op", "subscribe"}, {"stream", "short"}, {"lastEventId", 5}});
    json::object o;
    do o = c.read();
    while (o.at("op") == "subscribed");
    EXPECT_EQ(o.at("code"), "resume_window_exceeded");
    EXPECT_EQ(o.at("first_available").to_number<std::uint64_t>(), first);
  }
  // A new reader is told history_truncated and gets everything from the horizon.
  {
    test::http_connection c(port());
    c.send_request("GET", "/v1/streams/short/events");
    test::sse_reader r(c);
    ASSERT_TRUE(r.read_to_end());
    ASSERT_GE(r.events.size(), 1u);
    EXPECT_EQ(r.events[0].type, "notice");
    EXPECT_EQ(json::parse(r.events[0].data).at("first_available").to_number<std::uint64_t>(),
              first);
    r.events.erase(r.events.begin());
    expect_exact(r.events, first, n);
  }
  // At the horizon itself: exact.
  expect_exact(read_sse("short", std::to_string(first - 1)), first, n);
}

}  // namespace
}  // namespace sluice
