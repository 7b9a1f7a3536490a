#include "app/config.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <limits>
#include <map>

namespace sluice::app {
namespace {

// Integer staging for durations, so CLI11 parses plain numbers.
struct duration_fields {
  long long header_timeout_ms = 10'000;
  long long heartbeat_ms = 10'000;
  long long write_stall_ms = 30'000;
  long long max_stream_duration_s = 3'600;
  long long shutdown_deadline_ms = 5'000;
  long long finished_ttl_s = 600;
  long long idle_stream_s = 3'600;
  long long pending_stream_s = 60;
  long long final_reply_timeout_s = 300;
};
duration_fields g_durations;  // one `serve` per process

std::string env_name(const std::string& flag) {
  std::string e = "SLUICE_";
  for (char c : flag)
    e += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return e;
}

template <typename T>
CLI::Option* opt(CLI::App& cmd, const std::string& name, T& value, const std::string& help) {
  return cmd.add_option("--" + name, value, help)->envname(env_name(name))->capture_default_str();
}

}  // namespace

void add_serve_options(CLI::App& cmd, serve_options& o) {
  auto& s = o.server;
  auto& d = g_durations;
  opt(cmd, "host", s.host, "Address to listen on");
  opt(cmd, "port", s.port, "TCP port (0 picks a free one)");
  opt(cmd, "threads", s.threads, "Event-loop threads (0 = one per core)");
  opt(cmd, "max-connections", s.max_connections,
      "Open connections above which new ones get 503 with Retry-After");
  opt(cmd, "max-body-bytes", s.max_body_bytes, "Largest request body (413 above)");
  opt(cmd, "max-header-bytes", s.max_header_bytes, "Largest request header block (431 above)");
  opt(cmd, "header-timeout-ms", d.header_timeout_ms,
      "Time allowed to receive a request (slow clients are closed)");
  opt(cmd, "heartbeat-ms", d.heartbeat_ms, "Send a heartbeat after this long without writing");
  cmd.add_option("--heartbeat-style", s.heartbeat,
                 "comment (': heartbeat') or data ('data: heartbeat', for clients of the seed)")
      ->envname("SLUICE_HEARTBEAT_STYLE")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, transport::heartbeat_style>{
              {"comment", transport::heartbeat_style::comment},
              {"data", transport::heartbeat_style::data}},
          CLI::ignore_case))
      ->default_str("comment");
  opt(cmd, "write-stall-ms", d.write_stall_ms,
      "Close a connection whose client accepts no bytes for this long (it can resume)");
  opt(cmd, "max-stream-duration-s", d.max_stream_duration_s,
      "End a response after this long (the client reconnects and resumes)");
  opt(cmd, "shutdown-deadline-ms", d.shutdown_deadline_ms,
      "Longest graceful shutdown on SIGINT/SIGTERM");
  opt(cmd, "retry-ms", s.retry_hint_ms, "The retry: hint sent when a stream opens");
  opt(cmd, "write-batch-bytes", s.write_batch_bytes, "Upper bound of one gathered write");
  opt(cmd, "coalesce", s.coalesce, "Merge runs of text deltas for lagging readers (lossless)");
  opt(cmd, "gzip-level", s.gzip_level, "gzip level for clients sending Accept-Encoding: gzip");
  opt(cmd, "gzip-window-bits", s.gzip_window_bits, "gzip window (9-15): memory per gzip stream");
  opt(cmd, "gzip-mem-level", s.gzip_mem_level, "zlib memLevel (1-9): memory per gzip stream");
  opt(cmd, "ws-max-message-bytes", s.ws_max_message_bytes,
      "Largest WebSocket message from a client (closed with 1009 above)");
  opt(cmd, "ws-max-streams-per-socket", s.ws_max_streams_per_socket,
      "Streams one WebSocket may subscribe to at once");
  opt(cmd, "ws-deflate", s.ws_deflate, "permessage-deflate when a WebSocket client offers it");
  opt(cmd, "ws-deflate-window-bits", s.ws_deflate_window_bits,
      "WebSocket deflate window (9-15): memory per connection");
  opt(cmd, "ws-deflate-mem-level", s.ws_deflate_mem_level,
      "WebSocket deflate memLevel (1-9): memory per connection");
  opt(cmd, "max-streams", s.registry.max_streams, "Streams held at once (503 above)");
  opt(cmd, "retention-events", s.registry.retention.max_events, "Events retained per stream");
  opt(cmd, "retention-bytes", s.registry.retention.max_bytes, "Encoded bytes retained per stream");
  opt(cmd, "finished-ttl-s", d.finished_ttl_s, "How long a finished stream stays replayable");
  opt(cmd, "idle-stream-s", d.idle_stream_s,
      "Cancel an open stream with no subscriber and no publish for this long");
  // Budgets (docs/security.md, Resource budgets).
  opt(cmd, "memory-budget", o.memory_budget,
      "Retained event bytes of all streams (e.g. 512M, 2G, 25% of RAM; 0 = no limit); at it, "
      "finished streams are evicted oldest first, then publishes get 503 memory_budget_exceeded");
  opt(cmd, "pending-stream-s", d.pending_stream_s,
      "A stream created by subscribing to an unknown id ends with an error event "
      "(stream_not_started) when nothing is published to it for this long");
  opt(cmd, "max-streams-per-subject", s.registry.max_streams_per_owner,
      "Streams one subject (client address with --auth none) holds at once (429 above; 0 = no "
      "limit)");
  opt(cmd, "max-connections-per-ip", s.budgets.max_connections_per_ip,
      "Open connections from one client address (503 too_many_connections_from_address above; 0 "
      "= no limit)");
  opt(cmd, "ws-ops-per-s", s.budgets.ws_ops_per_s,
      "WebSocket ops per second per socket (bursts of twice that; an op over it gets an error "
      "rate_limited, 64 in a row close the socket with 1008; 0 = no limit)");
  opt(cmd, "final-reply-timeout-s", d.final_reply_timeout_s,
      "isStream:false requests get 504 final_reply_timeout after this long (the run is then "
      "cancelled by --detach-grace-s unless someone reads it)");
  opt(cmd, "max-runs", o.agents.max_runs, "Agent runs at once in total (503 above; 0 = no limit)");
  opt(cmd, "max-runs-per-subject", o.agents.max_runs_per_subject,
      "Agent runs at once per subject (429 above; 0 = no limit)");
  cmd.add_flag("--enable-bench", o.enable_bench,
               "Serve POST /v1/bench/tokens, a benchmark workload (off: it lets anyone make the "
               "server produce events)")
      ->envname(env_name("enable-bench"));
  // The embedded durable log (docs/durability.md).
  opt(cmd, "data-dir", o.data_dir,
      "Keep streams in append-only files in this folder so they survive a restart (make run: "
      "data/); empty = memory only");
  cmd.add_flag("--memory-only", o.memory_only, "Keep streams in memory only (ignores --data-dir)")
      ->envname(env_name("memory-only"));
  opt(cmd, "fsync", o.fsync,
      "With --data-dir: always (a publish is answered once its event is on disk), interval "
      "(synced every --fsync-interval-ms) or never (the OS decides)")
      ->check(CLI::IsMember({"always", "interval", "never"}));
  opt(cmd, "fsync-interval-ms", o.fsync_interval_ms,
      "With --fsync interval: the longest a written event waits for its sync");
  opt(cmd, "disk-budget", o.disk_budget,
      "With --data-dir: bytes of segment files (e.g. 10G; 0 = no limit); above it the oldest "
      "segments are deleted, then finished streams' files");
  // Many nodes (docs/scaling.md).
  opt(cmd, "redis", o.redis,
      "Share streams with other nodes through Redis: redis://[[user]:password@]host[:port][/db] "
      "(rediss:// for TLS, verified); empty = one node (exclusive with --data-dir)");
  opt(cmd, "redis-ca-file", o.redis_ca_file,
      "With rediss://: a PEM CA certificate trusted besides the system's");
  opt(cmd, "node-id", o.node_id,
      "With --redis: this node's name ([A-Za-z0-9._:-]{1,128}; default hostname:port:random)");
  opt(cmd, "run-lease-s", o.run_lease_s,
      "With --redis: a run's lease; a node that stops renewing it for this long has its runs "
      "ended with producer_lost by another node (0.1..3600)");
  opt(cmd, "disk-retention-events", o.disk_retention_events,
      "With --data-dir: events kept on disk per stream (at least --retention-events); readers "
      "behind memory's window read older events from disk");
  opt(cmd, "disk-retention-bytes", o.disk_retention,
      "With --data-dir: encoded bytes kept on disk per stream (e.g. 1G; at least "
      "--retention-bytes)");
  opt(cmd, "log-level", o.log_level, "trace, debug, info, warn, error or off");
  opt(cmd, "web-root", o.web_root,
      "Folder of the built web page served at / (skipped when absent)");
  add_agent_options(cmd, o.agents);
  opt(cmd, "detach-grace-s", o.agents.detach_grace_s,
      "Cancel an agent run nobody has read for this long (0 = never)");
}

