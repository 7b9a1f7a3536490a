#include "cluster/cluster_node.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <condition_variable>
#include <future>
#include <mutex>
#include <random>
#include <unordered_map>

#include "core/coalescer.hpp"
#include "core/stream_id.hpp"
#include "redis/async_event.hpp"
#include "redis/redis_subscriber.hpp"

namespace sluice::cluster {

namespace net = boost::asio;
using boost::system::error_code;
using clock = std::chrono::steady_clock;
using streams::op_error;
using streams::op_result;
constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);

std::string default_node_id(unsigned short port) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = 0;
  std::string name;
  for (const char* p = host; *p && name.size() < 64; ++p) {
    const char c = *p;
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_';
    name.push_back(ok ? c : '_');
  }
  if (name.empty()) name = "node";
  std::random_device rd;
  return name + ":" + std::to_string(port) + ":" + std::to_string(rd() % 1'000'000);
}

bool decode_sse_event(std::string_view sse, std::string& type, std::string& data) {
  type = std::string(core::default_event_type);
  data.clear();
  bool any_data = false;
  while (!sse.empty()) {
    const auto nl = sse.find('\n');
    if (nl == std::string_view::npos) return false;
    const std::string_view line = sse.substr(0, nl);
    sse.remove_prefix(nl + 1);
    if (line.empty()) return any_data && sse.empty();
    if (line.starts_with("id: ")) continue;
    if (line.starts_with("event: ")) {
      type = std::string(line.substr(7));
    } else if (line.starts_with("data: ")) {
      if (any_data) data.push_back('\n');
      data.append(line.substr(6));
      any_data = true;
    } else {
      return false;
    }
  }
  return false;
}

namespace {

op_error unavailable() {
  return {"store_unavailable", 503, "the stream store (Redis) is not reachable; retry later", 1};
}

// A store outcome as the protocol's error.
op_error store_error(const error_code& ec) {
  using redis::redis_errc;
  if (ec == redis_errc::stream_ended)
    return {"stream_ended", 409, "the stream has ended; publishing is refused", 0};
  if (ec == redis_errc::has_producer)
    return {"stream_has_producer", 409,
            "a run's producer writes this stream; other publishes are refused", 0};
  if (ec == redis_errc::stream_not_found) return streams::stream_not_found();
  if (ec == redis_errc::history_truncated)
    return {"history_truncated", 409, "the stream's history was lost (its epoch changed)", 0};
  if (ec == redis_errc::resume_window_exceeded)
    return {"resume_window_exceeded", 409, "the events after the cursor are no longer retained", 0};
  if (ec == redis_errc::invalid_argument)
    return {"invalid_argument", 400, "the stream store refuses this request (too many events?)", 0};
  return unavailable();
}

core::stream_state state_of(std::string_view s) {
  if (s == "finished") return core::stream_state::finished;
  if (s == "cancelled") return core::stream_state::cancelled;
  return core::stream_state::open;
}

template <class F>
void spawn(const net::any_io_executor& ex, F&& f, const char* what) {
  net::co_spawn(ex, std::forward<F>(f), [what](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      spdlog::error("cluster: {} failed (a bug): {}", what, x.what());
    } catch (...) {
      spdlog::error("cluster: {} failed (a bug)", what);
    }
  });
}

// One event of a local producer, pinned until forwarded.
struct pending_event {
  std::uint64_t seq;
  std::shared_ptr<core::log_segment> segment;
  std::uint32_t offset, length;
  core::stream_state end_state;
  // A delta's key (shared by the consecutive deltas of one message); null
  // for other events.
  std::shared_ptr<const redis::delta_key> delta = nullptr;
};

}  // namespace

// ---- the journal of a local producer ---------------------------------------

class forward_journal final : public core::stream_journal,
                              public std::enable_shared_from_this<forward_journal> {
 public:
  forward_journal(std::weak_ptr<cluster_node::impl> node, net::any_io_executor ex,
                  core::stream_meta meta, std::size_t budget)
      : node_(std::move(node)), ex_(std::move(ex)), meta_(std::move(meta)), budget_(budget) {}

  void appended(const core::journal_event& e) noexcept override;
  void meta_changed(const core::stream_meta& m) noexcept override {
    std::lock_guard lock(m_);
    meta_ = m;
  }

  const std::string& id() const { return meta_.id; }  // (id and owner never change)
  std::string owner() const {
    std::lock_guard lock(m_);
    return meta_.owner;
  }
  std::int64_t unread_grace_us() const {
    std::lock_guard lock(m_);
    return meta_.unread_grace_us;
  }
  // Takes up to `max` pending events (in order).
  std::vector<pending_event> take(std::size_t max) {
    std::lock_guard lock(m_);
    std::vector<pending_event> out;
    const std::size_t n = std::min(max, pending_.size());
    out.assign(std::make_move_iterator(pending_.begin()),
               std::make_move_iterator(pending_.begin() + static_cast<std::ptrdiff_t>(n)));
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n));
    for (const auto& e : out) bytes_ -= e.length;
    if (pending_.empty()) scheduled_ = false;
    return out;
  }
  // Puts events back in front (a failed write, retried).
  void put_back(std::vector<pending_event> events) {
    std::lock_guard lock(m_);
    for (const auto& e : events) bytes_ += e.length;
    pending_.insert(pending_.begin(), std::make_move_iterator(events.begin()),
                    std::make_move_iterator(events.end()));
  }
  void drop_all() {
    std::lock_guard lock(m_);
    pending_.clear();
    bytes_ = 0;
    scheduled_ = false;
  }
  bool has_pending() const {
    std::lock_guard lock(m_);
    return !pending_.empty();
  }

 private:
  std::weak_ptr<cluster_node::impl> node_;
  net::any_io_executor ex_;
  mutable std::mutex m_;
  core::stream_meta meta_;              // guarded by m_
  std::vector<pending_event> pending_;  // guarded by m_
  std::size_t bytes_ = 0;               // guarded by m_
  bool scheduled_ = false;              // guarded by m_: a flush is posted
  bool overflowed_ = false;             // guarded by m_
  // Guarded by m_: the newest delta's key (its deltas share it).
  std::shared_ptr<const redis::delta_key> last_delta_;
  const std::size_t budget_;
};

