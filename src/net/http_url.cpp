#include "net/http_url.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/url/parse.hpp>

namespace sluice::outbound {

namespace {

class url_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "sluice.url"; }
  std::string message(int ev) const override {
    switch (static_cast<url_errc>(ev)) {
      case url_errc::not_a_url:
        return "is not a URL";
      case url_errc::not_http:
        return "must be http:// or https://";
      case url_errc::no_host:
        return "has no host";
    }
    return "unknown URL error";
  }
};

}  // namespace

const boost::system::error_category& url_category() noexcept {
  static const url_category_impl category;
  return category;
}

boost::system::error_code make_error_code(url_errc e) noexcept {
  return {static_cast<int>(e), url_category()};
}

std::string http_url::path_prefix() const {
  std::string p = path;
  while (!p.empty() && p.back() == '/') p.pop_back();
  return p;
}

std::string http_url::request_target() const {
  std::string t = path.empty() ? std::string("/") : path;
  if (query) t += "?" + *query;
  return t;
}

boost::system::result<http_url> parse_http_url(std::string_view text) {
  auto parsed = boost::urls::parse_uri(text);
  if (!parsed) return make_error_code(url_errc::not_a_url);
  const boost::urls::url_view url = *parsed;
  http_url u;
  u.https = url.scheme_id() == boost::urls::scheme::https;
  if (!u.https && url.scheme_id() != boost::urls::scheme::http)
    return make_error_code(url_errc::not_http);
  if (url.encoded_host().empty()) return make_error_code(url_errc::no_host);
  u.host = url.host_address();
  u.port = url.has_port() ? std::string(url.port()) : (u.https ? "443" : "80");
  u.host_header = std::string(url.encoded_host_and_port());
  u.path = std::string(url.encoded_path());
  if (url.has_query()) u.query = std::string(url.encoded_query());
  boost::system::error_code ec;
  (void)boost::asio::ip::make_address(u.host, ec);
  u.host_is_ip = !ec;
  return u;
}

}  // namespace sluice::outbound
