#include "transport/metrics.hpp"

#include <algorithm>

#include "core/segment_memory.hpp"

namespace sluice::transport {
namespace {
thread_local metrics_shard* tls_shard = nullptr;
thread_local const metrics* tls_owner = nullptr;
}  // namespace

void metrics_shard::observe_latency_us(std::int64_t us) {
  if (us < 0) us = 0;
  std::size_t i = static_cast<std::size_t>(
      std::lower_bound(latency_bounds_us.begin(), latency_bounds_us.end(), us) -
      latency_bounds_us.begin());
  add(latency_buckets[i], 1);
  if (single_writer)
    latency_sum_us.store(latency_sum_us.load(std::memory_order_relaxed) + us,
                         std::memory_order_relaxed);
  else
    latency_sum_us.fetch_add(us, std::memory_order_relaxed);
  add(latency_count, 1);
}

metrics::metrics() = default;

metrics_shard& metrics::local() {
  if (tls_owner == this && tls_shard != nullptr) return *tls_shard;
  return fallback_;
}

void metrics::register_worker_thread() {
  auto shard = std::make_unique<metrics_shard>();
  shard->single_writer = true;
  std::lock_guard lock(mutex_);
  tls_shard = shard.get();
  tls_owner = this;
  shards_.push_back(std::move(shard));
}

std::string metrics::render(std::size_t streams_open, std::size_t streams_finished,
                            std::size_t streams_cancelled) const {
  auto sum = [this](auto member) {
    std::uint64_t total = (fallback_.*member).load(std::memory_order_relaxed);
    for (const auto& s : shards_) total += ((*s).*member).load(std::memory_order_relaxed);
    return total;
  };
  std::lock_guard lock(mutex_);
  std::string o;
  auto counter = [&o](const char* name, const char* help, std::uint64_t v) {
    o += "# HELP ";
    o += name;
    o += ' ';
    o += help;
    o += "\n# TYPE ";
    o += name;
    o += " counter\n";
    o += name;
    o += ' ';
    o += std::to_string(v);
    o += '\n';
  };
  o += "# HELP sluice_open_connections Open TCP connections.\n# TYPE sluice_open_connections gauge\n";
  o += "sluice_open_connections " + std::to_string(open_connections.load()) + "\n";
  o += "# HELP sluice_open_subscribers Open SSE subscriber connections.\n# TYPE sluice_open_subscribers gauge\n";
  o += "sluice_open_subscribers " + std::to_string(open_subscribers.load()) + "\n";
  o += "# HELP sluice_streams Streams held in memory, by state.\n# TYPE sluice_streams gauge\n";
  o += "sluice_streams{state=\"open\"} " + std::to_string(streams_open) + "\n";
  o += "sluice_streams{state=\"finished\"} " + std::to_string(streams_finished) + "\n";
  o += "sluice_streams{state=\"cancelled\"} " + std::to_string(streams_cancelled) + "\n";
  const auto pool = core::segment_memory::current_usage();
  o += "# HELP sluice_log_memory_bytes The stream logs' segment and index memory (huge-page "
       "regions): reserved (only touched pages are resident), in use, free for reuse.\n"
       "# TYPE sluice_log_memory_bytes gauge\n";
  o += "sluice_log_memory_bytes{state=\"reserved\"} " + std::to_string(pool.mapped_bytes) + "\n";
  o += "sluice_log_memory_bytes{state=\"in_use\"} " +
       std::to_string(pool.carved_bytes - pool.free_bytes) + "\n";
  o += "sluice_log_memory_bytes{state=\"free\"} " + std::to_string(pool.free_bytes) + "\n";
  counter("sluice_events_published_total", "Events appended to stream logs.",
          sum(&metrics_shard::events_published));
  counter("sluice_events_delivered_total",
          "Log events written to subscribers (a coalesced event counts every event it covers).",
          sum(&metrics_shard::events_delivered));
  counter("sluice_sse_events_written_total", "SSE events written to subscribers.",
          sum(&metrics_shard::sse_events_written));
  counter("sluice_bytes_delivered_total", "Event bytes written to subscribers, before compression.",
          sum(&metrics_shard::bytes_delivered));
  counter("sluice_wire_bytes_total", "Response body bytes written to sockets.",
          sum(&metrics_shard::wire_bytes));
  counter("sluice_coalesced_events_total", "SSE events that merged several deltas.",
          sum(&metrics_shard::coalesced_events));
  counter("sluice_resumes_total", "Subscribe requests carrying a Last-Event-ID.",
          sum(&metrics_shard::resumes));
  counter("sluice_retention_errors_total", "Subscribers told resume_window_exceeded.",
          sum(&metrics_shard::retention_errors));
  counter("sluice_heartbeats_total", "Heartbeats sent to idle subscribers.",
          sum(&metrics_shard::heartbeats));
  counter("sluice_write_stalls_total", "Connections closed because the client accepted no bytes.",
          sum(&metrics_shard::write_stalls));
  counter("sluice_rejected_connections_total", "Connections refused over --max-connections.",
          sum(&metrics_shard::rejected_connections));
  o += "# HELP sluice_publish_to_write_latency_us Time from publish to the completed socket write "
       "of the oldest event of each write batch.\n";
  o += "# TYPE sluice_publish_to_write_latency_us histogram\n";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= latency_bounds_us.size(); ++i) {
    std::uint64_t v = fallback_.latency_buckets[i].load(std::memory_order_relaxed);
    for (const auto& s : shards_) v += s->latency_buckets[i].load(std::memory_order_relaxed);
    cumulative += v;
    o += "sluice_publish_to_write_latency_us_bucket{le=\"";
    o += i < latency_bounds_us.size() ? std::to_string(latency_bounds_us[i]) : "+Inf";
    o += "\"} " + std::to_string(cumulative) + "\n";
  }
  std::int64_t lsum = fallback_.latency_sum_us.load(std::memory_order_relaxed);
  for (const auto& s : shards_) lsum += s->latency_sum_us.load(std::memory_order_relaxed);
  o += "sluice_publish_to_write_latency_us_sum " + std::to_string(lsum) + "\n";
  o += "sluice_publish_to_write_latency_us_count " +
       std::to_string(sum(&metrics_shard::latency_count)) + "\n";
  return o;
}

}  // namespace sluice::transport
