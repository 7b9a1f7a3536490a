// The Redis client, subscriber and stream store against a real redis-server
// started by each test (redis_server_process). Outcomes only: replies,
// sequences, typed errors; waits are conditions with bounded deadlines.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <map>
#include <set>
#include <thread>

#include "../llm_openai/tls_test_proxy.hpp"
#include "redis/redis_client.hpp"
#include "redis/redis_stream_store.hpp"
#include "redis/redis_subscriber.hpp"
#include "redis_server_process.hpp"

namespace sluice::redis {
namespace {

namespace net = boost::asio;
using testing::redis_server_options;
using testing::redis_server_process;
using namespace std::chrono_literals;
using boost::system::error_code;

// Runs `a` on `io` (with everything else on it: the clients' loops) until it
// completes, within a bounded deadline.
template <class T>
T run(net::io_context& io, net::awaitable<T> a, std::chrono::seconds limit = 30s) {
  auto f = net::co_spawn(io, std::move(a), net::use_future);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (f.wait_for(0s) != std::future_status::ready) {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "the test coroutine did not finish in time";
      io.stop();
      throw std::runtime_error("timeout");
    }
    if (io.stopped()) io.restart();
    io.run_one_for(50ms);
  }
  return f.get();
}

// A coroutine's pause on the io_context (to let a wall-clock lease expire
// between polls): a poll interval, not a synchronisation.
net::awaitable<void> pause(std::chrono::milliseconds d) {
  net::steady_timer t(co_await net::this_coro::executor);
  t.expires_after(d);
  co_await t.async_wait(net::use_awaitable);
}

// Waits until `c` answers PING (after a restart, the first commands may still
// find the old connection gone).
net::awaitable<bool> usable(redis_client& c) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    (void)co_await c.wait_connected(1000ms);
    auto r = co_await c.command(make_args("PING"));
    if (r && r->str == "PONG") co_return true;
    co_await pause(5ms);
  }
  co_return false;
}

// Waits until `c`'s first connection attempt has failed (bounded).
net::awaitable<bool> first_failure(redis_client& c) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (c.last_error().empty() && std::chrono::steady_clock::now() < deadline) co_await pause(5ms);
  co_return !c.last_error().empty();
}

redis_client_options client_options(const redis_server_process& server) {
  redis_client_options o;
  o.endpoint = *parse_redis_url(server.url());
  o.connect_timeout = 1000ms;
  o.request_timeout = 5000ms;
  o.backoff_initial = 10ms;
  o.backoff_max = 100ms;
  return o;
}

class RedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::redis_server_available()) GTEST_SKIP() << "redis-server is not installed";
  }
  void start_server(redis_server_options o = {}) {
    server = std::make_unique<redis_server_process>(o);
    server->start();
  }
  std::unique_ptr<redis_client> connect() {
    auto c = std::make_unique<redis_client>(io.get_executor(), client_options(*server));
    c->start();
    EXPECT_FALSE(run(io, c->wait_connected(10s)));
    return c;
  }

  net::io_context io;
  std::unique_ptr<redis_server_process> server;
};

TEST_F(RedisTest, PipelineRepliesComeInOrder) {
  start_server();
  auto c = connect();
  run(io, [&]() -> net::awaitable<void> {
    std::vector<command_args> cmds;
    for (int i = 0; i < 2000; ++i) {
      cmds.push_back({"INCR", "counter"});
      cmds.push_back({"ECHO", "m" + std::to_string(i)});
    }
    auto r = co_await c->pipeline(cmds);
    EXPECT_TRUE(r);
    if (!r) co_return;
    EXPECT_EQ(r->size(), 4000u);
    for (int i = 0; i < 2000; ++i) {
      EXPECT_EQ((*r)[2 * i].integer, i + 1);
      EXPECT_EQ((*r)[2 * i + 1].str, "m" + std::to_string(i));
    }
    // An error reply is a value, in its place.
    std::vector<command_args> three{{"ECHO", "a"}, {"NOSUCHCOMMAND"}, {"ECHO", "b"}};
    auto e = co_await c->pipeline(std::move(three));
    EXPECT_TRUE(e);
    if (!e) co_return;
    EXPECT_EQ((*e)[0].str, "a");
    EXPECT_TRUE((*e)[1].is_error());
    EXPECT_EQ((*e)[2].str, "b");
  }());
}

