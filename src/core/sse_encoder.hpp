// SSE wire framing (WHATWG event-stream format). Pure functions, no I/O.
//
// An event is framed as
//   id: <sequence>\n
//   event: <type>\n          (omitted for the default type "message")
//   data: <line>\n           (one per line of the data; CR, LF and CRLF all split)
//   \n
// Callers validate `type` (see stream_id.hpp); data is split into lines here,
// so no byte of the data can start a new field.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::core {

inline constexpr std::string_view default_event_type = "message";

// Appends "event: T\n" (unless T is "message") and the data lines.
void append_sse_fields(std::string& out, std::string_view type, std::string_view data);

// Appends "id: N\n".
void append_sse_id(std::string& out, std::uint64_t id);

// A whole event, blank line included. `id` 0 means no id line.
std::string encode_sse_event(std::uint64_t id, std::string_view type, std::string_view data);

// ": text\n\n" — a comment, ignored by clients; used for heartbeats.
std::string encode_sse_comment(std::string_view text);

// "retry: N\n\n" — the reconnection-delay hint.
std::string encode_sse_retry(std::uint64_t milliseconds);

// Number of decimal digits of n (n >= 0), for sizing id lines.
int decimal_digits(std::uint64_t n);

}  // namespace sluice::core
