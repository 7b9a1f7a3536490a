// Two nodes and a real Redis, end to end (issue 9): real processes only —
// redis-server, two `sluice serve --redis` nodes and nginx, all started by
// the recipe (scripts/two-nodes.sh) — and real TCP proxies that cut
// connections (tests/support/chaos_proxy). What is asserted are outcomes:
// exact transcripts, sequences and error codes. Every wait is a poll of a
// condition with a bounded deadline.
//
// The chaos seed is drawn at random and printed; SLUICE_CHAOS_SEED=N replays
// one run's cut points.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fake_openai_server.hpp"
#include "redis_server_process.hpp"
#include "support/chaos_proxy.hpp"
#include "support/test_client.hpp"
#include "two_node_cluster.hpp"
#include "ws_test_client.hpp"

namespace sluice::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

// The nodes need `sluice serve --redis`; a binary without it is reported as
// a skip that says so, not as a pass.
bool serve_has_redis() {
  const std::string cmd = "'" + sluice_binary() + "' serve --help 2>&1 | grep -q -- '--redis'";
  return std::system(cmd.c_str()) == 0;
}

bool tools_available() {
  return serve_has_redis() && redis::testing::redis_server_available() &&
         std::system("command -v nginx >/dev/null 2>&1") == 0 &&
         std::system("command -v curl >/dev/null 2>&1") == 0;
}

#define SKIP_WITHOUT_TOOLS()                                                                    \
  do {                                                                                          \
    if (!tools_available())                                                                     \
      GTEST_SKIP() << "redis-server, nginx or curl missing (scripts/setup.sh test), or sluice " \
                      "serve has no --redis";                                                   \
  } while (0)

std::uint64_t chaos_seed() {
  if (const char* s = std::getenv("SLUICE_CHAOS_SEED"); s && *s)
    return std::strtoull(s, nullptr, 10);
  return std::random_device{}();
}

// The sequence an event id stands for: ids are the sequence, or
// "<sequence>-<epoch>" with --redis (docs/scaling.md).
std::uint64_t sequence_of(const std::string& id) {
  return std::strtoull(id.c_str(), nullptr, 10);
}

