#include "transport/ws_frame_codec.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <charconv>

#include "core/event_id.hpp"
#include "core/sse_encoder.hpp"

namespace sluice::transport {

namespace json = boost::json;

bool decode_sse_events(std::string_view bytes, std::vector<event_view>& out) {
  while (!bytes.empty()) {
    event_view ev;
    if (!bytes.starts_with("id: ")) return false;
    auto nl = bytes.find('\n');
    if (nl == std::string_view::npos) return false;
    auto [end, ec] = std::from_chars(bytes.data() + 4, bytes.data() + nl, ev.id);
    if (ec != std::errc()) return false;
    if (end != bytes.data() + nl) {  // "N-EPOCH"
      if (*end != '-') return false;
      ev.epoch = std::string_view(end + 1, static_cast<std::size_t>(bytes.data() + nl - end - 1));
      if (!core::is_valid_epoch(ev.epoch)) return false;
    }
    bytes.remove_prefix(nl + 1);
    ev.type = core::default_event_type;
    if (bytes.starts_with("event: ")) {
      nl = bytes.find('\n');
      if (nl == std::string_view::npos) return false;
      ev.type = bytes.substr(7, nl - 7);
      bytes.remove_prefix(nl + 1);
    }
    const char* first = bytes.data();
    int lines = 0;
    while (bytes.starts_with("data: ")) {
      nl = bytes.find('\n');
      if (nl == std::string_view::npos) return false;
      ev.data = bytes.substr(6, nl - 6);
      ++lines;
      bytes.remove_prefix(nl + 1);
    }
    if (lines == 0 || !bytes.starts_with('\n')) return false;
    if (lines > 1) {
      ev.multi_line = true;
      ev.data = std::string_view(first, static_cast<std::size_t>(bytes.data() - first));
    }
    bytes.remove_prefix(1);
    out.push_back(ev);
  }
  return true;
}

void join_data_lines(std::string_view lines, std::string& out) {
  out.clear();
  bool first = true;
  while (!lines.empty()) {
    auto nl = lines.find('\n');
    if (!first) out.push_back('\n');
    out.append(lines.substr(6, nl - 6));
    first = false;
    lines.remove_prefix(nl + 1);
  }
}

void event_frame_head(std::string_view stream, const event_view& e, std::string& out) {
  out.clear();
  out.append("{\"stream\":\"").append(stream).append("\",\"id\":");
  char digits[24];
  out.append(digits, std::to_chars(digits, digits + sizeof digits, e.id).ptr);
  if (!e.epoch.empty()) out.append(",\"epoch\":\"").append(e.epoch).push_back('"');
  out.append(",\"event\":\"").append(e.type).append("\",\"data\":");
}

std::string op_message(std::string_view op, std::string_view stream) {
  std::string s = "{\"op\":\"";
  s += op;
  s += "\",\"stream\":\"";
  s += stream;  // a valid stream id: nothing to escape
  s += "\"}";
  return s;
}

std::string error_message(std::string_view code, std::string_view message, std::string_view stream,
                          std::optional<std::uint64_t> first_available) {
  json::object o;
  o["op"] = "error";
  o["code"] = code;
  o["message"] = message;
  if (!stream.empty()) o["stream"] = stream;
  if (first_available) o["first_available"] = *first_available;
  return json::serialize(o);
}

std::string window_exceeded_message(std::string_view stream, std::uint64_t first_available) {
  json::object o;
  o["op"] = "error";
  o["code"] = "resume_window_exceeded";
  o["message"] = "events before " + std::to_string(first_available) + " are no longer retained";
  o["stream"] = stream;
  o["first_available"] = first_available;
  return json::serialize(o);
}

std::string history_truncated_message(std::string_view stream, std::uint64_t first_available) {
  json::object o;
  o["op"] = "notice";
  o["code"] = "history_truncated";
  o["stream"] = stream;
  o["first_available"] = first_available;
  return json::serialize(o);
}

std::string started_message(std::string_view stream, bool created) {
  json::object o;
  o["op"] = "started";
  o["stream"] = stream;
  o["created"] = created;
  return json::serialize(o);
}

std::string ack_message(std::string_view ack, std::string_view stream, std::uint64_t sequence) {
  json::object o;
  o["op"] = ack;
  o["stream"] = stream;
  o["sequence"] = sequence;
  return json::serialize(o);
}

}  // namespace sluice::transport
