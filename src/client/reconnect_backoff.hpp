// Reconnection delays: exponential backoff with "equal jitter" upwards from a
// floor, so that a server's `retry:` is a lower bound and never shortened.
//
//   ceiling(k) = min(cap, base * 2^(k+1))
//   delay(k)   = uniform(max(base, ceiling(k) / 2), ceiling(k))
//
// With base 150 ms and cap 30 s: [150, 300], [300, 600], [600, 1200], ...,
// then [15 s, 30 s] once the ceiling reaches the cap. The first delay is
// never below the base (the server's retry: or the configured one); each
// window is twice the previous one; the jitter spreads the reconnections of
// many clients cut at the same moment (a server restart) over the window, the
// reason `retry:` exists, instead of synchronising them; at the cap the spread
// stays half the cap wide.
//
// Pure logic, no clock: the caller sleeps. The random source is injected
// (tests give a fixed one); a fixed seed makes the default one reproducible.
// A zero base gives zero delays and ignores the server's retry: (tests).
//
// Thread-safety: none; one per client, used from its executor.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <random>

namespace sluice::client {

class reconnect_backoff {
 public:
  // Returns a value in [lo, hi] (lo <= hi); one outside is clamped into it.
  using random_pick = std::function<std::int64_t(std::int64_t lo, std::int64_t hi)>;

  // Uniform picks from a Mersenne Twister seeded with `seed`.
  reconnect_backoff(std::chrono::milliseconds base, std::chrono::milliseconds cap,
                    std::uint64_t seed);
  reconnect_backoff(std::chrono::milliseconds base, std::chrono::milliseconds cap,
                    random_pick pick);

  // The delay before reconnection attempt number `attempt` (0 for the first
  // reconnection after a connection that was open, 1 after one failed attempt, ...).
  std::chrono::milliseconds delay(unsigned attempt);

  // The server's `retry:` becomes the base (the floor of every delay),
  // bounded by the cap, unless the base was configured as zero (no waiting).
  void set_base_from_server(std::chrono::milliseconds base);

  std::chrono::milliseconds base() const { return base_; }
  std::chrono::milliseconds cap() const { return cap_; }

 private:
  std::chrono::milliseconds base_;
  std::chrono::milliseconds cap_;
  bool waiting_disabled_;
  random_pick pick_;
};

}  // namespace sluice::client
