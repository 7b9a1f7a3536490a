#include "agents/search_service.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/errc.hpp>
#include <map>
#include <mutex>
#include <unordered_set>

#include "core/log_text.hpp"
#include "search/result_dedup.hpp"

namespace sluice::agents {

namespace net = boost::asio;
using search::search_hit;

namespace {

// One read-only connection per pool thread and index file.
boost::system::result<search::search_index*> thread_index(const std::filesystem::path& path) {
  thread_local std::map<std::filesystem::path, search::search_index> indexes;
  if (auto it = indexes.find(path); it != indexes.end()) return &it->second;
  auto opened = search::search_index::open(path);
  if (!opened) return opened.error();
  return &indexes.emplace(path, std::move(*opened)).first->second;
}

// What the pool tasks share with the awaiting coroutine. It holds no I/O
// object: the last task may release it on a pool thread after the caller's
// io_context is gone. The coroutine's timer is reached through `wake`, which
// the coroutine clears (under the mutex) before the timer goes.
struct gather {
  gather(std::size_t queries, bool with_web)
      : local(queries), web(with_web ? queries : 0), remaining(queries + web.size()) {}
  std::mutex mutex;
  net::steady_timer* wake = nullptr;  // guarded by mutex; null once the coroutine left
  std::vector<boost::system::result<std::vector<search_hit>>> local;  // guarded by mutex
  std::vector<search::searxng_outcome> web;                           // guarded by mutex
  std::size_t remaining;                                              // guarded by mutex
};

// Called by each pool task after storing its result, under g->mutex. The
// wake-up holds `g`: the awaiting coroutine may have gone (cancelled).
void one_done(const std::shared_ptr<gather>& g) {
  if (--g->remaining == 0 && g->wake != nullptr)
    net::post(g->wake->get_executor(), [g] {
      std::lock_guard lock(g->mutex);
      if (g->wake != nullptr) g->wake->cancel();
    });
}

// Points g->wake at the coroutine's timer for as long as the coroutine (or
// its frame, when destroyed suspended) is there.
struct wake_registration {
  wake_registration(std::shared_ptr<gather> g, net::steady_timer& t) : g_(std::move(g)) {
    std::lock_guard lock(g_->mutex);
    g_->wake = &t;
  }
  wake_registration(const wake_registration&) = delete;
  wake_registration& operator=(const wake_registration&) = delete;
  ~wake_registration() {
    std::lock_guard lock(g_->mutex);
    g_->wake = nullptr;
  }
  std::shared_ptr<gather> g_;
};

// dedup_hits over the fused list, except that a near-duplicate pair of a
// corpus passage and a web result always keeps the corpus passage: the
// decisions are taken on a copy with the local hits first (each group keeps
// its order, so decisions within a group are unchanged), and the survivors
// keep their fused order.
std::vector<search_hit> dedup_preferring_local(std::vector<search_hit> fused,
                                               const std::unordered_set<std::string>& web_ids) {
  if (web_ids.empty()) return search::dedup_hits(std::move(fused));
  std::vector<search_hit> local_first;
  local_first.reserve(fused.size());
  for (const auto& h : fused)
    if (!web_ids.contains(h.source_id)) local_first.push_back(h);
  for (const auto& h : fused)
    if (web_ids.contains(h.source_id)) local_first.push_back(h);
  std::unordered_set<std::string> kept;
  for (const auto& h : search::dedup_hits(std::move(local_first))) kept.insert(h.source_id);
  std::erase_if(fused, [&kept](const search_hit& h) { return !kept.contains(h.source_id); });
  return fused;
}

class search_service_category_impl : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "sluice.search_service"; }
  std::string message(int) const override {
    return "the search pool's queue is full (search_busy); retry later";
  }
};

// Releases a queue slot when a pool task ends, whatever happens in it.
struct queue_slot {
  std::shared_ptr<std::atomic<std::size_t>> queued;
  queue_slot(std::shared_ptr<std::atomic<std::size_t>> q) : queued(std::move(q)) {}
  queue_slot(queue_slot&& o) noexcept = default;
  queue_slot(const queue_slot&) = delete;
  ~queue_slot() {
    if (queued) queued->fetch_sub(1, std::memory_order_relaxed);
  }
};

}  // namespace

