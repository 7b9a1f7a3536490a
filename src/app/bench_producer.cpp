#include "app/bench_producer.hpp"

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/parse.hpp>
#include <charconv>

namespace sluice::app {
namespace {

namespace net = boost::asio;
namespace json = boost::json;

constexpr std::size_t chunk_events = 256;

class bench_producer : public std::enable_shared_from_this<bench_producer> {
 public:
  bench_producer(net::any_io_executor ex, std::shared_ptr<core::stream_log> log,
                 std::uint64_t tokens, std::size_t bytes, double rate)
      : ex_(std::move(ex)), timer_(ex_), log_(std::move(log)), tokens_(tokens), rate_(rate) {
    for (std::size_t i = 0; i < bytes; ++i) text_.push_back(static_cast<char>('a' + i % 26));
  }

  void start() {
    auto weak = weak_from_this();
    cancel_id_ = log_->on_cancel([weak, ex = ex_] {
      net::post(ex, [weak] {
        if (auto self = weak.lock()) {
          self->stopped_ = true;
          self->timer_.cancel();
        }
      });
    });
    started_ = std::chrono::steady_clock::now();
    net::post(ex_, [self = shared_from_this()] { self->step(); });
  }

  ~bench_producer() { log_->remove_cancel_handler(cancel_id_); }

 private:
  // Publishes events up to `until` (exclusive of nothing: 1-based count).
  void publish_up_to(std::uint64_t until) {
    until = std::min(until, tokens_);
    while (next_ <= until) {
      const std::uint64_t end = std::min(until, next_ + chunk_events - 1);
      buffer_.clear();
      offsets_.clear();
      const auto ts = core::realtime_us();
      for (std::uint64_t n = next_; n <= end; ++n) {
        offsets_.push_back(buffer_.size());
        char num[24];
        buffer_ += "{\"seq\":";
        buffer_.append(num, std::to_chars(num, num + sizeof num, n).ptr);
        buffer_ += ",\"ts\":";
        buffer_.append(num, std::to_chars(num, num + sizeof num, ts).ptr);
        buffer_ += ",\"t\":\"";
        buffer_ += text_;
        buffer_ += "\"}";
      }
      offsets_.push_back(buffer_.size());
      items_.resize(end - next_ + 1);
      for (std::size_t i = 0; i < items_.size(); ++i) {
        items_[i].data = std::string_view(buffer_).substr(offsets_[i], offsets_[i + 1] - offsets_[i]);
        items_[i].final = next_ + i == tokens_;
      }
      if (log_->publish_all(items_).status != core::publish_status::ok) {
        stopped_ = true;
        return;
      }
      next_ = end + 1;
    }
  }

  void step() {
    if (stopped_ || next_ > tokens_) return;
    if (rate_ <= 0) {
      publish_up_to(next_ + chunk_events - 1);
      if (stopped_ || next_ > tokens_) return;
      auto self = shared_from_this();
      // Continue once the reader is within a chunk of the head; yield to the
      // event loop either way so the writer runs.
      if (log_->wait_for_drain(chunk_events, [self] {
            net::post(self->ex_, [self] { self->step(); });
          }))
        net::post(ex_, [self] { self->step(); });
      return;
    }
    const auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_);
    publish_up_to(static_cast<std::uint64_t>(elapsed.count() * rate_) + 1);
    if (stopped_ || next_ > tokens_) return;
    const auto due = started_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                    std::chrono::duration<double>((next_ - 1) / rate_));
    timer_.expires_at(due);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->step();
    });
  }

  net::any_io_executor ex_;
  net::steady_timer timer_;
  std::shared_ptr<core::stream_log> log_;
  const std::uint64_t tokens_;
  const double rate_;
  std::string text_;
  std::uint64_t next_ = 1;
  std::uint64_t cancel_id_ = 0;
  bool stopped_ = false;
  std::chrono::steady_clock::time_point started_;
  std::string buffer_;
  std::vector<std::size_t> offsets_;
  std::vector<core::publish_item> items_;
};

std::atomic<std::uint64_t> g_bench_counter{0};

}  // namespace

void add_bench_routes(transport::http_server& server) {
  transport::router& routes = server.routes();
  routes.add("POST", "/v1/bench/tokens", [&routes](transport::request_context& req) -> transport::handler_result {
    boost::system::error_code ec;
    json::value v = json::parse(req.body, ec);
    if (ec || !v.is_object())
      return transport::json_error(400, "malformed_json", "body must be {\"tokens\":T,\"bytes\":B,\"rate\":R}");
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
    if (!tokens || !bytes || !rate || *tokens < 1 || *tokens > 10'000'000 || *bytes < 0 ||
        *bytes > 65'536 || *rate < 0)
      return transport::json_error(400, "invalid_argument",
                                   "tokens 1..10000000, bytes 0..65536, rate >= 0 (0 = unpaced)");
    const std::string id = "bench-" + std::to_string(g_bench_counter.fetch_add(1) + 1) + "-" +
                           std::to_string(core::realtime_us());
    auto log = routes.registry().create(id);
    if (!log) return transport::json_error(503, "too_many_streams", "the stream limit is reached");
    // A benchmark's streams need not stay replayable for long (a full run is
    // hundreds of MB that later measurements would otherwise inherit).
    (*log)->keep_finished_for(10'000'000);
    auto producer = std::make_shared<bench_producer>(req.executor, *log,
                                                     static_cast<std::uint64_t>(*tokens),
                                                     static_cast<std::size_t>(*bytes), *rate);
    producer->start();
    return routes.subscribe(req, *log);
  });
}

}  // namespace sluice::app