void add_agent_options(CLI::App& cmd, agent_options& a) {
  opt(cmd, "corpus", a.corpus_dir, "Folder of .md/.txt/.html files that agents search");
  opt(cmd, "index", a.index_path,
      "SQLite FTS5 index of the corpus (built from --corpus at start when absent)");
  opt(cmd, "llm", a.llm,
      "builtin (offline extractive answering) or openai (any OpenAI-compatible server)")
      ->check(CLI::IsMember({"builtin", "openai"}));
  opt(cmd, "llm-base-url", a.llm_base_url, "Base URL of the OpenAI-compatible API (…/v1)");
  opt(cmd, "llm-model", a.llm_model, "Model name sent to the API");
  opt(cmd, "llm-api-key-env", a.llm_api_key_env, "Environment variable holding the API key");
  opt(cmd, "llm-timeout-s", a.llm_timeout_s, "Give up on the model after this long without bytes");
  opt(cmd, "builtin-delta-ms", a.builtin_delta_ms,
      "Pause between the builtin answerer's text deltas (0 = none)");
  opt(cmd, "search-threads", a.search_threads, "Searches run at once (SQLite thread pool)");
  opt(cmd, "search-queue", a.search_queue,
      "Search tasks queued or running at once (a new run gets 503 search_busy above; 0 = no "
      "limit)");
  opt(cmd, "llm-max-tokens", a.llm_max_tokens,
      "max_tokens sent with every model call (bounds what one call can spend)");
  opt(cmd, "searxng-url", a.searxng_url,
      "Also search the web through this SearXNG instance (http(s)://host[/prefix], json format "
      "enabled); empty = corpus only");
}

