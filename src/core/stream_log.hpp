// The stream log: an append-only, bounded log of immutable SSE-encoded events.
//
// Each event is encoded to its wire bytes once, into a shared segment; every
// subscriber writes straight from those segments (no per-subscriber copy, no
// per-subscriber queue). A subscriber is only a cursor (`subscription`): when
// woken it takes everything from its cursor to the head in one batch. A slow
// subscriber therefore only lags; it never blocks the producer or others.
//
// Thread-safety: every public member of stream_log is thread-safe (one mutex
// per stream; held only for appends, reads of the index and bookkeeping, never
// for I/O). A `subscription` is used by one thread at a time (its owner).
// Segment bytes below a segment's published size are immutable, so a reader may
// use them after the lock is released while it holds a reference (`pins`).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/chunked_index.hpp"
#include "core/event_id.hpp"
#include "core/segment_memory.hpp"
#include "core/sse_encoder.hpp"
#include "core/stream_store.hpp"

namespace sluice::core {

struct retention_limits {
  std::size_t max_events = 100'000;
  std::size_t max_bytes = 16u << 20;
};

enum class stream_state : std::uint8_t { open, finished, cancelled };
std::string_view to_string(stream_state s);

// Microseconds since the Unix epoch (CLOCK_REALTIME).
std::int64_t realtime_us();

// Fixed-capacity byte buffer; bytes below `size` never change once published.
// The bytes come from segment_memory (huge pages), which rounds `capacity` up.
struct log_segment {
  explicit log_segment(std::size_t capacity);
  log_segment(const log_segment&) = delete;
  log_segment& operator=(const log_segment&) = delete;
  ~log_segment() { segment_memory::release(bytes, capacity); }
  const std::uint32_t capacity;
  char* const bytes;  // owned: capacity bytes
  std::uint32_t size = 0;
};

// A text delta prepared for publishing (see make_delta_event in coalescer.hpp):
// compact JSON whose first member is the delta's string field, so that
// consecutive deltas can be merged by concatenating escaped text.
struct delta_event {
  std::string type;        // SSE event type
  std::string message_id;  // deltas of the same message id (and type, field) merge
  std::string field;
  std::string json;              // {"<field>":"<escaped text>", ...rest}
  std::uint32_t text_begin = 0;  // escaped text range inside `json`
  std::uint32_t text_end = 0;
};

// One item of an atomic multi-event publish.
struct publish_item {
  std::string_view type = default_event_type;
  std::string_view data;
  bool final = false;
  const delta_event* delta = nullptr;  // when set, type/data come from it
};

enum class publish_status { ok, stream_ended };

struct publish_outcome {
  publish_status status = publish_status::ok;
  std::uint64_t first_sequence = 0;  // sequence of the first event appended
  std::uint64_t last_sequence = 0;
};

struct read_span {
  const char* data;
  std::size_t size;
};

// What one read hands to a writer. Reused across reads to keep its capacity.
struct read_batch {
  std::vector<read_span> spans;
  std::vector<std::shared_ptr<const log_segment>> pins;  // keep segments alive
  std::vector<std::unique_ptr<std::string>> owned;       // coalesced events
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;
  std::size_t bytes = 0;
  std::size_t sse_events = 0;        // SSE events in the batch
  std::size_t coalesced_events = 0;  // SSE events that merged several log events
  std::int64_t oldest_publish_us = 0;
  bool final = false;  // the batch ends with the stream's final event
  void clear();
};

enum class read_status {
  data,             // `batch` holds events; the cursor moved past them
  waiting,          // nothing new; the waiter will be called once when there is
  ended,            // the cursor is past the final event
  window_exceeded,  // the cursor is behind the retained window
};

// Implemented by transports. Called with the stream's lock held, from any
// thread: must only schedule work (e.g. post to its executor), never call back
// into the stream.
class stream_waiter {
 public:
  virtual void on_stream_ready() noexcept = 0;

