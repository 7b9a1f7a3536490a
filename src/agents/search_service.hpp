// Searches the corpus index off the event loop: SQLite calls block, so they
// run on a small thread pool (its size is the concurrency limit), each pool
// thread with its own read-only connection. With a web backend (SearXNG),
// each query also goes to the web, on the same pool, in parallel with the
// local searches.
//
// Failures: the local index is the primary source, so a local failure fails
// the search. A web failure does not: the local results are used and the
// failure is reported as a warning (search_many_reported returns them;
// search_many logs them with spdlog at warn level).
//
// Budget: at most `max_queued` search tasks (one per query and backend) wait
// or run on the pool at once; a search that would exceed it fails at once
// with search_service_errc::busy (HTTP: 503 search_busy before a run starts,
// see busy(); mid-run: the run's final error event says search_busy).
//
// Thread-safety: search_many and search_many_reported may be awaited from any
// executor concurrently.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/system/result.hpp>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "search/search_index.hpp"
#include "search/searxng_client.hpp"

namespace sluice::agents {

enum class search_service_errc { busy = 1 };
const boost::system::error_category& search_service_category() noexcept;
inline boost::system::error_code make_error_code(search_service_errc e) noexcept {
  return {static_cast<int>(e), search_service_category()};
}

struct search_report {
  std::vector<search::search_hit> hits;
  // One line per failed web query ("web search for \"q\" failed: ..."); the
  // hits then hold what the other backends found.
  std::vector<std::string> warnings;
};

class search_service {
 public:
  // `web` may be null (local index only). Destruction waits for searches
  // still running on the pool (a web request at most its timeout).
  // `max_queued`: search tasks queued or running at once (0: no limit).
  search_service(std::filesystem::path index_path, unsigned threads = 4,
                 std::unique_ptr<const search::searxng_client> web = nullptr,
                 std::size_t max_queued = 256);
  ~search_service();

  // Runs every query in parallel (on the local index and, when configured,
  // on the web), fuses all the ranked lists together (reciprocal rank fusion),
  // removes duplicates by source id and near-duplicate text, and keeps the
  // best `limit`. A web result that near-duplicates a corpus passage is
  // dropped whatever their ranks (the corpus passage is the fuller, citeable
  // copy). Completes with operation_aborted when the awaiting coroutine is
  // cancelled.
  boost::asio::awaitable<boost::system::result<search_report>> search_many_reported(
      std::vector<std::string> queries, std::size_t per_query, std::size_t limit);

  // search_many_reported's hits; its warnings are logged.
  boost::asio::awaitable<boost::system::result<std::vector<search::search_hit>>> search_many(
      std::vector<std::string> queries, std::size_t per_query, std::size_t limit);

  // True when the queue is full: a run starting now would fail its search.
  bool busy() const;
  std::size_t queued() const { return queued_->load(std::memory_order_relaxed); }

  const std::filesystem::path& index_path() const { return index_path_; }
  const search::searxng_client* web() const { return web_.get(); }

 private:
  std::filesystem::path index_path_;
  std::shared_ptr<const search::searxng_client> web_;  // shared with running pool tasks
  const std::size_t max_queued_;
  // Tasks posted and not yet finished; shared with the tasks.
  std::shared_ptr<std::atomic<std::size_t>> queued_ = std::make_shared<std::atomic<std::size_t>>(0);
  boost::asio::thread_pool pool_;
};

}  // namespace sluice::agents

template <>
struct boost::system::is_error_code_enum<sluice::agents::search_service_errc> : std::true_type {};
