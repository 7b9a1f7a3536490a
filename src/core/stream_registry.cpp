#include "core/stream_registry.hpp"

#include <algorithm>
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
      case registry_error::too_many_streams_for_owner:
        return "too many streams for this subject";
      case registry_error::memory_budget_exceeded:
        return "the memory budget for retained events is reached";
    }
    return "unknown registry error";
  }
};
}  // namespace

const boost::system::error_category& registry_category() {
  static const registry_category_impl instance;
  return instance;
}

stream_registry::stream_registry(registry_config config)
    : config_(config), memory_(std::make_shared<std::atomic<std::int64_t>>(0)) {}

stream_registry::shard& stream_registry::shard_for(std::string_view id) const {
  return shards_[string_hash{}(id) % shard_count];
}

namespace {
constexpr std::string_view reader_owner_prefix =
    "\x1f"
    "reader:";
}  // namespace

std::string reader_owner(std::string_view subject) {
  return std::string(reader_owner_prefix) + std::string(subject);
}

std::string_view charged_subject(std::string_view owner) {
  if (owner.starts_with(reader_owner_prefix)) owner.remove_prefix(reader_owner_prefix.size());
  return owner;
}

bool stream_registry::reserve_owner(std::string_view owner) {
  owner = charged_subject(owner);
  if (owner.empty()) return true;
  std::lock_guard lock(owners_mutex_);
  auto it = owners_.find(owner);
  if (it == owners_.end()) it = owners_.emplace(std::string(owner), 0).first;
  if (config_.max_streams_per_owner != 0 && it->second >= config_.max_streams_per_owner) {
    if (it->second == 0) owners_.erase(it);
    return false;
  }
  ++it->second;
  return true;
}

void stream_registry::release_owner(std::string_view owner) {
  owner = charged_subject(owner);
  if (owner.empty()) return;
  std::lock_guard lock(owners_mutex_);
  auto it = owners_.find(owner);
  if (it == owners_.end()) return;
  if (--it->second == 0) owners_.erase(it);
}

std::size_t stream_registry::owned_by(std::string_view owner) const {
  owner = charged_subject(owner);
  std::lock_guard lock(owners_mutex_);
  auto it = owners_.find(owner);
  return it == owners_.end() ? 0 : it->second;
}

stream_registry::stream_map::iterator stream_registry::erase_locked(stream_map& streams,
                                                                    stream_map::iterator it) {
  release_owner(it->second.log->owner());
  if (store_) store_->erased(*it->second.log);
  size_.fetch_sub(1, std::memory_order_relaxed);
  return streams.erase(it);
}

boost::system::result<std::shared_ptr<stream_log>> stream_registry::insert(std::string_view id,
                                                                           std::string_view owner,
                                                                           insert_mode mode) {
  {
    shard& sh = shard_for(id);
    std::lock_guard lock(sh.mutex);
    if (auto it = sh.streams.find(id); it != sh.streams.end()) {
      if (mode == insert_mode::must_be_new) return make_error_code(registry_error::already_exists);
      return it->second.log;
    }
  }
  // A new stream retains bytes: refuse it at the memory budget (after trying
  // to evict finished streams). Outside the shard lock: eviction takes them.
  if (!memory_available()) return make_error_code(registry_error::memory_budget_exceeded);
  shard& sh = shard_for(id);
  std::lock_guard lock(sh.mutex);
  if (auto it = sh.streams.find(id); it != sh.streams.end()) {  // created meanwhile
    if (mode == insert_mode::must_be_new) return make_error_code(registry_error::already_exists);
    return it->second.log;
  }
  // Reserve a slot first so concurrent creators never exceed the limit.
  if (size_.fetch_add(1, std::memory_order_relaxed) >= config_.max_streams) {
    size_.fetch_sub(1, std::memory_order_relaxed);
    return make_error_code(registry_error::too_many_streams);
  }
  if (!reserve_owner(owner)) {
    size_.fetch_sub(1, std::memory_order_relaxed);
    return make_error_code(registry_error::too_many_streams_for_owner);
  }
  auto log =
      std::make_shared<stream_log>(std::string(id), config_.retention, std::string(owner), memory_);
  if (store_) log->attach_journal(store_->open_journal(log->meta()));
  sh.streams.emplace(std::string(id), slot{log, mode == insert_mode::pending});
  return log;
}