 protected:
  ~stream_waiter() = default;
};

// A stream's epochs (see core/event_id.hpp). `current` is the epoch of the
// events from `boundary` on (of all of them when boundary is 0); `previous`
// the epoch of the events before `boundary`. Only one level is kept: after a
// second begin_epoch, ids of the epoch before `previous` are refused.
struct epoch_info {
  std::string current;         // empty: none
  std::string previous;        // empty: none (ids without an epoch)
  std::uint64_t boundary = 0;  // 0: the stream never changed epoch
};

struct stream_status {
  stream_state state = stream_state::open;
  std::uint64_t first_sequence = 0;  // first retained (0 when empty)
  std::uint64_t last_sequence = 0;   // 0 when nothing published
  std::size_t retained_events = 0;
  std::size_t retained_bytes = 0;
  std::size_t subscribers = 0;
  std::int64_t created_us = 0;
  std::int64_t finished_us = 0;       // 0 while open
  std::int64_t last_activity_us = 0;  // last publish, attach or detach
  std::int64_t unread_since_us = 0;   // since when nobody subscribes (0: someone does)
  std::int64_t unread_grace_us = 0;   // see cancel_when_unread (0: never)
  std::int64_t finished_ttl_us = 0;   // see keep_finished_for (0: the registry's TTL)
  epoch_info epochs;
};

class subscription;

class stream_log : public std::enable_shared_from_this<stream_log> {
 public:
  // `owner`: the subject that created the stream (empty: nobody in
  // particular); fixed for the stream's life. `memory`: when set, the
  // stream's retained event bytes are added to it as they change (one relaxed
  // atomic add per publish) and taken off when the stream is destroyed; the
  // registry's memory budget reads it.
  stream_log(std::string id, retention_limits limits, std::string owner = {},
             std::shared_ptr<std::atomic<std::int64_t>> memory = nullptr);
  stream_log(const stream_log&) = delete;
  stream_log& operator=(const stream_log&) = delete;
  ~stream_log();

  const std::string& id() const { return id_; }
  const std::string& owner() const { return owner_; }

  // Appends one event; `data` is the event's data as text (JSON by contract).
  publish_outcome publish(std::string_view type, std::string_view data, bool final = false);
  publish_outcome publish(const delta_event& delta, bool final = false);
  // Appends all items or none (when the stream has ended).
  publish_outcome publish_all(std::span<const publish_item> items);

  // Ends an open stream with a final `cancelled` event whose data is
  // {"reason":...}, then calls the cancel handlers. False when already ended.
  bool cancel(std::string_view reason);
  // Ends an open stream that has never had an event with one final event
  // (`type`, `data`), as cancelled (the cancel handlers run). False when
  // something was published or the stream has ended (a publish won the race).
  bool end_if_unpublished(std::string_view type, std::string_view data);

  // Cancellation token for the producer: `handler` runs (on the cancelling
  // thread, without the lock) when the stream is cancelled. Returns an id for
  // remove_cancel_handler. If already cancelled, runs it at once.
  std::uint64_t on_cancel(std::function<void()> handler);
  void remove_cancel_handler(std::uint64_t id);

  // Producer flow control: true if every subscriber is within `max_lag` events
  // of the head (or there is none, or the stream ended). Otherwise stores
  // `on_drained` (replacing any previous one) and returns false; it is called,
  // with the lock held (schedule only), once that becomes true.
  bool wait_for_drain(std::size_t max_lag, std::function<void()> on_drained);

  // For runs with a producer (agents): the registry's sweep cancels this
  // stream, while open, once nobody has subscribed for `grace_us`; a run
  // nobody reads is stopped. 0 (the default) never cancels.
  void cancel_when_unread(std::int64_t grace_us);
  // How long this stream stays replayable once ended, instead of the
  // registry's TTL (e.g. short for benchmark streams).
  void keep_finished_for(std::int64_t ttl_us);

  stream_status status() const;
  stream_state state() const;

  // --- Mirrors (a cluster store keeps the stream; see docs/scaling.md) ---
  // Appends `items` as sequences first_seq, first_seq + 1, ...: an empty log
  // starts at first_seq, a non-empty one only continues at its next
  // sequence (anything else appends nothing: status stream_ended, sequences
  // 0). When `end_state` is not open the last item ends the stream in it
  // (cancel handlers are not run: a mirror has no producer). Subscribers are
  // woken as for a publish.
  publish_outcome append_mirrored(std::uint64_t first_seq, std::span<const publish_item> items,
                                  stream_state end_state);
  // Readers of this stream on other nodes keep it read: while set, the
  // unread grace (cancel_when_unread) does not run; when cleared without a
  // local subscriber, the grace starts again from now.
  void set_read_elsewhere(bool read);

