// `redis://[[user]:password@]host[:port][/db]` and `rediss://` (TLS) taken
// apart for the client. Pure logic: no sockets.
#pragma once

#include <boost/system/result.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::redis {

struct redis_endpoint {
  bool tls = false;
  std::string host;  // for DNS, SNI and the certificate check (IPv6 without brackets)
  std::string port = "6379";
  bool host_is_ip = false;
  std::string username;                 // empty: AUTH with the password only
  std::optional<std::string> password;  // percent-decoded; nullopt: no AUTH
  int db = 0;                           // SELECT when not 0

  // The URL without its password, for logs and error messages.
  std::string redacted() const;
};

// Parses a Redis URL. Refused (invalid_argument, with a message naming the
// part): another scheme, no host, a port outside 1..65535, a path other than
// "" or "/" or "/N" with N in 0..2^31-1, a query or a fragment.
struct redis_url_error {
  std::string message;  // never contains the password
};
boost::system::result<redis_endpoint, redis_url_error> parse_redis_url(std::string_view text);

}  // namespace sluice::redis
