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

}  // namespace sluice::client
