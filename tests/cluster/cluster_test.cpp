// Two nodes and one Redis (docs/scaling.md): real `sluice serve --redis`
// child processes on 127.0.0.1 port 0 and a real redis-server started by the
// test. Publish on A, read live on B (SSE and WebSocket); resume on B with a
// Last-Event-ID from A; status from Redis; no fork between nodes; a run
// started on A, attached on B by requestId and cancelled from B; A killed
// with SIGKILL mid-run (readers on B get producer_lost); Redis stopped
// (503 store_unavailable, heartbeats go on) and restarted with AOF (nothing
// acknowledged lost, publishing resumes). Exact transcripts; no sleeps as
// synchronisation (every wait is on a condition with a bounded deadline).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "redis/redis_server_process.hpp"
#include "support/test_client.hpp"
#include "ws/ws_test_client.hpp"

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace sluice::test;
using sluice::redis::testing::redis_server_available;
using sluice::redis::testing::redis_server_options;
using sluice::redis::testing::redis_server_process;

namespace {

struct temp_dir {
  fs::path path;
  temp_dir() {
    char tmpl[] = "/tmp/sluice-cluster-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A `sluice serve --redis` child; its output is drained by a thread (the
// port is read from the "listening" line).
class node_process {
 public:
  node_process(const std::string& redis_url, const std::string& node_id, const fs::path& work,
               std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {SLUICE_BINARY,
                                     "serve",
                                     "--host",
                                     "127.0.0.1",
                                     "--port",
                                     "0",
                                     "--threads",
                                     "2",
                                     "--redis",
                                     redis_url,
                                     "--node-id",
                                     node_id,
                                     "--index",
                                     (work / ("index-" + node_id + ".db")).string(),
                                     "--corpus",
                                     SLUICE_DOCS,
                                     "--web-root",
                                     "/nonexistent",
                                     "--max-connections-per-ip",
                                     "0",
                                     "--max-streams-per-subject",
                                     "0",
                                     "--log-level",
                                     "info"};
    args.insert(args.end(), extra.begin(), extra.end());
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fds[1], 1);
      ::dup2(fds[1], 2);
      ::close(fds[0]);
      ::close(fds[1]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(SLUICE_BINARY, argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    fd_ = fds[0];
    drain_ = std::thread([this] {
      char buf[4096];
      for (;;) {
        const ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n <= 0) break;
        std::lock_guard l(m_);
        output_.append(buf, static_cast<std::size_t>(n));
        constexpr std::string_view marker = "listening on http://127.0.0.1:";
        const auto at = output_.find(marker);
        if (port_ == 0 && at != std::string::npos) {
          const auto start = at + marker.size();
          const auto end = output_.find_first_not_of("0123456789", start);
          if (end != std::string::npos) {
            port_ = static_cast<std::uint16_t>(std::stoi(output_.substr(start, end - start)));
            cv_.notify_all();
          }
        }
      }
      std::lock_guard l(m_);
      closed_ = true;
      cv_.notify_all();
    });
    std::unique_lock l(m_);
    if (!cv_.wait_for(l, std::chrono::seconds(60), [&] { return port_ != 0 || closed_; }) ||
        port_ == 0)
      throw std::runtime_error("the node did not start: " + output_);
  }
  ~node_process() {
    kill(SIGKILL);
    drain_.join();
    ::close(fd_);
  }
  void kill(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  std::uint16_t port() const { return port_; }
  std::string output() {
    std::lock_guard l(m_);
    return output_;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::thread drain_;
  std::mutex m_;
  std::condition_variable cv_;
  std::string output_;
  std::uint16_t port_ = 0;
  bool closed_ = false;
};

const std::vector<std::pair<std::string, std::string>> json_ct = {
    {"Content-Type", "application/json"}};

http_response publish(std::uint16_t port, const std::string& stream, const std::string& body,
                      const std::string& query = "") {
  return request(port, "POST", "/v1/streams/" + stream + "/events" + query, body, json_ct);
}

std::string n(int i) {
  return "{\"n\":" + std::to_string(i) + "}";
}

// Events of a stream published from outside: ids "<seq>-<epoch>", the
// stream's Redis epoch.
std::vector<recorded_event> expected(int from, int to, const std::string& epoch) {
  std::vector<recorded_event> v;
  for (int i = from; i <= to; ++i) v.push_back({std::to_string(i) + "-" + epoch, "message", n(i)});
  return v;
}

// The epoch of an id "<seq>-<epoch>" ("" for a bare sequence).
std::string epoch_of(const std::string& id) {
  const auto dash = id.find('-');
  return dash == std::string::npos ? std::string() : id.substr(dash + 1);
}

// The whole stream as a new reader on `port` sees it.
std::vector<recorded_event> read_all(std::uint16_t port, const std::string& stream,
                                     const std::string& last_event_id = "") {
  http_connection c(port);
  std::vector<std::pair<std::string, std::string>> h;
  if (!last_event_id.empty()) h.emplace_back("Last-Event-ID", last_event_id);
  c.send_request("GET", "/v1/streams/" + stream + "/events", "", h);
  sse_reader r(c);
  EXPECT_EQ(r.head().status, 200);
  r.read_to_end();
  return r.events;
}

json::object parse_object(const std::string& s) {
  boost::system::error_code ec;
  auto v = json::parse(s, ec);
  if (ec || !v.is_object()) return {};
  return v.as_object();
}

class Cluster : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!redis_server_available()) GTEST_SKIP() << "redis-server is not installed";
  }
  std::unique_ptr<redis_server_process> redis_;
  temp_dir work_;

  void start_redis(bool aof = false) {
    redis_server_options o;
    o.appendonly = aof;
    redis_ = std::make_unique<redis_server_process>(o);
    redis_->start();
  }
};

TEST_F(Cluster, PublishOnAReadOnBLiveResumeStatusAndNoFork) {
  start_redis();
  node_process a(redis_->url(), "node-a", work_.path);
  node_process b(redis_->url(), "node-b", work_.path);

  // Readers on B before anything exists: SSE and WebSocket.
  http_connection live(b.port());
  live.send_request("GET", "/v1/streams/s1/events");
  sse_reader r(live);
  ASSERT_EQ(r.head().status, 200);
  ws_connection w(b.port());
  w.send(R"({"op":"subscribe","stream":"s1"})");

  for (int i = 1; i <= 3; ++i) {
    auto p = publish(a.port(), "s1", n(i), i == 3 ? "?final=true" : "");
    ASSERT_EQ(p.status(), 200) << p.body;
    EXPECT_EQ(p.body, "{\"sequence\":" + std::to_string(i) + "}");
  }
  ASSERT_TRUE(r.read_to_end());
  ASSERT_EQ(r.events.size(), 3u);
  // Redis gave the stream an epoch; every node's ids carry it.
  const std::string epoch = epoch_of(r.events[0].id);
  EXPECT_EQ(epoch.size(), 16u) << r.events[0].id;
  EXPECT_EQ(r.events, expected(1, 3, epoch));

  std::vector<std::string> frames;
  for (;;) {
    auto o = parse_object(w.read_text());
    if (o.if_contains("op") && o.at("op") == "end") break;
    if (!o.if_contains("id")) continue;  // (control replies)
    frames.push_back(std::string(o.at("stream").as_string()) + "#" +
                     std::to_string(o.at("id").to_number<std::uint64_t>()) + "#" +
                     (o.if_contains("epoch") ? std::string(o.at("epoch").as_string()) : "") + "#" +
                     json::serialize(o.at("data")));
  }
  EXPECT_EQ(frames,
            (std::vector<std::string>{"s1#1#" + epoch + "#" + n(1), "s1#2#" + epoch + "#" + n(2),
                                      "s1#3#" + epoch + "#" + n(3)}));

  // Resume on B with what a reader of A last saw; and on A from B's id.
  EXPECT_EQ(read_all(b.port(), "s1", "1-" + epoch), expected(2, 3, epoch));
  EXPECT_EQ(read_all(a.port(), "s1", "2-" + epoch), expected(3, 3, epoch));
  auto past =
      request(b.port(), "GET", "/v1/streams/s1/events", "", {{"Last-Event-ID", "9-" + epoch}});
  EXPECT_EQ(past.status(), 409);
  EXPECT_NE(past.body.find("unknown_last_event_id"), std::string::npos) << past.body;
  // An id of another history (here: no epoch) is refused, not continued.
  auto other = request(b.port(), "GET", "/v1/streams/s1/events", "", {{"Last-Event-ID", "1"}});
  EXPECT_EQ(other.status(), 409);
  EXPECT_NE(other.body.find("history_truncated"), std::string::npos) << other.body;
  auto done =
      request(b.port(), "GET", "/v1/streams/s1/events", "", {{"Last-Event-ID", "3-" + epoch}});
  EXPECT_EQ(done.status(), 204);

  // Status from Redis on either node; publishing after the end is refused.
  for (auto port : {a.port(), b.port()}) {
    auto st = request(port, "GET", "/v1/streams/s1");
    ASSERT_EQ(st.status(), 200) << st.body;
    auto o = parse_object(st.body);
    EXPECT_EQ(o.at("state"), "finished");
    EXPECT_EQ(o.at("last_sequence").to_number<std::uint64_t>(), 3u);
    // The retained window, also on a node that does not mirror the stream.
    EXPECT_EQ(o.at("first_sequence").to_number<std::uint64_t>(), 1u) << st.body;
    EXPECT_EQ(o.at("retained_events").to_number<std::uint64_t>(), 3u) << st.body;
  }
  auto ended = publish(b.port(), "s1", n(4));
  EXPECT_EQ(ended.status(), 409);
  EXPECT_NE(ended.body.find("stream_ended"), std::string::npos);
  EXPECT_EQ(request(b.port(), "GET", "/v1/streams/nope").status(), 404);

  // Both nodes publishing into one stream at once never fork it: every
  // sequence once, each node's own events in its order.
  std::vector<std::uint64_t> seq_a, seq_b;
  auto pub = [](std::uint16_t port, int node, std::vector<std::uint64_t>& out) {
    http_connection c(port);
    for (int i = 0; i < 40; ++i) {
      c.send_request("POST", "/v1/streams/s2/events",
                     "{\"node\":" + std::to_string(node) + ",\"i\":" + std::to_string(i) + "}",
                     json_ct);
      if (c.read_head().status != 200) return;
      auto body = c.read_body_to_end();
      out.push_back(std::strtoull(body.c_str() + body.find(':') + 1, nullptr, 10));
    }
  };
  std::thread ta([&] { pub(a.port(), 0, seq_a); });
  std::thread tb([&] { pub(b.port(), 1, seq_b); });
  ta.join();
  tb.join();
  ASSERT_EQ(seq_a.size(), 40u);
  ASSERT_EQ(seq_b.size(), 40u);
  std::vector<std::uint64_t> all(seq_a);
  all.insert(all.end(), seq_b.begin(), seq_b.end());
  std::sort(all.begin(), all.end());
  for (std::size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], i + 1);
  EXPECT_TRUE(std::is_sorted(seq_a.begin(), seq_a.end()));
  EXPECT_TRUE(std::is_sorted(seq_b.begin(), seq_b.end()));
  ASSERT_EQ(publish(a.port(), "s2", "{}", "?final=true").status(), 200);
  auto from_a = read_all(a.port(), "s2");
  auto from_b = read_all(b.port(), "s2");
  ASSERT_EQ(from_a.size(), 81u);
  EXPECT_EQ(from_a, from_b);
}

// Waits (bounded) until the stream's state in Redis, as `port` reports it,
// is `state`.
bool wait_for_state(std::uint16_t port, const std::string& stream, const std::string& state) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    auto st = request(port, "GET", "/v1/streams/" + stream);
    if (st.status() == 200) {
      auto o = parse_object(st.body);
      const json::value* s = o.if_contains("state");
      if (s && s->is_string() && s->as_string() == state) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // (polling the condition)
  }
  return false;
}

