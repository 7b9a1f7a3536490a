// Streams by id, with their lifetimes: a finished stream stays replayable for
// a TTL and is then freed; an open stream nobody has touched for the idle
// limit is cancelled (so its subscribers are told), then ages out the same way.
//
// Thread-safety: all members are thread-safe. The map is split into shards,
// each with its own mutex; lock order is shard -> stream, never the reverse.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include <boost/system/result.hpp>

#include "core/stream_log.hpp"

namespace sluice::core {

struct registry_config {
  std::size_t max_streams = 100'000;
  retention_limits retention;
  std::int64_t finished_ttl_us = 10LL * 60 * 1'000'000;
  std::int64_t idle_open_limit_us = 60LL * 60 * 1'000'000;
};

struct registry_counts {
  std::size_t open = 0, finished = 0, cancelled = 0;
};

enum class registry_error { too_many_streams = 1, already_exists };
const boost::system::error_category& registry_category();
inline boost::system::error_code make_error_code(registry_error e) {
  return {static_cast<int>(e), registry_category()};
}

class stream_registry {
 public:
  explicit stream_registry(registry_config config);

  // The stream with this id, created (open, empty) when absent.
  // Fails with too_many_streams at the limit. `id` must be valid. `owner` is
  // recorded only when the stream is created here (see stream_log::owner).
  boost::system::result<std::shared_ptr<stream_log>> get_or_create(std::string_view id,
                                                                   std::string_view owner = {});
  // A new stream; fails with already_exists or too_many_streams.
  boost::system::result<std::shared_ptr<stream_log>> create(std::string_view id,
                                                            std::string_view owner = {});
  std::shared_ptr<stream_log> find(std::string_view id) const;

  // Frees finished streams past the TTL that have no subscribers; cancels
  // open streams idle past the limit with no subscribers ("idle"), and those
  // unread past their cancel_when_unread grace ("no reader"). Returns the
  // number freed. `now_us` is realtime_us() in production, explicit for tests.
  std::size_t sweep(std::int64_t now_us);

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
  struct shard {
    mutable std::mutex mutex;
    std::unordered_map<std::string, std::shared_ptr<stream_log>, string_hash, std::equal_to<>>
        streams;  // guarded by mutex
  };
  static constexpr std::size_t shard_count = 16;

  shard& shard_for(std::string_view id) const;
  boost::system::result<std::shared_ptr<stream_log>> insert(std::string_view id, std::string_view owner,
                                                            bool must_be_new);

  const registry_config config_;
  mutable std::array<shard, shard_count> shards_;
  std::atomic<std::size_t> size_{0};
};

}  // namespace sluice::core

template <>
struct boost::system::is_error_code_enum<sluice::core::registry_error> : std::true_type {};
