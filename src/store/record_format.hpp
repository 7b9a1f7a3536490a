// The durable log's on-disk records (see docs/durability.md, File format).
//
// A segment file (node-wide: every stream's records interleaved) is a
// sequence of records, each
//   u32 crc32c  CRC-32C (Castagnoli) of every byte after this field (length,
//               type, flags, reserved, payload)
//   u32 length  of the payload
//   u8  type    1 = meta, 2 = event, 3 = erased
//   u8  flags   event: bit 0 delta index present, bits 1-2 end state
//               (0 open, 1 finished, 2 cancelled)
//   u16 reserved (0)
//   payload
// all integers little-endian. Meta and event payloads start with a u32
// stream key: a number naming the stream inside this segment file, bound to
// its id by the stream's meta record, which precedes its first event in
// every segment file. An event's payload then holds its index (u64
// sequence, i64 publish time in µs since the epoch, and for deltas u32 delta
// key, json offset, text begin, text end) followed by the event's SSE bytes
// exactly as served. A meta payload then holds JSON (see append_meta_record).
// An erased payload is the stream's id: every record of that id before it
// (in this and older segment files) is dead.
//
// Pure functions, no I/O: the unit tests drive them directly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/stream_log.hpp"
#include "core/stream_store.hpp"

namespace sluice::store {

inline constexpr std::size_t record_header_bytes = 12;
// Larger lengths are corruption (an event is at most a request body).
inline constexpr std::uint32_t max_record_payload = 64u << 20;

enum class record_type : std::uint8_t { meta = 1, event = 2, erased = 3 };

struct event_index {
  std::uint64_t seq = 0;
  std::int64_t publish_us = 0;
  std::uint32_t delta_key = 0, json_offset = 0, text_begin = 0, text_end = 0;
  core::stream_state end_state = core::stream_state::open;
  std::uint32_t stream = 0;  // the stream key inside its segment file
};

// The records' checksum: CRC-32C, with the SSE4.2 instruction when the CPU
// has it; record_checksum_portable is the table version (the same values).
std::uint32_t record_checksum(std::string_view bytes);
std::uint32_t record_checksum_portable(std::string_view bytes);

// Appends one record to `out`.
void append_event_record(std::string& out, const event_index& index, std::string_view sse);
void append_meta_record(std::string& out, const core::stream_meta& meta, std::uint32_t stream = 0);
void append_erased_record(std::string& out, std::string_view id);
// Bytes append_event_record adds.
std::size_t event_record_size(const event_index& index, std::size_t sse_bytes);

enum class parse_status {
  ok,       // `out` holds the record at `pos`; `pos` moved past it
  end,      // `pos` is at the end of the bytes
  torn,     // a record starts at `pos` but its bytes end early (a torn tail)
  corrupt,  // the bytes at `pos` are not a valid record (checksum, length, type)
};
struct parsed_record {
  record_type type{};
  std::uint8_t flags = 0;
  std::string_view payload;
};
parse_status next_record(std::string_view bytes, std::size_t& pos, parsed_record& out);

// Decodes a parsed event record; false when its payload is malformed.
bool decode_event(const parsed_record& r, event_index& index, std::string_view& sse);
// Decodes a meta record (its stream key to *stream); nullopt when malformed
// (never throws).
std::optional<core::stream_meta> decode_meta(const parsed_record& r,
                                             std::uint32_t* stream = nullptr);
// An erased record's stream id; false when malformed.
bool decode_erased(const parsed_record& r, std::string_view& id);

}  // namespace sluice::store
