// sluice_redis_bench: measures the Redis stream store against a running
// redis-server (it starts none).
//
//   publish  pipelined publishes through the publish script: `--pipeline`
//            batches per round trip, `--batch` events per batch, spread over
//            `--streams` streams; prints events/s.
//   wake     wakeup latency for a node with a reader: Pub/Sub (the publish
//            script's PUBLISH on {s:ID}:wake) vs a blocking XREAD on the
//            events key; one event at a time, p50/p99 in microseconds.
// Also prints the redis-benchmark command that runs the same script with the
// same arguments (the ceiling of Redis itself for this command mix).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>

#include "redis/redis_client.hpp"
#include "redis/redis_stream_store.hpp"
#include "redis/redis_subscriber.hpp"

namespace net = boost::asio;
using namespace sluice::redis;
using clock_type = std::chrono::steady_clock;

namespace {

template <class T>
T run(net::io_context& io, net::awaitable<T> a) {
  auto f = net::co_spawn(io, std::move(a), net::use_future);
  while (f.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    if (io.stopped()) io.restart();
    io.run_one_for(std::chrono::milliseconds(50));
  }
  return f.get();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Redis stream store benchmark (needs a running redis-server)"};
  std::string url = "redis://127.0.0.1:6379";
  std::string mode = "publish";
  std::size_t streams = 1, batch = 1, pipeline = 64, events = 200'000, rounds = 2000;
  std::size_t data_bytes = 64;
  app.add_option("--url", url, "Redis URL")->capture_default_str();
  app.add_option("--mode", mode, "publish or wake")->capture_default_str();
  app.add_option("--streams", streams, "streams published into")->capture_default_str();
  app.add_option("--batch", batch, "events per publish (one script call)")->capture_default_str();
  app.add_option("--pipeline", pipeline, "script calls per round trip")->capture_default_str();
  app.add_option("--events", events, "events to publish in total")->capture_default_str();
  app.add_option("--rounds", rounds, "wake: events published one by one")->capture_default_str();
  app.add_option("--data-bytes", data_bytes, "bytes of each event's data")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto endpoint = parse_redis_url(url);
  if (!endpoint) {
    std::cerr << endpoint.error().message << "\n";
    return 2;
  }
  net::io_context io;
  redis_client_options o;
  o.endpoint = *endpoint;
  redis_client client(io.get_executor(), o);
  client.start();
  if (run(io, client.wait_connected(std::chrono::seconds(5)))) {
    std::cerr << "cannot connect: " << client.last_error() << "\n";
    return 1;
  }
  store_options so;
  so.node_id = "bench";
  redis_stream_store store(client, so);
  std::string data =
      "{\"text\":\"" + std::string(data_bytes > 11 ? data_bytes - 11 : 1, 'x') + "\"}";

  if (mode == "publish") {
    std::vector<std::string> ids;
    for (std::size_t s = 0; s < streams; ++s) {
      ids.push_back("bench-" + std::to_string(s));
      (void)run(io, client.command(make_args("DEL", redis_stream_store::meta_key(ids.back()),
                                             redis_stream_store::events_key(ids.back()))));
      if (!run(io, store.create_stream(ids.back(), ""))) return 1;
    }
    const auto t0 = clock_type::now();
    std::size_t done = 0, round_trips = 0, next_stream = 0;
    bool failed = false;
    run(io, [&]() -> net::awaitable<void> {
      while (done < events && !failed) {
        std::vector<publish_batch> many;
        for (std::size_t p = 0; p < pipeline && done + many.size() * batch < events; ++p) {
          publish_batch b;
          b.stream_id = ids[next_stream++ % ids.size()];
          b.events.assign(batch, stream_event{"delta", data});
          many.push_back(std::move(b));
        }
        const auto n = many.size() * batch;
        auto r = co_await store.publish_many(std::move(many));
        ++round_trips;
        if (!r) {
          std::cerr << "publish failed: " << r.error().message() << "\n";
          failed = true;
          co_return;
        }
        for (auto& x : *r)
          if (!x) {
            std::cerr << "publish failed: " << x.error().message() << "\n";
            failed = true;
            co_return;
          }
        done += n;
      }
    }());
    const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    if (failed) return 1;
    std::printf(
        "publish: %zu events in %.3f s = %.0f events/s (%zu streams, %zu events/batch, %zu "
        "batches/round trip, %zu round trips, data %zu bytes)\n",
        done, secs, static_cast<double>(done) / secs, streams, batch, pipeline, round_trips,
        data.size());
    // The same script call for redis-benchmark (one stream, `batch` events).
    std::string cmd = "redis-benchmark -p " + endpoint->port + " -n 100000 -P " +
                      std::to_string(pipeline) + " EVALSHA " +
                      redis_stream_store::publish_script_sha() + " 2 '{s:" + ids[0] +
                      "}:meta' '{s:" + ids[0] + "}:events' '' " + std::to_string(so.max_events) +
                      " '' 600000 86400000 '' '{s:" + ids[0] + "}:wake'";
    for (std::size_t i = 0; i < batch; ++i) cmd += " delta '" + data + "'";
    std::printf("same mix in redis-benchmark:\n  %s\n", cmd.c_str());
    return 0;
  }

  if (mode == "wake") {
    const std::string id = "bench-wake";
    (void)run(io, client.command(make_args("DEL", redis_stream_store::meta_key(id),
                                           redis_stream_store::events_key(id))));
    if (!run(io, store.create_stream(id, ""))) return 1;
    // Pub/Sub: the subscriber's message after each publish.
    std::optional<clock_type::time_point> sent;
    std::vector<double> pubsub_us;
    std::size_t seen = 0;
    redis_subscriber sub(
        io.get_executor(), o,
        {[&](std::string_view, std::string_view) {
           if (sent)
             pubsub_us.push_back(
                 std::chrono::duration<double, std::micro>(clock_type::now() - *sent).count());
           sent.reset();
           ++seen;
         },
         {}});
    sub.start();
    if (run(io, sub.subscribe(redis_stream_store::wake_channel(id)))) return 1;
    redis_client blocker(io.get_executor(), o);
    blocker.start();
    if (run(io, blocker.wait_connected(std::chrono::seconds(5)))) return 1;
    std::vector<double> xread_us;
    run(io, [&]() -> net::awaitable<void> {
      for (std::size_t i = 0; i < rounds; ++i) {
        const auto before = seen;
        sent = clock_type::now();
        publish_batch b;
        b.stream_id = id;
        b.events.push_back({"delta", data});
        auto r = co_await store.publish(std::move(b));
        if (!r) co_return;
        while (seen == before) {
          net::steady_timer t(co_await net::this_coro::executor);
          t.expires_after(std::chrono::microseconds(0));
          co_await t.async_wait(net::use_awaitable);
        }
      }
      sent.reset();
      sub.stop();
      // XREAD BLOCK: a blocked read on the events key, then one publish.
      std::uint64_t last = 0;
      auto st = co_await store.status(id);
      if (st) last = st->last_seq;
      for (std::size_t i = 0; i < rounds; ++i) {
        auto wait = net::co_spawn(co_await net::this_coro::executor,
                                  blocker.command(make_args("XREAD", "BLOCK", "0", "STREAMS",
                                                            redis_stream_store::events_key(id),
                                                            std::to_string(last) + "-0")),
                                  net::use_future);
        // Make sure the XREAD is blocked before publishing: a round trip on
        // the same connection is not possible (it is blocked), so ask Redis.
        for (;;) {
          auto info = co_await client.command(make_args("INFO", "clients"));
          if (info && info->str.find("blocked_clients:1") != std::string::npos) break;
        }
        const auto t0 = clock_type::now();
        publish_batch b;
        b.stream_id = id;
        b.events.push_back({"delta", data});
        auto r = co_await store.publish(std::move(b));
        if (!r) co_return;
        last = r->last_seq;
        while (wait.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
          net::steady_timer t(co_await net::this_coro::executor);
          t.expires_after(std::chrono::microseconds(0));
          co_await t.async_wait(net::use_awaitable);
        }
        xread_us.push_back(
            std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
      }
    }());
    std::printf("wake, Pub/Sub (publish -> message):      p50 %.0f us, p99 %.0f us (%zu)\n",
                percentile(pubsub_us, 0.5), percentile(pubsub_us, 0.99), pubsub_us.size());
    std::printf("wake, XREAD BLOCK (publish -> reply):    p50 %.0f us, p99 %.0f us (%zu)\n",
                percentile(xread_us, 0.5), percentile(xread_us, 0.99), xread_us.size());
    return 0;
  }
  std::cerr << "unknown --mode " << mode << "\n";
  return 2;
}
