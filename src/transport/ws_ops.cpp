#include "transport/ws_ops.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "core/stream_id.hpp"
#include "streams/stream_service.hpp"

namespace sluice::transport {

namespace json = boost::json;

namespace {

ws_op_error error(std::string code, std::string message, std::string stream = {},
                  bool protocol = false) {
  return ws_op_error{std::move(code), std::move(message), std::move(stream), protocol};
}

// "stream": a valid id, or the error.
std::optional<ws_op_error> stream_of(const json::object& m, ws_op& op) {
  const json::value* v = m.if_contains("stream");
  if (v == nullptr || !v->is_string() || !core::is_valid_stream_id(v->get_string()))
    return error("invalid_stream_id", "\"stream\" must match [A-Za-z0-9._:-]{1,128}");
  op.stream = v->get_string();
  return std::nullopt;
}

// "lastEventId": a non-negative integer, its decimal string, or "N-EPOCH".
std::optional<ws_op_error> last_event_id_of(const json::object& m, ws_op& op) {
  const json::value* v = m.if_contains("lastEventId");
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (v->is_int64() && v->get_int64() >= 0)
    op.last_event_id = std::to_string(v->get_int64());
  else if (v->is_string() && streams::parse_event_id(v->get_string()))
    op.last_event_id = std::string(v->get_string());
  else  // (uint64: past 2^63, no stream has that many events)
    return error("invalid_last_event_id",
                 "lastEventId must be a sequence number (N, \"N\" or \"N-EPOCH\")", op.stream);
  return std::nullopt;
}

// An optional string member.
std::optional<ws_op_error> string_of(const json::object& m, const char* name,
                                     std::optional<std::string>& out, const ws_op& op) {
  const json::value* v = m.if_contains(name);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (!v->is_string())
    return error("invalid_message", std::string("\"") + name + "\" must be a string", op.stream);
  out = std::string(v->get_string());
  return std::nullopt;
}

}  // namespace

std::variant<ws_op, ws_op_error> parse_ws_op(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return error("malformed_json", "message is not valid JSON: " + ec.message(), {}, true);
  const json::object* m = v.if_object();
  const json::value* name = m ? m->if_contains("op") : nullptr;
  if (name == nullptr || !name->is_string())
    return error("invalid_message", "a message must be a JSON object with a string \"op\"", {},
                 true);
  const json::string& n = name->get_string();
  ws_op op;
  std::optional<ws_op_error> err;
  if (n == "ping") {
    op.kind = ws_op_kind::ping;
  } else if (n == "subscribe") {
    op.kind = ws_op_kind::subscribe;
    if (!(err = stream_of(*m, op))) err = last_event_id_of(*m, op);
    if (const auto* c = m->if_contains("coalesce"); c && c->is_bool()) op.coalesce = c->get_bool();
  } else if (n == "unsubscribe") {
    op.kind = ws_op_kind::unsubscribe;
    err = stream_of(*m, op);
  } else if (n == "start") {
    op.kind = ws_op_kind::start;
    const json::value* req = m->if_contains("request");
    if (req == nullptr || !req->is_object())
      err = error("invalid_request", "\"request\" must be a JSON object");
    else if (!(err = last_event_id_of(*m, op)))
      op.request = *req;
  } else if (n == "cancel") {
    op.kind = ws_op_kind::cancel;
    err = stream_of(*m, op);
    if (const auto* r = m->if_contains("reason"); !err && r && r->is_string())
      op.reason = std::string(r->get_string());
  } else if (n == "publish") {
    op.kind = ws_op_kind::publish;
    if (!(err = stream_of(*m, op))) {
      const json::value* data = m->if_contains("data");
      if (data == nullptr)
        err = error("invalid_message", "publish needs \"data\" (a JSON value)", op.stream);
      else if (!(err = string_of(*m, "event", op.event, op)) &&
               !(err = string_of(*m, "delta", op.delta, op)) &&
               !(err = string_of(*m, "deltaField", op.delta_field, op))) {
        if (const json::value* f = m->if_contains("final"); f && !f->is_null()) {
          if (!f->is_bool())
            err = error("invalid_message", "\"final\" must be a boolean", op.stream);
          else
            op.final = f->get_bool();
        }
        if (!err) op.data = json::serialize(*data);
      }
    }
  } else {
    return error("unknown_op", "op must be start, subscribe, unsubscribe, cancel, publish or ping",
                 {}, true);
  }
  if (err) return std::move(*err);
  return op;
}

}  // namespace sluice::transport
