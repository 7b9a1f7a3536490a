// Searches the corpus index off the event loop: SQLite calls block, so they
// run on a small thread pool (its size is the concurrency limit), each pool
// thread with its own read-only connection.
//
// Thread-safety: search_many may be awaited from any executor concurrently.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/system/result.hpp>

#include "search/search_index.hpp"

namespace sluice::agents {

class search_service {
 public:
  search_service(std::filesystem::path index_path, unsigned threads = 4);
  ~search_service();

  // Runs every query in parallel, fuses the ranked lists (reciprocal rank
  // fusion), removes duplicates by source id and near-duplicate text, and
  // keeps the best `limit`. Completes with operation_aborted when the
  // awaiting coroutine is cancelled.
  boost::asio::awaitable<boost::system::result<std::vector<search::search_hit>>> search_many(
      std::vector<std::string> queries, std::size_t per_query, std::size_t limit);

  const std::filesystem::path& index_path() const { return index_path_; }

 private:
  std::filesystem::path index_path_;
  boost::asio::thread_pool pool_;
};

}  // namespace sluice::agents
