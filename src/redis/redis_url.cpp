#include "redis/redis_url.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/url/parse.hpp>
#include <charconv>
#include <cstdint>
#include <limits>

namespace sluice::redis {

namespace {

redis_url_error fail(std::string m) {
  return redis_url_error{std::move(m)};
}

}  // namespace

std::string redis_endpoint::redacted() const {
  std::string s = tls ? "rediss://" : "redis://";
  if (!username.empty() || password) {
    s += username;
    if (password) s += ":***";
    s += "@";
  }
  s += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  s += ":" + port;
  if (db != 0) s += "/" + std::to_string(db);
  return s;
}

boost::system::result<redis_endpoint, redis_url_error> parse_redis_url(std::string_view text) {
  auto parsed = boost::urls::parse_uri(text);
  if (!parsed) return fail("the Redis URL is not a URL");
  const boost::urls::url_view url = *parsed;
  redis_endpoint e;
  const auto scheme = url.scheme();
  if (scheme == "rediss") {
    e.tls = true;
  } else if (scheme != "redis") {
    return fail("the Redis URL must start with redis:// or rediss://");
  }
  if (!url.has_authority() || url.encoded_host().empty()) return fail("the Redis URL has no host");
  e.host = url.host_address();
  if (url.has_port()) {
    const auto p = url.port();
    unsigned v = 0;
    const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size() || v == 0 || v > 65535)
      return fail("the Redis URL's port must be 1..65535");
    e.port = std::to_string(v);
  }
  if (url.has_userinfo()) {
    e.username = url.user();
    if (url.has_password()) e.password = std::string(url.password());
    // "redis://user@host" (no colon) is taken as a password, as redis-cli does.
    if (!url.has_password() && !e.username.empty()) {
      e.password = e.username;
      e.username.clear();
    }
  }
  const auto path = url.encoded_path();
  if (!path.empty() && path != "/") {
    if (path.front() != '/') return fail("the Redis URL's path must be /DB");
    const std::string_view db(path.data() + 1, path.size() - 1);
    std::int64_t v = -1;
    const auto [end, ec] = std::from_chars(db.data(), db.data() + db.size(), v);
    if (db.empty() || ec != std::errc() || end != db.data() + db.size() || v < 0 ||
        v > std::numeric_limits<std::int32_t>::max())
      return fail("the Redis URL's database must be a number (redis://host:port/DB)");
    e.db = static_cast<int>(v);
  }
  if (url.has_query()) return fail("the Redis URL must not have a query");
  if (url.has_fragment()) return fail("the Redis URL must not have a fragment");
  boost::system::error_code ec;
  (void)boost::asio::ip::make_address(e.host, ec);
  e.host_is_ip = !ec;
  return e;
}

}  // namespace sluice::redis
