// Incremental parser for the text/event-stream format, following the WHATWG
// HTML standard's "event stream interpretation" rules exactly.
//
// Thread-safety: none; one parser per connection, used from one thread.
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
};

class sse_listener {
 public:
  virtual ~sse_listener() = default;
  virtual void on_event(const sse_event& event) = 0;
  // A `retry:` field whose value is all ASCII digits.
  virtual void on_retry(std::uint64_t /*milliseconds*/) {}
  // A comment line (starting with ':'), without the colon. Heartbeats arrive here.
  virtual void on_comment(std::string_view /*text*/) {}
};

class sse_parser {
 public:
  explicit sse_parser(sse_listener& listener) : listener_(listener) {}

  // Feeds the next bytes of the stream; they may split lines, CRLF pairs and
  // UTF-8 sequences at any byte. Calls the listener for everything complete.
  void feed(std::string_view bytes);

  // The id to resume with (Last-Event-ID): the event source's "last event ID
  // string" of the standard, which takes the id buffer's value only when a
  // block ends (blank line), never when an `id:` line is merely read, so a
  // connection cut in the middle of an event never skips that event.
  const std::string& last_event_id() const { return last_event_id_; }

  // Forget the partial block (e.g. on reconnect); the last event id is kept.
  void reset_partial();

 private:
  void process_line(std::string_view line);
  void dispatch();

  sse_listener& listener_;
  std::string line_;           // partial line carried across feeds
  bool seen_first_bytes_ = false;  // for stripping one leading BOM
  std::string bom_probe_;          // first bytes until the BOM decision is made
  bool last_was_cr_ = false;       // a CR ended the previous line; skip a following LF
  std::string data_;
  std::string type_;
  std::string id_buffer_;      // the standard's "last event ID buffer"
  std::string last_event_id_;  // the standard's "last event ID string"
};

}  // namespace sluice::core