std::string delta_text(const std::string& text) {
  return json::serialize(json::object{{"text", text}});
}

// Deltas published on A reach Redis with their key: a reader on B (a mirror)
// that connects after they are all published gets the same coalesced
// transcript as a reader on A (ids, "coalesced" ranges, data bytes).
TEST_F(Cluster, DeltasPublishedOnACoalesceForReadersOnB) {
  start_redis();
  node_process a(redis_->url(), "node-a", work_.path);
  node_process b(redis_->url(), "node-b", work_.path);

  ASSERT_EQ(publish(a.port(), "d1", n(1)).status(), 200);
  for (const char* t : {"Hel", "lo \"w\"", "orld\n"}) {
    auto p = publish(a.port(), "d1", delta_text(t), "?delta=m1");
    ASSERT_EQ(p.status(), 200) << p.body;
  }
  for (const char* t : {"a", "b"}) {
    auto p = publish(a.port(), "d1", json::serialize(json::object{{"role", "x"}, {"content", t}}),
                     "?delta=m2&delta_field=content");
    ASSERT_EQ(p.status(), 200) << p.body;
  }
  ASSERT_EQ(publish(a.port(), "d1", delta_text("!"), "?delta=m1").status(), 200);
  // Two runs of m3 split by the change of field.
  ASSERT_EQ(publish(a.port(), "d1", delta_text("p"), "?delta=m3").status(), 200);
  ASSERT_EQ(publish(a.port(), "d1", delta_text("q"), "?delta=m3").status(), 200);
  ASSERT_EQ(
      publish(a.port(), "d1", R"({"note":"r","text":"s"})", "?delta=m3&delta_field=note").status(),
      200);
  auto fin = publish(a.port(), "d1", n(2), "?final=true");
  ASSERT_EQ(fin.status(), 200);
  EXPECT_EQ(fin.body, "{\"sequence\":11}");

  const auto on_a = read_all(a.port(), "d1");
  const auto on_b = read_all(b.port(), "d1");
  ASSERT_FALSE(on_a.empty());
  const std::string e = epoch_of(on_a[0].id);
  const std::vector<recorded_event> want = {
      {"1-" + e, "message", n(1)},
      {"4-" + e, "message", R"({"coalesced":[2,4],"text":"Hello \"w\"orld\n"})"},
      {"6-" + e, "message", R"({"coalesced":[5,6],"content":"ab","role":"x"})"},
      {"7-" + e, "message", R"({"text":"!"})"},
      {"9-" + e, "message", R"({"coalesced":[8,9],"text":"pq"})"},
      {"10-" + e, "message", R"({"note":"r","text":"s"})"},
      {"11-" + e, "message", n(2)},
  };
  // (Both nodes read the stream from Redis: publishes from outside go to
  // Redis first, so A keeps a mirror too.)
  EXPECT_EQ(on_a, want);
  EXPECT_EQ(on_b, want);
}

