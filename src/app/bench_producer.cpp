#include "app/bench_producer.hpp"

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/parse.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <deque>

#include "core/after_publish.hpp"

namespace sluice::app {
namespace {

namespace net = boost::asio;
namespace json = boost::json;

constexpr std::size_t chunk_events = 256;
constexpr double max_tokens = 10'000'000;
constexpr double max_bytes = 65'536;
constexpr double min_rate = 0.01;  // one event per 100 s
constexpr double max_rate = 1'000'000;
// A stream nobody reads is cancelled by the registry's sweep after this long
// (covers a client that never attached); a reader that leaves stops the
// producer at its next step.
constexpr std::int64_t unread_grace_us = 1'000'000;

class bench_producer;
using steady_clock = std::chrono::steady_clock;

// The T of the calling thread, made on first use from `ex` (each worker
// thread runs one io_context; `ex` is that context's executor). Producers
// hold it; it goes when the last of them on the thread does.
template <class T>
std::shared_ptr<T> for_this_thread(const net::any_io_executor& ex) {
  thread_local std::weak_ptr<T> current;
  auto p = current.lock();
  if (!p) {
    p = std::make_shared<T>(ex);
    current = p;
  }
  return p;
}

// One pacing timer per worker thread for every paced producer on it: a heap of
// due times and one steady_timer armed at the earliest, instead of an Asio
// timer wait (a handler allocation, a timer-queue insertion and a dispatch)
// per stream per event. Producers due together run in one handler.
// Thread-safety: used only on the thread whose io_context it waits on.
class pacer : public std::enable_shared_from_this<pacer> {
 public:
  explicit pacer(net::any_io_executor ex) : timer_(std::move(ex)) {}

  void schedule(steady_clock::time_point due, std::shared_ptr<bench_producer> p) {
    heap_.push_back({due, std::move(p)});
    std::push_heap(heap_.begin(), heap_.end(), later);
    const auto at = slot_end(due);
    if (!armed_ || at < armed_at_) arm(at);
  }

 private:
  struct entry {
    steady_clock::time_point due;
    std::shared_ptr<bench_producer> producer;
  };
  static constexpr std::size_t flush_every = 16;
  static bool later(const entry& a, const entry& b) { return a.due > b.due; }

  // Due times are served in 1 ms slots, as a timer wheel would: the timer
  // rings at the end of the slot holding the earliest due time and serves
  // every producer due by then, back to back (their readers' writes then come
  // in bursts the receiving side takes in one wakeup, not one wakeup per
  // event). A step is at most 1 ms late; the schedule stays absolute, so
  // lateness never accumulates over a stream.
  static steady_clock::time_point slot_end(steady_clock::time_point due) {
    return steady_clock::time_point(std::chrono::duration_cast<steady_clock::duration>(
        std::chrono::ceil<std::chrono::milliseconds>(due.time_since_epoch())));
  }

  void arm(steady_clock::time_point due) {
    armed_ = true;
    armed_at_ = due;
    timer_.expires_at(due);  // a wait armed for later ends with operation_aborted
    timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      if (ec) return;
      if (auto self = weak.lock()) self->fire();
    });
  }

  void fire();

  net::steady_timer timer_;
  std::vector<entry> heap_;
  bool armed_ = false;
  steady_clock::time_point armed_at_;
};

// Unpaced producers take turns with the event loop's I/O: a turn runs at most
// steps_per_turn producer steps, and the rest wait behind what the loop
// queued meanwhile (accepts, requests, write completions), as producers fed
// by sockets would (Asio's reactor hands out at most 128 ready sockets per
// wait). Without it, a thousand producers each posting their next step make
// one pass of the loop a thousand steps long, and a new connection waits that
// long for each of its accept, its request and its first write.
// Thread-safety: used only on the thread whose io_context it posts to.
class stepper : public std::enable_shared_from_this<stepper> {
 public:
  static constexpr std::size_t steps_per_turn = 16;

  explicit stepper(net::any_io_executor ex) : ex_(std::move(ex)) {}

  void enqueue(std::shared_ptr<bench_producer> p) {
    queue_.push_back(std::move(p));
    if (!posted_) post_turn();
  }

 private:
  void post_turn() {
    posted_ = true;
    net::post(ex_, [self = shared_from_this()] { self->turn(); });
  }
  void turn();

  net::any_io_executor ex_;
  std::deque<std::shared_ptr<bench_producer>> queue_;
  bool posted_ = false;
};

