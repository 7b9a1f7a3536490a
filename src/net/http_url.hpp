// An absolute http:// or https:// URL taken apart for an outbound client: what
// to resolve and connect to, what to verify the certificate against and what
// to send as Host and request target. Pure logic: no sockets.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace sluice::outbound {

struct http_url {
  bool https = false;
  std::string host;         // for DNS, SNI and the certificate check (IPv6 without brackets)
  std::string port;         // numeric service: as written, else "80" / "443"
  std::string host_header;  // host[:port] as written in the URL
  std::string path;         // encoded, as written; may be empty
  std::optional<std::string> query;  // encoded, without '?'; nullopt when the URL has no '?'
  bool host_is_ip = false;           // host is an address literal (no DNS, no SNI)

  // The path without trailing '/', for appending "/endpoint" to a base URL.
  std::string path_prefix() const;
  // The path ("/" when empty) and "?query" when the URL has one: the URL itself
  // as a request target.
  std::string request_target() const;
};

enum class url_errc {
  not_a_url = 1,  // not an absolute URI
  not_http,       // a scheme other than http or https
  no_host,
};
const boost::system::error_category& url_category() noexcept;
boost::system::error_code make_error_code(url_errc e) noexcept;

// Parses an absolute http(s) URL; a url_errc says why one is refused. The
// message of that code reads after the URL's name ("base_url must be ...").
boost::system::result<http_url> parse_http_url(std::string_view text);

}  // namespace sluice::outbound

template <>
struct boost::system::is_error_code_enum<sluice::outbound::url_errc> : std::true_type {};