// What is in Redis is not trusted: an entry whose delta key or data does not
// check out is served as a plain event (its exact bytes), on every node; a
// well-formed one written by anyone is a delta.
TEST_F(Cluster, BogusDeltaEntriesInRedisAreServedAsPlainEvents) {
  start_redis();
  node_process a(redis_->url(), "node-a", work_.path);
  node_process b(redis_->url(), "node-b", work_.path);
  ASSERT_EQ(publish(a.port(), "d2", delta_text("a"), "?delta=m1").status(), 200);
  // Entries 2.. written straight into the stream, each between deltas of m1
  // it would merge with if it were taken as one.
  const std::vector<std::string> fields = {
      R"('{"text": "b"}' m m1 f text)",            // 2: not the compact layout
      R"('{"text":"c"}' m m1 f text)",             // 3: a delta
      R"('{"coalesced":"d"}' m m1 f coalesced)",   // 4: reserved field
      R"('{"text":"e"}' m 'bad id' f text)",       // 5: not a message id
      R"('{"text":"f"}' m m1)",                    // 6: no field
      R"('{"text":"g\q"}' m m1 f text)",           // 7: bad escape
      R"('{"text":"h","text":"i"}' m m1 f text)",  // 8: duplicate member
      R"('{"text":"j' m m1 f text)",               // 9: truncated
      R"('{"text":"k"}' m m1 f other)",            // 10: another field
      R"('{"text":"l"}' m m1 f text)",             // 11: deltas again
      R"('{"text":"m"}' m m1 f text)",             // 12
  };
  for (std::size_t i = 0; i < fields.size(); ++i) {
    auto out = redis_->cli("XADD '{s:d2}:events' " + std::to_string(i + 2) + "-0 t message d " +
                           fields[i]);
    ASSERT_EQ(out, std::to_string(i + 2) + "-0\n") << fields[i];
  }
  ASSERT_EQ(redis_->cli("HSET '{s:d2}:meta' last_seq 12"), "0\n");
  auto fin = publish(a.port(), "d2", n(1), "?final=true");
  ASSERT_EQ(fin.status(), 200) << fin.body;
  EXPECT_EQ(fin.body, "{\"sequence\":13}");

  const auto on_b = read_all(b.port(), "d2");
  ASSERT_FALSE(on_b.empty());
  const std::string e = epoch_of(on_b[0].id);
  const std::vector<recorded_event> want = {
      {"1-" + e, "message", R"({"text":"a"})"},
      {"2-" + e, "message", R"({"text": "b"})"},
      {"3-" + e, "message", R"({"text":"c"})"},
      {"4-" + e, "message", R"({"coalesced":"d"})"},
      {"5-" + e, "message", R"({"text":"e"})"},
      {"6-" + e, "message", R"({"text":"f"})"},
      {"7-" + e, "message", R"({"text":"g\q"})"},
      {"8-" + e, "message", R"({"text":"h","text":"i"})"},
      {"9-" + e, "message", R"({"text":"j)"},
      {"10-" + e, "message", R"({"text":"k"})"},
      {"12-" + e, "message", R"({"coalesced":[11,12],"text":"lm"})"},
      {"13-" + e, "message", n(1)},
  };
  EXPECT_EQ(on_b, want);
  EXPECT_EQ(read_all(a.port(), "d2"), want);
}

