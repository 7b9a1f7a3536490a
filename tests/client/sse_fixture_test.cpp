// The byte-exact event-stream fixtures (sse_fixtures.hpp) through the C++
// sse_client and through `sluice watch --json`, against a real socket server
// on 127.0.0.1 that writes each fixture's bytes in several chunkings (one
// write per piece, Nagle off), ends the response, and answers the client's
// reconnection with 204 (the stream is over). Asserted: every dispatched
// event (type, data, lastEventId, the block's own id), and the Last-Event-ID
// the client resumes with (the final "last event ID string").
//
// Every wait is bounded and on a condition (the client's terminal status, the
// process's exit); nothing sleeps.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "client/recording_server.hpp"
#include "client/sse_client.hpp"
#include "client/sse_fixtures.hpp"

namespace sluice {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using test::sse_fixture;

// Serves one fixture: the first request gets the bytes (in the given pieces)
// as a close-delimited text/event-stream body, every later one 204.
class fixture_server : public test::recording_server {
 public:
  explicit fixture_server(std::vector<std::string> pieces)
      : recording_server([pieces = std::move(pieces)](const test::seen_request&,
                                                      std::size_t index) {
          if (index > 0) return std::vector<std::string>{std::string(test::no_content_response)};
          std::vector<std::string> out{
              "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"};
          out.insert(out.end(), pieces.begin(), pieces.end());
          return out;
        }) {}
};

// The chunkings each fixture is written in: whole, one byte per write (small
// fixtures), and odd sizes that cut CRLF pairs, BOMs and UTF-8 sequences.
std::vector<std::size_t> chunkings(const sse_fixture& f) {
  if (f.bytes.size() > 4096) return {0, 4093};
  return {0, 1, 5};
}

std::string fixture_url(unsigned short port) {
  return "http://127.0.0.1:" + std::to_string(port) + "/fixture";
}

void expect_resumed_with(const fixture_server& server, const sse_fixture& f) {
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u) << "one response with the fixture, one reconnection (204)";
  EXPECT_EQ(requests[0].headers.count("last-event-id"), 0u);
  const auto it = requests[1].headers.find("last-event-id");
  // An HTTP field value has no leading or trailing whitespace (RFC 9110
  // 5.5; Beast trims it, as servers do): an id " sp" resumes as "sp", for
  // browsers as well.
  std::string_view expected = f.final_last_event_id;
  while (!expected.empty() && (expected.front() == ' ' || expected.front() == '\t'))
    expected.remove_prefix(1);
  while (!expected.empty() && (expected.back() == ' ' || expected.back() == '\t'))
    expected.remove_suffix(1);
  if (f.final_last_event_id.empty()) {
    EXPECT_EQ(it, requests[1].headers.end()) << "no Last-Event-ID after the id was reset";
  } else {
    ASSERT_NE(it, requests[1].headers.end());
    EXPECT_EQ(it->second, expected);
  }
}

struct client_event {
  std::string type, data, last_event_id;
  std::optional<std::string> own_id;
};

class SseFixtureTest : public ::testing::TestWithParam<std::size_t> {
 protected:
  const sse_fixture& fixture() const { return test::sse_fixtures().at(GetParam()); }
};

TEST_P(SseFixtureTest, SseClientDispatchesExactly) {
  const sse_fixture& f = fixture();
  for (std::size_t piece : chunkings(f)) {
    SCOPED_TRACE("pieces of " + std::to_string(piece));
    fixture_server server(test::chunked(f.bytes, piece));
    client::sse_client_options o;
    o.url = fixture_url(server.port());
    o.backoff_base = std::chrono::milliseconds(0);  // reconnect at once
    o.max_attempts = 3;
    net::io_context io(1);
    client::sse_client c(io.get_executor(), o);
    std::vector<client_event> events;
    std::optional<client::sse_status> end;
    c.on_event([&](const client::sse_client_event& e) {
      events.push_back(
          {std::string(e.type), std::string(e.data), std::string(e.last_event_id),
           e.has_own_id ? std::optional<std::string>(std::string(e.own_id)) : std::nullopt});
      EXPECT_TRUE(e.has_own_id || e.own_id.empty());
    });
    std::string last_detail;
    c.on_status([&](client::sse_status s, std::string_view detail) {
      last_detail = detail;
      if (s == client::sse_status::closed || s == client::sse_status::failed) end = s;
    });
    c.start();
    // Bounded: a client that does not end within the limit fails the test.
    io.run_for(std::chrono::seconds(60));
    ASSERT_EQ(end, client::sse_status::closed) << last_detail;
    ASSERT_EQ(events.size(), f.events.size());
    for (std::size_t i = 0; i < events.size(); ++i) {
      SCOPED_TRACE("event " + std::to_string(i));
      EXPECT_EQ(events[i].type, f.events[i].type);
      EXPECT_EQ(events[i].data, f.events[i].data);
      EXPECT_EQ(events[i].last_event_id, f.events[i].last_event_id);
      EXPECT_EQ(events[i].own_id, f.events[i].own_id);
    }
    expect_resumed_with(server, f);
  }
}

std::string json_string(std::string_view s) {
  return boost::json::serialize(boost::json::string(s));
}

// What `sluice watch --json` must print for the fixture: one line per
// dispatched event, "id" being the event's lastEventId.
std::string expected_watch_output(const sse_fixture& f) {
  std::string out;
  for (const auto& e : f.events)
    out += "{\"id\":" + json_string(e.last_event_id) + ",\"event\":" + json_string(e.type) +
           ",\"data\":" + json_string(e.data) + "}\n";
  return out;
}

