// `sluice watch`: one sse_client on a single-threaded io_context. Events go to
// stdout (flushed per event, so a pipe sees each at once), status changes and
// errors to stderr. SIGINT/SIGTERM cancel the client.
#include "app/watch_command.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "client/bearer_token.hpp"
#include "client/delivery_filter.hpp"
#include "client/sse_client.hpp"
#include "client/ws_client.hpp"
#include "core/stream_id.hpp"

namespace sluice::app {

namespace {

struct watch_options {
  std::string target;  // URL or stream id
  std::string server = "http://127.0.0.1:8080";
  std::string last_event_id;
  std::string token;  // --token, else SLUICE_TOKEN; never printed
  std::string ca_file;
  long long backoff_base_ms = 1000;
  bool json = false;
  bool ws = false;  // follow over GET /v1/ws instead of SSE
};

std::string json_string(std::string_view s) {
  return boost::json::serialize(boost::json::string(s));
}

// Prints each dispatched event. `last_event_id` is the event's lastEventId
// (EventSource's MessageEvent.lastEventId): --json prints it as "id"; the SSE
// text output writes an `id:` line whenever it differs from the previous
// event's, so that the text, parsed again, gives every event the same
// lastEventId (including one set by a block without data, or reset to "").
class event_printer {
 public:
  explicit event_printer(bool as_json) : json_(as_json) {}

  void print(std::string_view last_event_id, std::string_view type, std::string_view data) {
    std::string out;
    if (json_) {
      out = "{\"id\":" + json_string(last_event_id) + ",\"event\":" + json_string(type) +
            ",\"data\":" + json_string(data) + "}\n";
    } else {
      if (last_event_id != printed_id_) out.append("id: ").append(last_event_id).append("\n");
      append_text(out, type, data);
    }
    printed_id_ = last_event_id;
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
  }

 private:
  static void append_text(std::string& out, std::string_view type, std::string_view data) {
    // The event as SSE text: one data: line per line of data.
    out.append("event: ").append(type).append("\n");
    std::size_t start = 0;
    for (;;) {
      const std::size_t lf = data.find('\n', start);
      out.append("data: ").append(data.substr(start, lf - start)).append("\n");
      if (lf == std::string_view::npos) break;
      start = lf + 1;
    }
    out.append("\n");
  }

  bool json_;
  std::string printed_id_;
};

void print_error(const std::string& code, const std::string& message, unsigned http_status,
                 std::uint64_t first_available) {
  std::fprintf(stderr, "sluice watch: error %s: %s", code.c_str(), message.c_str());
  if (http_status != 0) std::fprintf(stderr, " (HTTP %u)", http_status);
  if (code == "resume_window_exceeded")
    std::fprintf(stderr, " (first available event: %llu)",
                 static_cast<unsigned long long>(first_available));
  std::fprintf(stderr, "\n");
}

// Runs a started-to-be client (sse_client or ws_client) until it closes or
// fails, reporting status changes on stderr; SIGINT/SIGTERM cancel it.
// 0: the stream ended, 1: failed, 130: interrupted.
template <class Client, class Status>
int run_client(boost::asio::io_context& io, Client& c, Status closed, Status failed) {
  int code = 1;
  bool interrupted = false;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    interrupted = true;
    c.cancel();
  });
  c.on_status([&](Status s, std::string_view detail) {
    std::fprintf(stderr, "sluice watch: %s: %.*s\n", client::to_string(s),
                 static_cast<int>(detail.size()), detail.data());
    if (s == closed || s == failed) {
      code = interrupted ? 130 : s == closed ? 0 : 1;
      signals.cancel();
    }
  });
  c.start();
  io.run();
  return code;
}

// The token to send, or nullopt after printing why it cannot be used.
std::optional<std::string> token_or_error(const watch_options& o) {
  std::string token = client::bearer_token_from(o.token);
  if (!token.empty() && !client::is_valid_bearer_token(token)) {
    // Never the token itself: it is a secret.
    std::fprintf(stderr,
                 "sluice watch: the token (--token or SLUICE_TOKEN) holds characters a bearer "
                 "token cannot have\n");
    return std::nullopt;
  }
  return token;
}

