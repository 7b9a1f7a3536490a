#include "client/reconnect_backoff.hpp"

#include <algorithm>
#include <memory>

namespace sluice::client {

namespace {

reconnect_backoff::random_pick seeded_pick(std::uint64_t seed) {
  auto rng = std::make_shared<std::mt19937_64>(seed);
  return [rng](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(*rng);
  };
}

}  // namespace

reconnect_backoff::reconnect_backoff(std::chrono::milliseconds base, std::chrono::milliseconds cap,
                                     std::uint64_t seed)
    : reconnect_backoff(base, cap, seeded_pick(seed)) {}

reconnect_backoff::reconnect_backoff(std::chrono::milliseconds base, std::chrono::milliseconds cap,
                                     random_pick pick)
    : cap_(std::max(cap, std::chrono::milliseconds(0))),
      waiting_disabled_(base <= std::chrono::milliseconds(0)),
      pick_(std::move(pick)) {
  base_ = std::clamp(base, std::chrono::milliseconds(0), cap_);
}

std::chrono::milliseconds reconnect_backoff::delay(unsigned attempt) {
  if (waiting_disabled_ || base_.count() == 0 || cap_.count() == 0)
    return std::chrono::milliseconds(0);
  const std::int64_t base = base_.count();
  const std::int64_t cap = cap_.count();
  // ceiling = min(cap, base * 2^(attempt+1)), doubling without overflow.
  std::int64_t ceiling = base;
  for (unsigned i = 0; i <= attempt && ceiling < cap; ++i)
    ceiling = ceiling > cap / 2 ? cap : ceiling * 2;
  ceiling = std::min(ceiling, cap);
  const std::int64_t floor = std::max(base, ceiling / 2);
  const std::int64_t picked = pick_ ? pick_(floor, ceiling) : floor;
  return std::chrono::milliseconds(std::clamp(picked, floor, ceiling));
}

void reconnect_backoff::set_base_from_server(std::chrono::milliseconds base) {
  if (waiting_disabled_) return;
  base_ = std::clamp(base, std::chrono::milliseconds(0), cap_);
}

}  // namespace sluice::client