template <class F>
bool poll_until(clock_type::duration within, F done) {
  const auto deadline = clock_type::now() + within;
  while (!done()) {
    if (clock_type::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

two_node_options cluster_options(std::vector<std::string> serve_args, std::string redis_url = "") {
  two_node_options o;
  o.serve_args = std::move(serve_args);
  o.redis_url = std::move(redis_url);
  return o;
}

std::string stream_path(const std::string& id) {
  return "/v1/streams/" + id + "/events";
}

struct published_event {
  std::string type;
  json::value data;
  bool final = false;
};

// What the producer publishes: sizes and types varied by the seed.
std::vector<published_event> make_events(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed ^ 0x5eed);
  std::vector<published_event> out;
  for (std::size_t i = 1; i <= n; ++i) {
    const std::size_t len = rng() % 300;
    std::string text;
    for (std::size_t k = 0; k < len; ++k) text.push_back(static_cast<char>('a' + (rng() % 26)));
    published_event e;
    e.type = i == n ? "done" : (i % 3 == 0 ? "token" : "message");
    e.data = json::object{{"k", i}, {"text", text}, {"unicode", "é→✓"}};
    e.final = i == n;
    out.push_back(std::move(e));
  }
  return out;
}

// Publishes one event with a plain HTTP request; the sequence, or nullopt
// with the reason in `error`.
std::optional<std::uint64_t> publish(std::uint16_t port, const std::string& stream,
                                     const published_event& e, std::string* error = nullptr) {
  std::string target = stream_path(stream);
  std::string sep = "?";
  if (e.type != "message") {
    target += sep + "event=" + e.type;
    sep = "&";
  }
  if (e.final) target += sep + "final=true";
  try {
    const auto r = request(port, "POST", target, json::serialize(e.data));
    if (r.status() != 200) {
      if (error) *error = std::to_string(r.status()) + " " + r.body;
      return std::nullopt;
    }
    std::error_code ec;
    json::error_code jec;
    const auto v = json::parse(r.body, jec);
    if (jec || !v.is_object() || !v.as_object().contains("sequence")) {
      if (error) *error = "bad answer " + r.body;
      return std::nullopt;
    }
    return v.at("sequence").to_number<std::uint64_t>();
  } catch (const std::exception& ex) {
    if (error) *error = ex.what();
    return std::nullopt;
  }
}

// A full, uncut SSE read of a stream from the start (the reference).
std::vector<recorded_event> read_all(std::uint16_t port, const std::string& stream) {
  http_connection c(port, 0, 30'000);
  c.send_request("GET", stream_path(stream));
  sse_reader r(c);
  EXPECT_EQ(r.head().status, 200);
  r.read_to_end();
  return r.events;
}

// Checks a transcript against what was published: sequences 1..N in order,
// types and data equal.
void expect_transcript(const std::vector<recorded_event>& got,
                       const std::vector<published_event>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(sequence_of(got[i].id), i + 1) << what << " event " << i;
    EXPECT_EQ(got[i].type, want[i].type) << what << " event " << i;
    json::error_code ec;
    const auto data = json::parse(got[i].data, ec);
    EXPECT_FALSE(ec) << what << " event " << i << ": " << got[i].data;
    EXPECT_EQ(data, want[i].data) << what << " event " << i;
  }
}

// One SSE response read incrementally from a raw socket, as a browser's
// EventSource does: every event whose bytes arrived counts, even when the
// connection is cut in the middle of an HTTP chunk (a node replaying a
// backlog writes it as one large chunk; test_client's reader only takes
// whole chunks, which a cut at random points would starve).
class incremental_sse_read : public core::sse_listener {
 public:
  enum class outcome { ended, cut, timed_out, refused };

  // GET `target` on 127.0.0.1:port with optional Last-Event-ID; reads until
  // the response ends, the connection is cut, or nothing comes for 20 s.
  outcome run(std::uint16_t port, const std::string& target, const std::string& last_id) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return outcome::refused;
    timeval tv{20, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string req =
        "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n";
    if (!last_id.empty()) req += "Last-Event-ID: " + last_id + "\r\n";
    req += "\r\n";
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
      ::close(fd);
      return outcome::refused;
    }
    outcome result = outcome::cut;
    char buf[16384];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        result = outcome::timed_out;
        break;
      }
      if (n <= 0) break;  // cut (FIN or reset)
      if (!feed(std::string_view(buf, static_cast<std::size_t>(n)))) {
        result = outcome::ended;
        break;
      }
    }
    ::close(fd);
    return result;
  }

  int status = 0;
  std::vector<recorded_event> events;
  void on_event(const core::sse_event& e) override {
    events.push_back({std::string(e.last_event_id), std::string(e.type), std::string(e.data)});
  }

 private:
  // False once the response has ended (last chunk) or is not a 200.
  bool feed(std::string_view bytes) {
    in_.append(bytes);
    if (status == 0) {
      const auto end = in_.find("\r\n\r\n");
      if (end == std::string::npos) return true;
      if (in_.size() < 12) return false;
      status = std::atoi(in_.substr(9, 3).c_str());
      in_.erase(0, end + 4);
      if (status != 200) return false;
    }
    for (;;) {
      if (chunk_left_ > 0) {
        const std::size_t take = std::min(chunk_left_, in_.size());
        if (take == 0) return true;
        parser_.feed(std::string_view(in_).substr(0, take));
        in_.erase(0, take);
        chunk_left_ -= take;
        if (chunk_left_ == 0) need_crlf_ = true;
        continue;
      }
      if (need_crlf_) {
        if (in_.size() < 2) return true;
        in_.erase(0, 2);
        need_crlf_ = false;
      }
      const auto eol = in_.find("\r\n");
      if (eol == std::string::npos) return true;
      const std::size_t size = std::strtoull(in_.substr(0, eol).c_str(), nullptr, 16);
      in_.erase(0, eol + 2);
      if (size == 0) return false;
      chunk_left_ = size;
    }
  }

  core::sse_parser parser_{*this};
  std::string in_;
  std::size_t chunk_left_ = 0;
  bool need_crlf_ = false;
};