// What Redis holds reaches readers only in the shapes a publish could have
// written: an event type or an epoch with CR/LF (SSE field injection into
// the event line or the id line) makes the read fail with store_unavailable;
// nothing of it is ever sent.
TEST_F(Cluster, HostileTypeOrEpochInRedisNeverReachesAReader) {
  start_redis();
  node_process a(redis_->url(), "node-a", work_.path);
  node_process b(redis_->url(), "node-b", work_.path);
  ASSERT_EQ(publish(a.port(), "h1", n(1)).status(), 200);
  ASSERT_EQ(publish(a.port(), "h2", n(1)).status(), 200);
  // h1: an entry whose type carries a line break and a forged data line.
  ASSERT_EQ(redis_->cli("XADD '{s:h1}:events' 2-0 t \"$(printf 'x\\r\\ndata: injected')\" d '{}'"),
            "2-0\n");
  ASSERT_EQ(redis_->cli("HSET '{s:h1}:meta' last_seq 2"), "0\n");
  // h2: an epoch that would end the id line and forge another.
  ASSERT_EQ(redis_->cli("HSET '{s:h2}:meta' epoch \"$(printf 'e\\nid: 99')\""), "0\n");
  for (const char* id : {"h1", "h2"}) {
    auto r = request(b.port(), "GET", std::string("/v1/streams/") + id + "/events");
    EXPECT_EQ(r.status(), 503) << id << ": " << r.body;
    EXPECT_EQ(parse_object(r.body)["error"].as_object()["code"], "store_unavailable") << r.body;
    EXPECT_EQ(r.body.find("injected"), std::string::npos);
    EXPECT_EQ(r.body.find("id: 99"), std::string::npos);
  }
}

