#include "app/ask_command.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>
#include <memory>

#include "agents/run_service.hpp"
#include "app/agent_setup.hpp"
#include "app/config.hpp"
#include "app/run_renderer.hpp"
#include "client/bearer_token.hpp"
#include "client/sse_client.hpp"
#include "core/sse_parser.hpp"

namespace sluice::app {

namespace net = boost::asio;
namespace beast = boost::beast;

namespace {

struct ask_options {
  std::string question;
  std::string server;
  std::string token;  // --token, else SLUICE_TOKEN; never printed
  std::string agent = "plan_solve";
  bool json = false;
  agent_options agents;
};

// Reads a run's log in-process and feeds the renderer.
class log_reader : public core::stream_waiter, public core::sse_listener {
 public:
  log_reader(net::io_context& ioc, std::shared_ptr<core::stream_log> log, run_renderer& r)
      : ioc_(ioc),
        sub_(std::move(log), 1, *this, /*coalesce=*/false),
        parser_(*this),
        renderer_(r) {}

  void on_stream_ready() noexcept override {
    net::post(ioc_, [this] { pump(); });
  }
  void on_event(const core::sse_event& e) override {
    renderer_.on_event(e.last_event_id, e.type, e.data);
  }
  void pump() {
    for (;;) {
      switch (sub_.read(batch_, 1u << 20)) {
        case core::read_status::data:
          for (const auto& s : batch_.spans) parser_.feed(std::string_view(s.data, s.size));
          continue;
        case core::read_status::waiting:
          return;
        case core::read_status::ended:
        case core::read_status::window_exceeded:
          done_ = true;
          ioc_.stop();
          return;
      }
    }
  }
  bool done() const { return done_; }

