// Fuzz target for the HTTP stream API in process: router::dispatch with a real
// registry and op layer, the request built from the input as the HTTP session builds it
// (target parsed as origin-form with Boost.URL, query percent-decoded).
//
// Input: "METHOD TARGET\n" [ "content-type: X\n" ] [ "last-event-id: X\n" ] "\n" BODY.
// Each input runs on a fresh registry, and then reads back every stream it
// touched (coalesced and not), which also exercises the log's delta merging.
// Invariants: no crash or sanitizer report; every reply is a JSON object body
// with a status in 200..599; what a reader reads is well-framed SSE.
#include <boost/json/parse.hpp>
#include <boost/url/parse.hpp>
#include <cstdlib>
#include <string>

#include "core/sse_parser.hpp"
#include "fuzz_input.hpp"
#include "transport/routes.hpp"

namespace {

using namespace sluice;

struct no_waiter final : core::stream_waiter {
  void on_stream_ready() noexcept override {}
};

struct counting_listener final : core::sse_listener {
  std::size_t events = 0;
  void on_event(const core::sse_event&) override { ++events; }
};

void read_all(std::shared_ptr<core::stream_log> log, bool coalesce) {
  no_waiter w;
  core::subscription sub(std::move(log), 1, w, coalesce);
  core::read_batch batch;
  counting_listener l;
  core::sse_parser parser(l);
  for (int i = 0; i < 64; ++i) {
    auto st = sub.read(batch, 4096);
    if (st != core::read_status::data) break;
    for (const auto& s : batch.spans) parser.feed(std::string_view(s.data, s.size));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in = fuzz::as_view(data, size);
  std::string_view request_line = fuzz::take_line(in);
  auto sp = request_line.find(' ');
  if (sp == std::string_view::npos) return 0;
  std::string method(request_line.substr(0, sp));
  std::string target(request_line.substr(sp + 1));

  core::registry_config rc;
  rc.max_streams = 8;
  rc.retention.max_events = 64;
  rc.retention.max_bytes = 16 * 1024;
  core::stream_registry registry(rc);
  transport::metrics m;
  transport::server_config config;
  streams::stream_service service(registry, {}, &m);
  transport::router router(service, m, config);

  std::string content_type = "application/json", last_event_id;
  bool has_last = false;
  for (;;) {
    std::string_view h = fuzz::take_line(in);
    if (h.empty()) break;
    if (h.starts_with("content-type: ")) content_type = h.substr(14);
    if (h.starts_with("last-event-id: ")) {
      last_event_id = h.substr(15);
      has_last = true;
    }
  }
  std::string body(in);

  // Two requests per input: the second sees what the first did (a publish,
  // then a subscribe or status of the same stream).
  for (int round = 0; round < 2; ++round) {
    transport::request_context ctx;
    ctx.method = method;
    ctx.target = target;
    auto url = boost::urls::parse_origin_form(target);
    if (!url) return 0;
    ctx.path = url->path();
    for (auto p : url->params()) ctx.query.emplace_back(p.key, p.value);
    ctx.body = body;
    ctx.content_type = content_type;
    if (has_last) ctx.last_event_id = last_event_id;
    ctx.client_address = ctx.subject = "127.0.0.1";
    transport::handler_result r = router.dispatch(ctx);
    if (auto* reply = std::get_if<transport::http_reply>(&r)) {
      if (reply->status < 200 || reply->status > 599) std::abort();
      if (reply->content_type == "application/json" && !reply->body.empty()) {
        boost::system::error_code ec;
        auto v = boost::json::parse(reply->body, ec);
        if (ec || !v.is_object()) std::abort();
      }
    } else if (auto* sr = std::get_if<transport::stream_reply>(&r)) {
      if (!sr->stream) std::abort();
    }
    if (method == "POST")
      method = "GET";  // the second round reads
    else
      break;
  }
  // Read back what the input published, merged and not.
  std::string_view path = target;
  if (path.starts_with("/v1/streams/")) {
    path.remove_prefix(12);
    auto id = path.substr(0, path.find_first_of("/?"));
    if (auto log = registry.find(id)) {
      read_all(log, true);
      read_all(log, false);
    }
  }
  return 0;
}
