#include "net/error_text.hpp"

namespace sluice::outbound {

std::string ms_text(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

std::string excerpt(std::string_view s, std::size_t max) {
  if (s.size() <= max) return std::string(s);
  return std::string(s.substr(0, max)) + "...";
}

std::string_view code_of(upstream_failure f) {
  switch (f) {
    case upstream_failure::unreachable:
      return "upstream_unreachable";
    case upstream_failure::timeout:
      return "upstream_timeout";
    case upstream_failure::tls:
      return "upstream_tls_failed";
    case upstream_failure::connection:
      return "upstream_connection_failed";
    case upstream_failure::http_status:
      return "upstream_http_status";
    case upstream_failure::malformed:
      return "upstream_malformed";
    case upstream_failure::reported_error:
      return "upstream_error";
    case upstream_failure::too_large:
      return "upstream_too_large";
  }
  return "upstream_failed";
}

std::string client_text(std::string_view service, upstream_failure f, unsigned http_status) {
  std::string s(service);
  switch (f) {
    case upstream_failure::unreachable:
      s += " could not be reached";
      break;
    case upstream_failure::timeout:
      s += " did not answer in time";
      break;
    case upstream_failure::tls:
      s += " failed the secure connection";
      break;
    case upstream_failure::connection:
      s += " broke the connection";
      break;
    case upstream_failure::http_status:
      s += " answered with HTTP status " + std::to_string(http_status);
      break;
    case upstream_failure::malformed:
      s += " sent an answer that could not be read";
      break;
    case upstream_failure::reported_error:
      s += " reported an error";
      break;
    case upstream_failure::too_large:
      s += " sent an answer that was too large";
      break;
  }
  s += " (";
  s += code_of(f);
  s += ")";
  return s;
}

}  // namespace sluice::outbound
