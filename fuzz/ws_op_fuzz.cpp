// Fuzz target for WebSocket op messages (/v1/ws): parse_ws_op on the input,
// then the op carried out by the session's dispatch (dispatch_ws_op) over a
// real op layer and registry, with a socket-free stream set that records the
// replies.
// Invariants: no crash or sanitizer report; a parsed op's stream id is valid;
// every reply is a JSON object with a string "op".
#include <boost/json/parse.hpp>
#include <cstdlib>

#include "core/stream_id.hpp"
#include "fuzz_input.hpp"
#include "transport/ws_dispatch.hpp"
#include "transport/ws_ops.hpp"

namespace {

using namespace sluice;

struct recording_set final : transport::ws_stream_set {
  std::vector<std::string> ids;
  bool has_stream(std::string_view id) const override {
    for (const auto& i : ids)
      if (i == id) return true;
    return false;
  }
  std::size_t active_streams() const override { return ids.size(); }
  void add_stream(const std::string& id, streams::cursor_start c) override {
    if (!c.stream) std::abort();
    ids.push_back(id);
  }
  bool remove_stream(std::string_view id) override { return std::erase(ids, id) > 0; }
  void send_control(std::string message) override {
    boost::system::error_code ec;
    auto v = boost::json::parse(message, ec);
    const auto* op = !ec && v.is_object() ? v.as_object().if_contains("op") : nullptr;
    if (op == nullptr || !op->is_string()) std::abort();
  }
  // (One node: every op completes inline, so nothing comes later.)
  std::function<void(continuation)> later() override {
    return [this](continuation f) { f(*this); };
  }
  void send_control_when(streams::durable_wait wait, std::string message, std::string) override {
    wait([this, message = std::move(message)](bool ok) mutable {
      if (ok) send_control(std::move(message));
    });
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto parsed = transport::parse_ws_op(fuzz::as_view(data, size));
  auto* op = std::get_if<transport::ws_op>(&parsed);
  if (op == nullptr) {
    if (std::get<transport::ws_op_error>(parsed).code.empty()) std::abort();
    return 0;
  }
  using k = transport::ws_op_kind;
  if (op->kind != k::ping && op->kind != k::start && !core::is_valid_stream_id(op->stream))
    std::abort();

  core::registry_config rc;
  rc.max_streams = 4;
  core::stream_registry registry(rc);
  streams::stream_service service(registry, {});
  auto who = auth::principal::anyone("127.0.0.1");
  // A stream with some history, so cancel and resume have something to act on.
  if (!op->stream.empty())
    (void)registry.get_or_create(op->stream).value()->publish("message", "{\"n\":1}");
  recording_set set;
  const transport::ws_op_context ctx{service, who, {}, 2};
  // Twice: the second sees what the first did (already subscribed, ended).
  transport::dispatch_ws_op(*op, ctx, set);
  transport::dispatch_ws_op(*op, ctx, set);
  return 0;
}