// ---- the node --------------------------------------------------------------

class cluster_node::impl : public std::enable_shared_from_this<impl> {
 public:
  impl(net::io_context& ioc, core::stream_registry& registry, cluster_options o)
      : ioc_(ioc),
        registry_(registry),
        opts_(std::move(o)),
        client_(ioc_.get_executor(), opts_.redis),
        store_(client_, opts_.store),
        subscriber_(
            ioc_.get_executor(), opts_.redis,
            redis::redis_subscriber_handlers{
                [this](std::string_view ch, std::string_view payload) { on_message(ch, payload); },
                [this] { on_resubscribed(); }}),
        tick_timer_(ioc_) {}

  void start() {
    client_.start();
    subscriber_.start();
    spawn(ioc_.get_executor(), subscribe_cancel_channel(), "cancel channel");
    spawn(ioc_.get_executor(), tick_loop(), "background task");
  }

  // On the node's thread: stops everything; the thread then returns.
  void shutdown() {
    stopped_ = true;
    tick_timer_.cancel();
    client_.stop();
    subscriber_.stop();
    ioc_.stop();
  }
  void mark_stopped() { stopped_ = true; }
  bool stopped() const { return stopped_.load(); }

  // Graceful shutdown, on the node's thread, once the server's workers
  // stopped (no producer runs any more): every local run that has not ended
  // gets a final error event {"code":"interrupted"} (what a restarted single
  // node gives it), then the write-behind has until `deadline` to put every
  // run's events in Redis. `done(runs interrupted, everything written)`.
  net::awaitable<void> drain(clock::time_point deadline,
                             std::function<void(std::size_t, bool)> done) {
    auto self = shared_from_this();
    static constexpr std::string_view interrupted =
        R"({"code":"interrupted","error":"the node running this run shut down; )"
        R"(start it again to get a new answer"})";
    std::size_t ended = 0;
    for (const auto& [id, run] : runs_) {
      if (run->ended || run->dead || mirrors_.count(id)) continue;
      if (auto log = registry_.find(id);
          log && log->publish("error", interrupted, true).status == core::publish_status::ok)
        ++ended;
    }
    net::steady_timer t(ioc_);
    for (;;) {
      bool pending = false;
      for (const auto& [id, run] : runs_)
        if (!run->dead && run->journal && (run->journal->has_pending() || run->flushing))
          pending = true;
      if (!pending || clock::now() >= deadline) co_return done(ended, !pending);
      t.expires_after(std::chrono::milliseconds(10));
      co_await t.async_wait(tuple_awaitable);
    }
  }

  bool wait_connected(std::chrono::milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    while (clock::now() < deadline) {
      std::promise<bool> p;
      auto f = p.get_future();
      net::post(ioc_, [this, &p] { p.set_value(client_.connected() && subscriber_.connected()); });
      if (f.wait_until(deadline) != std::future_status::ready) return false;
      if (f.get()) return true;
      std::unique_lock lock(wait_m_);
      wait_cv_.wait_for(lock, std::chrono::milliseconds(20));
    }
    return false;
  }

  const cluster_options& options() const { return opts_; }
  net::any_io_executor executor() { return ioc_.get_executor(); }

  // Runs `f` (a coroutine factory) on the node's thread; an op after stop()
  // completes with store_unavailable through `fail`.
  template <class F, class Fail>
  void run(F f, Fail fail, const char* what) {
    if (stopped_.load()) return fail();
    spawn(ioc_.get_executor(), std::move(f), what);
  }

  // --- ops ------------------------------------------------------------------

  net::awaitable<void> publish(std::string id, std::string owner,
                               std::vector<streams::owned_event> events, bool final,
                               streams::op_callback<streams::publish_result> done) {
    auto self = shared_from_this();
    auto make_batch = [&] {
      redis::publish_batch b;
      b.stream_id = id;
      b.events.reserve(events.size());
      for (const auto& e : events) {
        b.events.push_back({e.type, e.data});
        if (!e.delta_of.empty())
          b.events.back().delta = redis::delta_key{e.delta_of, e.delta_field};
      }
      if (final) b.final_state = "finished";
      b.writer = redis::publish_writer::external;
      return b;
    };
    auto r = co_await store_.publish(make_batch());
    if (!r && r.error() == redis::redis_errc::stream_not_found) {
      auto c = co_await store_.create_stream(id, owner);
      if (!c) co_return done(store_error(c.error()));
      r = co_await store_.publish(make_batch());
    }
    if (!r) co_return done(store_error(r.error()));
    co_return done(streams::publish_result{r->first_seq, r->last_seq, {}});
  }

  net::awaitable<void> open(std::string id, std::optional<std::uint64_t> after, bool create_pending,
                            streams::stream_backend::access_check check,
                            streams::op_callback<std::shared_ptr<core::stream_log>> done) {
    auto self = shared_from_this();
    // A local producer's own log is ahead of Redis: readers here use it.
    if (auto local = local_log(id)) {
      if (auto e = check(local->owner())) co_return done(std::move(*e));
      co_return done(std::move(local));
    }
    auto m = co_await mirror_of(id);
    if (!m) co_return done(unavailable());
    if (!m->ok) {
      auto e = m->error;
      forget(id, m);
      co_return done(std::move(e));
    }
    if (auto e = check(m->owner)) co_return done(std::move(*e));
    if (!m->exists && !create_pending) co_return done(streams::stream_not_found());
    if (after && *after > m->log->status().last_sequence) co_await refresh(m);
    m->unread_since = {};
    co_return done(m->log);
  }

  net::awaitable<void> status(std::string id, streams::stream_backend::access_check check,
                              streams::op_callback<streams::stream_info> done) {
    auto self = shared_from_this();
    if (auto local = local_log(id)) {
      if (auto e = check(local->owner())) co_return done(std::move(*e));
      co_return done(streams::stream_info{id, local->status()});
    }
    auto meta = co_await store_.status(id);
    if (!meta) co_return done(store_error(meta.error()));
    if (auto e = check(meta->owner)) co_return done(std::move(*e));
    streams::stream_info info{id, {}};
    auto& st = info.status;
    if (auto it = mirrors_.find(id); it != mirrors_.end() && it->second->log && it->second->ok) {
      st = it->second->log->status();  // this node's readers, bytes and window
    } else {
      // Not read here: the window Redis retains (no bytes, no readers here).
      st.first_sequence = meta->first_seq;
      st.retained_events = static_cast<std::size_t>(meta->retained_events);
    }
    st.state = state_of(meta->state);
    st.last_sequence = meta->last_seq;
    st.created_us = meta->created_at_ms * 1000;
    st.finished_us = meta->finished_at_ms * 1000;
    co_return done(std::move(info));
  }

  net::awaitable<void> cancel(std::string id, std::string reason,
                              streams::stream_backend::access_check check,
                              streams::op_callback<streams::cancel_result> done) {
    auto self = shared_from_this();
    if (auto local = local_log(id)) {
      if (auto e = check(local->owner())) co_return done(std::move(*e));
      if (!local->cancel(reason))
        co_return done(op_error{"stream_ended", 409, "the stream has already ended", 0});
      co_return done(streams::cancel_result{local->status().last_sequence});
    }
    auto meta = co_await store_.status(id);
    if (!meta) co_return done(store_error(meta.error()));
    if (auto e = check(meta->owner)) co_return done(std::move(*e));
    if (!meta->open())
      co_return done(op_error{"stream_ended", 409, "the stream has already ended", 0});
    if (!meta->producer) {
      // No producer to tell: the final `cancelled` event goes to Redis here.
      redis::publish_batch b;
      b.stream_id = id;
      b.events.push_back(
          {"cancelled",
           "{\"reason\":" + boost::json::serialize(boost::json::string(reason)) + "}"});
      b.final_state = "cancelled";
      b.writer = redis::publish_writer::external;
      auto r = co_await store_.publish(std::move(b));
      if (!r) {
        if (r.error() == redis::redis_errc::stream_ended)
          co_return done(op_error{"stream_ended", 409, "the stream has already ended", 0});
        co_return done(store_error(r.error()));
      }
      co_return done(streams::cancel_result{r->last_seq});
    }
    // The producer's node ends it (its cancel channel, or its next renewal).
    auto c = co_await store_.request_cancel(id, reason);
    if (!c) co_return done(store_error(c.error()));
    if (c->state != "open")
      co_return done(op_error{"stream_ended", 409, "the stream has already ended", 0});
    // Wait (bounded) for its final event, to answer with its sequence.
    auto m = co_await mirror_of(id);
    const auto deadline = clock::now() + opts_.cancel_wait;
    if (m && m->ok) {
      while (m->log->state() == core::stream_state::open && clock::now() < deadline)
        co_await m->changed.wait_until(deadline);
      m->unread_since = {};
      co_return done(streams::cancel_result{m->log->status().last_sequence});
    }
    co_return done(streams::cancel_result{meta->last_seq});
  }

  net::awaitable<void> start_run(std::string request_id, std::string owner, bool resuming,
                                 streams::stream_backend::access_check check,
                                 std::function<op_result<streams::run_started>()> launch,
                                 net::any_io_executor launch_on,
                                 streams::op_callback<streams::run_started> done) {
    auto self = shared_from_this();
    auto found = co_await store_.find_run(request_id);
    if (!found) co_return done(store_error(found.error()));
    std::optional<redis::run_record> rec = std::move(*found);
    if (!rec) {
      if (resuming) co_return done(streams::stream_not_found());
      auto reg = co_await store_.register_run(request_id, request_id, owner);
      if (!reg) co_return done(store_error(reg.error()));
      if (reg->created) {
        // Ours: the producer starts here; its journal makes the stream in
        // Redis and takes the lease.
        net::post(launch_on, [self, launch = std::move(launch), done = std::move(done),
                              request_id]() mutable {
          auto r = launch();
          if (!r)
            net::post(self->ioc_, [self, request_id] {
              spawn(self->ioc_.get_executor(), self->forget_run_record(request_id), "run record");
            });
          done(std::move(r));
        });
        co_return;
      }
      rec = std::move(*reg);
    }
    // Attach: the run exists (here or on another node).
    if (auto e = check(rec->owner)) co_return done(std::move(*e));
    if (auto local = local_log(rec->stream_id))
      co_return done(streams::run_started{std::move(local), false, true});
    auto m = co_await mirror_of(rec->stream_id);
    if (!m) co_return done(unavailable());
    if (!m->ok) {
      auto e = m->error;
      forget(rec->stream_id, m);
      co_return done(std::move(e));
    }
    m->unread_since = {};
    co_return done(streams::run_started{m->log, false, true});
  }

  // --- journals ---------------------------------------------------------------

  std::shared_ptr<core::stream_journal> open_journal(const core::stream_meta& meta) {
    auto j = std::make_shared<forward_journal>(weak_from_this(), ioc_.get_executor(), meta,
                                               opts_.max_pending_bytes);
    net::post(ioc_, [w = weak_from_this(), j] {
      auto self = w.lock();
      if (!self || self->runs_.count(j->id())) return;
      auto run = std::make_shared<run_state>();
      run->journal = j;
      self->runs_[j->id()] = run;
    });
    return j;
  }

  void erased(const core::stream_log& log) noexcept {
    try {
      net::post(ioc_, [w = weak_from_this(), id = log.id()] {
        auto self = w.lock();
        if (!self) return;
        auto it = self->runs_.find(id);
        if (it != self->runs_.end() && it->second->ended) self->runs_.erase(it);
      });
    } catch (...) {
    }
  }

  // A flush of `j` is due (posted by the journal).
  void schedule_flush(const std::shared_ptr<forward_journal>& j) {
    auto it = runs_.find(j->id());
    if (it == runs_.end()) {
      auto run = std::make_shared<run_state>();
      run->journal = j;
      it = runs_.emplace(j->id(), run).first;
    }
    auto run = it->second;
    if (run->flushing || run->dead) return;
    run->flushing = true;
    spawn(ioc_.get_executor(), flush(run), "write-behind");
  }

  // The write-behind queue overflowed: the run ends in protocol.
  void overflowed(const std::string& id) {
    spdlog::warn("cluster: stream {}: more than {} bytes wait for Redis; ending the run", id,
                 opts_.max_pending_bytes);
    if (auto log = registry_.find(id))
      log->cancel("store_unavailable: the stream store is not reachable");
  }

 private:
  struct mirror_state {
    std::shared_ptr<core::stream_log> log;
    std::string epoch;
    std::string owner;
    bool exists = false;  // in Redis (else a pending mirror)
    bool ready = false;   // primed (or failed: ok false)
    bool ok = true;
    op_error error;
    bool reading = false;
    bool again = false;
    bool retry_armed = false;
    clock::time_point created = clock::now();
    std::optional<clock::time_point> unread_since;
    redis::async_event changed;
  };
  using mirror_ptr = std::shared_ptr<mirror_state>;

  struct run_state {
    std::shared_ptr<forward_journal> journal;
    bool created = false;  // the stream exists in Redis and the lease is ours
    bool flushing = false;
    bool ended = false;  // the final event is in Redis
    bool dead = false;   // lease lost or conflict: nothing more is forwarded
    clock::time_point last_renew{};
    std::chrono::milliseconds backoff{100};
  };
  using run_ptr = std::shared_ptr<run_state>;

  // A stream this node's producer writes (in the registry, not a mirror).
  std::shared_ptr<core::stream_log> local_log(const std::string& id) {
    if (!runs_.count(id) || mirrors_.count(id)) return nullptr;
    return registry_.find(id);
  }

  void forget(const std::string& id, const mirror_ptr& m) {
    auto it = mirrors_.find(id);
    if (it == mirrors_.end() || it->second != m) return;
    if (m->log) registry_.drop(id, m->log.get());
    subscriber_.unsubscribe(redis::redis_stream_store::wake_channel(id));
    mirrors_.erase(it);
  }

  // The mirror of `id`, primed (ok) or failed (ok false, error set); null
  // when priming did not finish in time.
  net::awaitable<mirror_ptr> mirror_of(const std::string& id) {
    auto it = mirrors_.find(id);
    if (it != mirrors_.end()) {
      auto m = it->second;
      // Evicted from the registry meanwhile (memory budget): prime again.
      if (m->ready && m->ok && registry_.find(id) != m->log) {
        forget(id, m);
      } else {
        const auto deadline = clock::now() + opts_.redis.request_timeout * 2;
        while (!m->ready && clock::now() < deadline) co_await m->changed.wait_until(deadline);
        co_return m->ready ? m : nullptr;
      }
    }
    auto m = std::make_shared<mirror_state>();
    mirrors_[id] = m;
    co_await prime(id, m);
    m->ready = true;
    m->changed.notify_all();
    co_return m;
  }

  net::awaitable<void> prime(const std::string& id, mirror_ptr m) {
    auto fail = [&](op_error e) {
      m->ok = false;
      m->error = std::move(e);
    };
    // Subscribed first: nothing published after the read below is missed.
    if (auto ec = co_await subscriber_.subscribe(redis::redis_stream_store::wake_channel(id)))
      co_return fail(unavailable());
    auto r = co_await store_.read_after(id, 0, "", opts_.store.max_read_events, true);
    if (!r && r.error() != redis::redis_errc::stream_not_found)
      co_return fail(store_error(r.error()));
    core::stream_meta meta;
    meta.id = id;
    if (r) {
      meta.owner = r->meta.owner;
      meta.created_us = r->meta.created_at_ms * 1000;
    } else {
      meta.created_us = core::realtime_us();
    }
    auto log = registry_.restore(meta);
    if (!log)
      co_return fail(op_error{"stream_busy", 503, "the stream is being set up here; retry", 1});
    m->log = log;
    if (!r) co_return;  // pending: the first publish wakes it
    adopt(*m, r->meta);
    if (!apply(*m, *r)) co_return fail(store_error(redis::redis_errc::history_truncated));
    // The rest of a long history, then whatever came meanwhile.
    co_await read_more(id, m);
  }

  // A mirror takes a stream's epoch from Redis when it first sees it: the
  // epoch its first events were in (the previous one when a lost
  // producer's end began a new one).
  void adopt(mirror_state& m, const redis::stream_meta& meta) {
    m.exists = true;
    m.owner = meta.owner;
    m.epoch = meta.epoch_boundary != 0 ? meta.previous_epoch : meta.epoch;
    if (!m.epoch.empty()) m.log->set_epoch(m.epoch);
  }

  // Appends a read's events to the mirror, beginning the stream's new
  // epoch at its boundary. False when Redis's epoch is not this mirror's
  // (nor its successor): the history the mirror holds was lost.
  bool apply(mirror_state& m, const redis::read_result& r) {
    std::size_t split = r.events.size();  // events before the new epoch
    if (r.meta.epoch != m.epoch) {
      if (r.meta.epoch_boundary == 0 || r.meta.previous_epoch != m.epoch) return false;
      split = 0;
      while (split < r.events.size() && r.events[split].seq < r.meta.epoch_boundary) ++split;
    }
    const auto end = r.final_included ? state_of(r.meta.state) : core::stream_state::open;
    auto append = [&](std::size_t from, std::size_t to, core::stream_state end_state) {
      if (from >= to) return;
      std::vector<core::publish_item> items;
      items.reserve(to - from);
      // Deltas as on the producing node, so this node's readers coalesce
      // them; an entry whose key or data does not check out is a plain event.
      // (Reserved: items point into `deltas`.)
      std::vector<core::delta_event> deltas;
      deltas.reserve(to - from);
      for (std::size_t i = from; i < to; ++i) {
        const auto& e = r.events[i];
        items.push_back({e.type, e.data, false, nullptr});
        if (!e.delta) continue;
        if (auto d = core::delta_from_stored(e.type, e.delta->message_id, e.delta->field, e.data)) {
          deltas.push_back(std::move(*d));
          items.back().delta = &deltas.back();
        }
      }
      m.log->append_mirrored(r.events[from].seq, items, end_state);
    };
    append(0, split, split == r.events.size() ? end : core::stream_state::open);
    if (split < r.events.size() ||
        (r.meta.epoch != m.epoch && m.log->status().last_sequence + 1 == r.meta.epoch_boundary)) {
      m.log->begin_epoch(r.meta.epoch);
      m.epoch = r.meta.epoch;
      append(split, r.events.size(), end);
    }
    return true;
  }

  // Reads after the mirror's head until caught up. False on a failure.
  net::awaitable<bool> read_more(const std::string& id, mirror_ptr m) {
    for (;;) {
      const auto st = m->log->status();
      if (st.state != core::stream_state::open) co_return true;
      const bool empty = st.last_sequence == 0;
      // Any epoch: apply() decides whether Redis's is this mirror's.
      auto r = co_await store_.read_after(id, st.last_sequence, std::string(),
                                          opts_.store.max_read_events, empty);
      if (!r) {
        if (r.error() == redis::redis_errc::stream_not_found && !m->exists) co_return true;
        if (r.error() == redis::redis_errc::history_truncated ||
            (r.error() == redis::redis_errc::stream_not_found && m->exists)) {
          end_lost_history(id, m);
          co_return true;
        }
        co_return false;
      }
      if (!m->exists) adopt(*m, r->meta);
      if (!apply(*m, *r)) {
        end_lost_history(id, m);
        co_return true;
      }
      if (r->events.size() < opts_.store.max_read_events) co_return true;
    }
  }

  // Redis lost this history (or the stream expired): the mirror ends for
  // its readers, and the next reader primes a new one.
  void end_lost_history(const std::string& id, const mirror_ptr& m) {
    const auto last = m->log->status().last_sequence;
    const core::publish_item item{
        "error",
        R"({"code":"history_truncated","message":"the stream store lost this stream's history"})",
        true, nullptr};
    m->log->append_mirrored(last + 1, std::span<const core::publish_item>(&item, 1),
                            core::stream_state::finished);
    forget(id, m);
  }

  // Catch-up after a wake (one read at a time per mirror; a wake during a
  // read makes it read again).
  net::awaitable<void> catch_up(std::string id, mirror_ptr m) {
    if (m->reading) {
      m->again = true;
      co_return;
    }
    m->reading = true;
    bool ok = true;
    do {
      m->again = false;
      ok = co_await read_more(id, m);
    } while (ok && m->again);
    m->reading = false;
    m->changed.notify_all();
    if (!ok && !m->retry_armed) {
      // Redis is away: try again shortly (the subscriber's reconnection
      // also triggers a catch-up).
      m->retry_armed = true;
      auto t = std::make_shared<net::steady_timer>(ioc_, std::chrono::milliseconds(250));
      co_await t->async_wait(tuple_awaitable);
      m->retry_armed = false;
      if (mirrors_.count(id) && mirrors_[id] == m) co_await catch_up(id, m);
    }
  }

  // A read that starts after now (for a resume past the mirror's head).
  net::awaitable<void> refresh(mirror_ptr m) {
    const auto deadline = clock::now() + opts_.redis.request_timeout;
    if (m->reading) {
      m->again = true;
      while (m->reading && clock::now() < deadline) co_await m->changed.wait_until(deadline);
      co_return;
    }
    for (auto& [id, mm] : mirrors_)
      if (mm == m) co_return co_await catch_up(id, m);
  }

  void on_message(std::string_view channel, std::string_view payload) {
    constexpr std::string_view wake_prefix = "{s:", wake_suffix = "}:wake";
    if (channel.starts_with(wake_prefix) && channel.ends_with(wake_suffix)) {
      const std::string id(channel.substr(
          wake_prefix.size(), channel.size() - wake_prefix.size() - wake_suffix.size()));
      auto it = mirrors_.find(id);
      if (it == mirrors_.end() || !it->second->ready || !it->second->ok) return;
      spawn(ioc_.get_executor(), catch_up(id, it->second), "catch-up");
      return;
    }
    if (channel == redis::redis_stream_store::cancel_channel(opts_.store.node_id) &&
        core::is_valid_stream_id(payload))
      spawn(ioc_.get_executor(), cancel_local(std::string(payload)), "cancel");
  }

  void on_resubscribed() {
    for (auto& [id, m] : mirrors_)
      if (m->ready && m->ok) spawn(ioc_.get_executor(), catch_up(id, m), "catch-up");
    for (auto& [id, run] : runs_)
      if (run->created && !run->ended && !run->dead)
        spawn(ioc_.get_executor(), check_cancel(id), "cancel check");
  }

  net::awaitable<void> subscribe_cancel_channel() {
    auto self = shared_from_this();
    (void)co_await subscriber_.subscribe(
        redis::redis_stream_store::cancel_channel(opts_.store.node_id));
  }

  net::awaitable<void> cancel_local(std::string id) {
    auto self = shared_from_this();
    auto reason = co_await store_.cancel_reason(id);
    auto log = local_log(id);
    if (!log) co_return;
    log->cancel(reason && !reason->empty() ? *reason : "cancelled by request");
  }

  net::awaitable<void> check_cancel(std::string id) {
    auto self = shared_from_this();
    auto reason = co_await store_.cancel_reason(id);
    if (reason && !reason->empty())
      if (auto log = local_log(id)) log->cancel(*reason);
  }

  net::awaitable<void> forget_run_record(std::string request_id) {
    auto self = shared_from_this();
    (void)co_await client_.command(
        redis::make_args("DEL", redis::redis_stream_store::run_key(request_id)));
  }

  // The write-behind of one local producer: in order, one batch at a time,
  // each checked by the script to start at the stream's next sequence.
  net::awaitable<void> flush(run_ptr run) {
    auto self = shared_from_this();
    auto& j = *run->journal;
    const std::string id = j.id();
    while (!run->dead && j.has_pending()) {
      if (!run->created) {
        auto c = co_await store_.create_stream(id, j.owner(), true);
        if (c && c->created) {
          auto l = co_await store_.acquire_lease(id);
          if (l) {
            run->created = true;
            run->last_renew = clock::now();
          }
        } else if (c) {
          // The id is taken in Redis by another stream: this run cannot be
          // its producer.
          spdlog::warn("cluster: stream {} exists in Redis; its local producer stops", id);
          stop_run(run, "the stream store already holds a stream with this id");
          break;
        }
        if (!run->created) {
          co_await backoff(run);
          continue;
        }
      }
      auto events = j.take(opts_.store.max_batch_events);
      if (events.empty()) break;
      redis::publish_batch b;
      b.stream_id = id;
      b.expected_first_seq = events.front().seq;
      b.writer = redis::publish_writer::producer;
      b.batch_id = opts_.store.node_id + ":" + std::to_string(events.front().seq);
      std::size_t n = 0;
      for (const auto& e : events) {
        std::string type, data;
        if (!decode_sse_event(std::string_view(e.segment->bytes + e.offset, e.length), type,
                              data)) {
          type = "error";
          data = R"({"code":"internal_error"})";
        }
        b.events.push_back({std::move(type), std::move(data)});
        if (e.delta) b.events.back().delta = *e.delta;
        ++n;
        if (e.end_state != core::stream_state::open) {
          b.final_state = std::string(core::to_string(e.end_state));
          break;
        }
      }
      const bool final = !b.final_state.empty();
      auto r = co_await store_.publish(std::move(b));
      if (!r) {
        if (r.error() == redis::redis_errc::store_unavailable ||
            r.error() == redis::redis_errc::server_error) {
          j.put_back(std::move(events));
          co_await backoff(run);
          continue;
        }
        // Ended elsewhere (producer_lost after a lost lease) or forked: stop.
        spdlog::warn("cluster: stream {}: forwarding refused ({}); the local producer stops", id,
                     r.error().message());
        stop_run(run, "the stream store refused this run's events");
        break;
      }
      run->backoff = std::chrono::milliseconds(100);
      if (final) {
        run->ended = true;
        (void)co_await store_.release_lease(id);
        j.drop_all();
        break;
      }
    }
    run->flushing = false;
    // Events appended while the last write was in flight.
    if (!run->dead && !run->ended && j.has_pending()) schedule_flush(run->journal);
  }

  net::awaitable<void> backoff(run_ptr run) {
    net::steady_timer t(ioc_, run->backoff);
    co_await t.async_wait(tuple_awaitable);
    run->backoff = std::min(run->backoff * 2, std::chrono::milliseconds(2000));
  }

  void stop_run(const run_ptr& run, std::string_view why) {
    run->dead = true;
    run->journal->drop_all();
    if (auto log = registry_.find(run->journal->id())) log->cancel(why);
  }

  // --- the background task ----------------------------------------------------

  net::awaitable<void> tick_loop() {
    auto self = shared_from_this();
    const auto period = std::max(std::chrono::milliseconds(50),
                                 std::min(opts_.presence_interval, opts_.store.run_lease / 3));
    while (!stopped_.load()) {
      tick_timer_.expires_after(period);
      auto [ec] = co_await tick_timer_.async_wait(tuple_awaitable);
      if (ec || stopped_.load()) co_return;
      co_await tick();
    }
  }

  net::awaitable<void> tick() {
    const auto now = clock::now();
    // Mirrors: presence of readers, dropping unread ones, pending ones that
    // never started.
    std::vector<std::string> read_here;
    std::vector<std::pair<std::string, mirror_ptr>> drop;
    for (auto& [id, m] : mirrors_) {
      if (!m->ready || !m->ok || !m->log) continue;
      const auto st = m->log->status();
      if (st.subscribers > 0) {
        m->unread_since.reset();
        read_here.push_back(id);
      } else if (!m->unread_since) {
        m->unread_since = now;
      } else if (now - *m->unread_since >= opts_.mirror_linger && !m->reading) {
        drop.emplace_back(id, m);
      }
      if (!m->exists && st.state == core::stream_state::open && st.last_sequence == 0 &&
          now - m->created >= opts_.pending_limit) {
        const auto ms = opts_.pending_limit.count();
        const std::string within =
            ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
        m->log->end_if_unpublished(
            "error", "{\"code\":\"" + std::string(core::stream_not_started_code) +
                         "\",\"message\":\"nothing was published to this stream within " + within +
                         "\"}");
      }
    }
    for (auto& [id, m] : drop)
      if (registry_.drop(id, m->log.get()) || registry_.find(id) != m->log) forget(id, m);
    if (presence_due_ <= now && !read_here.empty()) {
      presence_due_ = now + opts_.presence_interval;
      (void)co_await store_.mark_read(read_here, opts_.presence_interval * 3);
    }
    // Local runs: renew leases; readers on other nodes keep them read.
    std::vector<std::string> graced;
    std::vector<run_ptr> graced_runs;
    std::vector<std::pair<std::string, run_ptr>> renew;
    for (auto& [id, run] : runs_) {
      if (!run->created || run->ended || run->dead) continue;
      if (now - run->last_renew >= opts_.store.run_lease / 3) renew.emplace_back(id, run);
      if (run->journal->unread_grace_us() > 0) {
        graced.push_back(id);
        graced_runs.push_back(run);
      }
    }
    for (auto& [id, run] : renew) {
      auto l = co_await store_.renew_lease(id);
      if (!l) continue;  // Redis away: try again next tick
      run->last_renew = clock::now();
      if (!l->held) {
        if (run->ended || run->dead) continue;
        spdlog::warn("cluster: lost the lease of stream {}; its producer stops", id);
        stop_run(run, "lease lost: another node ended this run");
      } else if (!l->cancel_reason.empty()) {
        if (auto log = local_log(id)) log->cancel(l->cancel_reason);
      }
    }
    if (!graced.empty()) {
      auto elsewhere = co_await store_.read_elsewhere(graced);
      if (elsewhere && elsewhere->size() == graced.size())
        for (std::size_t i = 0; i < graced.size(); ++i)
          if (auto log = local_log(graced[i])) log->set_read_elsewhere((*elsewhere)[i]);
    }
    // Dead nodes' runs: claimed by exactly one node, ended producer_lost.
    auto claimed = co_await store_.claim_expired_leases(100);
    if (claimed)
      for (auto& id : *claimed) {
        if (auto it = runs_.find(id);
            it != runs_.end() && !it->second->dead && !it->second->ended) {
          // Our own run, alive (its renewals could not reach Redis in time):
          // take the lease again rather than end it.
          (void)co_await store_.acquire_lease(id);
          it->second->last_renew = clock::now();
          continue;
        }
        auto r = co_await store_.end_lost_run(id);
        if (r) spdlog::info("cluster: stream {}: its producer's node is gone (producer_lost)", id);
      }
  }

  net::io_context& ioc_;
  core::stream_registry& registry_;
  const cluster_options opts_;
  redis::redis_client client_;
  redis::redis_stream_store store_;
  redis::redis_subscriber subscriber_;
  net::steady_timer tick_timer_;
  std::atomic<bool> stopped_{false};
  std::unordered_map<std::string, mirror_ptr> mirrors_;  // node thread only
  std::unordered_map<std::string, run_ptr> runs_;        // node thread only
  clock::time_point presence_due_{};
  std::mutex wait_m_;
  std::condition_variable wait_cv_;
};

