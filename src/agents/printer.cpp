#include "agents/printer.hpp"

#include <boost/json/serialize.hpp>

#include "core/after_publish.hpp"
#include "core/coalescer.hpp"

namespace sluice::agents {

namespace json = boost::json;

stream_printer::stream_printer(std::shared_ptr<core::stream_log> log, std::string request_id,
                               std::string event_type, std::string error_event_type)
    : log_(std::move(log)),
      request_id_(std::move(request_id)),
      event_type_(std::move(event_type)),
      error_event_type_(std::move(error_event_type)),
      next_sequence_(log_->status().last_sequence + 1) {}

json::object stream_printer::envelope(std::string_view message_id, std::string_view message_type,
                                      bool is_final) {
  json::object o;
  o["requestId"] = request_id_;
  o["messageId"] = message_id;
  o["messageType"] = message_type;
  o["isFinal"] = is_final;
  // The run's stream has one producer (this printer), so the sequence this
  // message will get (its SSE id) is known before publishing.
  o["sequence"] = next_sequence_;
  o["ts"] = core::realtime_us() / 1000;  // milliseconds, as the seed's clients expect
  return o;
}

void stream_printer::note(const core::publish_outcome& out) {
  if (out.status != core::publish_status::ok)
    ended_ = true;  // cancelled from outside
  else
    next_sequence_ = out.last_sequence + 1;
}

void stream_printer::send(std::string_view message_id, std::string_view message_type,
                          json::object fields, bool is_final) {
  if (ended_) return;
  json::object o = envelope(message_id, message_type, is_final);
  for (auto& kv : fields) o[kv.key()] = std::move(kv.value());
  const std::string& type =
      is_final && message_type == "error" ? error_event_type_ : event_type_;
  note(log_->publish(type, json::serialize(o), is_final));
  if (is_final) ended_ = true;
  core::after_publish();
}

void stream_printer::send_delta(std::string_view message_id, std::string_view message_type,
                                std::string_view field, std::string_view text) {
  if (ended_) return;
  json::object o;
  o[field] = text;  // first member: the coalescible text
  for (auto& kv : envelope(message_id, message_type, false)) o[kv.key()] = std::move(kv.value());
  auto d = core::make_delta_event(event_type_, message_id, field, o);
  if (d) note(log_->publish(*d));
  core::after_publish();
}

bool stream_printer::ended() const { return ended_ || log_->state() != core::stream_state::open; }

}  // namespace sluice::agents
