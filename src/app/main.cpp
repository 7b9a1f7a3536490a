// sluice: the command-line entry point.
//   sluice serve            the HTTP/SSE server
//   sluice index DIR        build a corpus index for the agents
//   sluice token ...        mint an HS256 token for --auth jwt
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <filesystem>

#include "agents/run_service.hpp"
#include "app/agent_routes.hpp"
#include "app/agent_setup.hpp"
#include "app/ask_command.hpp"
#include "app/auth_options.hpp"
#include "app/bench_producer.hpp"
#include "app/config.hpp"
#include "app/token_command.hpp"
#include "app/watch_command.hpp"
#include "cluster/cluster_node.hpp"
#include "core/segment_memory.hpp"
#include "core/stream_id.hpp"
#include "redis/redis_url.hpp"
#include "search/corpus_indexer.hpp"
#include "store/durable_log.hpp"
#include "transport/http_server.hpp"

namespace {

int serve(sluice::app::serve_options& opts) {
  spdlog::set_level(spdlog::level::from_str(opts.log_level));
  // The server first: a refused --host or a bad key file stops here, before
  // any indexing.
  sluice::transport::http_server server(opts.server);
  if (const auto* v = server.routes().verifier())
    spdlog::info("access control: --auth jwt ({})", sluice::auth::to_string(v->alg()));
  else if (opts.server.auth.insecure_no_auth)
    spdlog::warn(
        "access control: none, and --insecure-no-auth: anyone who reaches {} may do everything",
        opts.server.host);
  std::shared_ptr<sluice::cluster::cluster_node> node;
  if (!opts.redis.empty()) {
    sluice::cluster::cluster_options co;
    auto endpoint = sluice::redis::parse_redis_url(opts.redis);
    if (!endpoint) throw std::runtime_error("--redis: " + endpoint.error().message);
    co.redis.endpoint = std::move(*endpoint);
    co.redis.ca_file = opts.redis_ca_file;
    co.store.node_id =
        opts.node_id.empty() ? sluice::cluster::default_node_id(opts.server.port) : opts.node_id;
    if (!sluice::core::is_valid_stream_id(co.store.node_id))
      throw std::runtime_error("--node-id must match [A-Za-z0-9._:-]{1,128}");
    co.store.run_lease = std::chrono::milliseconds(static_cast<long long>(opts.run_lease_s * 1000));
    co.store.max_events = opts.server.registry.retention.max_events;
    co.store.finished_ttl = std::chrono::milliseconds(opts.server.registry.finished_ttl_us / 1000);
    co.pending_limit = std::chrono::milliseconds(opts.server.registry.pending_limit_us / 1000);
    node = std::make_shared<sluice::cluster::cluster_node>(server.registry(), co);
    server.registry().attach_store(node);
    server.streams().set_backend(node);
    node->start();
    spdlog::info("streams are shared through Redis at {} as node {} (run lease {} s)",
                 co.redis.endpoint.redacted(), co.store.node_id, opts.run_lease_s);
  } else if (!opts.memory_only && !opts.data_dir.empty()) {
    sluice::store::durable_config dc;
    dc.dir = opts.data_dir;
    dc.fsync = *sluice::store::parse_fsync_mode(opts.fsync);
    dc.fsync_interval = std::chrono::milliseconds(opts.fsync_interval_ms);
    dc.disk_budget_bytes = opts.disk_budget_bytes;
    dc.disk_retention = {opts.disk_retention_events,
                         static_cast<std::size_t>(opts.disk_retention_bytes)};
    // The registry holds the store from now on; it writes what is pending
    // and syncs when the server (and its registry) goes.
    auto store = std::make_shared<sluice::store::durable_log>(dc);
    const auto r = store->recover(server.registry());
    spdlog::info(
        "durable log: {} (--fsync {}): {} streams restored ({} events read, {} ended "
        "interrupted, {} torn tails truncated, {} expired, {} dropped)",
        opts.data_dir, opts.fsync, r.streams, r.events, r.interrupted, r.torn_tails, r.expired,
        r.dropped);
    if (r.new_epochs != 0)
      spdlog::warn(
          "durable log: the previous run did not stop cleanly: {} open streams began a new epoch "
          "(a resume past what is on disk gets history_truncated)",
          r.new_epochs);
  } else {
    spdlog::info("streams are kept in memory only (no --data-dir)");
  }
  auto runtime = sluice::app::make_agent_runtime(opts.agents);
  sluice::agents::run_service runs(server.registry(), runtime.env,
                                   std::chrono::seconds(opts.agents.detach_grace_s),
                                   {opts.agents.max_runs, opts.agents.max_runs_per_subject});
  if (auto b = opts.server.registry.memory_budget_bytes; b != 0)
    spdlog::info("memory budget for retained events: {} KiB", b >> 10);
  if (opts.enable_bench) sluice::app::add_bench_routes(server);
  sluice::app::add_agent_routes(server, runs);
  if (std::filesystem::is_directory(opts.web_root))
    server.routes().serve_static(opts.web_root);
  else
    spdlog::info("no web page at {} (build it with make run)", opts.web_root);
  sluice::app::add_agent_ws_start(server, runs);
  // The log's first memory (4 MiB of huge pages) is faulted in now, in the
  // background, not by the first streams.
  sluice::core::segment_memory::prepare();
  server.start();
  server.run_until_signal();
  if (node) {
    node->drain(std::chrono::seconds(5));
    node->stop();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Sluice: resumable streams of AI agent work over Server-Sent Events"};
  app.require_subcommand(1);
  // Options of a subcommand go in a section named after it, e.g. [serve] port = 8080.
  app.set_config("--config", "",
                 "Read options from a TOML/INI file: [serve] then long option names");

  sluice::app::serve_options serve_opts;
  CLI::App* serve_cmd = app.add_subcommand("serve", "Run the HTTP/SSE server");
  sluice::app::add_serve_options(*serve_cmd, serve_opts);
  sluice::app::add_auth_options(*serve_cmd, serve_opts.server.auth);

  std::string index_dir, index_db = SLUICE_DEFAULT_INDEX;
  CLI::App* index_cmd =
      app.add_subcommand("index", "Build a SQLite FTS5 index of .md/.txt/.html files");
  index_cmd->add_option("DIR", index_dir, "Folder to index")
      ->required()
      ->check(CLI::ExistingDirectory);
  index_cmd->add_option("--db", index_db, "Index file to write")->capture_default_str();

  int ask_exit = 0;
  CLI::App* ask_cmd = sluice::app::add_ask_command(app, ask_exit);
  sluice::app::add_watch_command(app);
  int token_exit = 0;
  CLI::App* token_cmd = sluice::app::add_token_command(app, token_exit);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    spdlog::critical("sluice: {}", e.what());
    return 1;
  }
  if (ask_cmd->parsed()) return ask_exit;
  if (token_cmd->parsed()) return token_exit;

  try {
    if (serve_cmd->parsed()) {
      try {
        sluice::app::finish_serve_options(serve_opts);
      } catch (const CLI::Error& e) {
        return app.exit(e);
      }
      return serve(serve_opts);
    }
    if (index_cmd->parsed()) {
      auto stats = sluice::search::build_index(index_dir, index_db);
      if (!stats) {
        spdlog::error("indexing {} failed: {}", index_dir, stats.error().message());
        return 1;
      }
      std::printf("indexed %zu documents, %zu passages (%zu files skipped) into %s\n",
                  stats->documents, stats->passages, stats->skipped_files, index_db.c_str());
      return 0;
    }
  } catch (const std::exception& e) {
    spdlog::critical("sluice: {}", e.what());
    return 1;
  }
  return 0;
}
