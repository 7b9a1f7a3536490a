#include "client/delivery_filter.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <charconv>

#include "core/event_id.hpp"

namespace sluice::client {

namespace json = boost::json;

std::optional<std::uint64_t> parse_sequence(std::string_view id) {
  if (const auto dash = id.find('-'); dash != std::string_view::npos) {
    if (!core::is_valid_epoch(id.substr(dash + 1))) return std::nullopt;
    id = id.substr(0, dash);
  }
  if (id.empty() || id.size() > 20) return std::nullopt;
  for (char c : id)
    if (c < '0' || c > '9') return std::nullopt;
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), v);
  if (ec != std::errc() || end != id.data() + id.size()) return std::nullopt;
  return v;
}

namespace {

std::optional<std::uint64_t> as_u64(const json::value& v) {
  if (v.is_uint64()) return v.get_uint64();
  if (v.is_int64() && v.get_int64() >= 0) return static_cast<std::uint64_t>(v.get_int64());
  return std::nullopt;
}

// The first sequence of a merged delta event with id `last`, or `last` when
// the data is not a well-formed merge ending at `last`.
std::uint64_t coalesced_first(std::string_view data, std::uint64_t last) {
  if (data.find("\"coalesced\"") == std::string_view::npos) return last;
  boost::system::error_code ec;
  json::value v = json::parse(data, ec);
  if (ec || !v.is_object()) return last;
  const json::value* c = v.get_object().if_contains("coalesced");
  if (c == nullptr || !c->is_array() || c->get_array().size() != 2) return last;
  auto a = as_u64(c->get_array()[0]);
  auto b = as_u64(c->get_array()[1]);
  if (!a || !b || *b != last || *a > *b || *a == 0) return last;
  return *a;
}

}  // namespace

delivery delivery_filter::classify(std::string_view id, bool has_id, std::string_view type,
                                   std::string_view data) {
  delivery d;
  if (type == "error" && data.find("resume_window_exceeded") != std::string_view::npos) {
    boost::system::error_code ec;
    json::value v = json::parse(data, ec);
    if (!ec && v.is_object()) {
      const json::object& o = v.get_object();
      const json::value* code = o.if_contains("code");
      if (code != nullptr && code->is_string() && code->get_string() == "resume_window_exceeded") {
        d.what = delivery::action::resume_window_exceeded;
        if (const json::value* f = o.if_contains("first_available"))
          d.first_available = as_u64(*f).value_or(0);
        if (const json::value* m = o.if_contains("message"); m != nullptr && m->is_string())
          d.message = std::string(m->get_string());
        return d;
      }
    }
  }
  if (!has_id) return d;
  auto seq = parse_sequence(id);
  if (!seq) return d;
  d.last_seq = *seq;
  d.first_seq = coalesced_first(data, *seq);
  if (d.last_seq <= highest_) {
    d.what = delivery::action::drop_duplicate;
    ++duplicates_;
    return d;
  }
  highest_ = d.last_seq;
  last_id_.assign(id);
  return d;
}

}  // namespace sluice::client