// --- the recipe itself ---------------------------------------------------------

TEST(TwoNodes, RecipeStartsRedisWithAofAndServesThroughNginx) {
  SKIP_WITHOUT_TOOLS();
  two_node_cluster cluster(cluster_options({"--threads", "1"}));
  cluster.start();

  // The persistence docs/scaling.md prescribes.
  const std::string port = cluster.redis_url().substr(cluster.redis_url().rfind(':') + 1);
  auto cli = [&](const std::string& args) {
    std::string out;
    FILE* p = ::popen(("redis-cli -p " + port + " " + args).c_str(), "r");
    if (!p) return out;
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    ::pclose(p);
    return out;
  };
  EXPECT_EQ(cli("config get appendonly"), "appendonly\nyes\n");
  EXPECT_EQ(cli("config get appendfsync"), "appendfsync\nalways\n");
  EXPECT_EQ(cli("config get maxmemory-policy"), "maxmemory-policy\nnoeviction\n");

  // A reader through nginx gets each event while its response is still open
  // (nginx does not buffer the SSE response): published on A, then on B.
  http_connection lb(cluster.port_lb());
  lb.send_request("GET", stream_path("recipe"));
  sse_reader live(lb);
  ASSERT_EQ(live.head().status, 200);
  EXPECT_EQ(live.head().header("content-type").rfind("text/event-stream", 0), 0u);
  const published_event first{"message", json::object{{"n", 1}}, false};
  const published_event last{"done", json::object{{"n", 2}}, true};
  ASSERT_EQ(publish(cluster.port_a(), "recipe", first), 1u);
  ASSERT_TRUE(live.read_until([&] { return live.events.size() == 1; }));
  EXPECT_FALSE(live.ended());
  ASSERT_EQ(publish(cluster.port_b(), "recipe", last), 2u);
  ASSERT_TRUE(live.read_to_end());
  expect_transcript(live.events, {first, last}, "through nginx");
  expect_transcript(read_all(cluster.port_a(), "recipe"), {first, last}, "node a");
  expect_transcript(read_all(cluster.port_b(), "recipe"), {first, last}, "node b");

  // WebSocket through nginx (the upgrade headers pass).
  ws_connection ws(cluster.port_lb());
  ws.send(R"({"op":"subscribe","stream":"recipe"})");
  std::vector<json::object> frames;
  for (;;) {
    auto f = ws.read();
    if (f.contains("op")) {
      ASSERT_EQ(f.at("op").as_string(), "end") << json::serialize(f);
      break;
    }
    frames.push_back(f);
  }
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[1].at("event").as_string(), "done");
  EXPECT_EQ(frames[1].at("data"), last.data);
}

// --- a reader cut at random points, alternating between nodes -----------------

// Joins the producer however the test body returns (a failed ASSERT returns
// early; a joinable std::thread destroyed would abort the program).
struct join_on_exit {
  std::thread& thread;
  ~join_on_exit() {
    if (thread.joinable()) thread.join();
  }
};

