// Lossless coalescing of text deltas.
//
// A producer marks an event as a delta of a message: its data is a JSON object
// with a string member (the delta's field) holding a fragment of that message's
// text. make_delta_event() lays the object out compactly with that member
// first, so the log can merge a run of deltas of one message into one SSE event
// by concatenating their escaped text (JSON escaping is per character, so the
// concatenation of escaped fragments is the escaped concatenation). A merged
// event's id is the last merged sequence, and its data is the last delta's
// object with the concatenated text and "coalesced":[first,last] added.
#pragma once

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>
#include <optional>
#include <string_view>

#include "core/stream_log.hpp"

namespace sluice::core {

// Fails (invalid_argument) when `data` has no string member `field`, or when
// `field` is "coalesced". A member named "coalesced" is reserved and dropped.
boost::system::result<delta_event> make_delta_event(std::string_view type,
                                                    std::string_view message_id,
                                                    std::string_view field,
                                                    const boost::json::object& data);

// Whether (message_id, field) is a delta key the publish path accepts for
// data of `data_size` bytes: message_id an event name, field not
// "coalesced" and, being a member of the data, shorter than it. For keys
// that come back from, or go to, a store.
bool is_valid_delta_key(std::string_view message_id, std::string_view field, std::size_t data_size);

// A delta read back from a store that keeps only its key and its data
// (Redis): the delta_event make_delta_event would have made, when `data` is
// laid out exactly as make_delta_event lays it out (compact object, first
// member the string `field`) and the key is one the publish path accepts
// (`message_id` an event name, `field` not "coalesced"); nothing otherwise
// (the caller appends the event as a plain one). The bytes are untrusted:
// every length is checked, and nothing but allocation failure throws.
std::optional<delta_event> delta_from_stored(std::string_view type, std::string_view message_id,
                                             std::string_view field, std::string_view data);

}  // namespace sluice::core