  // --- Epochs (see core/event_id.hpp) ---
  // Every event's SSE id is `<seq>-<epoch>` (`<seq>` while the epoch is
  // empty), with the epoch current when it was appended; the bytes are
  // encoded once and never change.
  // Sets the epoch of a stream that has had no event yet. False (nothing
  // changes) when it has had one or `epoch` is not valid (is_valid_epoch).
  bool set_epoch(std::string_view epoch);
  // From the next sequence (last_seq + 1, the boundary) on, the stream is in
  // `new_epoch`; the current epoch becomes the previous one (the one before
  // it is forgotten), unless the current epoch has no event yet: then it is
  // only replaced. Runs of deltas are not coalesced across the boundary.
  // False (nothing changes) when `new_epoch` is not valid.
  bool begin_epoch(std::string_view new_epoch);
  std::string epoch() const;
  epoch_info epochs() const;

  // --- Persistence (see stream_store.hpp) ---
  // A stream coming back from a store: id, owner and creation time from
  // `meta`. Fill it with restore_event (in sequence order) and restore_end
  // before anyone else sees it.
  stream_log(const stream_meta& meta, retention_limits limits,
             std::shared_ptr<std::atomic<std::int64_t>> memory = nullptr);
  struct restored_event {
    std::uint64_t seq = 0;
    std::int64_t publish_us = 0;
    std::string_view sse;  // the event's stored SSE bytes
    std::uint32_t delta_key = 0, json_offset = 0, text_begin = 0, text_end = 0;
  };
  void restore_event(const restored_event& e);
  void restore_end(stream_state s, std::int64_t finished_us);
  // From now on every append and metadata change is told to `journal`. Set
  // once, before the stream is shared (the registry does it at creation).
  void attach_journal(std::shared_ptr<stream_journal> journal);
  const std::shared_ptr<stream_journal>& journal() const { return journal_; }
  // The producer lives in this process (see stream_meta::local_producer).
  void set_local_producer();
  stream_meta meta() const;
  // Memory budget eviction with a store that keeps the history: when the
  // stream has ended and its journal's history holds every retained event,
  // drops every retained event but the final one (readers get the rest from
  // the store), adds the bytes freed to `freed` and returns true; false
  // otherwise (the registry then drops the stream).
  bool shed_history(std::size_t& freed);

 private:
  friend class subscription;

  // 24 bytes per retained event (the index is as large as the events'
  // bytes for short tokens, so it is kept small).
  struct entry {
    std::uint32_t segment_no;  // absolute segment number
    std::uint32_t offset;      // of the event's bytes in the segment
    std::uint32_t length;
    std::uint32_t delta_key;  // 0: not a delta; equal in two adjacent entries iff same message
    std::int64_t publish_us;
  };
  // A delta's layout, stored in its segment just before the event's bytes
  // (only deltas pay for it; readers never see it: spans start at `offset`).
  struct delta_layout {
    std::uint32_t json_offset;  // of the JSON inside the event bytes
    std::uint32_t text_begin;   // escaped text range, relative to the JSON
    std::uint32_t text_end;
  };
  struct delta_key_info {
    std::string message_id, field, type;
  };

  publish_outcome append_locked(const publish_item& item, std::int64_t now_us);
  // Room for an event of `size` bytes (after a delta_layout when `delta`).
  char* reserve_locked(std::size_t size, bool delta, std::uint32_t& segment_no,
                       std::uint32_t& offset);
  const char* bytes_locked(const entry& e) const {
    return segments_[e.segment_no - first_segment_no_]->bytes + e.offset;
  }
  delta_layout delta_layout_locked(const entry& e) const;
  std::uint32_t intern_delta_key_locked(const delta_event& d);
  void trim_locked();
  void notify_locked();
  void check_drain_locked();
  void end_locked(stream_state s, std::int64_t now_us);
  void account_locked(std::size_t retained_before);
  // Appends `item` as the final event of a cancelled stream and moves the
  // cancel handlers into `handlers` (the caller runs them after unlocking).
  void end_cancelled_locked(const publish_item& item, std::int64_t now,
                            std::vector<std::pair<std::uint64_t, std::function<void()>>>& handlers);
  const entry& entry_at_locked(std::uint64_t seq) const {
    return entries_[static_cast<std::size_t>(seq - first_seq_)];
  }
  std::size_t retained_count_locked() const { return entries_.size(); }
  std::uint64_t last_seq_locked() const { return first_seq_ + retained_count_locked() - 1; }
  void build_coalesced_locked(std::uint64_t from, std::uint64_t to, read_batch& out) const;
  // Tells the journal (if any) about the events from `from` to the head;
  // `items`: what was appended from `from` on (for the deltas' keys).
  void journal_appended_locked(std::uint64_t from, std::span<const publish_item> items = {});
  stream_meta meta_locked() const;