TEST_F(RedisTest, ConcurrentCommandsEachGetTheirReply) {
  start_server();
  auto c = connect();
  // 500 coroutines issue commands at once: they share writes (pipelining) and
  // each gets its own reply.
  std::vector<std::future<std::string>> results;
  for (int i = 0; i < 500; ++i) {
    results.push_back(net::co_spawn(
        io,
        [&c, i]() -> net::awaitable<std::string> {
          auto r = co_await c->command(make_args("ECHO", "v" + std::to_string(i)));
          co_return r ? r->str : r.error().message();
        },
        net::use_future));
  }
  run(io, [&]() -> net::awaitable<void> {
    // A last command: when its reply comes, all before it have theirs.
    auto r = co_await c->command(make_args("PING"));
    EXPECT_TRUE(r);
  }());
  for (int i = 0; i < 500; ++i) {
    ASSERT_EQ(results[i].wait_for(0s), std::future_status::ready);
    EXPECT_EQ(results[i].get(), "v" + std::to_string(i));
  }
}

TEST_F(RedisTest, AuthAndSelectFromTheUrl) {
  start_server();
  auto out = server->cli("CONFIG SET requirepass s3cret");
  ASSERT_NE(out.find("OK"), std::string::npos) << out;
  auto o = client_options(*server);
  // Wrong password: a typed auth_failed, retried in the background; the
  // detail never holds the password.
  o.endpoint = *parse_redis_url("redis://:wrong-pw@127.0.0.1:" + std::to_string(server->port()));
  {
    redis_client bad(io.get_executor(), o);
    bad.start();
    EXPECT_TRUE(run(io, first_failure(bad)));
    EXPECT_FALSE(bad.connected());
    EXPECT_NE(bad.last_error().find("AUTH"), std::string::npos) << bad.last_error();
    EXPECT_EQ(bad.last_error().find("wrong-pw"), std::string::npos);
    auto r = run(io, bad.command(make_args("PING")));
    EXPECT_EQ(r.error(), redis_errc::store_unavailable);
  }
  o.endpoint =
      *parse_redis_url("redis://:s3cret@127.0.0.1:" + std::to_string(server->port()) + "/5");
  redis_client good(io.get_executor(), o);
  good.start();
  ASSERT_FALSE(run(io, good.wait_connected(10s)));
  run(io, [&]() -> net::awaitable<void> {
    auto set = co_await good.command(make_args("SET", "in5", "yes"));
    EXPECT_TRUE(set && set->str == "OK");
  }());
  EXPECT_NE(server->cli("-a s3cret --no-auth-warning -n 5 GET in5").find("yes"), std::string::npos);
}

TEST_F(RedisTest, UnavailableIsTypedAndReconnects) {
  start_server();
  auto c = connect();
  server->kill();
  run(io, [&]() -> net::awaitable<void> {
    // The loss shows on the next command (in flight or refused at once).
    auto r = co_await c->command(make_args("PING"));
    EXPECT_FALSE(r);
    if (!r) {
      EXPECT_EQ(r.error(), redis_errc::store_unavailable);
    }
    auto again = co_await c->command(make_args("PING"));
    EXPECT_FALSE(again);
    if (!again) {
      EXPECT_EQ(again.error(), redis_errc::store_unavailable);
    }
  }());
  server->start();
  EXPECT_TRUE(run(io, usable(*c)));
  EXPECT_GE(c->connections(), 2u);
}

store_options test_store_options(std::string node) {
  store_options o;
  o.node_id = std::move(node);
  return o;
}

publish_batch batch(std::string stream, std::vector<std::string> data,
                    std::string final_state = {}) {
  publish_batch b;
  b.stream_id = std::move(stream);
  for (auto& d : data) b.events.push_back({"delta", std::move(d)});
  b.final_state = std::move(final_state);
  return b;
}

TEST_F(RedisTest, AHungRedisIsDetectedByTimeoutsAndHealthPings) {
  start_server();
  auto opts = client_options(*server);
  opts.request_timeout = 300ms;
  redis_client c(io.get_executor(), opts);
  c.start();
  ASSERT_FALSE(run(io, c.wait_connected(10s)));
  std::vector<std::string> got;
  std::size_t resubscribed = 0;
  redis_subscriber sub(io.get_executor(), opts,
                       {[&](std::string_view, std::string_view p) { got.emplace_back(p); },
                        [&] { ++resubscribed; }});
  sub.start();
  ASSERT_FALSE(run(io, sub.subscribe("hang-test")));
  server->freeze();
  run(io, [&]() -> net::awaitable<void> {
    // A command to a Redis that does not answer: a typed error after
    // request_timeout, not a wait forever.
    auto r = co_await c.command(make_args("PING"));
    EXPECT_EQ(r.error(), redis_errc::store_unavailable);
    // The idle subscriber's PING gets no PONG: it drops the connection,
    // and a new one is not "connected" until Redis answers.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (sub.connected() && std::chrono::steady_clock::now() < deadline) co_await pause(10ms);
    EXPECT_FALSE(sub.connected());
    EXPECT_FALSE(c.connected());
    auto refused = co_await c.command(make_args("PING"));
    EXPECT_EQ(refused.error(), redis_errc::store_unavailable);
  }());
  server->thaw();
  ASSERT_TRUE(run(io, usable(c)));
  run(io, [&]() -> net::awaitable<void> {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (resubscribed == 0 && std::chrono::steady_clock::now() < deadline) co_await pause(10ms);
    EXPECT_GE(resubscribed, 1u);
    auto n = co_await c.command(make_args("PUBLISH", "hang-test", "after"));
    EXPECT_TRUE(n && n->integer == 1);
    deadline = std::chrono::steady_clock::now() + 10s;
    while (got.empty() && std::chrono::steady_clock::now() < deadline) co_await pause(10ms);
  }());
  EXPECT_EQ(got, std::vector<std::string>{"after"});
}

