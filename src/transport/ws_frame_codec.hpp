// The server's WebSocket (/v1/ws) messages as bytes: event frames built from
// the log's SSE bytes, and the control messages (acks, errors, notices).
// Pure functions: no sockets, no Beast (see docs/websocket.md).
//
// Event frames are built from the log's SSE bytes without copying the data:
// the SSE framing written by core::sse_encoder is split back into id, type and
// data lines (decode_sse_events), and a frame is sent as a gathered write of a
// small per-frame head (event_frame_head), the data bytes straight from the
// log's shared segment, and event_frame_tail. Only data that spans several
// SSE lines (JSON with raw newlines) is joined into a scratch string. Encoding
// a second, WebSocket-shaped copy of every event in the log would double its
// memory for a saving of one ~60-byte head per frame; with permessage-deflate
// Beast copies into its compressor anyway.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::transport {

// One event of a log batch, viewed inside the batch's bytes.
struct event_view {
  std::uint64_t id = 0;
  std::string_view epoch;  // the id's epoch (empty: none; see core/event_id.hpp)
  std::string_view type;
  // The data itself, or when it spans several SSE lines, those "data: ..."
  // lines (joined with LF by join_data_lines).
  std::string_view data;
  bool multi_line = false;
};

// Splits bytes framed by core::sse_encoder (id line, optional event line,
// one or more data lines, blank line) into events, appended to `out`. False
// on anything else, which would be a bug in the log.
bool decode_sse_events(std::string_view bytes, std::vector<event_view>& out);

// The data of a multi-line event_view, its lines joined with LF, into `out`.
void join_data_lines(std::string_view lines, std::string& out);

// {"stream":S,"id":N[,"epoch":E],"event":T,"data":  — followed by the data,
// then the tail.
void event_frame_head(std::string_view stream, const event_view& e, std::string& out);
inline constexpr std::string_view event_frame_tail = "}";

// {"op":OP,"stream":S} (end, unsubscribed). `stream` is a valid stream id.
std::string op_message(std::string_view op, std::string_view stream);
// {"op":"error","code":C,"message":M[,"stream":S][,"first_available":N]}
std::string error_message(std::string_view code, std::string_view message,
                          std::string_view stream = {},
                          std::optional<std::uint64_t> first_available = std::nullopt);
// {"op":"error","code":"resume_window_exceeded",...,"first_available":N}
std::string window_exceeded_message(std::string_view stream, std::uint64_t first_available);
// {"op":"notice","code":"history_truncated","stream":S,"first_available":N}
std::string history_truncated_message(std::string_view stream, std::uint64_t first_available);
// {"op":"started","stream":S,"created":B}
std::string started_message(std::string_view stream, bool created);
// {"op":ACK,"stream":S,"sequence":N} (published, cancelled)
std::string ack_message(std::string_view ack, std::string_view stream, std::uint64_t sequence);

}  // namespace sluice::transport
