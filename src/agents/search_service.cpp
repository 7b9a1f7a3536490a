#include "agents/search_service.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/errc.hpp>
#include <map>
#include <mutex>

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

struct gather {
  explicit gather(net::any_io_executor ex, std::size_t n) : wake(ex), results(n), remaining(n) {
    wake.expires_at(net::steady_timer::time_point::max());
  }
  net::steady_timer wake;  // cancelled (from its own executor) when all are done
  std::mutex mutex;
  std::vector<boost::system::result<std::vector<search_hit>>> results;  // guarded by mutex
  std::size_t remaining;                                                 // guarded by mutex
};

}  // namespace

search_service::search_service(std::filesystem::path index_path, unsigned threads)
    : index_path_(std::move(index_path)), pool_(threads ? threads : 1) {}

search_service::~search_service() { pool_.join(); }

net::awaitable<boost::system::result<std::vector<search_hit>>> search_service::search_many(
    std::vector<std::string> queries, std::size_t per_query, std::size_t limit) {
  auto ex = co_await net::this_coro::executor;
  if (queries.empty()) co_return std::vector<search_hit>{};
  auto g = std::make_shared<gather>(ex, queries.size());
  for (std::size_t i = 0; i < queries.size(); ++i) {
    net::post(pool_, [g, i, q = queries[i], per_query, path = index_path_] {
      boost::system::result<std::vector<search_hit>> r = boost::system::error_code{};
      auto idx = thread_index(path);
      if (!idx)
        r = idx.error();
      else
        r = (*idx)->search(q, per_query);
      std::lock_guard lock(g->mutex);
      g->results[i] = std::move(r);
      if (--g->remaining == 0) net::post(g->wake.get_executor(), [g] { g->wake.cancel(); });
    });
  }
  co_await g->wake.async_wait(net::as_tuple(net::use_awaitable));
  std::vector<std::vector<search_hit>> lists;
  {
    std::lock_guard lock(g->mutex);
    if (g->remaining != 0)  // woken by cancellation, not by completion
      co_return boost::system::errc::make_error_code(boost::system::errc::operation_canceled);
    for (auto& r : g->results) {
      if (!r) co_return r.error();
      lists.push_back(std::move(*r));
    }
  }
  auto fused = search::dedup_hits(search::fuse_ranked_lists(lists));
  if (fused.size() > limit) fused.resize(limit);
  co_return fused;
}

}  // namespace sluice::agents
