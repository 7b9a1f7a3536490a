// The durable log's on-disk records (see docs/durability.md, File format).
//
// A segment file (node-wide: every stream's records interleaved) is a
// sequence of records, each
//   u32 crc32c  CRC-32C (Castagnoli) of every byte after this field (length,
//               type, flags, reserved, payload)
//   u32 length  of the payload
//   u8  type    1 = meta, 2 = event, 3 = erased, 4 = events
//   u8  flags   event: bit 0 delta index present, bits 1-2 end state
//               (0 open, 1 finished, 2 cancelled); events: bits 1-2 the
//               end state of its last event
//   u16 reserved (0)
//   payload
// all integers little-endian. Meta and event payloads start with a u32
// stream key: a number naming the stream inside this segment file, bound to
// its id by the stream's meta record, which precedes its first event in
// every segment file. An event's payload then holds its index (u64
// sequence, i64 publish time in µs since the epoch, and for deltas u32 delta
// key, json offset, text begin, text end) followed by the event's SSE bytes
// exactly as served. An events record holds several plain (not delta)
// events of one stream, contiguous in sequence, in one record (a publish of
// many events, or the events one stream published between two writer
// rounds): u64 first sequence, i64 publish time (the first event's, which
// the others share once read back), u32 count, then their SSE bytes back
// to back.
// Each event there ends at its blank line ("\n\n"), the first one in its
// bytes: SSE framing puts no blank line inside an event, so the bytes split
// into their events without a per-event length (a publish of many events
// costs 24 bytes of index, not 20 per event; the split must give exactly
// `count` events or the record is corrupt). A meta payload then holds JSON
// (see append_meta_record).
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

enum class record_type : std::uint8_t { meta = 1, event = 2, erased = 3, events = 4 };

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

// Several plain events of one stream, first_seq.. in order, the first
// published at `publish_us` (read back as every one's publish time); `sse`
// is their SSE bytes back to back (see above).
struct events_index {
  std::uint64_t first_seq = 0;
  std::int64_t publish_us = 0;
  std::uint32_t count = 0;
  core::stream_state end_state = core::stream_state::open;  // of the last event
  std::uint32_t stream = 0;
};
void append_events_record(std::string& out, const events_index& index, std::string_view sse);
inline constexpr std::size_t events_record_overhead = record_header_bytes + 24;
// `sse` is exactly `count` events: it ends at a blank line, holds `count`
// of them, and no three '\n' in a row (so splitting it at each first blank
// line gives those events).
bool splits_into_events(std::string_view sse, std::uint32_t count);

// The events of bytes holding `count` of them back to back, one at a time in
// order: each ends at its first blank line, the last takes the rest (bytes
// that are not events, see splits_into_events, give short or empty pieces,
// never a read out of bounds).
class sse_event_splitter {
 public:
  sse_event_splitter() = default;
  sse_event_splitter(std::string_view bytes, std::uint32_t count) : rest_(bytes), left_(count) {}
  bool next(std::string_view& event);
  std::uint32_t left() const { return left_; }

 private:
  std::string_view rest_;
  std::uint32_t left_ = 0;
};

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
// Decodes a parsed events record (its SSE bytes to `sse`); false when its
// payload is malformed, including bytes that do not split into exactly
// `count` events.
bool decode_events(const parsed_record& r, events_index& index, std::string_view& sse);

// The events of an event or events record, one at a time:
//   record_events ev;
//   if (!ev.open(rec)) ...corrupt...
//   while (ev.next(ix, sse)) ...
class record_events {
 public:
  // False when `r` is neither kind of event record, or malformed.
  bool open(const parsed_record& r);
  bool next(event_index& index, std::string_view& sse);
  std::uint64_t first_seq() const { return first_seq_; }
  std::uint64_t last_seq() const { return first_seq_ + count_ - 1; }
  std::uint32_t count() const { return count_; }
  std::uint32_t stream() const { return one_.stream; }
  core::stream_state end_state() const { return one_.end_state; }
  std::int64_t publish_us() const { return one_.publish_us; }
  std::size_t sse_bytes() const { return sse_bytes_; }

 private:
  event_index one_;  // the record's fields (for events: all but seq and the delta)
  std::uint64_t first_seq_ = 0;
  std::uint32_t count_ = 0;
  std::size_t sse_bytes_ = 0;
  sse_event_splitter split_;
};
// Decodes a meta record (its stream key to *stream); nullopt when malformed
// (never throws).
std::optional<core::stream_meta> decode_meta(const parsed_record& r,
                                             std::uint32_t* stream = nullptr);
// An erased record's stream id; false when malformed.
bool decode_erased(const parsed_record& r, std::string_view& id);

}  // namespace sluice::store
