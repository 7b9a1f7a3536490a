#include "core/coalescer.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>
#include <boost/system/errc.hpp>

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

}  // namespace sluice::core
