// Who is asking and what they may do: the verified claims of a token, or
// everyone-may-everything with --auth none. Immutable once built; shared
// (shared_ptr<const principal>) by every op of a WebSocket.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::auth {

// A stream-id pattern: an exact id, a prefix ending in '*' ("team1-*"), or
// "*" for every stream.
bool is_valid_pattern(std::string_view pattern);
bool pattern_covers(std::string_view pattern, std::string_view id);

struct principal {
  std::string subject;  // the token's `sub`; the client's address with --auth none
  std::vector<std::string> publish;
  std::vector<std::string> subscribe;
  bool run = false;
  bool admin = false;
  // A share-link token: it reads its one stream and owns nothing.
  bool link = false;
  std::int64_t expires_at = 0;  // unix seconds; 0: never (--auth none)

  bool may_publish(std::string_view id) const;
  bool may_subscribe(std::string_view id) const;
  // True when this principal created the stream (`owner` is stream_log::owner()).
  bool owns(std::string_view owner) const { return !link && !owner.empty() && owner == subject; }

  // --auth none: everything allowed; `subject` is the client's address.
  static std::shared_ptr<const principal> anyone(std::string subject);
};

}  // namespace sluice::auth