void forward_journal::appended(const core::journal_event& e) noexcept {
  bool post_flush = false, post_overflow = false;
  {
    std::lock_guard lock(m_);
    std::shared_ptr<const redis::delta_key> delta;
    if (e.delta) {
      if (!last_delta_ || last_delta_->message_id != e.delta->message_id ||
          last_delta_->field != e.delta->field)
        last_delta_ = std::make_shared<const redis::delta_key>(
            redis::delta_key{e.delta->message_id, e.delta->field});
      delta = last_delta_;
    }
    pending_.push_back({e.seq, e.segment, e.offset, e.length, e.end_state, std::move(delta)});
    bytes_ += e.length;
    if (bytes_ > budget_ && !overflowed_) {
      overflowed_ = true;
      post_overflow = true;
    }
    if (!scheduled_) {
      scheduled_ = true;
      post_flush = true;
    }
  }
  try {
    if (post_flush)
      net::post(ex_, [node = node_, self = shared_from_this()] {
        if (auto n = node.lock()) n->schedule_flush(self);
      });
    if (post_overflow)
      net::post(ex_, [node = node_, id = meta_.id] {
        if (auto n = node.lock()) n->overflowed(id);
      });
  } catch (...) {
    // (Allocation failure while posting: the next append schedules again.)
  }
}

