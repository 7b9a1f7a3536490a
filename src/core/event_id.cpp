#include "core/event_id.hpp"

#include <cstdio>
#include <random>

namespace sluice::core {

bool is_valid_epoch(std::string_view epoch) {
  if (epoch.empty() || epoch.size() > max_epoch_length) return false;
  for (char c : epoch)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'))) return false;
  return true;
}

std::optional<event_id> parse_event_id(std::string_view s) {
  std::string_view digits = s;
  std::string_view epoch;
  if (const auto dash = s.find('-'); dash != std::string_view::npos) {
    digits = s.substr(0, dash);
    epoch = s.substr(dash + 1);
    if (!is_valid_epoch(epoch)) return std::nullopt;
  }
  if (digits.empty() || digits.size() > 18) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return event_id{v, std::string(epoch)};
}

std::string format_event_id(std::uint64_t seq, std::string_view epoch) {
  std::string s = std::to_string(seq);
  if (!epoch.empty()) {
    s.push_back('-');
    s.append(epoch);
  }
  return s;
}

std::string random_epoch() {
  std::random_device rd;
  const std::uint64_t v = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace sluice::core