TEST_F(RedisTest, TlsWithCertificateVerification) {
  const auto cert = sluice::test::make_self_signed_certificate("IP:127.0.0.1");
  sluice::test::temp_file cert_file(cert.cert_pem);
  sluice::test::temp_file key_file(cert.key_pem);
  redis_server_options o;
  o.tls_cert_file = cert_file.path().string();
  o.tls_key_file = key_file.path().string();
  start_server(o);
  auto opts = client_options(*server);
  opts.endpoint = *parse_redis_url("rediss://127.0.0.1:" + std::to_string(server->tls_port()));
  {
    // Not trusted (only the system's CAs): a typed TLS failure that says why.
    redis_client untrusted(io.get_executor(), opts);
    untrusted.start();
    EXPECT_TRUE(run(io, first_failure(untrusted)));
    EXPECT_FALSE(untrusted.connected());
    EXPECT_NE(untrusted.last_error().find("TLS handshake"), std::string::npos)
        << untrusted.last_error();
    EXPECT_NE(untrusted.last_error().find("certificate"), std::string::npos)
        << untrusted.last_error();
  }
  opts.ca_file = cert_file.path().string();
  redis_client trusted(io.get_executor(), opts);
  trusted.start();
  ASSERT_FALSE(run(io, trusted.wait_connected(10s))) << trusted.last_error();
  redis_stream_store store(trusted, test_store_options("tls"));
  run(io, [&]() -> net::awaitable<void> {
    EXPECT_TRUE(co_await store.create_stream("over-tls", ""));
    auto p = co_await store.publish(batch("over-tls", make_args("{\"secure\":true}")));
    EXPECT_TRUE(p && p->last_seq == 1u);
    auto r = co_await store.read_after("over-tls", 0, "", 10);
    EXPECT_TRUE(r && r->events.size() == 1 && r->events[0].data == "{\"secure\":true}");
  }());
}