  const std::string id_;
  const std::string owner_;
  const retention_limits limits_;
  const std::int64_t created_us_;
  const std::shared_ptr<std::atomic<std::int64_t>> memory_;  // may be null

  mutable std::mutex mutex_;
  stream_state state_ = stream_state::open;  // guarded by mutex_
  std::uint64_t next_seq_ = 1;               // guarded by mutex_
  std::uint64_t first_seq_ = 1;              // guarded by mutex_: seq of entries_[0]
  chunked_index<entry> entries_;             // guarded by mutex_
  std::size_t retained_bytes_ = 0;           // guarded by mutex_
  std::vector<std::shared_ptr<log_segment>> segments_;  // guarded by mutex_
  std::uint32_t first_segment_no_ = 0;                  // guarded by mutex_
  // Coalescing only merges adjacent entries, so only the newest delta's key is
  // kept (O(1) per stream whatever ?delta= values clients send): a delta with
  // the same key gets the same number, any other a fresh one.
  std::unique_ptr<delta_key_info> last_delta_key_;  // guarded by mutex_ (null before any delta)
  std::uint32_t last_delta_no_ = 0;                 // guarded by mutex_: 0 before any delta
  std::vector<subscription*> subscribers_;          // guarded by mutex_
  std::size_t waiting_count_ = 0;                   // guarded by mutex_
  std::function<void()> drain_waiter_;              // guarded by mutex_
  std::size_t drain_max_lag_ = 0;                   // guarded by mutex_
  std::vector<std::pair<std::uint64_t, std::function<void()>>> cancel_handlers_;  // guarded
  std::uint64_t next_handler_id_ = 1;  // guarded by mutex_
  std::int64_t finished_us_ = 0;       // guarded by mutex_
  std::int64_t last_activity_us_ = 0;  // guarded by mutex_
  std::int64_t unread_since_us_ = 0;   // guarded by mutex_
  std::int64_t unread_grace_us_ = 0;   // guarded by mutex_
  std::int64_t finished_ttl_us_ = 0;   // guarded by mutex_
  bool local_producer_ = false;        // guarded by mutex_
  bool read_elsewhere_ = false;        // guarded by mutex_
  // Null while the stream never had an epoch (most streams: memory only), so
  // such a stream pays one pointer and appends test one pointer.
  std::unique_ptr<epoch_info> epochs_;       // guarded by mutex_
  std::shared_ptr<stream_journal> journal_;  // set before the stream is shared; may be null
};

// A subscriber's cursor into one stream. Attaches on construction, detaches on
// destruction. Used by one thread at a time.
class subscription {
 public:
  // `next_seq`: the first sequence wanted. `coalesce`: merge runs of deltas
  // when more than one event behind. Events older than memory keeps come
  // from the journal's history when it has one (uncoalesced, in bounded
  // chunks), then the cursor continues in memory.
  subscription(std::shared_ptr<stream_log> log, std::uint64_t next_seq, stream_waiter& waiter,
               bool coalesce = true);
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;
  ~subscription();

  // Fills `out` (cleared first) with up to about `max_bytes` from the cursor.
  // On `waiting` the waiter is armed (one-shot). On `window_exceeded`,
  // first_available() tells the first retained sequence.
  read_status read(read_batch& out, std::size_t max_bytes);

  std::uint64_t next_seq() const { return next_seq_; }
  // On window_exceeded: the first sequence still available (in memory or,
  // with a store that keeps history, on disk).
  std::uint64_t first_available() const { return first_available_; }
  stream_log& log() const { return *log_; }
  const std::shared_ptr<stream_log>& log_ptr() const { return log_; }

 private:
  friend class stream_log;
  // The cursor is behind memory: read from the journal's history.
  read_status read_history(read_batch& out, std::size_t max_bytes, std::uint64_t to);
  std::shared_ptr<stream_log> log_;
  std::unique_ptr<history_cursor> history_;  // opened when first behind memory
  stream_waiter& waiter_;
  std::uint64_t next_seq_;             // written only by the owner, under the log's mutex
  std::uint64_t first_available_ = 0;  // set by read() on window_exceeded
  std::size_t index_ = 0;              // position in log_->subscribers_; guarded by its mutex
  bool waiting_ = false;               // guarded by the log's mutex
  bool coalesce_;
};

}  // namespace sluice::core
