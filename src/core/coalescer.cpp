#include "core/coalescer.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>
#include <boost/system/errc.hpp>
#include <cstdint>
#include <limits>

#include "core/stream_id.hpp"

namespace sluice::core {

namespace json = boost::json;

boost::system::result<delta_event> make_delta_event(std::string_view type,
                                                    std::string_view message_id,
                                                    std::string_view field,
                                                    const json::object& data) {
  const json::value* text = data.if_contains(field);
  // "coalesced" is the member a merged event adds; as the delta's field it
  // would give merged events two members of that name.
  if (text == nullptr || !text->is_string() || field == "coalesced")
    return boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
  delta_event d;
  d.type = type;
  d.message_id = message_id;
  d.field = field;
  std::string& o = d.json;
  o.push_back('{');
  o += json::serialize(json::string(field));
  o.push_back(':');
  d.text_begin = static_cast<std::uint32_t>(o.size() + 1);
  o += json::serialize(*text);
  d.text_end = static_cast<std::uint32_t>(o.size() - 1);
  for (const auto& kv : data) {
    if (kv.key() == field || kv.key() == "coalesced") continue;
    o.push_back(',');
    o += json::serialize(json::string(kv.key()));
    o.push_back(':');
    o += json::serialize(kv.value());
  }
  o.push_back('}');
  return d;
}

namespace {

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// The end (index of the closing quote) of the JSON string whose content
// starts at data[begin], or npos when it is not a well-formed string.
std::size_t json_string_end(std::string_view data, std::size_t begin) {
  std::size_t i = begin;
  while (i < data.size()) {
    const char c = data[i];
    if (c == '"') return i;
    if (static_cast<unsigned char>(c) < 0x20) return std::string_view::npos;
    if (c != '\\') {
      ++i;
      continue;
    }
    if (data.size() - i < 2) return std::string_view::npos;
    const char e = data[i + 1];
    if (e == 'u') {
      if (data.size() - i < 6) return std::string_view::npos;
      for (std::size_t k = 2; k < 6; ++k)
        if (!is_hex(data[i + k])) return std::string_view::npos;
      i += 6;
    } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
               e == 't') {
      i += 2;
    } else {
      return std::string_view::npos;
    }
  }
  return std::string_view::npos;
}

}  // namespace

bool is_valid_delta_key(std::string_view message_id, std::string_view field,
                        std::size_t data_size) {
  return is_valid_event_name(message_id) && field != "coalesced" && field.size() < data_size;
}

std::optional<delta_event> delta_from_stored(std::string_view type, std::string_view message_id,
                                             std::string_view field, std::string_view data) {
  // The key as the publish path accepts it; offsets are 32-bit in the log.
  if (!is_valid_event_name(type) || !is_valid_delta_key(message_id, field, data.size()) ||
      data.size() > std::numeric_limits<std::uint32_t>::max())
    return std::nullopt;
  // Cheap checks first: {"<field>":"<escaped text>" then ',' or '}' ...
  std::string prefix = "{" + json::serialize(json::string(field)) + ":\"";
  if (!data.starts_with(prefix)) return std::nullopt;
  const std::size_t text_end = json_string_end(data, prefix.size());
  if (text_end == std::string_view::npos || data.size() - text_end < 2 ||
      (data[text_end + 1] != ',' && data[text_end + 1] != '}') || data.back() != '}')
    return std::nullopt;
  // ... then the whole: valid JSON that make_delta_event lays out byte for
  // byte as stored (compact, no duplicate or "coalesced" member).
  boost::system::error_code ec;
  json::value v = json::parse(data, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const json::object& o = v.as_object();
  if (o.empty() || o.begin()->key() != field || o.contains("coalesced")) return std::nullopt;
  auto d = make_delta_event(type, message_id, field, o);
  if (!d || d->json != data || d->text_begin != prefix.size() || d->text_end != text_end)
    return std::nullopt;
  return std::move(*d);
}

}  // namespace sluice::core