TEST_F(RedisTest, PublishAssignsSequencesAndRefusesAfterTheFinalEvent) {
  start_server();
  auto c = connect();
  redis_stream_store store(*c, test_store_options("a"));
  run(io, [&]() -> net::awaitable<void> {
    auto missing = co_await store.publish(batch("s1", make_args("x")));
    EXPECT_EQ(missing.error(), redis_errc::stream_not_found);
    auto created = co_await store.create_stream("s1", "alice");
    EXPECT_TRUE(created && created->created);
    EXPECT_EQ(created->epoch.size(), 16u);
    auto again = co_await store.create_stream("s1", "bob");
    EXPECT_TRUE(again && !again->created);
    EXPECT_EQ(again->owner, "alice");
    EXPECT_EQ(again->epoch, created->epoch);

    auto p1 = co_await store.publish(batch("s1", make_args(R"({"t":"a"})", R"({"t":"b"})")));
    EXPECT_TRUE(p1);
    EXPECT_EQ(p1->first_seq, 1u);
    EXPECT_EQ(p1->last_seq, 2u);
    // Many batches, one round trip; sequences continue in order.
    std::vector<publish_batch> many;
    for (int i = 0; i < 10; ++i)
      many.push_back(batch("s1", make_args("{\"i\":" + std::to_string(i) + "}")));
    many.push_back(batch("nope", make_args("{}")));
    many.push_back(batch("bad id!", make_args("{}")));
    auto m = co_await store.publish_many(std::move(many));
    EXPECT_TRUE(m);
    for (int i = 0; i < 10; ++i) EXPECT_EQ((*m)[i]->first_seq, 3u + i);
    EXPECT_EQ((*m)[10].error(), redis_errc::stream_not_found);
    EXPECT_EQ((*m)[11].error(), redis_errc::invalid_argument);

    // An idempotent retry of the last batch is not appended twice.
    auto b1 = batch("s1", make_args("{\"r\":1}"));
    b1.batch_id = "retry-1";
    auto r1 = co_await store.publish(b1);
    auto b2 = batch("s1", make_args("{\"r\":1}"));
    b2.batch_id = "retry-1";
    auto r2 = co_await store.publish(b2);
    EXPECT_TRUE(r1 && r2);
    EXPECT_EQ(r1->first_seq, 13u);
    EXPECT_FALSE(r1->duplicate);
    EXPECT_EQ(r2->first_seq, 13u);
    EXPECT_TRUE(r2->duplicate);

    auto fin = co_await store.publish(batch("s1", make_args(R"({"ok":true})"), "finished"));
    EXPECT_TRUE(fin);
    EXPECT_EQ(fin->last_seq, 14u);
    auto after = co_await store.publish(batch("s1", make_args("{}")));
    EXPECT_EQ(after.error(), redis_errc::stream_ended);

    auto all = co_await store.read_after("s1", 0, created->epoch, 100);
    EXPECT_TRUE(all);
    EXPECT_EQ(all->events.size(), 14u);
    for (std::size_t i = 0; i < all->events.size(); ++i) EXPECT_EQ(all->events[i].seq, i + 1);
    EXPECT_EQ(all->events[0].data, R"({"t":"a"})");
    EXPECT_EQ(all->events[0].type, "delta");
    EXPECT_EQ(all->events[13].data, R"({"ok":true})");
    EXPECT_TRUE(all->final_included);
    EXPECT_EQ(all->meta.state, "finished");
    EXPECT_EQ(all->meta.last_seq, 14u);
    EXPECT_GT(all->meta.finished_at_ms, 0);

    // A range after a sequence, bounded by count.
    auto mid = co_await store.read_after("s1", 5, "", 3);
    EXPECT_TRUE(mid);
    EXPECT_EQ(mid->events.size(), 3u);
    EXPECT_EQ(mid->events.front().seq, 6u);
    EXPECT_FALSE(mid->final_included);
    auto tail = co_await store.read_after("s1", 14, "", 100);
    EXPECT_TRUE(tail && tail->events.empty());
    auto future = co_await store.read_after("s1", 15, "", 100);
    EXPECT_EQ(future.error(), redis_errc::history_truncated);
  }());
  // The finished stream expires after the finished TTL (PEXPIRE set).
  const auto ttl = std::stoll(server->cli("PTTL '{s:s1}:events'"));
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 10 * 60 * 1000);
}

// A delta's key (message id, field) is kept in its entry (fields m and f),
// in every writer's batches; plain entries keep only t and d.
TEST_F(RedisTest, DeltaKeysAreStoredOnlyForDeltas) {
  start_server();
  auto c = connect();
  redis_stream_store store(*c, test_store_options("a"));
  run(io, [&]() -> net::awaitable<void> {
    auto created = co_await store.create_stream("dk", "");
    EXPECT_TRUE(created && created->created);
    publish_batch plain = batch("dk", make_args(R"({"n":1})"));
    auto p1 = co_await store.publish(plain);
    EXPECT_TRUE(p1 && p1->first_seq == 1u);
    // A batch mixing deltas and a plain event; then a producer's batch (its
    // options argument also carries the expected first sequence).
    publish_batch mixed = batch("dk", make_args(R"({"text":"a"})", R"({"n":2})", R"({"c":"b"})"));
    mixed.events[0].delta = delta_key{"m1", "text"};
    mixed.events[2].delta = delta_key{"m2", "c"};
    auto p2 = co_await store.publish(mixed);
    EXPECT_TRUE(p2 && p2->first_seq == 2u && p2->last_seq == 4u);
    publish_batch prod = batch("dk", make_args(R"({"text":"z"})"));
    prod.events[0].delta = delta_key{"m3", "text"};
    prod.expected_first_seq = 5;
    prod.writer = publish_writer::producer;
    auto p3 = co_await store.publish(prod);
    EXPECT_TRUE(p3 && p3->first_seq == 5u);
    // Keys the publish path would refuse are refused here too.
    for (const auto& bad : {delta_key{"", "text"}, delta_key{"bad id", "text"},
                            delta_key{std::string(129, 'm'), "text"}, delta_key{"m", "coalesced"},
                            delta_key{"m", std::string(20, 'f')}}) {
      publish_batch b = batch("dk", make_args(R"({"text":"a"})"));
      b.events[0].delta = bad;
      auto r = co_await store.publish(b);
      EXPECT_EQ(r.error(), redis_errc::invalid_argument) << bad.message_id << "/" << bad.field;
    }
    auto all = co_await store.read_after("dk", 0, "", 100);
    EXPECT_TRUE(all);
    if (!all) co_return;
    EXPECT_EQ(all->events.size(), 5u);
    if (all->events.size() != 5u) co_return;
    EXPECT_FALSE(all->events[0].delta);
    EXPECT_TRUE(all->events[1].delta && all->events[1].delta->message_id == "m1" &&
                all->events[1].delta->field == "text");
    EXPECT_EQ(all->events[1].data, R"({"text":"a"})");
    EXPECT_FALSE(all->events[2].delta);
    EXPECT_EQ(all->events[2].data, R"({"n":2})");
    EXPECT_TRUE(all->events[3].delta && all->events[3].delta->message_id == "m2" &&
                all->events[3].delta->field == "c");
    EXPECT_TRUE(all->events[4].delta && all->events[4].delta->message_id == "m3");
    EXPECT_EQ(all->meta.last_seq, 5u);
  }());
  // The entries themselves: plain ones hold t and d only.
  EXPECT_EQ(server->cli("XRANGE '{s:dk}:events' 1-0 1-0"), "1-0\nt\ndelta\nd\n{\"n\":1}\n");
  EXPECT_EQ(server->cli("XRANGE '{s:dk}:events' 3-0 3-0"), "3-0\nt\ndelta\nd\n{\"n\":2}\n");
  EXPECT_EQ(server->cli("XRANGE '{s:dk}:events' 2-0 2-0"),
            "2-0\nt\ndelta\nd\n{\"text\":\"a\"}\nm\nm1\nf\ntext\n");
  // A call with a wrong count of arguments for its layout is refused whole.
  const std::string short_call =
      "EVALSHA " + redis_stream_store::publish_script_sha() +
      " 2 '{s:dk}:meta' '{s:dk}:events' '' 0 '' 1000 1000 '' '{s:dk}:wake' '|x|d' delta '{}'";
  EXPECT_NE(server->cli(short_call).find("SLUICE_ARGS"), std::string::npos);
  EXPECT_EQ(server->cli("HGET '{s:dk}:meta' last_seq"), "5\n");
}

