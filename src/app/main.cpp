// sluice: the command-line entry point. `sluice serve` runs the server.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "app/bench_producer.hpp"
#include "app/config.hpp"
#include "transport/http_server.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Sluice: resumable streams of AI agent work over Server-Sent Events"};
  app.require_subcommand(1);
  // Options of a subcommand go in a section named after it, e.g. [serve] port = 8080.
  app.set_config("--config", "", "Read options from a TOML/INI file: [serve] then long option names");

  sluice::app::serve_options serve_opts;
  CLI::App* serve = app.add_subcommand("serve", "Run the HTTP/SSE server");
  sluice::app::add_serve_options(*serve, serve_opts);

  CLI11_PARSE(app, argc, argv);

  if (serve->parsed()) {
    try {
      sluice::app::finish_serve_options(serve_opts);
    } catch (const CLI::Error& e) {
      return app.exit(e);
    }
    spdlog::set_level(spdlog::level::from_str(serve_opts.log_level));
    try {
      sluice::transport::http_server server(serve_opts.server);
      sluice::app::add_bench_routes(server);
      server.start();
      server.run_until_signal();
    } catch (const std::exception& e) {
      spdlog::critical("sluice serve: {}", e.what());
      return 1;
    }
  }
  return 0;
}