boost::system::result<std::shared_ptr<stream_log>> stream_registry::get_or_create(
    std::string_view id, std::string_view owner) {
  return insert(id, owner, insert_mode::get_or_create);
}

boost::system::result<std::shared_ptr<stream_log>> stream_registry::create(std::string_view id,
                                                                           std::string_view owner) {
  return insert(id, owner, insert_mode::must_be_new);
}

boost::system::result<std::shared_ptr<stream_log>> stream_registry::get_or_create_pending(
    std::string_view id, std::string_view owner) {
  return insert(id, owner, insert_mode::pending);
}

std::shared_ptr<stream_log> stream_registry::find(std::string_view id) const {
  shard& sh = shard_for(id);
  std::lock_guard lock(sh.mutex);
  auto it = sh.streams.find(id);
  return it == sh.streams.end() ? nullptr : it->second.log;
}

bool stream_registry::memory_available(std::int64_t now_us) {
  const std::size_t budget = config_.memory_budget_bytes;
  if (budget == 0 || memory_used() < static_cast<std::int64_t>(budget)) return true;
  // At the budget. One scan at a time; a scan that freed nothing is not
  // repeated for a while (nothing may have finished since).
  constexpr std::int64_t rescan_after_us = 100'000;
  if (now_us == 0) now_us = realtime_us();
  std::unique_lock lock(evict_mutex_, std::try_to_lock);
  if (lock.owns_lock() &&
      (fruitless_scan_us_ == 0 || now_us - fruitless_scan_us_ >= rescan_after_us)) {
    const std::size_t freed = evict_finished(budget / 10 * 9);
    fruitless_scan_us_ = freed == 0 ? now_us : 0;
  }
  return memory_used() < static_cast<std::int64_t>(budget);
}

std::size_t stream_registry::evict_finished(std::size_t target_bytes) {
  struct candidate {
    std::int64_t finished_us;
    std::size_t bytes;
    std::size_t shard_no;
    std::string id;
    const stream_log* log;
  };
  std::vector<candidate> candidates;
  for (std::size_t i = 0; i < shard_count; ++i) {
    std::lock_guard lock(shards_[i].mutex);
    for (const auto& [id, sl] : shards_[i].streams) {
      const stream_status st = sl.log->status();
      if (st.state != stream_state::open && st.subscribers == 0 &&
          (!store_ || st.retained_events > 1))
        candidates.push_back({st.finished_us, st.retained_bytes, i, id, sl.log.get()});
    }
  }
  std::sort(candidates.begin(), candidates.end(),
            [](const candidate& a, const candidate& b) { return a.finished_us < b.finished_us; });
  std::size_t freed = 0;
  std::int64_t used = memory_used();
  for (const candidate& c : candidates) {
    if (used <= static_cast<std::int64_t>(target_bytes)) break;
    std::shared_ptr<stream_log> victim;  // destroyed after the shard lock is released
    {
      shard& sh = shards_[c.shard_no];
      std::lock_guard lock(sh.mutex);
      auto it = sh.streams.find(c.id);
      if (it == sh.streams.end() || it->second.log.get() != c.log) continue;
      if (it->second.log->status().subscribers != 0) continue;  // a reader came meanwhile
      // A store that keeps the history serves it from disk: keep the stream
      // (its final event only) instead of dropping it.
      std::size_t shed = 0;
      if (store_ && it->second.log->shed_history(shed)) {
        used -= static_cast<std::int64_t>(shed);
        if (shed != 0) ++freed;
        continue;
      }
      victim = it->second.log;
      erase_locked(sh.streams, it);
    }
    used -= static_cast<std::int64_t>(c.bytes);
    ++freed;
  }
  return freed;
}

