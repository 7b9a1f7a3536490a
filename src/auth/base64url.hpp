// base64url (RFC 4648 section 5) without padding, as JWTs use it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sluice::auth {

std::string base64url_encode(std::string_view bytes);

// Strict: only [A-Za-z0-9_-], no padding, no length of 1 mod 4, and unused
// trailing bits must be zero (one encoding per byte string). nullopt otherwise.
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace sluice::auth
