// Validation of names that reach the wire: stream ids and SSE event types.
// Both use [A-Za-z0-9._:-]{1,128}, so no CR, LF, NUL or space can ever be
// written into an SSE field (no field injection).
#pragma once

#include <string_view>

namespace sluice::core {

inline constexpr std::size_t max_name_length = 128;

bool is_valid_stream_id(std::string_view id);
bool is_valid_event_name(std::string_view name);

}  // namespace sluice::core