class ChaosTwoNodes : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!tools_available())
      GTEST_SKIP() << "redis-server, nginx or curl missing, or sluice serve has no --redis";
    seed_ = chaos_seed();
    std::printf("chaos seed: %llu (replay with SLUICE_CHAOS_SEED=%llu)\n",
                static_cast<unsigned long long>(seed_), static_cast<unsigned long long>(seed_));
    RecordProperty("chaos_seed", std::to_string(seed_));
    cluster_ = std::make_unique<two_node_cluster>(cluster_options({"--threads", "1"}));
    cluster_->start();
    // A proxy in front of each node and of nginx, each with its own seed.
    const std::uint16_t upstreams[] = {cluster_->port_a(), cluster_->port_b(), cluster_->port_lb()};
    for (std::size_t i = 0; i < 3; ++i) {
      chaos_proxy_options o;
      o.upstream_port = upstreams[i];
      o.seed = seed_ + i;
      o.min_cut_bytes = 200;
      o.max_cut_bytes = 3000;
      proxies_.push_back(std::make_unique<chaos_proxy>(o));
      proxies_.back()->start();
    }
  }

  // Publishes `events` into `stream`, alternately on A and B, from a thread.
  std::thread producer(const std::string& stream, const std::vector<published_event>& events) {
    return std::thread([this, stream, &events] {
      for (std::size_t i = 0; i < events.size(); ++i) {
        const auto port = i % 2 == 0 ? cluster_->port_a() : cluster_->port_b();
        std::string error;
        const auto seq = publish(port, stream, events[i], &error);
        if (seq != i + 1) {
          producer_error_ = "publish " + std::to_string(i + 1) + " on node " +
                            (i % 2 == 0 ? "a" : "b") + ": " +
                            (seq ? "sequence " + std::to_string(*seq) : error);
          return;
        }
      }
    });
  }

  std::uint16_t proxy_port(std::size_t attempt) const { return proxies_[attempt % 3]->port(); }
  static const char* target_name(std::size_t attempt) {
    static const char* names[] = {"node a", "node b", "nginx"};
    return names[attempt % 3];
  }

  std::uint64_t seed_ = 0;
  std::unique_ptr<two_node_cluster> cluster_;
  std::vector<std::unique_ptr<chaos_proxy>> proxies_;
  std::string producer_error_;
};

TEST_F(ChaosTwoNodes, SseReaderCutAndMovedBetweenNodesGetsTheExactTranscript) {
  const auto events = make_events(240, seed_);
  std::thread prod = producer("chaos-sse", events);
  join_on_exit join_prod{prod};

  std::vector<recorded_event> got;
  std::string last_id;
  std::size_t attempt = 0, since_progress = 0;
  const auto deadline = clock_type::now() + 120s;
  while ((got.empty() || got.back().type != "done") && clock_type::now() < deadline) {
    const std::size_t a = attempt++;
    if (++since_progress > 300) {
      // 300 connections in a row without a new event: show what the last
      // one of each target received (a livelock, not a slow machine).
      std::string seen;
      for (std::size_t i = 0; i < 3; ++i) {
        const auto conns = proxies_[i]->connections_seen();
        if (!conns.empty())
          seen += std::string("\n--- ") + target_name(i) + " (cut after " +
                  std::to_string(conns.back().cut_after) + " bytes):\n" + conns.back().from_server;
      }
      FAIL() << "no progress after event id " << last_id
             << " in 300 connections; last responses:" << seen;
    }
    const std::size_t before = got.size();
    incremental_sse_read r;
    const auto result = r.run(proxy_port(a), stream_path("chaos-sse"), last_id);
    if (result == incremental_sse_read::outcome::timed_out)
      FAIL() << "no byte for 20 s from " << target_name(a) << " after id " << last_id;
    if (r.status != 0) {
      ASSERT_EQ(r.status, 200) << target_name(a) << " after id " << last_id;
    }
    for (const auto& e : r.events) got.push_back(e);
    if (!got.empty()) last_id = got.back().id;
    if (got.size() > before) since_progress = 0;
  }
  prod.join();
  ASSERT_EQ(producer_error_, "");
  std::size_t cuts = 0;
  for (const auto& p : proxies_) cuts += p->cuts();
  std::printf("SSE: %zu connections, %zu cuts\n", attempt, cuts);
  EXPECT_GE(cuts, 3u) << "the proxies cut connections";
  EXPECT_GE(attempt, 4u) << "the reader moved between nodes";
  expect_transcript(got, events, "cut reader (seed " + std::to_string(seed_) + ")");
  // The same bytes from either node, uncut.
  const auto from_a = read_all(cluster_->port_a(), "chaos-sse");
  const auto from_b = read_all(cluster_->port_b(), "chaos-sse");
  EXPECT_EQ(from_a, from_b);
  EXPECT_EQ(got, from_a);
}

