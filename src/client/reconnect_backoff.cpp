#include "client/reconnect_backoff.hpp"

#include <algorithm>

namespace sluice::client {

reconnect_backoff::reconnect_backoff(std::chrono::milliseconds base,
                                     std::chrono::milliseconds cap, std::uint64_t seed)
    : base_(std::max(base, std::chrono::milliseconds(0))),
      cap_(std::max(cap, std::chrono::milliseconds(0))),
      waiting_disabled_(base <= std::chrono::milliseconds(0)),
      rng_(seed) {}

std::chrono::milliseconds reconnect_backoff::delay(unsigned attempt) {
  if (waiting_disabled_ || base_.count() == 0 || cap_.count() == 0)
    return std::chrono::milliseconds(0);
  // base * 2^attempt, saturating at the cap without overflowing.
  std::int64_t window = base_.count();
  for (unsigned i = 0; i < attempt && window < cap_.count(); ++i) window *= 2;
  window = std::min<std::int64_t>(window, cap_.count());
  std::uniform_int_distribution<std::int64_t> pick(0, window);
  return std::chrono::milliseconds(pick(rng_));
}

void reconnect_backoff::set_base_from_server(std::chrono::milliseconds base) {
  if (waiting_disabled_) return;
  base_ = std::clamp(base, std::chrono::milliseconds(0), cap_);
}

}  // namespace sluice::client