// ---- the public face ---------------------------------------------------------

cluster_node::cluster_node(core::stream_registry& registry, cluster_options options)
    : ioc_(std::make_unique<net::io_context>(1)),
      impl_(std::make_shared<impl>(*ioc_, registry, std::move(options))) {}

cluster_node::~cluster_node() {
  stop();
}

void cluster_node::start() {
  if (thread_.joinable()) return;
  impl_->start();
  thread_ = std::thread([ioc = ioc_.get()] {
    for (;;) {
      try {
        ioc->run();
        break;
      } catch (const std::exception& e) {
        spdlog::error("cluster: the node's thread caught (a bug): {}", e.what());
      }
    }
  });
}

void cluster_node::drain(std::chrono::milliseconds timeout) {
  if (!thread_.joinable() || impl_->stopped()) return;
  // Shared: the coroutine may finish after this gave up waiting.
  auto p = std::make_shared<std::promise<std::pair<std::size_t, bool>>>();
  auto f = p->get_future();
  auto i = impl_;
  i->run(
      i->drain(clock::now() + timeout,
               [p](std::size_t n, bool all) {
                 p->set_value({n, all});
               }),
      [p] {
        p->set_value({0, false});
      },
      "drain");
  // The coroutine's own deadline bounds this; a second of slack for Redis.
  if (f.wait_for(timeout + std::chrono::seconds(1)) != std::future_status::ready) {
    spdlog::warn("cluster: shutdown: the write-behind did not finish");
    return;
  }
  const auto [n, all] = f.get();
  if (n > 0) spdlog::info("cluster: shutdown: {} local run(s) ended \"interrupted\"", n);
  if (!all) spdlog::warn("cluster: shutdown: some runs' events did not reach Redis in time");
}