TEST_F(ChaosTwoNodes, WebSocketReaderCutAndMovedBetweenNodesGetsTheExactTranscript) {
  const auto events = make_events(240, seed_ + 1000);
  std::thread prod = producer("chaos-ws", events);
  join_on_exit join_prod{prod};

  std::vector<recorded_event> got;
  json::value last_id;  // the number the server sent, or "N-EPOCH"
  bool ended = false;
  std::size_t attempt = 0;
  const auto deadline = clock_type::now() + 120s;
  while (!ended && clock_type::now() < deadline) {
    const std::size_t a = attempt++;
    try {
      ws_connection ws(proxy_port(a), {.timeout_ms = 20'000});
      json::object sub{{"op", "subscribe"}, {"stream", "chaos-ws"}};
      if (!last_id.is_null()) sub["lastEventId"] = last_id;
      ws.send(sub);
      for (;;) {
        const json::object f = ws.read();
        if (f.contains("op")) {
          ASSERT_EQ(f.at("op").as_string(), "end") << json::serialize(f);
          ended = true;
          break;
        }
        ASSERT_EQ(f.at("stream").as_string(), "chaos-ws");
        const json::value& id = f.at("id");
        recorded_event e;
        e.id = id.is_string() ? std::string(id.as_string()) : json::serialize(id);
        // With --redis a frame carries its stream's epoch; a resume names
        // both, "N-EPOCH" (as the SSE id does).
        if (const auto* epoch = f.if_contains("epoch"); epoch && epoch->is_string())
          e.id += "-" + std::string(epoch->as_string());
        e.type = f.at("event").as_string();
        e.data = json::serialize(f.at("data"));
        last_id = f.contains("epoch") ? json::value(e.id) : id;
        got.push_back(std::move(e));
      }
    } catch (const boost::system::system_error& e) {
      // a cut (or the handshake cut): resume on the next target
      if (e.code() == boost::asio::error::timed_out || e.code() == boost::beast::error::timeout ||
          e.code() == boost::asio::error::would_block || e.code() == boost::asio::error::try_again)
        FAIL() << "no frame for 20 s from " << target_name(a);
    }
  }
  prod.join();
  ASSERT_EQ(producer_error_, "");
  ASSERT_TRUE(ended) << "no end frame within the deadline";
  std::size_t cuts = 0;
  for (const auto& p : proxies_) cuts += p->cuts();
  std::printf("WebSocket: %zu connections, %zu cuts\n", attempt, cuts);
  EXPECT_GE(cuts, 3u);
  expect_transcript(got, events, "cut WebSocket reader (seed " + std::to_string(seed_) + ")");
}

// --- runs across nodes -----------------------------------------------------------

// A cluster whose agents talk to the fake OpenAI-compatible server.
class RunsTwoNodes : public ::testing::Test {
 protected:
  void start_cluster(std::vector<std::string> extra = {}) {
    if (!tools_available())
      GTEST_SKIP() << "redis-server, nginx or curl missing, or sluice serve has no --redis";
    two_node_options o;
    o.serve_args = {"--threads",      "1",           "--llm",      "openai",     "--llm-base-url",
                    fake_.base_url(), "--llm-model", "test-model", "--web-root", "/nonexistent"};
    o.serve_args.insert(o.serve_args.end(), extra.begin(), extra.end());
    cluster_ = std::make_unique<two_node_cluster>(o);
    cluster_->start();
  }
  static std::string run_body(const std::string& request_id) {
    return R"({"query":"How does Sluice resume a stream?","agentType":"deepsearch","requestId":")" +
           request_id + R"("})";
  }
  // The "code" of the reader's last event, an `error` ("" otherwise).
  static std::string final_error_code(const sse_reader& r) {
    if (r.events.empty() || r.events.back().type != "error") return "";
    json::error_code ec;
    const auto data = json::parse(r.events.back().data, ec);
    const auto* code = !ec && data.is_object() ? data.as_object().if_contains("code") : nullptr;
    return code && code->is_string() ? std::string(code->as_string()) : "";
  }
  static bool has_answer_delta(const sse_reader& r) {
    for (const auto& e : r.events)
      if (e.data.find("\"agent_stream\"") != std::string::npos) return true;
    return false;
  }

  fake_openai_server fake_;
  std::unique_ptr<two_node_cluster> cluster_;
};

