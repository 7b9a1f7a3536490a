#include "core/stream_registry.hpp"

#include <vector>

namespace sluice::core {

namespace {
class registry_category_impl : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "sluice.registry"; }
  std::string message(int ev) const override {
    switch (static_cast<registry_error>(ev)) {
      case registry_error::too_many_streams:
        return "too many streams";
      case registry_error::already_exists:
        return "stream already exists";
    }
    return "unknown registry error";
  }
};
}  // namespace

const boost::system::error_category& registry_category() {
  static const registry_category_impl instance;
  return instance;
}

stream_registry::stream_registry(registry_config config) : config_(config) {}

stream_registry::shard& stream_registry::shard_for(std::string_view id) const {
  return shards_[string_hash{}(id) % shard_count];
}

boost::system::result<std::shared_ptr<stream_log>> stream_registry::insert(std::string_view id,
                                                                           std::string_view owner,
                                                                           bool must_be_new) {
  shard& sh = shard_for(id);
  std::lock_guard lock(sh.mutex);
  if (auto it = sh.streams.find(id); it != sh.streams.end()) {
    if (must_be_new) return make_error_code(registry_error::already_exists);
    return it->second;
  }
  // Reserve a slot first so concurrent creators never exceed the limit.
  if (size_.fetch_add(1, std::memory_order_relaxed) >= config_.max_streams) {
    size_.fetch_sub(1, std::memory_order_relaxed);
    return make_error_code(registry_error::too_many_streams);
  }
  auto log = std::make_shared<stream_log>(std::string(id), config_.retention, std::string(owner));
  sh.streams.emplace(std::string(id), log);
  return log;
}

boost::system::result<std::shared_ptr<stream_log>> stream_registry::get_or_create(
    std::string_view id, std::string_view owner) {
  return insert(id, owner, false);
}

boost::system::result<std::shared_ptr<stream_log>> stream_registry::create(std::string_view id,
                                                                           std::string_view owner) {
  return insert(id, owner, true);
}

std::shared_ptr<stream_log> stream_registry::find(std::string_view id) const {
  shard& sh = shard_for(id);
  std::lock_guard lock(sh.mutex);
  auto it = sh.streams.find(id);
  return it == sh.streams.end() ? nullptr : it->second;
}

std::size_t stream_registry::sweep(std::int64_t now_us) {
  std::size_t freed = 0;
  std::vector<std::pair<std::shared_ptr<stream_log>, const char*>> to_cancel;
  for (shard& sh : shards_) {
    std::lock_guard lock(sh.mutex);
    for (auto it = sh.streams.begin(); it != sh.streams.end();) {
      const stream_status st = it->second->status();
      const std::int64_t ttl = st.finished_ttl_us > 0 ? st.finished_ttl_us : config_.finished_ttl_us;
      if (st.subscribers == 0 && st.state != stream_state::open && now_us - st.finished_us >= ttl) {
        it = sh.streams.erase(it);
        size_.fetch_sub(1, std::memory_order_relaxed);
        ++freed;
        continue;
      }
      if (st.subscribers == 0 && st.state == stream_state::open &&
          now_us - st.last_activity_us >= config_.idle_open_limit_us)
        to_cancel.push_back({it->second, "idle"});
      else if (st.subscribers == 0 && st.state == stream_state::open && st.unread_grace_us > 0 &&
               now_us - st.unread_since_us >= st.unread_grace_us)
        to_cancel.push_back({it->second, "no reader"});
      ++it;
    }
  }
  // Outside the shard locks: cancel handlers may call back into the registry.
  for (auto& [log, reason] : to_cancel) log->cancel(reason);
  return freed;
}

registry_counts stream_registry::counts() const {
  registry_counts c;
  for (const shard& sh : shards_) {
    std::lock_guard lock(sh.mutex);
    for (const auto& [id, log] : sh.streams) {
      switch (log->state()) {
        case stream_state::open:
          ++c.open;
          break;
        case stream_state::finished:
          ++c.finished;
          break;
        case stream_state::cancelled:
          ++c.cancelled;
          break;
      }
    }
  }
  return c;
}

std::size_t stream_registry::size() const { return size_.load(std::memory_order_relaxed); }

}  // namespace sluice::core
