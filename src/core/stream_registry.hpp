// Streams by id, with their lifetimes: a finished stream stays replayable for
// a TTL and is then freed; an open stream nobody has touched for the idle
// limit is cancelled (so its subscribers are told), then ages out the same way.
//
// Budgets (see docs/security.md, Resource budgets): streams in total (max_streams) and per owner
// (max_streams_per_owner); retained event bytes of all streams together
// (memory_budget_bytes: finished streams nobody reads are evicted, oldest
// finished first, before anything is refused); and a stream created by a
// subscriber (create_pending) that nobody publishes to within pending_limit
// ends with a final `error` event {"code":"stream_not_started"} and is freed.
//
// Thread-safety: all members are thread-safe. The map is split into shards,
// each with its own mutex; lock order is shard -> stream, never the reverse.
#pragma once

#include <array>
#include <atomic>
#include <boost/system/result.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/stream_log.hpp"
#include "core/stream_store.hpp"

namespace sluice::core {

struct registry_config {
  std::size_t max_streams = 100'000;
  // Streams one owner (subject) holds at once; 0: no limit. Streams with an
  // empty owner are not counted.
  std::size_t max_streams_per_owner = 10'000;
  // Retained event bytes of all streams together; 0: no limit.
  std::size_t memory_budget_bytes = 0;
  retention_limits retention;
  std::int64_t finished_ttl_us = 10LL * 60 * 1'000'000;
  std::int64_t idle_open_limit_us = 60LL * 60 * 1'000'000;
  // A pending stream (create_pending) with no publish for this long expires.
  std::int64_t pending_limit_us = 60LL * 1'000'000;
};

// The final event of a pending stream that expired unpublished.
inline constexpr std::string_view stream_not_started_code = "stream_not_started";

struct registry_counts {
  std::size_t open = 0, finished = 0, cancelled = 0;
};

enum class registry_error {
  too_many_streams = 1,
  already_exists,
  too_many_streams_for_owner,
  memory_budget_exceeded,
};
const boost::system::error_category& registry_category();
inline boost::system::error_code make_error_code(registry_error e) {
  return {static_cast<int>(e), registry_category()};
}

// The owner recorded for a stream created by subscribing (a pending stream):
// charged to `subject`'s stream budget, yet owned by nobody, since no subject
// (a token's `sub`, a client address) contains the control character it
// starts with. Arriving first as a reader gives no cancel or link rights.
std::string reader_owner(std::string_view subject);
// Whose budget a stream with this owner counts against: the subject itself,
// also for reader_owner(subject).
std::string_view charged_subject(std::string_view owner);

class stream_registry {
 public:
  explicit stream_registry(registry_config config);

  // The stream with this id, created (open, empty) when absent.
  // Fails with too_many_streams, too_many_streams_for_owner or
  // memory_budget_exceeded when it would create one past a budget. `id` must
  // be valid. `owner` is recorded only when the stream is created here (see
  // stream_log::owner).
  boost::system::result<std::shared_ptr<stream_log>> get_or_create(std::string_view id,
                                                                   std::string_view owner = {});
  // A new stream; fails with already_exists or a budget error as above.
  boost::system::result<std::shared_ptr<stream_log>> create(std::string_view id,
                                                            std::string_view owner = {});
  // As get_or_create, but a stream created here is pending: unless something
  // is published to it within pending_limit, the sweep ends it with a final
  // `error` event (code stream_not_started) and frees it. For subscribers of
  // ids that do not exist yet.
  boost::system::result<std::shared_ptr<stream_log>> get_or_create_pending(
      std::string_view id, std::string_view owner = {});
  std::shared_ptr<stream_log> find(std::string_view id) const;

  // The memory budget, checked before a publish adds bytes: true while the
  // retained event bytes are under the budget. At the budget, first frees
  // finished streams nobody reads (oldest finished first) down to 90% of it;
  // false when that was not enough. One relaxed load while under the budget.
  // `now_us` (0: realtime_us(), read only when at the budget) throttles
  // fruitless eviction scans.
  bool memory_available(std::int64_t now_us = 0);
  // Retained event bytes of all streams (including ones already dropped from
  // the registry whose last reader has not let go yet).
  std::int64_t memory_used() const { return memory_->load(std::memory_order_relaxed); }
  // Streams charged to `owner`'s subject (0 for an empty owner).
  std::size_t owned_by(std::string_view owner) const;

  // Frees finished streams past the TTL that have no subscribers; cancels
  // open streams idle past the limit with no subscribers ("idle"), and those
  // unread past their cancel_when_unread grace ("no reader"). Returns the
  // number freed. `now_us` is realtime_us() in production, explicit for tests.
  std::size_t sweep(std::int64_t now_us);
  // Frees finished streams nobody reads, oldest finished first, until the
  // retained bytes are at most `target_bytes`. Returns the number freed. With
  // a store that keeps history (stream_log::shed_history) a stream is not
  // dropped: it keeps only its final event and the rest is read from disk.
  std::size_t evict_finished(std::size_t target_bytes);

  // --- Persistence (see stream_store.hpp) ---
  // Every stream created from now on gets a journal from `store`, and the
  // store is told when the registry drops one. Call once, before serving.
  void attach_store(std::shared_ptr<stream_store> store);
  stream_store* store() const { return store_.get(); }
  // Adds an empty stream to restore from a store (see stream_log's restore
  // members), with this registry's retention and memory accounting; counted
  // like a created one, past the budgets if need be (it existed before the
  // restart). Null when the id is taken.
  std::shared_ptr<stream_log> restore(const stream_meta& meta);

  // Drops stream `id` if it is still `log` and nobody subscribes (a cluster
  // node letting go of a mirror). False otherwise.
  bool drop(std::string_view id, const stream_log* log);

  registry_counts counts() const;
  std::size_t size() const;
  const registry_config& config() const { return config_; }

 private:
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  struct slot {
    std::shared_ptr<stream_log> log;
    bool pending = false;  // created by a subscriber; nothing published yet
  };
  using stream_map = std::unordered_map<std::string, slot, string_hash, std::equal_to<>>;
  struct shard {
    mutable std::mutex mutex;
    stream_map streams;  // guarded by mutex
  };
  static constexpr std::size_t shard_count = 16;

  shard& shard_for(std::string_view id) const;
  enum class insert_mode { get_or_create, must_be_new, pending };
  boost::system::result<std::shared_ptr<stream_log>> insert(std::string_view id,
                                                            std::string_view owner,
                                                            insert_mode mode);
  // Called with the shard's lock held.
  stream_map::iterator erase_locked(stream_map& streams, stream_map::iterator it);
  bool reserve_owner(std::string_view owner);
  void release_owner(std::string_view owner);

  const registry_config config_;
  mutable std::array<shard, shard_count> shards_;
  std::atomic<std::size_t> size_{0};
  const std::shared_ptr<std::atomic<std::int64_t>> memory_;
  std::shared_ptr<stream_store> store_;  // set before serving; may be null
  std::mutex evict_mutex_;               // one eviction scan at a time
  std::int64_t fruitless_scan_us_ = 0;   // guarded by evict_mutex_
  mutable std::mutex owners_mutex_;      // after a shard's mutex, never before
  std::unordered_map<std::string, std::size_t, string_hash, std::equal_to<>>
      owners_;  // streams per non-empty owner; guarded by owners_mutex_
};

}  // namespace sluice::core

template <>
struct boost::system::is_error_code_enum<sluice::core::registry_error> : std::true_type {};