// A run's deltas reach Redis through its node's write-behind with their key:
// once the run has ended, a new reader on B (a mirror) gets exactly what a
// new reader on A (the producing node) gets, coalesced.
TEST_F(Cluster, RunDeltasWrittenBehindCoalesceOnBAsOnA) {
  start_redis();
  node_process a(redis_->url(), "node-a", work_.path);
  node_process b(redis_->url(), "node-b", work_.path);
  const std::string body =
      R"({"requestId":"run-d","query":"How does Sluice resume a stream?","agentType":"plan_solve"})";
  http_connection ca(a.port());
  ca.send_request("POST", "/AutoAgent", body, json_ct);
  sse_reader ra(ca);
  ASSERT_EQ(ra.head().status, 200);
  ASSERT_TRUE(ra.read_to_end());
  ASSERT_TRUE(wait_for_state(b.port(), "run-d", "finished"));

  const auto on_a = read_all(a.port(), "run-d");
  const auto on_b = read_all(b.port(), "run-d");
  ASSERT_FALSE(on_a.empty());
  EXPECT_EQ(on_b, on_a);
  std::size_t merged = 0;
  for (const auto& ev : on_a) merged += ev.data.starts_with("{\"coalesced\":[") ? 1 : 0;
  EXPECT_GT(merged, 0u);
  // Every sequence is covered once: each event's id is the previous one's
  // plus its coalesced range's length.
  std::uint64_t next = 1;
  for (const auto& ev : on_a) {
    std::uint64_t first = std::stoull(ev.id), last = first;
    if (ev.data.starts_with("{\"coalesced\":[")) {
      auto o = parse_object(ev.data);
      first = o.at("coalesced").as_array().at(0).to_number<std::uint64_t>();
      EXPECT_EQ(o.at("coalesced").as_array().at(1).to_number<std::uint64_t>(), last);
    }
    EXPECT_EQ(first, next) << ev.id;
    next = last + 1;
  }
}