TEST_F(RunsTwoNodes, RunStartedOnAAttachedAndCancelledFromB) {
  start_cluster();
  if (IsSkipped()) return;
  // The decomposition answers; the answer stalls after its first delta, so
  // the run is mid-answer with its model connection open.
  fake_.script({fake_behaviour::normal, fake_behaviour::stall});
  http_connection on_a(cluster_->port_a(), 0, 30'000);
  on_a.send_request("POST", "/AutoAgent", run_body("run-x1"));
  sse_reader ra(on_a);
  ASSERT_EQ(ra.head().status, 200);
  ASSERT_TRUE(ra.read_until([&] { return has_answer_delta(ra); }));

  // Attach on B by requestId: the same run, not a second one.
  http_connection on_b(cluster_->port_b(), 0, 30'000);
  on_b.send_request("POST", "/AutoAgent", run_body("run-x1"));
  sse_reader rb(on_b);
  ASSERT_EQ(rb.head().status, 200);
  ASSERT_TRUE(rb.read_until([&] { return rb.events.size() >= ra.events.size(); }));

  // Cancel from B: the producer on A stops, its model connection closes.
  const auto c = request(cluster_->port_b(), "POST", "/v1/streams/run-x1/cancel");
  ASSERT_EQ(c.status(), 200) << c.body;
  ASSERT_TRUE(ra.read_to_end());
  ASSERT_TRUE(rb.read_to_end());
  ASSERT_FALSE(ra.events.empty());
  EXPECT_EQ(ra.events.back().type, "cancelled");
  EXPECT_EQ(ra.events, rb.events) << "both nodes deliver the same transcript";
  EXPECT_TRUE(fake_.wait_for_client_closes(2, std::chrono::seconds(20)))
      << "the model connection of the producer on A was closed";
  EXPECT_EQ(fake_.requests().size(), 2u) << "attaching on B started no second run";
  const auto status = request(cluster_->port_a(), "GET", "/v1/streams/run-x1");
  ASSERT_EQ(status.status(), 200);
  EXPECT_EQ(json::parse(status.body).at("state").as_string(), "cancelled");
}

TEST_F(RunsTwoNodes, NodeKilledMidRunReadersOnOtherNodeGetProducerLost) {
  start_cluster({"--run-lease-s", "2"});
  if (IsSkipped()) return;
  fake_.script({fake_behaviour::normal, fake_behaviour::stall});
  http_connection on_a(cluster_->port_a(), 0, 30'000);
  on_a.send_request("POST", "/AutoAgent", run_body("run-lost1"));
  sse_reader ra(on_a);
  ASSERT_EQ(ra.head().status, 200);
  ASSERT_TRUE(ra.read_until([&] { return has_answer_delta(ra); }));

  http_connection on_b(cluster_->port_b(), 0, 60'000);
  on_b.send_request("GET", stream_path("run-lost1"));
  sse_reader rb(on_b);
  ASSERT_EQ(rb.head().status, 200);
  ASSERT_TRUE(rb.read_until([&] { return rb.events.size() >= ra.events.size(); }));

  cluster_->kill_node_a();
  // Within the lease (2 s) and a claim sweep the run ends, on B, with
  // producer_lost; the 60 s read deadline bounds the wait.
  ASSERT_TRUE(rb.read_to_end());
  EXPECT_EQ(final_error_code(rb), "producer_lost");
  // The events before it are the ones A published, unchanged.
  for (std::size_t i = 0; i < ra.events.size(); ++i) EXPECT_EQ(rb.events[i], ra.events[i]);
}

TEST_F(RunsTwoNodes, NodeStoppedMidRunReadersOnOtherNodeGetInterruptedAtOnce) {
  // The default lease (15 s): a graceful stop must not leave the run to be
  // claimed as producer_lost after it, but end it itself.
  start_cluster();
  if (IsSkipped()) return;
  fake_.script({fake_behaviour::normal, fake_behaviour::stall});
  http_connection on_a(cluster_->port_a(), 0, 30'000);
  on_a.send_request("POST", "/AutoAgent", run_body("run-stop1"));
  sse_reader ra(on_a);
  ASSERT_EQ(ra.head().status, 200);
  ASSERT_TRUE(ra.read_until([&] { return has_answer_delta(ra); }));

  http_connection on_b(cluster_->port_b(), 0, 60'000);
  on_b.send_request("GET", stream_path("run-stop1"));
  sse_reader rb(on_b);
  ASSERT_EQ(rb.head().status, 200);
  ASSERT_TRUE(rb.read_until([&] { return rb.events.size() >= ra.events.size(); }));

  cluster_->stop_node_a();
  ASSERT_TRUE(rb.read_to_end());
  EXPECT_EQ(final_error_code(rb), "interrupted");
  // The events before it are the ones A published, unchanged.
  ASSERT_GE(rb.events.size(), ra.events.size());
  for (std::size_t i = 0; i < ra.events.size(); ++i) EXPECT_EQ(rb.events[i], ra.events[i]);
  const auto status = request(cluster_->port_b(), "GET", "/v1/streams/run-stop1");
  ASSERT_EQ(status.status(), 200) << status.body;
  EXPECT_EQ(json::parse(status.body).at("state").as_string(), "finished");
}

// --- Redis restarted with its AOF -------------------------------------------------

TEST(TwoNodesRedisRestart, NothingAcknowledgedIsLostAndPublishingResumes) {
  SKIP_WITHOUT_TOOLS();
  // Redis owned by the test (so it can be killed and started again on the
  // same port and directory), with the prescribed persistence: AOF,
  // appendfsync always.
  redis::testing::redis_server_options ro;
  ro.appendonly = true;
  redis::testing::redis_server_process redis(ro);
  redis.start();
  two_node_cluster cluster(cluster_options({"--threads", "1"}, redis.url()));
  cluster.start();

  const auto events = make_events(60, 77);
  // A reader on B, connected across the restart.
  http_connection live_conn(cluster.port_b(), 0, 60'000);
  live_conn.send_request("GET", stream_path("restart"));
  sse_reader live(live_conn);
  ASSERT_EQ(live.head().status, 200);

  for (std::size_t i = 0; i < 30; ++i)
    ASSERT_EQ(publish(i % 2 ? cluster.port_b() : cluster.port_a(), "restart", events[i]), i + 1);
  ASSERT_TRUE(live.read_until([&] { return live.events.size() == 30; }));

  redis.kill();  // SIGKILL: only what Redis had written survives
  // Publishing while Redis is down is refused in protocol, never acknowledged.
  for (std::uint16_t port : {cluster.port_a(), cluster.port_b()}) {
    const auto r = request(port, "POST", stream_path("restart"), R"({"down":true})");
    EXPECT_EQ(r.status(), 503) << r.body;
    EXPECT_NE(r.body.find("store_unavailable"), std::string::npos) << r.body;
    EXPECT_FALSE(r.head.header("retry-after").empty());
  }
  redis.start();  // same port, same directory: it loads its AOF

  // Publishing resumes on each node once it has reconnected (each with its
  // own backoff: poll, A first, then B) at the next sequence: nothing
  // acknowledged was lost, nothing refused was kept.
  for (std::size_t i : {30u, 31u}) {
    const auto port = i % 2 ? cluster.port_b() : cluster.port_a();
    std::optional<std::uint64_t> seq;
    std::string error;
    ASSERT_TRUE(poll_until(30s,
                           [&] {
                             seq = publish(port, "restart", events[i], &error);
                             return seq.has_value();
                           }))
        << "node " << (i % 2 ? "b" : "a") << " after the restart: " << error;
    EXPECT_EQ(*seq, i + 1);
  }
  for (std::size_t i = 32; i < events.size(); ++i)
    ASSERT_EQ(publish(i % 2 ? cluster.port_b() : cluster.port_a(), "restart", events[i]), i + 1);

  ASSERT_TRUE(live.read_to_end());
  expect_transcript(live.events, events, "reader on B across the restart");
  expect_transcript(read_all(cluster.port_a(), "restart"), events, "node a after the restart");
}

}  // namespace
}  // namespace sluice::test
