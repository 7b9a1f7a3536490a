// Incremental parser for the text/event-stream format, following the WHATWG
// HTML standard's "event stream interpretation" rules exactly.
//
// Bytes are never decoded: values are passed through as the server sent them,
// so a UTF-8 sequence split across feed() calls stays intact (invalid UTF-8 is
// not replaced with U+FFFD; callers that need valid text must check).
//
// Thread-safety: none; one parser per connection, used from one thread.
// Re-entrancy: a listener callback must not call feed() or reset_partial() on
// the parser that is calling it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::core {

// One dispatched event. Views are valid only during the callback.
struct sse_event {
  std::string_view type;           // "message" when the block had no event field
  std::string_view data;           // data lines joined with LF, final LF removed
  std::string_view last_event_id;  // the parser's last event id at dispatch time
  bool has_id = false;             // the event's own block had a valid id field
};

class sse_listener {
 public:
  virtual ~sse_listener() = default;
  virtual void on_event(const sse_event& event) = 0;
  // A `retry:` field whose value is all ASCII digits. A value too large for
  // uint64_t saturates to UINT64_MAX.
  virtual void on_retry(std::uint64_t /*milliseconds*/) {}
  // A comment line (starting with ':'), without the colon. Heartbeats arrive here.
  virtual void on_comment(std::string_view /*text*/) {}
};

class sse_parser {
 public:
  // `listener` must outlive the parser.
  explicit sse_parser(sse_listener& listener) : listener_(listener) {}

  // Feeds the next bytes of the stream; they may split lines, CRLF pairs and
  // UTF-8 sequences at any byte. Calls the listener for everything complete.
  // Cost is linear in the bytes fed; no allocation once the buffers have
  // grown to the stream's line and event sizes.
  void feed(std::string_view bytes);

  // The id to resume with (Last-Event-ID): the event source's "last event ID
  // string" of the standard, which takes the id buffer's value only when a
  // block ends (blank line), never when an `id:` line is merely read, so a
  // connection cut in the middle of an event never skips that event.
  const std::string& last_event_id() const { return last_event_id_; }

  // Forget the partial block (e.g. on reconnect); the last event id is kept.
  // The next feed() is treated as the start of a new stream: the partial line,
  // data and event type are dropped, an `id:` read since the last blank line
  // is forgotten (the id buffer goes back to last_event_id(), as browsers do
  // when they reconnect), a pending CR no longer swallows a leading LF, and
  // one leading BOM is stripped again.
  void reset_partial();

 private:
  // Consumes as much of a leading BOM as [p, end) holds; returns where
  // ordinary parsing continues.
  const char* skip_bom(const char* p, const char* end);
  void process_line(std::string_view line);
  void process_field(std::string_view field, std::string_view value);
  void dispatch();

  sse_listener& listener_;
  std::string line_;  // partial line carried across feeds; empty when none
  // BOM stripping: until bom_done_, bom_matched_ bytes of EF BB BF have been
  // seen at the stream start and held back (they become data on a mismatch).
  bool bom_done_ = false;
  std::uint8_t bom_matched_ = 0;
  bool last_was_cr_ = false;   // a CR ended the previous feed; skip a following LF
  std::string data_;           // the standard's "data buffer"
  std::string type_;           // the standard's "event type buffer"
  bool block_has_id_ = false;  // the current block set the id buffer
  std::string id_buffer_;      // the standard's "last event ID buffer"
  std::string last_event_id_;  // the standard's "last event ID string"
};

}  // namespace sluice::core
