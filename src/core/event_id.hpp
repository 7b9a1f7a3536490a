// Event ids on the wire: `<seq>` for an event of a stream without an epoch,
// `<seq>-<epoch>` otherwise (see docs/resuming-streams.md, "Epochs").
//
// A stream's epoch names one continuous history of its sequence numbers. When
// that history may have been lost (a crash of a durable server, a store that
// came back without it), the stream begins a new epoch at the next sequence,
// so a client holding an id of the lost history is refused
// (history_truncated) instead of resuming into different events.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::core {

inline constexpr std::size_t max_epoch_length = 16;

// 1..16 characters of [0-9a-z].
bool is_valid_epoch(std::string_view epoch);

struct event_id {
  std::uint64_t seq = 0;
  std::string epoch;  // empty: the id names no epoch
  friend bool operator==(const event_id&, const event_id&) = default;
};

// `digits` (at most 18, so it fits in 63 bits; leading zeros allowed) or
// `digits-epoch`. Anything else is nullopt.
std::optional<event_id> parse_event_id(std::string_view s);

// "N" or "N-E".
std::string format_event_id(std::uint64_t seq, std::string_view epoch);

// A fresh random epoch: 16 hex digits.
std::string random_epoch();

}  // namespace sluice::core