TEST_F(RedisTest, TwoClientsPublishingIntoOneStreamNeverFork) {
  start_server();
  auto setup = connect();
  std::string epoch;
  {
    redis_stream_store store(*setup, test_store_options("setup"));
    auto created = run(io, store.create_stream("shared", ""));
    ASSERT_TRUE(created);
    epoch = created->epoch;
  }
  // Two nodes: two io_contexts on two threads, each its own connection,
  // publishing pipelined batches at once.
  constexpr int batches = 400, per_batch = 5;
  auto node = [&](std::string name, std::vector<published>& out) {
    net::io_context nio;
    redis_client c(nio.get_executor(), client_options(*server));
    c.start();
    ASSERT_FALSE(run(nio, c.wait_connected(10s)));
    redis_stream_store store(c, test_store_options(name));
    run(
        nio,
        [&]() -> net::awaitable<void> {
          for (int round = 0; round < batches / 20; ++round) {
            std::vector<publish_batch> many;
            for (int b = 0; b < 20; ++b) {
              std::vector<std::string> data;
              for (int e = 0; e < per_batch; ++e)
                data.push_back("{\"node\":\"" + name + "\",\"n\":" +
                               std::to_string((round * 20 + b) * per_batch + e) + "}");
              auto pb = batch("shared", data);
              pb.epoch = epoch;
              many.push_back(std::move(pb));
            }
            auto r = co_await store.publish_many(std::move(many));
            EXPECT_TRUE(r);
            if (!r) co_return;
            for (auto& p : *r) {
              EXPECT_TRUE(p);
              if (p) out.push_back(*p);
            }
          }
        }(),
        120s);
  };
  std::vector<published> a, b;
  std::thread ta([&] { node("A", a); });
  std::thread tb([&] { node("B", b); });
  ta.join();
  tb.join();
  ASSERT_EQ(a.size(), static_cast<std::size_t>(batches));
  ASSERT_EQ(b.size(), static_cast<std::size_t>(batches));
  // Every sequence 1..N assigned exactly once, each batch contiguous.
  std::set<std::uint64_t> seqs;
  for (const auto* v : {&a, &b})
    for (const auto& p : *v) {
      EXPECT_EQ(p.last_seq - p.first_seq + 1, static_cast<std::uint64_t>(per_batch));
      for (auto s = p.first_seq; s <= p.last_seq; ++s) EXPECT_TRUE(seqs.insert(s).second) << s;
    }
  const std::uint64_t total = 2 * batches * per_batch;
  ASSERT_EQ(seqs.size(), total);
  EXPECT_EQ(*seqs.begin(), 1u);
  EXPECT_EQ(*seqs.rbegin(), total);
  // The stored stream has exactly those events, and each node's own events
  // in the order it published them.
  redis_stream_store store(*setup, test_store_options("setup"));
  auto all = run(io, store.read_after("shared", 0, epoch, 10'000));
  ASSERT_TRUE(all);
  ASSERT_EQ(all->events.size(), total);
  std::map<std::string, int> next{{"A", 0}, {"B", 0}};
  for (std::size_t i = 0; i < total; ++i) {
    const auto& ev = all->events[i];
    EXPECT_EQ(ev.seq, i + 1);
    const std::string who = ev.data.find("\"A\"") != std::string::npos ? "A" : "B";
    EXPECT_EQ(ev.data, "{\"node\":\"" + who + "\",\"n\":" + std::to_string(next[who]++) + "}");
  }
}

TEST_F(RedisTest, RetentionTrimsAndAResumeBehindTheWindowIsReported) {
  start_server();
  auto c = connect();
  auto opts = test_store_options("a");
  opts.max_events = 10;  // MAXLEN ~ 10: Redis trims whole nodes (100 entries)
  redis_stream_store store(*c, opts);
  run(io, [&]() -> net::awaitable<void> {
    auto created = co_await store.create_stream("trim", "");
    EXPECT_TRUE(created);
    for (int i = 0; i < 10; ++i) {
      std::vector<std::string> data(100, "{}");
      auto p = co_await store.publish(batch("trim", data));
      EXPECT_TRUE(p);
    }
    auto len = co_await c->command(make_args("XLEN", redis_stream_store::events_key("trim")));
    EXPECT_TRUE(len);
    EXPECT_LT(len->integer, 1000);
    auto old = co_await store.read_after("trim", 0, created->epoch, 10);
    EXPECT_EQ(old.error(), redis_errc::resume_window_exceeded);
    auto recent = co_await store.read_after("trim", 995, created->epoch, 10);
    EXPECT_TRUE(recent);
    EXPECT_EQ(recent->events.size(), 5u);
    EXPECT_EQ(recent->events.front().seq, 996u);
  }());
}

TEST_F(RedisTest, PublishWakesSubscribedNodes) {
  start_server();
  auto c = connect();
  redis_stream_store store(*c, test_store_options("a"));
  std::vector<std::pair<std::string, std::string>> got;
  redis_subscriber sub(
      io.get_executor(), client_options(*server),
      {[&](std::string_view ch, std::string_view payload) { got.emplace_back(ch, payload); }, {}});
  sub.start();
  run(io, [&]() -> net::awaitable<void> {
    EXPECT_TRUE(co_await store.create_stream("w", ""));
    EXPECT_FALSE(co_await sub.subscribe(redis_stream_store::wake_channel("w")));
    EXPECT_TRUE(co_await store.publish(batch("w", make_args("{}", "{}", "{}"))));
    EXPECT_TRUE(co_await store.publish(batch("w", make_args("{}"), "finished")));
    // The wakeups were published before the publish replies: one more round
    // trip on the subscriber's connection orders after them.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (got.size() < 2 && std::chrono::steady_clock::now() < deadline) co_await pause(5ms);
  }());
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], std::make_pair(std::string("{s:w}:wake"), std::string("3")));
  EXPECT_EQ(got[1], std::make_pair(std::string("{s:w}:wake"), std::string("4")));
}

