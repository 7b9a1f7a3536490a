// Counters exported at GET /metrics (Prometheus text format).
//
// Thread-safety: each worker thread writes only its own shard (single writer,
// relaxed atomics, no lock prefix on the hot path); /metrics sums the shards.
// Threads that are not workers (tests, producers on their own threads) write
// the shared fallback shard with atomic read-modify-write.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "streams/stream_service.hpp"

namespace sluice::transport {

inline constexpr std::array<std::int64_t, 15> latency_bounds_us = {
    50, 100, 250, 500, 1'000, 2'500, 5'000, 10'000, 25'000, 50'000, 100'000, 250'000, 500'000,
    1'000'000, 5'000'000};

struct metrics_shard {
  std::atomic<std::uint64_t> events_published{0};
  std::atomic<std::uint64_t> events_delivered{0};  // log events (a coalesced SSE event counts its range)
  std::atomic<std::uint64_t> sse_events_written{0};
  std::atomic<std::uint64_t> bytes_delivered{0};   // body bytes before compression
  std::atomic<std::uint64_t> wire_bytes{0};        // bytes written to sockets
  std::atomic<std::uint64_t> coalesced_events{0};
  std::atomic<std::uint64_t> resumes{0};
  std::atomic<std::uint64_t> retention_errors{0};
  std::atomic<std::uint64_t> heartbeats{0};
  std::atomic<std::uint64_t> write_stalls{0};
  std::atomic<std::uint64_t> rejected_connections{0};
  std::array<std::atomic<std::uint64_t>, latency_bounds_us.size() + 1> latency_buckets{};
  std::atomic<std::int64_t> latency_sum_us{0};
  std::atomic<std::uint64_t> latency_count{0};
  bool single_writer = false;

  void add(std::atomic<std::uint64_t>& c, std::uint64_t n) {
    if (single_writer)
      c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    else
      c.fetch_add(n, std::memory_order_relaxed);
  }
  void observe_latency_us(std::int64_t us);
};

// Also the stream op layer's counters (events published, resumes).
class metrics final : public streams::op_counters {
 public:
  metrics();
  void published(std::size_t events) noexcept override {
    local().add(local().events_published, events);
  }
  void resumed() noexcept override { local().add(local().resumes, 1); }
  // The shard of the calling thread (the fallback shard for non-workers).
  metrics_shard& local();
  // Creates a single-writer shard and makes it the calling thread's.
  void register_worker_thread();

  std::atomic<std::int64_t> open_connections{0};
  std::atomic<std::int64_t> open_subscribers{0};

  // Prometheus text; `streams_*` come from the registry.
  std::string render(std::size_t streams_open, std::size_t streams_finished,
                     std::size_t streams_cancelled) const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<metrics_shard>> shards_;  // guarded by mutex_ (the vector)
  metrics_shard fallback_;
};

}  // namespace sluice::transport