std::size_t stream_registry::sweep(std::int64_t now_us) {
  std::size_t freed = 0;
  std::vector<std::pair<std::shared_ptr<stream_log>, const char*>> to_cancel;
  std::vector<std::shared_ptr<stream_log>> to_expire;
  for (shard& sh : shards_) {
    std::lock_guard lock(sh.mutex);
    for (auto it = sh.streams.begin(); it != sh.streams.end();) {
      slot& sl = it->second;
      const stream_status st = sl.log->status();
      const std::int64_t ttl =
          st.finished_ttl_us > 0 ? st.finished_ttl_us : config_.finished_ttl_us;
      if (st.subscribers == 0 && st.state != stream_state::open && now_us - st.finished_us >= ttl) {
        it = erase_locked(sh.streams, it);
        ++freed;
        continue;
      }
      if (sl.pending && (st.last_sequence != 0 || st.state != stream_state::open)) {
        sl.pending = false;  // published to (or ended): a normal stream now
      } else if (sl.pending && now_us - st.created_us >= config_.pending_limit_us) {
        to_expire.push_back(sl.log);
      } else if (st.subscribers == 0 && st.state == stream_state::open &&
                 now_us - st.last_activity_us >= config_.idle_open_limit_us) {
        to_cancel.push_back({sl.log, "idle"});
      } else if (st.subscribers == 0 && st.state == stream_state::open && st.unread_grace_us > 0 &&
                 st.unread_since_us != 0 && now_us - st.unread_since_us >= st.unread_grace_us) {
        to_cancel.push_back({sl.log, "no reader"});
      }
      ++it;
    }
  }
  // Outside the shard locks: cancel handlers may call back into the registry.
  for (auto& [log, reason] : to_cancel) log->cancel(reason);
  if (!to_expire.empty()) {
    const std::int64_t limit = config_.pending_limit_us;
    const std::string within = limit % 1'000'000 == 0 ? std::to_string(limit / 1'000'000) + " s"
                                                      : std::to_string(limit / 1'000) + " ms";
    const std::string data = "{\"code\":\"" + std::string(stream_not_started_code) +
                             "\",\"message\":\"nothing was published to this stream within " +
                             within + "\"}";
    for (auto& log : to_expire) {
      // Freed by the next sweep once its subscribers have read the event.
      if (log->end_if_unpublished("error", data)) log->keep_finished_for(1);
    }
  }
  return freed;
}

void stream_registry::attach_store(std::shared_ptr<stream_store> store) {
  store_ = std::move(store);
}

std::shared_ptr<stream_log> stream_registry::restore(const stream_meta& meta) {
  shard& sh = shard_for(meta.id);
  std::lock_guard lock(sh.mutex);
  if (sh.streams.contains(meta.id)) return nullptr;
  size_.fetch_add(1, std::memory_order_relaxed);
  {
    const std::string_view subject = charged_subject(meta.owner);
    if (!subject.empty()) {
      std::lock_guard owners(owners_mutex_);
      ++owners_[std::string(subject)];
    }
  }
  auto log = std::make_shared<stream_log>(meta, config_.retention, memory_);
  sh.streams.emplace(meta.id, slot{log, false});
  return log;
}

bool stream_registry::drop(std::string_view id, const stream_log* log) {
  std::shared_ptr<stream_log> victim;  // destroyed after the shard lock is released
  shard& sh = shard_for(id);
  std::lock_guard lock(sh.mutex);
  auto it = sh.streams.find(id);
  if (it == sh.streams.end() || it->second.log.get() != log) return false;
  if (it->second.log->status().subscribers != 0) return false;
  victim = it->second.log;
  erase_locked(sh.streams, it);
  return true;
}

registry_counts stream_registry::counts() const {
  registry_counts c;
  for (const shard& sh : shards_) {
    std::lock_guard lock(sh.mutex);
    for (const auto& [id, sl] : sh.streams) {
      switch (sl.log->state()) {
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

std::size_t stream_registry::size() const {
  return size_.load(std::memory_order_relaxed);
}

}  // namespace sluice::core