// --ws: the same output, from one ws_client subscription (stream ids only).
int run_watch_ws(const watch_options& o, const std::string& token) {
  if (!core::is_valid_stream_id(o.target)) {
    std::fprintf(stderr, "sluice watch --ws: '%s' is not a stream id\n", o.target.c_str());
    return 2;
  }
  std::string server = o.server;
  while (!server.empty() && server.back() == '/') server.pop_back();
  client::ws_client_options co;
  if (server.starts_with("http://")) {
    co.url = "ws://" + server.substr(7) + "/v1/ws";
  } else if (server.starts_with("https://")) {
    co.url = "wss://" + server.substr(8) + "/v1/ws";
  } else {
    std::fprintf(stderr, "sluice watch --ws: --server must be http(s)://host[:port]\n");
    return 2;
  }
  co.max_attempts = 0;
  co.ca_file = o.ca_file;
  co.backoff_base = std::chrono::milliseconds(o.backoff_base_ms);
  if (!token.empty()) co.headers.emplace_back("Authorization", client::authorization_value(token));
  if (!o.last_event_id.empty() && !client::parse_sequence(o.last_event_id)) {
    std::fprintf(stderr,
                 "sluice watch --ws: --last-event-id must be a sequence number (N or N-EPOCH)\n");
    return 2;
  }

  boost::asio::io_context io(1);
  client::ws_client c(io.get_executor(), co);
  if (o.last_event_id.empty())
    c.subscribe(o.target, std::uint64_t{0});
  else
    c.subscribe(o.target, std::string_view(o.last_event_id));
  event_printer printer(o.json);
  // Every WebSocket event carries its sequence as its id; a notice (id 0)
  // keeps the previous one, as an SSE event without an id would.
  std::string last_id = o.last_event_id;
  c.on_event([&](std::string_view stream, std::uint64_t id, std::string_view type,
                 std::string_view data, std::uint64_t, std::uint64_t) {
    if (id != 0) last_id = c.last_event_id(stream);  // N or N-EPOCH
    printer.print(last_id, type, data);
  });
  c.on_error([](const client::ws_client_error& e) {
    print_error(e.code, e.message, 0, e.first_available);
  });
  return run_client(io, c, client::ws_status::closed, client::ws_status::failed);
}

int run_watch(const watch_options& o) {
  const std::optional<std::string> token = token_or_error(o);
  if (!token) return 2;
  if (o.backoff_base_ms < 0 || o.backoff_base_ms > 3'600'000) {
    std::fprintf(stderr, "sluice watch: --backoff-base-ms must be 0..3600000\n");
    return 2;
  }
  if (o.ws) return run_watch_ws(o, *token);
  client::sse_client_options co;
  if (o.target.find("://") != std::string::npos) {
    co.url = o.target;
  } else if (core::is_valid_stream_id(o.target)) {
    std::string server = o.server;
    while (!server.empty() && server.back() == '/') server.pop_back();
    co.url = server + "/v1/streams/" + o.target + "/events";
  } else {
    std::fprintf(stderr, "sluice watch: '%s' is neither a URL nor a stream id\n", o.target.c_str());
    return 2;
  }
  co.last_event_id = o.last_event_id;
  co.max_attempts = 0;  // a watcher keeps trying until the stream ends or Ctrl-C
  co.ca_file = o.ca_file;
  co.backoff_base = std::chrono::milliseconds(o.backoff_base_ms);
  if (!token->empty())
    co.headers.emplace_back("Authorization", client::authorization_value(*token));

  boost::asio::io_context io(1);
  client::sse_client c(io.get_executor(), co);
  event_printer printer(o.json);
  c.on_event(
      [&](const client::sse_client_event& e) { printer.print(e.last_event_id, e.type, e.data); });
  c.on_error([](const client::sse_client_error& e) {
    print_error(e.code, e.message, e.http_status, e.first_available);
  });
  return run_client(io, c, client::sse_status::closed, client::sse_status::failed);
}

}  // namespace

void add_watch_command(CLI::App& app) {
  auto opts = std::make_shared<watch_options>();
  CLI::App* cmd = app.add_subcommand(
      "watch", "Follow a stream and print its events (resumes after cuts, stops at its end)");
  cmd->add_option("TARGET", opts->target,
                  "An SSE URL, or a stream id meaning {server}/v1/streams/{id}/events")
      ->required();
  cmd->add_flag("--json", opts->json,
                "One JSON line per event: {\"id\":<lastEventId>,\"event\":...,\"data\":\"<raw "
                "data>\"}");
  cmd->add_option("--server", opts->server, "Server for a stream id")->capture_default_str();
  cmd->add_flag("--ws", opts->ws, "Follow over the WebSocket endpoint (GET /v1/ws) of --server");
  cmd->add_option("--last-event-id", opts->last_event_id,
                  "Start after this event id: N or N-EPOCH (as Last-Event-ID)");
  cmd->add_option("--token", opts->token,
                  "Bearer token sent as Authorization (default: $SLUICE_TOKEN; never printed)");
  cmd->add_option("--ca-file", opts->ca_file,
                  "PEM file of extra CA certificates trusted for https:// and wss://");
  cmd->add_option("--backoff-base-ms", opts->backoff_base_ms,
                  "Lowest reconnection delay until the server sends retry: (0: reconnect at "
                  "once and ignore retry:)")
      ->capture_default_str();
  cmd->callback([opts] {
    const int code = run_watch(*opts);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace sluice::app