class bench_producer : public std::enable_shared_from_this<bench_producer> {
 public:
  bench_producer(net::any_io_executor ex, std::shared_ptr<core::stream_log> log,
                 std::uint64_t tokens, std::size_t bytes, double rate)
      : ex_(std::move(ex)), log_(std::move(log)), tokens_(tokens), rate_(rate) {
    if (rate_ > 0)
      pacer_ = for_this_thread<pacer>(ex_);
    else
      stepper_ = for_this_thread<stepper>(ex_);
    for (std::size_t i = 0; i < bytes; ++i) text_.push_back(static_cast<char>('a' + i % 26));
  }

  void start() {
    auto weak = weak_from_this();
    cancel_id_ = log_->on_cancel([weak, ex = ex_] {
      net::post(ex, [weak] {
        // A paced producer's pending step finds it stopped and does nothing.
        if (auto self = weak.lock()) self->stopped_ = true;
      });
    });
    started_ = std::chrono::steady_clock::now();
    // The first events now, in the request's handler: the reader that
    // attaches next gets them with the response head, in its first write,
    // instead of after everything already queued on this thread.
    step();
  }

  ~bench_producer() { log_->remove_cancel_handler(cancel_id_); }

  void step() {
    if (stopped_ || next_ > tokens_) return;
    if (rate_ <= 0) {
      // Paced streams rely on the registry's unread sweep (one event per step
      // is cheap); an unpaced one would run flat out until then.
      if (reader_gone()) return;
      publish_up_to(next_ + chunk_events - 1);
      core::after_publish();  // the reader on this thread gets them now
      if (stopped_ || next_ > tokens_) return;
      auto self = shared_from_this();
      // Continue once the reader is within a chunk of the head; yield to the
      // event loop either way so the writer runs.
      if (log_->wait_for_drain(chunk_events, [self] {
            net::post(self->ex_, [self] { self->stepper_->enqueue(self); });
          }))
        stepper_->enqueue(std::move(self));
      return;
    }
    const auto elapsed = std::chrono::duration<double>(steady_clock::now() - started_);
    // Both factors are bounded (elapsed by the stream's life, rate_ by
    // max_rate), and the result is clamped before the cast.
    const double due_count = std::min(elapsed.count() * rate_ + 1, static_cast<double>(tokens_));
    publish_up_to(static_cast<std::uint64_t>(due_count));
    if (stopped_ || next_ > tokens_) return;
    const auto due = started_ + std::chrono::duration_cast<steady_clock::duration>(
                                    std::chrono::duration<double>((next_ - 1) / rate_));
    pacer_->schedule(due, shared_from_this());
  }

 private:
  // Publishes events up to `until` (exclusive of nothing: 1-based count).
  void publish_up_to(std::uint64_t until) {
    until = std::min(until, tokens_);
    // Scratch shared by the thread's producers (publish_all only copies from
    // it): 1,000 producers each keeping a chunk's worth cost ~25 MB.
    thread_local std::string buffer;
    thread_local std::vector<std::size_t> offsets;
    thread_local std::vector<core::publish_item> items;
    while (next_ <= until) {
      const std::uint64_t end = std::min(until, next_ + chunk_events - 1);
      buffer.clear();
      offsets.clear();
      const auto ts = core::realtime_us();
      for (std::uint64_t n = next_; n <= end; ++n) {
        offsets.push_back(buffer.size());
        char num[24];
        buffer += "{\"seq\":";
        buffer.append(num, std::to_chars(num, num + sizeof num, n).ptr);
        buffer += ",\"ts\":";
        buffer.append(num, std::to_chars(num, num + sizeof num, ts).ptr);
        buffer += ",\"t\":\"";
        buffer += text_;
        buffer += "\"}";
      }
      offsets.push_back(buffer.size());
      items.resize(end - next_ + 1);
      for (std::size_t i = 0; i < items.size(); ++i) {
        items[i].data =
            std::string_view(buffer).substr(offsets[i], offsets[i + 1] - offsets[i]);
        items[i].final = next_ + i == tokens_;
      }
      if (log_->publish_all(items).status != core::publish_status::ok) {
        stopped_ = true;
        return;
      }
      next_ = end + 1;
    }
  }

  // True (and the stream cancelled) once the reader that attached has left:
  // a client that asked for 10M events and disconnected must not leave the
  // producer running flat out.
  bool reader_gone() {
    const std::size_t readers = log_->status().subscribers;
    if (readers > 0) {
      had_reader_ = true;
      return false;
    }
    if (!had_reader_) return false;  // not attached yet; the unread grace covers it
    stopped_ = true;
    log_->cancel("no reader");
    return true;
  }