TEST_F(RedisTest, AResumeAcrossALostHistoryIsHistoryTruncated) {
  start_server();
  auto c = connect();
  redis_stream_store store(*c, test_store_options("a"));
  std::string old_epoch;
  run(io, [&]() -> net::awaitable<void> {
    auto created = co_await store.create_stream("e", "");
    old_epoch = created->epoch;
    EXPECT_TRUE(
        co_await store.publish(batch("e", make_args("{\"v\":1}", "{\"v\":2}", "{\"v\":3}"))));
    auto wrong = co_await store.read_after("e", 2, "0123456789abcdef", 10);
    EXPECT_EQ(wrong.error(), redis_errc::history_truncated);
  }());
  // Redis comes back without its data; the stream is made again (same id,
  // new epoch) and gets new events.
  server->kill();
  server->wipe_data();
  server->start();
  ASSERT_TRUE(run(io, usable(*c)));
  run(io, [&]() -> net::awaitable<void> {
    auto probe = co_await store.status("e");
    EXPECT_EQ(probe.error(), redis_errc::stream_not_found);
    auto re = co_await store.create_stream("e", "");
    EXPECT_TRUE(re);
    if (!re) co_return;
    EXPECT_TRUE(re->created);
    EXPECT_NE(re->epoch, old_epoch);
    EXPECT_TRUE(co_await store.publish(
        batch("e", make_args("{\"other\":1}", "{\"other\":2}", "{\"other\":3}"))));
    // A reader with Last-Event-ID 2 of the old history must not continue
    // into the new events.
    auto resume = co_await store.read_after("e", 2, old_epoch, 10);
    EXPECT_EQ(resume.error(), redis_errc::history_truncated);
    auto pub = co_await store.publish([&] {
      auto b = batch("e", make_args("{}"));
      b.epoch = old_epoch;
      return b;
    }());
    EXPECT_EQ(pub.error(), redis_errc::history_truncated);
  }());
}