// A run of the offline agent, started on A, slow enough to be cancelled.
const std::string run_body =
    R"({"requestId":"run-1","query":"How does Sluice resume a stream?","agentType":"plan_solve"})";

TEST_F(Cluster, RunStartedOnAAttachedOnBCancelledFromB) {
  start_redis();
  const std::vector<std::string> slow = {"--builtin-delta-ms", "300"};
  node_process a(redis_->url(), "node-a", work_.path, slow);
  node_process b(redis_->url(), "node-b", work_.path, slow);

  http_connection ca(a.port());
  ca.send_request("POST", "/AutoAgent", run_body, json_ct);
  sse_reader ra(ca);
  ASSERT_EQ(ra.head().status, 200);
  ASSERT_TRUE(ra.read_until([&] { return ra.events.size() >= 2; }));

  // Attach on B by requestId: the same run, from its first event.
  http_connection cb(b.port());
  cb.send_request("POST", "/AutoAgent", run_body, json_ct);
  sse_reader rb(cb);
  ASSERT_EQ(rb.head().status, 200);
  ASSERT_TRUE(rb.read_until([&] { return rb.events.size() >= 2; }));
  EXPECT_EQ(rb.events[0], ra.events[0]);
  EXPECT_EQ(rb.events[1], ra.events[1]);

  // Nobody else writes into a run's stream, on any node.
  for (auto port : {a.port(), b.port()}) {
    auto p = publish(port, "run-1", n(1));
    EXPECT_EQ(p.status(), 409) << p.body;
    EXPECT_NE(p.body.find("stream_has_producer"), std::string::npos) << p.body;
  }

  // Cancel from B: the producer on A stops; both readers end with it.
  auto c = request(b.port(), "POST", "/v1/streams/run-1/cancel?reason=enough");
  ASSERT_EQ(c.status(), 200) << c.body;
  ASSERT_TRUE(ra.read_to_end());
  ASSERT_TRUE(rb.read_to_end());
  ASSERT_FALSE(ra.events.empty());
  EXPECT_EQ(ra.events.back().type, "cancelled");
  EXPECT_EQ(ra.events.back().data, R"({"reason":"enough"})");
  EXPECT_EQ(c.body, "{\"cancelled\":true,\"sequence\":" + ra.events.back().id + "}");
  EXPECT_EQ(ra.events, rb.events);
  for (std::size_t i = 0; i < ra.events.size(); ++i)
    ASSERT_EQ(ra.events[i].id, std::to_string(i + 1));
  auto st = parse_object(request(b.port(), "GET", "/v1/streams/run-1").body);
  EXPECT_EQ(st.at("state"), "cancelled");
  // A new reader of the ended run on B gets the same transcript.
  EXPECT_EQ(read_all(b.port(), "run-1"), ra.events);
}