void cluster_node::stop() {
  if (!thread_.joinable()) {
    impl_->mark_stopped();
    return;
  }
  net::post(*ioc_, [i = impl_] { i->shutdown(); });
  thread_.join();
}

bool cluster_node::wait_connected(std::chrono::milliseconds timeout) {
  return impl_->wait_connected(timeout);
}
const cluster_options& cluster_node::options() const {
  return impl_->options();
}

void cluster_node::publish(std::string id, std::string owner,
                           std::vector<streams::owned_event> events, bool final,
                           streams::op_callback<streams::publish_result> done) {
  auto i = impl_;
  auto fail = [done] { done(unavailable()); };
  i->run(i->publish(std::move(id), std::move(owner), std::move(events), final, std::move(done)),
         fail, "publish");
}

void cluster_node::open(std::string id, std::optional<std::uint64_t> after, bool create_pending,
                        access_check check,
                        streams::op_callback<std::shared_ptr<core::stream_log>> done) {
  auto i = impl_;
  auto fail = [done] { done(unavailable()); };
  i->run(i->open(std::move(id), after, create_pending, std::move(check), std::move(done)), fail,
         "open");
}

void cluster_node::status(std::string id, access_check check,
                          streams::op_callback<streams::stream_info> done) {
  auto i = impl_;
  auto fail = [done] { done(unavailable()); };
  i->run(i->status(std::move(id), std::move(check), std::move(done)), fail, "status");
}

void cluster_node::cancel(std::string id, std::string reason, access_check check,
                          streams::op_callback<streams::cancel_result> done) {
  auto i = impl_;
  auto fail = [done] { done(unavailable()); };
  i->run(i->cancel(std::move(id), std::move(reason), std::move(check), std::move(done)), fail,
         "cancel");
}

void cluster_node::start_run(std::string request_id, std::string owner, bool resuming,
                             access_check check,
                             std::function<op_result<streams::run_started>()> launch,
                             net::any_io_executor launch_on,
                             streams::op_callback<streams::run_started> done) {
  auto i = impl_;
  auto fail = [done] { done(unavailable()); };
  i->run(i->start_run(std::move(request_id), std::move(owner), resuming, std::move(check),
                      std::move(launch), std::move(launch_on), std::move(done)),
         fail, "start_run");
}

std::shared_ptr<core::stream_journal> cluster_node::open_journal(const core::stream_meta& meta) {
  return impl_->open_journal(meta);
}

void cluster_node::erased(const core::stream_log& log) noexcept {
  impl_->erased(log);
}

}  // namespace sluice::cluster