TEST_F(RedisTest, RunRegistryLeasesAndProducerLost) {
  start_server();
  auto c = connect();
  auto fast = test_store_options("node-a");
  fast.run_lease = 50ms;
  redis_stream_store a(*c, fast);
  redis_stream_store b(*c, test_store_options("node-b"));
  run(io, [&]() -> net::awaitable<void> {
    auto none = co_await b.find_run("req-1");
    EXPECT_TRUE(none && !*none);
    auto reg = co_await a.register_run("req-1", "run-1", "alice");
    EXPECT_TRUE(reg && reg->created);
    auto dup = co_await b.register_run("req-1", "run-other", "mallory");
    EXPECT_TRUE(dup && !dup->created);
    EXPECT_EQ(dup->stream_id, "run-1");
    EXPECT_EQ(dup->owner, "alice");
    auto found = co_await b.find_run("req-1");
    EXPECT_TRUE(found && *found);
    EXPECT_EQ((*found)->stream_id, "run-1");

    EXPECT_TRUE(co_await a.create_stream("run-1", "alice"));
    EXPECT_TRUE(co_await a.acquire_lease("run-1"));
    EXPECT_TRUE(co_await a.publish(batch("run-1", make_args("{\"step\":1}"))));
    auto st = co_await b.status("run-1");
    EXPECT_TRUE(st);
    EXPECT_EQ(st->node, "node-a");
    // Node A stops renewing: once the lease is past, B claims it (exactly
    // once) and ends the run with producer_lost.
    std::vector<std::string> claimed;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (claimed.empty() && std::chrono::steady_clock::now() < deadline) {
      auto r = co_await b.claim_expired_leases(10);
      EXPECT_TRUE(r);
      if (r) claimed = *r;
      if (claimed.empty()) co_await pause(10ms);
    }
    EXPECT_EQ(claimed, std::vector<std::string>{"run-1"});
    auto twice = co_await b.claim_expired_leases(10);
    EXPECT_TRUE(twice && twice->empty());
    auto lost = co_await b.end_lost_run("run-1");
    EXPECT_TRUE(lost);
    EXPECT_EQ(lost->last_seq, 2u);
    auto events = co_await b.read_after("run-1", 1, "", 10);
    EXPECT_TRUE(events);
    EXPECT_EQ(events->events.size(), 1u);
    EXPECT_EQ(events->events[0].type, "error");
    EXPECT_NE(events->events[0].data.find("\"code\":\"producer_lost\""), std::string::npos);
    EXPECT_TRUE(events->final_included);
    // A's renewal now tells it that it lost the lease.
    auto renew = co_await a.renew_lease("run-1");
    EXPECT_TRUE(renew);
    EXPECT_FALSE(renew->held);

    // A long lease that is renewed is not claimed.
    redis_stream_store slow(*c, test_store_options("node-c"));
    EXPECT_TRUE(co_await slow.create_stream("run-2", ""));
    EXPECT_TRUE(co_await slow.acquire_lease("run-2"));
    auto r2 = co_await slow.renew_lease("run-2");
    EXPECT_TRUE(r2 && r2->held && r2->cancel_reason.empty());
    auto none2 = co_await b.claim_expired_leases(10);
    EXPECT_TRUE(none2 && none2->empty());
    EXPECT_TRUE(co_await slow.release_lease("run-2"));
    auto r3 = co_await slow.renew_lease("run-2");
    EXPECT_TRUE(r3 && !r3->held);
  }());
}

