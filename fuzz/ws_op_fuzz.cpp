// Fuzz target for WebSocket op messages (/v1/ws): parse_ws_op on the input,
// and for subscribe, cancel and publish the route request the session would
// dispatch, run on a real router and registry.
// Invariants: no crash or sanitizer report; a parsed op's stream id is valid;
// a route reply is a status in 200..599.
#include <cstdlib>

#include "core/stream_id.hpp"
#include "fuzz_input.hpp"
#include "transport/routes.hpp"
#include "transport/ws_ops.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sluice;
  auto parsed = transport::parse_ws_op(fuzz::as_view(data, size));
  auto* op = std::get_if<transport::ws_op>(&parsed);
  if (op == nullptr) {
    if (std::get<transport::ws_op_error>(parsed).code.empty()) std::abort();
    return 0;
  }
  using k = transport::ws_op_kind;
  if (op->kind == k::ping || op->kind == k::start) return 0;
  if (!core::is_valid_stream_id(op->stream)) std::abort();
  if (op->kind == k::unsubscribe) return 0;

  core::registry_config rc;
  rc.max_streams = 4;
  core::stream_registry registry(rc);
  transport::metrics m;
  transport::server_config config;
  streams::stream_service service(registry, {}, &m);
  transport::router router(service, m, config);
  // A stream with some history, so cancel and resume have something to act on.
  (void)registry.get_or_create(op->stream).value()->publish("message", "{\"n\":1}");
  transport::request_context ctx = transport::route_request_of(*op);
  ctx.target = ctx.path;
  transport::handler_result r = router.dispatch(ctx);
  if (auto* reply = std::get_if<transport::http_reply>(&r))
    if (reply->status < 200 || reply->status > 599) std::abort();
  return 0;
}
