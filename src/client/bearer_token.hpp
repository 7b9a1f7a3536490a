// The bearer token the command-line clients send (`--token`, else the
// SLUICE_TOKEN environment variable) as `Authorization: Bearer TOKEN`.
// A token is a secret: nothing here or in its callers prints it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sluice::client {

// RFC 6750's b64token: letters, digits and - . _ ~ + / then '=' padding;
// anything else (a space, CR, LF) could not be sent in a header as it is.
bool is_valid_bearer_token(std::string_view token);

// `flag` when not empty, else $SLUICE_TOKEN, else "" (no token).
std::string bearer_token_from(std::string_view flag);

// "Bearer " + token.
std::string authorization_value(std::string_view token);

// `url` with the value of every `access_token` query parameter replaced by
// "REDACTED", for status lines and errors (a URL may carry a token for clients
// that cannot set headers).
std::string redact_access_token(std::string_view url);

}  // namespace sluice::client