const boost::system::error_category& search_service_category() noexcept {
  static const search_service_category_impl instance;
  return instance;
}

search_service::search_service(std::filesystem::path index_path, unsigned threads,
                               std::unique_ptr<const search::searxng_client> web,
                               std::size_t max_queued)
    : index_path_(std::move(index_path)),
      web_(std::move(web)),
      max_queued_(max_queued),
      pool_(threads ? threads : 1) {}

bool search_service::busy() const {
  const std::size_t per_query = web_ ? 2 : 1;
  return max_queued_ != 0 && queued() + per_query > max_queued_;
}

search_service::~search_service() {
  pool_.join();
}

net::awaitable<boost::system::result<search_report>> search_service::search_many_reported(
    std::vector<std::string> queries, std::size_t per_query, std::size_t limit) {
  auto ex = co_await net::this_coro::executor;
  if (queries.empty()) co_return search_report{};
  // Reserve every task's queue slot up front: all of this search or none.
  const std::size_t tasks = queries.size() * (web_ ? 2 : 1);
  if (queued_->fetch_add(tasks, std::memory_order_relaxed) + tasks > max_queued_ &&
      max_queued_ != 0) {
    queued_->fetch_sub(tasks, std::memory_order_relaxed);
    co_return make_error_code(search_service_errc::busy);
  }
  auto g = std::make_shared<gather>(queries.size(), web_ != nullptr);
  net::steady_timer wake(ex);  // cancelled (from its own executor) when all are done
  wake.expires_at(net::steady_timer::time_point::max());
  const wake_registration registered(g, wake);
  // Web requests first: they are the slow ones, so they start while the
  // local searches fill the remaining threads.
  for (std::size_t i = 0; web_ && i < queries.size(); ++i) {
    net::post(pool_, [g, i, q = queries[i], per_query, web = web_, slot = queue_slot(queued_)] {
      auto outcome = web->search(q, per_query);
      std::lock_guard lock(g->mutex);
      g->web[i] = std::move(outcome);
      one_done(g);
    });
  }
  for (std::size_t i = 0; i < queries.size(); ++i) {
    net::post(pool_,
              [g, i, q = queries[i], per_query, path = index_path_, slot = queue_slot(queued_)] {
                boost::system::result<std::vector<search_hit>> r = boost::system::error_code{};
                auto idx = thread_index(path);
                if (!idx)
                  r = idx.error();
                else
                  r = (*idx)->search(q, per_query);
                std::lock_guard lock(g->mutex);
                g->local[i] = std::move(r);
                one_done(g);
              });
  }
  co_await wake.async_wait(net::as_tuple(net::use_awaitable));
  // Local lists first: on equal fused scores the corpus passage ranks first.
  std::vector<std::vector<search_hit>> lists;
  std::unordered_set<std::string> web_ids;
  search_report report;
  {
    std::lock_guard lock(g->mutex);
    if (g->remaining != 0)  // woken by cancellation, not by completion
      co_return boost::system::errc::make_error_code(boost::system::errc::operation_canceled);
    for (auto& r : g->local) {
      if (!r) co_return r.error();
      lists.push_back(std::move(*r));
    }
    for (std::size_t i = 0; i < g->web.size(); ++i) {
      auto& w = g->web[i];
      if (w.ec) {
        report.warnings.push_back("web search for \"" + queries[i] +
                                  "\" failed: " + w.error_message);
        continue;
      }
      for (const auto& h : w.hits) web_ids.insert(h.source_id);
      lists.push_back(std::move(w.hits));
    }
  }
  report.hits = dedup_preferring_local(search::fuse_ranked_lists(lists), web_ids);
  if (report.hits.size() > limit) report.hits.resize(limit);
  co_return report;
}

net::awaitable<boost::system::result<std::vector<search_hit>>> search_service::search_many(
    std::vector<std::string> queries, std::size_t per_query, std::size_t limit) {
  auto report = co_await search_many_reported(std::move(queries), per_query, limit);
  if (!report) co_return report.error();
  for (const auto& w : report->warnings) spdlog::warn("{}", core::log_escape(w));  // has the query
  co_return std::move(report->hits);
}

}  // namespace sluice::agents
