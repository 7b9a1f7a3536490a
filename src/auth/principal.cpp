#include "auth/principal.hpp"

#include "core/stream_id.hpp"

namespace sluice::auth {

bool is_valid_pattern(std::string_view p) {
  if (p == "*") return true;
  if (p.ends_with('*')) p.remove_suffix(1);
  return core::is_valid_stream_id(p);
}

bool pattern_covers(std::string_view pattern, std::string_view id) {
  if (pattern.ends_with('*')) return id.starts_with(pattern.substr(0, pattern.size() - 1));
  return pattern == id;
}

namespace {
bool any_covers(const std::vector<std::string>& patterns, std::string_view id) {
  for (const auto& p : patterns)
    if (pattern_covers(p, id)) return true;
  return false;
}
}  // namespace

bool principal::may_publish(std::string_view id) const {
  return any_covers(publish, id);
}
bool principal::may_subscribe(std::string_view id) const {
  return any_covers(subscribe, id);
}

std::shared_ptr<const principal> principal::anyone(std::string subject) {
  auto p = std::make_shared<principal>();
  p->subject = std::move(subject);
  p->publish = {"*"};
  p->subscribe = {"*"};
  p->run = true;
  p->admin = true;
  return p;
}

}  // namespace sluice::auth
