#include "app/config.hpp"

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
};
duration_fields g_durations;  // one `serve` per process

std::string env_name(const std::string& flag) {
  std::string e = "SLUICE_";
  for (char c : flag) e += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
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
  opt(cmd, "enable-bench", o.enable_bench,
      "Serve POST /v1/bench/tokens, a benchmark workload (off: it lets anyone make the server "
      "produce events)");
  opt(cmd, "log-level", o.log_level, "trace, debug, info, warn, error or off");
  opt(cmd, "web-root", o.web_root, "Folder of the built web page served at / (skipped when absent)");
  add_agent_options(cmd, o.agents);
  opt(cmd, "detach-grace-s", o.agents.detach_grace_s,
      "Cancel an agent run nobody has read for this long (0 = never)");
}

void add_agent_options(CLI::App& cmd, agent_options& a) {
  opt(cmd, "corpus", a.corpus_dir, "Folder of .md/.txt/.html files that agents search");
  opt(cmd, "index", a.index_path,
      "SQLite FTS5 index of the corpus (built from --corpus at start when absent)");
  opt(cmd, "llm", a.llm, "builtin (offline extractive answering) or openai (any OpenAI-compatible server)")
      ->check(CLI::IsMember({"builtin", "openai"}));
  opt(cmd, "llm-base-url", a.llm_base_url, "Base URL of the OpenAI-compatible API (…/v1)");
  opt(cmd, "llm-model", a.llm_model, "Model name sent to the API");
  opt(cmd, "llm-api-key-env", a.llm_api_key_env, "Environment variable holding the API key");
  opt(cmd, "llm-timeout-s", a.llm_timeout_s, "Give up on the model after this long without bytes");
  opt(cmd, "builtin-delta-ms", a.builtin_delta_ms,
      "Pause between the builtin answerer's text deltas (0 = none)");
  opt(cmd, "search-threads", a.search_threads, "Searches run at once (SQLite thread pool)");
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
  if (s.ws_max_streams_per_socket == 0 || s.ws_max_message_bytes < 1024)
    throw CLI::ValidationError("--ws-max-streams-per-socket must be > 0, --ws-max-message-bytes >= 1024");
}

}  // namespace sluice::app