// Runs the command, returning its stdout and exit status.
std::pair<std::string, int> run(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return {"", -1};
  std::array<char, 65536> buf;
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = ::pclose(p);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

TEST_P(SseFixtureTest, WatchJsonPrintsLastEventId) {
  const sse_fixture& f = fixture();
  for (std::size_t piece : {std::size_t{0}, f.bytes.size() > 4096 ? std::size_t{4093} : 1}) {
    SCOPED_TRACE("pieces of " + std::to_string(piece));
    fixture_server server(test::chunked(f.bytes, piece));
    // `timeout` bounds the run; --backoff-base-ms 0 reconnects at once.
    const auto [out, code] = run("timeout 60 " SLUICE_BIN " watch --json --backoff-base-ms 0 " +
                                 fixture_url(server.port()) + " 2>/dev/null");
    EXPECT_EQ(code, 0);
    EXPECT_EQ(out, expected_watch_output(f));
    expect_resumed_with(server, f);
  }
}

// The delay the client chose, as its reconnecting status says it ("...; next
// attempt in N ms"): after `retry: 150` from the server the first
// reconnection waits at least 150 ms (and at most twice that); a failed
// attempt doubles the window. No clock is read: the chosen delays are.
TEST(SseClientRetry, ServerRetryIsTheLowerBoundOfTheDelays) {
  test::recording_server server([](const test::seen_request&, std::size_t index) {
    if (index == 0)
      return std::vector<std::string>{
          "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
          "retry: 150\ndata: x\n\n"};
    if (index == 1) return std::vector<std::string>{};  // closed without a response: failed
    return std::vector<std::string>{std::string(test::no_content_response)};
  });
  client::sse_client_options o;
  o.url = fixture_url(server.port());
  o.backoff_base = std::chrono::milliseconds(5000);  // replaced by the server's retry:
  net::io_context io(1);
  client::sse_client c(io.get_executor(), o);
  std::vector<long long> delays;
  std::optional<client::sse_status> end;
  c.on_status([&](client::sse_status s, std::string_view detail) {
    if (s == client::sse_status::reconnecting) {
      const auto at = detail.rfind("next attempt in ");
      ASSERT_NE(at, std::string_view::npos) << detail;
      delays.push_back(std::stoll(std::string(detail.substr(at + 16))));
    }
    if (s == client::sse_status::closed || s == client::sse_status::failed) end = s;
  });
  c.start();
  io.run_for(std::chrono::seconds(60));
  ASSERT_EQ(end, client::sse_status::closed);
  ASSERT_EQ(delays.size(), 2u);
  EXPECT_GE(delays[0], 150);  // after the open response: [retry, 2 * retry]
  EXPECT_LE(delays[0], 300);
  EXPECT_GE(delays[1], 300);  // after one failed attempt: [2 * retry, 4 * retry]
  EXPECT_LE(delays[1], 600);
}

// An id too long to go back as a header: the event is dispatched with it,
// then the client stops with a clear error instead of throwing or retrying.
TEST(SseClientRetry, IdTooLongToResumeWithStopsClearly) {
  const std::string id(20'000, 'i');
  test::recording_server server([&id](const test::seen_request&, std::size_t index) {
    if (index == 0)
      return std::vector<std::string>{
          "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\nid: " +
          id + "\ndata: x\n\n"};
    return std::vector<std::string>{std::string(test::no_content_response)};
  });
  client::sse_client_options o;
  o.url = fixture_url(server.port());
  o.backoff_base = std::chrono::milliseconds(0);
  net::io_context io(1);
  client::sse_client c(io.get_executor(), o);
  std::vector<std::string> ids;
  std::vector<std::string> codes;
  std::optional<client::sse_status> end;
  c.on_event([&](const client::sse_client_event& e) { ids.emplace_back(e.last_event_id); });
  c.on_error([&](const client::sse_client_error& e) { codes.push_back(e.code); });
  c.on_status([&](client::sse_status s, std::string_view) {
    if (s == client::sse_status::closed || s == client::sse_status::failed) end = s;
  });
  c.start();
  io.run_for(std::chrono::seconds(60));
  EXPECT_EQ(end, client::sse_status::failed);
  EXPECT_EQ(ids, std::vector<std::string>{id});
  EXPECT_EQ(codes, std::vector<std::string>{"last_event_id_too_long"});
  EXPECT_EQ(server.requests().size(), 1u);
}

std::string fixture_name(const ::testing::TestParamInfo<std::size_t>& info) {
  return test::sse_fixtures().at(info.param).name;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, SseFixtureTest,
                         ::testing::Range(std::size_t{0}, test::sse_fixtures().size()),
                         fixture_name);

// The fixtures' own consistency: a block's own id is always its lastEventId.
TEST(SseFixtures, OwnIdIsTheLastEventId) {
  std::size_t inherited = 0;
  for (const auto& f : test::sse_fixtures()) {
    for (const auto& e : f.events) {
      if (e.own_id) {
        EXPECT_EQ(*e.own_id, e.last_event_id) << f.name;
      }
      if (!e.own_id && !e.last_event_id.empty()) ++inherited;
    }
  }
  // Events whose lastEventId comes from an earlier block: where printing the
  // block's own id instead would be wrong.
  EXPECT_GE(inherited, 10u);
}

}  // namespace
}  // namespace sluice