  net::any_io_executor ex_;
  std::shared_ptr<pacer> pacer_;      // paced producers only
  std::shared_ptr<stepper> stepper_;  // unpaced producers only
  std::shared_ptr<core::stream_log> log_;
  const std::uint64_t tokens_;
  const double rate_;
  std::string text_;
  std::uint64_t next_ = 1;
  std::uint64_t cancel_id_ = 0;
  bool stopped_ = false;
  bool had_reader_ = false;
  std::chrono::steady_clock::time_point started_;
};

void pacer::fire() {
  armed_ = false;
  const auto now = steady_clock::now();
  std::size_t stepped = 0;
  while (!heap_.empty() && heap_.front().due <= now) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    auto p = std::move(heap_.back().producer);
    heap_.pop_back();
    p->step();  // may schedule it again
    // Their readers are written to after every 16 steps and at the end: a
    // burst the receiving side takes in one wakeup, soon after the publish
    // (after each step: p50 21 us but 1.7x the receiver's wakeups and +10%
    // server CPU; once per slot: p50 0.3 ms; docs/benchmarks.md).
    if (++stepped % flush_every == 0) core::after_publish();
  }
  core::after_publish();
  if (heap_.empty()) return;
  const auto at = slot_end(heap_.front().due);
  if (!armed_ || at < armed_at_) arm(at);
}

void stepper::turn() {
  posted_ = false;
  for (std::size_t n = 0; n < steps_per_turn && !queue_.empty(); ++n) {
    auto p = std::move(queue_.front());
    queue_.pop_front();
    p->step();  // may enqueue it again, at the back
  }
  if (!queue_.empty() && !posted_) post_turn();
}

std::atomic<std::uint64_t> g_bench_counter{0};

}  // namespace

void add_bench_routes(transport::http_server& server) {
  transport::router& routes = server.routes();
  routes.add(
      "POST", "/v1/bench/tokens",
      [&routes](transport::request_context& req) -> transport::handler_result {
        boost::system::error_code ec;
        json::value v = json::parse(req.body, ec);
        if (ec || !v.is_object())
          return transport::json_error(400, "malformed_json",
                                       "body must be {\"tokens\":T,\"bytes\":B,\"rate\":R}");
        const auto& o = v.as_object();
        auto num = [&](const char* key, double dflt) -> std::optional<double> {
          const json::value* f = o.if_contains(key);
          if (!f) return dflt;
          if (f->is_int64()) return static_cast<double>(f->as_int64());
          if (f->is_uint64()) return static_cast<double>(f->as_uint64());
          if (f->is_double()) return f->as_double();
          return std::nullopt;
        };
        auto tokens = num("tokens", 100), bytes = num("bytes", 8), rate = num("rate", 0);
        // Every bound is checked on the double before any cast (a cast of an
        // out-of-range double is undefined behaviour); NaN fails every comparison.
        auto whole_in = [](std::optional<double> v, double lo, double hi) {
          return v && *v >= lo && *v <= hi && *v == std::floor(*v);
        };
        const bool rate_ok = rate && (*rate == 0 || (*rate >= min_rate && *rate <= max_rate));
        if (!whole_in(tokens, 1, max_tokens) || !whole_in(bytes, 0, max_bytes) || !rate_ok)
          return transport::json_error(
              400, "invalid_argument",
              "tokens: a whole number 1..10000000; bytes: a whole number 0..65536; rate: 0 "
              "(unpaced) or 0.01..1000000 events/s");
        const std::string id = "bench-" + std::to_string(g_bench_counter.fetch_add(1) + 1) + "-" +
                               std::to_string(core::realtime_us());
        auto log = routes.registry().create(id);
        if (!log)
          return transport::json_error(503, "too_many_streams", "the stream limit is reached");
        // A benchmark's streams need not stay replayable for long (a full run is
        // hundreds of MB that later measurements would otherwise inherit).
        (*log)->keep_finished_for(10'000'000);
        (*log)->cancel_when_unread(unread_grace_us);
        (*log)->set_local_producer();  // a restart ends it "interrupted" (docs/durability.md)
        auto producer = std::make_shared<bench_producer>(req.executor, *log,
                                                         static_cast<std::uint64_t>(*tokens),
                                                         static_cast<std::size_t>(*bytes), *rate);
        producer->start();
        return routes.subscribe(req, *log);
      });
}

}  // namespace sluice::app
