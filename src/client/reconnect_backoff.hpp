// Reconnection delays: exponential backoff with full jitter
// (delay = uniform(0, min(cap, base * 2^attempt))), as in the AWS architecture
// note "Exponential Backoff and Jitter". Full jitter spreads the reconnections
// of many clients cut at the same moment (a server restart) over the window
// instead of synchronising them.
//
// Pure logic, no clock: the caller sleeps. A fixed seed makes the sequence
// reproducible; a zero base gives zero delays (tests).
//
// Thread-safety: none; one per client, used from its executor.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace sluice::client {

class reconnect_backoff {
 public:
  reconnect_backoff(std::chrono::milliseconds base, std::chrono::milliseconds cap,
                    std::uint64_t seed);

  // The delay before reconnection attempt number `attempt` (0 for the first
  // reconnection after a connection that was open, 1 after one failed attempt, ...).
  std::chrono::milliseconds delay(unsigned attempt);

  // The server's `retry:` hint replaces the base, unless the base was
  // configured as zero (no waiting at all, for tests).
  void set_base_from_server(std::chrono::milliseconds base);

  std::chrono::milliseconds base() const { return base_; }
  std::chrono::milliseconds cap() const { return cap_; }

 private:
  std::chrono::milliseconds base_;
  std::chrono::milliseconds cap_;
  bool waiting_disabled_;
  std::mt19937_64 rng_;
};

}  // namespace sluice::client
