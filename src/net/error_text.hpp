// Small pieces of the error messages the outbound clients write, and what a
// client of Sluice is told when an upstream fails.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace sluice::outbound {

// "250 ms"
std::string ms_text(std::chrono::milliseconds d);

// The first `max` bytes of s, with "..." when it was longer: a body quoted in
// an error message.
std::string excerpt(std::string_view s, std::size_t max = 200);

// How an upstream (the model server, the search engine) failed, as far as a
// client may know.
enum class upstream_failure {
  unreachable,     // resolve or connect failed
  timeout,         // a deadline passed
  tls,             // the TLS handshake failed
  connection,      // the connection broke or closed early
  http_status,     // an HTTP status other than 200
  malformed,       // an answer we cannot read
  reported_error,  // the upstream reported an error in its answer
  too_large,       // the answer exceeded its limit
};

// "upstream_unreachable", "upstream_timeout", ...
std::string_view code_of(upstream_failure f);

// The message for clients: a fixed sentence naming `service` ("the model
// server") and the code, e.g. "the model server could not be reached
// (upstream_unreachable)"; for http_status also the status number. Never
// the upstream's host, port or answer, nor our exception text: the caller
// logs those (the detail) for the operator.
std::string client_text(std::string_view service, upstream_failure f, unsigned http_status = 0);

}  // namespace sluice::outbound