TEST_F(Cluster, NodeKilledMidRunReadersElsewhereGetProducerLost) {
  start_redis();
  const std::vector<std::string> opts = {"--builtin-delta-ms", "300", "--run-lease-s", "1"};
  auto a = std::make_unique<node_process>(redis_->url(), "node-a", work_.path, opts);
  node_process b(redis_->url(), "node-b", work_.path, opts);

  http_connection ca(a->port());
  ca.send_request("POST", "/AutoAgent", run_body, json_ct);
  sse_reader ra(ca);
  ASSERT_EQ(ra.head().status, 200);
  ASSERT_TRUE(ra.read_until([&] { return ra.events.size() >= 2; }));
  http_connection cb(b.port());
  cb.send_request("GET", "/v1/streams/run-1/events");
  sse_reader rb(cb);
  ASSERT_EQ(rb.head().status, 200);
  ASSERT_TRUE(rb.read_until([&] { return rb.events.size() >= 2; }));

  a->kill(SIGKILL);
  a.reset();
  ASSERT_TRUE(rb.read_to_end());
  ASSERT_FALSE(rb.events.empty());
  EXPECT_EQ(rb.events.back().type, "error");
  EXPECT_NE(rb.events.back().data.find("\"code\":\"producer_lost\""), std::string::npos)
      << rb.events.back().data;
  // The run's ids are bare sequences; the final event begins a new epoch.
  const std::size_t last = rb.events.size();
  for (std::size_t i = 0; i + 1 < last; ++i) ASSERT_EQ(rb.events[i].id, std::to_string(i + 1));
  const std::string new_epoch = epoch_of(rb.events.back().id);
  EXPECT_EQ(rb.events.back().id, std::to_string(last) + "-" + new_epoch);
  EXPECT_EQ(new_epoch.size(), 16u);
  // A reader of A who saw an event A never wrote to Redis (sequence `last`
  // of the old history) is told so; one who saw only what reached Redis
  // resumes into the end.
  auto lost = request(b.port(), "GET", "/v1/streams/run-1/events", "",
                      {{"Last-Event-ID", std::to_string(last)}});
  EXPECT_EQ(lost.status(), 409) << lost.body;
  EXPECT_NE(lost.body.find("history_truncated"), std::string::npos) << lost.body;
  auto rest = read_all(b.port(), "run-1", std::to_string(last - 1));
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0], rb.events.back());
  auto st = parse_object(request(b.port(), "GET", "/v1/streams/run-1").body);
  EXPECT_EQ(st.at("state"), "finished");
}