void finish_serve_options(serve_options& o) {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  auto& s = o.server;
  const auto& d = g_durations;
  s.header_timeout = milliseconds(d.header_timeout_ms);
  s.heartbeat_interval = milliseconds(d.heartbeat_ms);
  s.write_stall_timeout = milliseconds(d.write_stall_ms);
  s.max_stream_duration = seconds(d.max_stream_duration_s);
  s.shutdown_deadline = milliseconds(d.shutdown_deadline_ms);
  s.registry.finished_ttl_us = d.finished_ttl_s * 1'000'000;
  if (!o.redis.empty() && !o.memory_only && !o.data_dir.empty())
    throw CLI::ValidationError(
        "--redis and --data-dir are exclusive: with --redis, Redis keeps the streams (use "
        "--memory-only or --data-dir '' with --redis)");
  if (!(o.run_lease_s >= 0.1 && o.run_lease_s <= 3600))
    throw CLI::ValidationError("--run-lease-s must be 0.1..3600");
  s.registry.idle_open_limit_us = d.idle_stream_s * 1'000'000;
  if (s.heartbeat_interval.count() <= 0) throw CLI::ValidationError("--heartbeat-ms must be > 0");
  if (s.gzip_window_bits < 9 || s.gzip_window_bits > 15)
    throw CLI::ValidationError("--gzip-window-bits must be 9..15");
  if (s.gzip_mem_level < 1 || s.gzip_mem_level > 9)
    throw CLI::ValidationError("--gzip-mem-level must be 1..9");
  if (s.ws_deflate_window_bits < 9 || s.ws_deflate_window_bits > 15)
    throw CLI::ValidationError("--ws-deflate-window-bits must be 9..15");
  if (s.ws_deflate_mem_level < 1 || s.ws_deflate_mem_level > 9)
    throw CLI::ValidationError("--ws-deflate-mem-level must be 1..9");
  if (d.pending_stream_s <= 0 || d.pending_stream_s > 604'800)
    throw CLI::ValidationError("--pending-stream-s must be 1..604800");
  s.registry.pending_limit_us = d.pending_stream_s * 1'000'000;
  if (d.final_reply_timeout_s <= 0 || d.final_reply_timeout_s > 604'800)
    throw CLI::ValidationError("--final-reply-timeout-s must be 1..604800");
  s.budgets.final_reply_timeout = seconds(d.final_reply_timeout_s);
  if (!(s.budgets.ws_ops_per_s >= 0) || s.budgets.ws_ops_per_s > 1e6)
    throw CLI::ValidationError("--ws-ops-per-s must be 0..1000000");
  s.budgets.ws_ops_burst = std::max(1.0, 2 * s.budgets.ws_ops_per_s);
  if (o.agents.llm_max_tokens < 1 || o.agents.llm_max_tokens > 1'000'000)
    throw CLI::ValidationError("--llm-max-tokens must be 1..1000000");
  auto budget = parse_memory_size(o.memory_budget, physical_memory_bytes());
  if (!budget)
    throw CLI::ValidationError(
        "--memory-budget must be bytes with an optional K/M/G/T suffix, "
        "or a percentage of RAM such as 25%");
  s.registry.memory_budget_bytes = *budget;
  if (o.fsync_interval_ms < 1 || o.fsync_interval_ms > 60'000)
    throw CLI::ValidationError("--fsync-interval-ms must be 1..60000");
  auto disk = parse_memory_size(o.disk_budget, 0);
  if (!disk || o.disk_budget.ends_with('%'))
    throw CLI::ValidationError("--disk-budget must be bytes with an optional K/M/G/T suffix");
  o.disk_budget_bytes = *disk;
  auto disk_retention = parse_memory_size(o.disk_retention, 0);
  if (!disk_retention || o.disk_retention.ends_with('%') || *disk_retention == 0)
    throw CLI::ValidationError(
        "--disk-retention-bytes must be bytes (> 0) with an optional K/M/G/T suffix");
  o.disk_retention_bytes = *disk_retention;
  if (o.disk_retention_events == 0)
    throw CLI::ValidationError("--disk-retention-events must be > 0");
  if (s.ws_max_streams_per_socket == 0 || s.ws_max_message_bytes < 1024)
    throw CLI::ValidationError(
        "--ws-max-streams-per-socket must be > 0, --ws-max-message-bytes >= 1024");
}

std::uint64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return 0;
  return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page);
}

std::optional<std::size_t> parse_memory_size(std::string_view text, std::uint64_t physical_bytes) {
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  std::string_view rest(end, static_cast<std::size_t>(text.data() + text.size() - end));
  if (rest == "%") {
    if (n > 100) return std::nullopt;
    if (physical_bytes == 0) return std::size_t{0};  // unknown RAM: no limit
    return static_cast<std::size_t>(physical_bytes / 100 * n + physical_bytes % 100 * n / 100);
  }
  int shift = 0;
  // "2G", "2GB", "2Gi", "2GiB": all binary units.
  if (rest.size() > 1 && (rest.back() == 'B' || rest.back() == 'b')) rest.remove_suffix(1);
  if (rest.size() > 1 && rest.back() == 'i') rest.remove_suffix(1);
  if (rest.size() == 1) {
    switch (rest[0]) {
      case 'K':
      case 'k':
        shift = 10;
        break;
      case 'M':
      case 'm':
        shift = 20;
        break;
      case 'G':
      case 'g':
        shift = 30;
        break;
      case 'T':
      case 't':
        shift = 40;
        break;
      default:
        return std::nullopt;
    }
  } else if (!rest.empty()) {
    return std::nullopt;
  }
  if (shift != 0 && n > (std::numeric_limits<std::uint64_t>::max() >> shift)) return std::nullopt;
  return static_cast<std::size_t>(n << shift);
}

}  // namespace sluice::app