TEST_F(RedisTest, CancelReachesTheProducersNode) {
  start_server();
  auto c = connect();
  redis_stream_store a(*c, test_store_options("node-a"));
  redis_stream_store b(*c, test_store_options("node-b"));
  std::vector<std::string> cancels_on_a;
  redis_subscriber sub_a(
      io.get_executor(), client_options(*server),
      {[&](std::string_view, std::string_view id) { cancels_on_a.emplace_back(id); }, {}});
  sub_a.start();
  run(io, [&]() -> net::awaitable<void> {
    EXPECT_FALSE(co_await sub_a.subscribe(redis_stream_store::cancel_channel("node-a")));
    EXPECT_TRUE(co_await a.create_stream("run-c", "alice"));
    EXPECT_TRUE(co_await a.acquire_lease("run-c"));
    auto out = co_await b.request_cancel("run-c", "user");
    EXPECT_TRUE(out);
    EXPECT_EQ(out->state, "open");
    EXPECT_EQ(out->node, "node-a");
    EXPECT_EQ(out->delivered, 1);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (cancels_on_a.empty() && std::chrono::steady_clock::now() < deadline) co_await pause(5ms);
    // Also visible at the next renewal (a node that missed the message).
    auto renew = co_await a.renew_lease("run-c");
    EXPECT_TRUE(renew && renew->held);
    EXPECT_EQ(renew->cancel_reason, "user");
    // The producer ends the stream; a second cancel finds it ended.
    EXPECT_TRUE(co_await a.publish(batch("run-c", make_args(R"({"reason":"user"})"), "cancelled")));
    auto late = co_await b.request_cancel("run-c", "user");
    EXPECT_TRUE(late && late->state == "cancelled" && late->delivered == 0);
    auto missing = co_await b.request_cancel("nope", "user");
    EXPECT_EQ(missing.error(), redis_errc::stream_not_found);
  }());
  EXPECT_EQ(cancels_on_a, std::vector<std::string>{"run-c"});
}

TEST_F(RedisTest, RedisRestartedWithAofKeepsAcknowledgedEvents) {
  redis_server_options aof;
  aof.appendonly = true;
  start_server(aof);
  auto c = connect();
  redis_stream_store store(*c, test_store_options("a"));
  std::string epoch;
  std::uint64_t acked = 0;
  std::vector<std::string> sub_msgs;
  std::size_t resubscribed = 0;
  redis_subscriber sub(io.get_executor(), client_options(*server),
                       {[&](std::string_view, std::string_view p) { sub_msgs.emplace_back(p); },
                        [&] { ++resubscribed; }});
  sub.start();
  run(io, [&]() -> net::awaitable<void> {
    EXPECT_FALSE(co_await sub.subscribe(redis_stream_store::wake_channel("durable")));
    auto created = co_await store.create_stream("durable", "");
    epoch = created->epoch;
    for (int i = 1; i <= 50; ++i) {
      auto p =
          co_await store.publish(batch("durable", make_args("{\"n\":" + std::to_string(i) + "}")));
      EXPECT_TRUE(p);
      if (p) acked = p->last_seq;
    }
  }());
  ASSERT_EQ(acked, 50u);
  server->kill();  // SIGKILL: only what appendfsync always put on disk survives
  run(io, [&]() -> net::awaitable<void> {
    auto p = co_await store.publish(batch("durable", make_args("{\"n\":\"lost?\"}")));
    EXPECT_FALSE(p);
    if (!p) {
      EXPECT_EQ(p.error(), redis_errc::store_unavailable);
    }
    auto r = co_await store.read_after("durable", 0, epoch, 100);
    EXPECT_EQ(r.error(), redis_errc::store_unavailable);
  }());
  server->start();
  ASSERT_TRUE(run(io, usable(*c)));
  run(io, [&]() -> net::awaitable<void> {
    auto r = co_await store.read_after("durable", 0, epoch, 100);
    EXPECT_TRUE(r);
    if (!r) co_return;
    EXPECT_GE(r->events.size(), 50u);
    if (r->events.size() < 50) co_return;
    for (std::uint64_t i = 1; i <= 50; ++i)
      EXPECT_EQ(r->events[i - 1].data, "{\"n\":" + std::to_string(i) + "}");
    // Pub/Sub loses what is published while the subscriber is away: it
    // announces its resubscription (the owner then re-reads streams), and
    // wakeups after that arrive.
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (resubscribed == 0 && std::chrono::steady_clock::now() < deadline) co_await pause(5ms);
    auto p = co_await store.publish(batch("durable", make_args("{\"n\":51}")));
    EXPECT_TRUE(p);
    if (p) {
      EXPECT_EQ(p->first_seq, 51u);
    }
    deadline = std::chrono::steady_clock::now() + 10s;
    while ((sub_msgs.empty() || sub_msgs.back() != "51") &&
           std::chrono::steady_clock::now() < deadline)
      co_await pause(5ms);
  }());
  EXPECT_EQ(resubscribed, 1u);
  ASSERT_FALSE(sub_msgs.empty());
  EXPECT_EQ(sub_msgs.back(), "51");
}

}  // namespace
}  // namespace sluice::redis
