#include "core/stream_id.hpp"

namespace sluice::core {
namespace {

bool is_name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

bool is_valid_name(std::string_view s) {
  if (s.empty() || s.size() > max_name_length) return false;
  for (char c : s)
    if (!is_name_char(c)) return false;
  return true;
}

}  // namespace

bool is_valid_stream_id(std::string_view id) { return is_valid_name(id); }
bool is_valid_event_name(std::string_view name) { return is_valid_name(name); }

}  // namespace sluice::core