// "A run nobody reads is cancelled" counts readers on every node: a run on A
// read only on B runs to its end.
TEST_F(Cluster, RunReadOnlyOnAnotherNodeIsNotCancelledUnread) {
  start_redis();
  const std::vector<std::string> opts = {"--builtin-delta-ms", "100", "--detach-grace-s", "3"};
  node_process a(redis_->url(), "node-a", work_.path, opts);
  node_process b(redis_->url(), "node-b", work_.path, opts);
  const std::string body =
      R"({"requestId":"run-2","query":"How does Sluice resume a stream?","agentType":"plan_solve"})";
  auto ca = std::make_unique<http_connection>(a.port());
  ca->send_request("POST", "/AutoAgent", body, json_ct);
  {
    sse_reader ra(*ca);
    ASSERT_EQ(ra.head().status, 200);
    ASSERT_TRUE(ra.read_until([&] { return !ra.events.empty(); }));
  }
  http_connection cb(b.port());
  cb.send_request("GET", "/v1/streams/run-2/events");
  sse_reader rb(cb);
  ASSERT_TRUE(rb.read_until([&] { return !rb.events.empty(); }));
  // B's presence mark is in Redis before A's only reader leaves.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (redis_->cli("EXISTS {s:run-2}:read").find('1') == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // (polling the condition)
  ASSERT_NE(redis_->cli("EXISTS {s:run-2}:read").find('1'), std::string::npos);
  ca.reset();  // A's reader goes away: nobody reads the run on A
  ASSERT_TRUE(rb.read_to_end());
  ASSERT_FALSE(rb.events.empty());
  EXPECT_NE(rb.events.back().type, "cancelled") << rb.events.back().data;
  EXPECT_NE(rb.events.back().data.find("\"messageType\":\"result\""), std::string::npos)
      << rb.events.back().data;
}

TEST_F(Cluster, RedisStoppedAndRestartedWithAof) {
  start_redis(/*aof=*/true);
  const std::vector<std::string> opts = {"--heartbeat-ms", "100"};
  node_process a(redis_->url(), "node-a", work_.path, opts);
  node_process b(redis_->url(), "node-b", work_.path, opts);

  for (int i = 1; i <= 3; ++i) ASSERT_EQ(publish(a.port(), "p", n(i)).status(), 200);
  http_connection live(b.port());
  live.send_request("GET", "/v1/streams/p/events");
  sse_reader r(live);
  ASSERT_TRUE(r.read_until([&] { return r.events.size() == 3; }));
  const std::string epoch = epoch_of(r.events[0].id);

  redis_->kill();
  // Publishing is refused in protocol while Redis is away.
  auto refused = publish(a.port(), "p", n(4));
  EXPECT_EQ(refused.status(), 503) << refused.body;
  EXPECT_NE(refused.body.find("store_unavailable"), std::string::npos) << refused.body;
  EXPECT_EQ(refused.head.header("retry-after"), "1");
  // The reader stays connected: heartbeats go on.
  const std::size_t beats = r.comments.size();
  ASSERT_TRUE(r.read_until([&] { return r.comments.size() >= beats + 3; }));
  EXPECT_FALSE(r.ended());

  redis_->start();  // same port and folder: the AOF brings every acknowledged event back
  // Each node answers 503 until its client has reconnected (with backoff).
  auto publish_when_back = [](std::uint16_t port, int i, const std::string& query) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    http_response p;
    do {
      p = publish(port, "p", n(i), query);
      if (p.status() != 503) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // (polling the condition)
    } while (std::chrono::steady_clock::now() < deadline);
    return p;
  };
  auto p4 = publish_when_back(a.port(), 4, "");
  ASSERT_EQ(p4.status(), 200) << p4.body;
  EXPECT_EQ(p4.body, "{\"sequence\":4}");
  auto p5 = publish_when_back(b.port(), 5, "?final=true");
  ASSERT_EQ(p5.status(), 200) << p5.body;
  EXPECT_EQ(p5.body, "{\"sequence\":5}");
  ASSERT_TRUE(r.read_to_end());
  // The same epoch: the AOF kept the history.
  EXPECT_EQ(r.events, expected(1, 5, epoch));
  EXPECT_EQ(read_all(a.port(), "p"), expected(1, 5, epoch));
}

}  // namespace
