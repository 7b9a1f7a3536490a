#include "client/bearer_token.hpp"

#include <cstdlib>

namespace sluice::client {

bool is_valid_bearer_token(std::string_view token) {
  std::size_t i = 0;
  for (; i < token.size(); ++i) {
    const char c = token[i];
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
    if (!ok) break;
  }
  if (i == 0) return false;
  for (; i < token.size(); ++i)
    if (token[i] != '=') return false;
  return true;
}

std::string bearer_token_from(std::string_view flag) {
  if (!flag.empty()) return std::string(flag);
  const char* env = std::getenv("SLUICE_TOKEN");
  return env != nullptr ? std::string(env) : std::string();
}

std::string authorization_value(std::string_view token) {
  std::string v = "Bearer ";
  v.append(token);
  return v;
}

std::string redact_access_token(std::string_view url) {
  const std::size_t query = url.find('?');
  if (query == std::string_view::npos) return std::string(url);
  std::string out(url.substr(0, query + 1));
  std::string_view rest = url.substr(query + 1);
  std::string_view fragment;
  if (const std::size_t hash = rest.find('#'); hash != std::string_view::npos) {
    fragment = rest.substr(hash);
    rest = rest.substr(0, hash);
  }
  bool first = true;
  while (true) {
    const std::size_t amp = rest.find('&');
    const std::string_view param = rest.substr(0, amp);
    if (!first) out.push_back('&');
    first = false;
    constexpr std::string_view key = "access_token=";
    if (param.starts_with(key)) {
      out.append(key).append("REDACTED");
    } else {
      out.append(param);
    }
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  out.append(fragment);
  return out;
}

}  // namespace sluice::client