 private:
  net::io_context& ioc_;
  core::subscription sub_;
  core::sse_parser parser_;
  core::read_batch batch_;
  run_renderer& renderer_;
  bool done_ = false;
};

int ask_in_process(ask_options& o) {
  auto kind = agents::parse_agent_kind(o.agent);
  if (!kind) {
    std::fprintf(stderr, "unknown agent type %s (plan_solve, react, deepsearch)\n",
                 o.agent.c_str());
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  auto runtime = make_agent_runtime(o.agents);
  if (*kind == agents::agent_kind::react && runtime.env.model == nullptr) {
    std::fprintf(stderr, "the react agent needs a model: use --llm openai\n");
    return 2;
  }
  core::stream_registry registry{core::registry_config{}};
  net::io_context ioc(1);
  agents::run_service runs(registry, runtime.env, std::chrono::milliseconds(0));
  agents::agent_request req;
  req.request_id = agents::run_service::new_request_id();
  req.query = o.question;
  req.kind = *kind;
  auto started = runs.start(req, agents::run_endpoint::agent, ioc.get_executor());
  if (!started) {
    std::fprintf(stderr, "could not start the run: %s\n", started.error().message().c_str());
    return 1;
  }
  run_renderer renderer(stdout, o.json, ::isatty(STDOUT_FILENO) != 0);
  log_reader reader(ioc, started->log, renderer);
  net::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([log = started->log](boost::system::error_code ec, int) {
    if (!ec) log->cancel("interrupted");
  });
  net::post(ioc, [&reader] { reader.pump(); });
  ioc.run();
  signals.cancel();
  // Let the agent's coroutine see its cancellation and finish.
  ioc.restart();
  ioc.poll();
  return renderer.exit_code();
}

// POST {base}/v1/streams/{id}/cancel, synchronously (Ctrl-C in a CLI). Plain
// http only; for an https server the connection is closed instead and the
// server's detach grace cancels the run.
bool post_cancel(const std::string& base, const std::string& id, const std::string& token) {
  auto url = boost::urls::parse_uri(base);
  if (!url || url->scheme() != "http") return false;
  try {
    net::io_context ioc;
    net::ip::tcp::resolver resolver(ioc);
    beast::tcp_stream stream(ioc);
    stream.expires_after(std::chrono::seconds(5));
    std::string port = url->has_port() ? std::string(url->port()) : "80";
    stream.connect(resolver.resolve(std::string(url->host()), port));
    beast::http::request<beast::http::string_body> req{
        beast::http::verb::post, std::string(url->path()) + "/v1/streams/" + id + "/cancel", 11};
    req.set(beast::http::field::host, url->host());
    req.set(beast::http::field::content_type, "application/json");
    if (!token.empty())
      req.set(beast::http::field::authorization, client::authorization_value(token));
    req.body() = "{}";
    req.prepare_payload();
    beast::http::write(stream, req);
    beast::flat_buffer buf;
    beast::http::response<beast::http::string_body> res;
    beast::http::read(stream, buf, res);
    return res.result_int() == 200 || res.result_int() == 409;
  } catch (const std::exception&) {
    return false;
  }
}

// The run on a server: POST /AutoAgent through the resumable client (a cut
// connection resumes the same run); Ctrl-C cancels the run on the server.
int ask_remote(const ask_options& o) {
  if (!agents::parse_agent_kind(o.agent)) {
    std::fprintf(stderr, "unknown agent type %s (plan_solve, react, deepsearch)\n",
                 o.agent.c_str());
    return 2;
  }
  const std::string token = client::bearer_token_from(o.token);
  if (!token.empty() && !client::is_valid_bearer_token(token)) {
    // Never the token itself: it is a secret.
    std::fprintf(stderr,
                 "sluice ask: the token (--token or SLUICE_TOKEN) holds characters a bearer token "
                 "cannot have\n");
    return 2;
  }
  std::string base = o.server;
  while (!base.empty() && base.back() == '/') base.pop_back();
  const std::string request_id = agents::run_service::new_request_id();
  boost::json::object body;
  body["requestId"] = request_id;
  body["query"] = o.question;
  body["agentType"] = o.agent;
  client::sse_client_options opts;
  opts.url = base + "/AutoAgent";
  opts.method = "POST";
  opts.body = boost::json::serialize(body);
  opts.content_type = "application/json";
  if (!token.empty())
    opts.headers.emplace_back("Authorization", client::authorization_value(token));
  net::io_context ioc(1);
  client::sse_client sse(ioc.get_executor(), opts);
  run_renderer renderer(stdout, o.json, ::isatty(STDOUT_FILENO) != 0);
  int failure = 0;
  sse.on_event([&](const client::sse_client_event& e) {
    renderer.on_event(e.last_event_id, e.type, e.data);
    if (renderer.finished()) sse.cancel();  // the run is over: no resume needed
  });
  sse.on_status([&](client::sse_status s, std::string_view detail) {
    if (s == client::sse_status::reconnecting && !renderer.finished())
      renderer.on_note("connection lost (" + std::string(detail) + "); resuming");
    if (s == client::sse_status::closed || s == client::sse_status::failed) ioc.stop();
  });
  sse.on_error([&](const client::sse_client_error& e) {
    renderer.on_note("error " + e.code + ": " + e.message);
    failure = 1;
  });
  net::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (ec) return;
    // Stop the run on the server, not just this connection; the stream then
    // ends with its `cancelled` event, which the client still receives.
    if (!post_cancel(base, request_id, token)) {
      renderer.on_note("could not reach the server to cancel; closing");
      sse.cancel();
    }
  });
  sse.start();
  ioc.run();
  if (failure && !renderer.finished()) return 1;
  return renderer.exit_code();
}

}  // namespace

CLI::App* add_ask_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<ask_options>();
  CLI::App* cmd = app.add_subcommand("ask", "Ask an agent; render the run as it streams");
  cmd->add_option("question", o->question, "The question")->required();
  cmd->add_option("--server", o->server,
                  "Run on this Sluice server (e.g. http://127.0.0.1:8080) instead of in-process");
  cmd->add_option("--agent", o->agent, "plan_solve, react or deepsearch")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the raw events, one JSON object per line");
  cmd->add_option("--token", o->token,
                  "With --server: bearer token sent as Authorization (default: $SLUICE_TOKEN; "
                  "never printed)");
  add_agent_options(*cmd, o->agents);
  cmd->callback([o, &exit_code] {
    if (!o->server.empty()) {
      exit_code = ask_remote(*o);
      return;
    }
    exit_code = ask_in_process(*o);
  });
  return cmd;
}

}  // namespace sluice::app
