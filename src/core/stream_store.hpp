// Where streams are persisted: the interface between the in-memory stream log
// (the hot path, see stream_log.hpp) and a store that keeps streams beyond
// the process (store/durable_log.hpp: append-only files; later Redis).
//
// The log tells its journal, with the stream's lock held, what it appended
// and when its metadata changed; the journal only records that (no I/O, no
// blocking beyond a short private mutex, never a call back into the stream).
// The store's own thread does the I/O later (write-behind, group commit).
//
// Thread-safety: stream_store members are thread-safe; a journal's members
// are called with its stream's lock held (so one at a time, in order).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace sluice::core {

class stream_log;
struct log_segment;
struct delta_event;
enum class stream_state : std::uint8_t;

// What a store keeps about a stream besides its events.
struct stream_meta {
  std::string id;
  std::string owner;
  std::int64_t created_us = 0;
  std::int64_t unread_grace_us = 0;  // see stream_log::cancel_when_unread
  std::int64_t finished_ttl_us = 0;  // see stream_log::keep_finished_for
  // The producer runs inside this process (an agent run, a benchmark
  // producer): after a restart nobody continues it, so recovery ends it with
  // a final `error` event {"code":"interrupted"}.
  bool local_producer = false;
  // The stream's epoch (see core/event_id.hpp; empty: none), and the one
  // before it with the sequence where the current one began
  // (epoch_boundary; 0: the stream never changed epoch).
  std::string epoch = {};
  std::string previous_epoch = {};
  std::uint64_t epoch_boundary = 0;
};

// One appended event as its journal sees it. The bytes at
// segment->bytes[offset, offset + length) are the event's SSE encoding and
// never change; holding `segment` keeps them alive.
struct journal_event {
  std::uint64_t seq;
  std::int64_t publish_us;
  const std::shared_ptr<log_segment>& segment;
  std::uint32_t offset;
  std::uint32_t length;
  std::uint32_t delta_key;  // 0: not a delta (see stream_log::entry)
  std::uint32_t json_offset;
  std::uint32_t text_begin;
  std::uint32_t text_end;
  stream_state end_state;  // open, or the state this (final) event ends the stream in
  // A delta: its key (message id, field), valid during the call only; null
  // for other events (and for deltas restored from a store).
  const delta_event* delta = nullptr;
};

// Reads a stream's events older than its memory keeps back from the store
// (the deeper tier). One per reader, created when the reader first falls
// behind memory; used by one thread at a time (the reader's). A read does at
// most a bounded amount of I/O (see the store) and never takes the stream's
// lock.
class history_cursor {
 public:
  virtual ~history_cursor() = default;
  struct result {
    std::uint64_t last_seq = 0;  // 0: nothing read (see first_available)
    std::size_t events = 0;
    std::int64_t first_publish_us = 0;
    // When nothing was read: the first sequence the store still holds (0:
    // none); `from` is older than that (deleted by retention, TTL or budget).
    std::uint64_t first_available = 0;
  };
  // Appends the SSE bytes of the events from `from` to at most `to`, as
  // stored (no coalescing), about `max_bytes` but at least one event, to
  // `out`.
  virtual result read(std::uint64_t from, std::uint64_t to, std::size_t max_bytes,
                      std::string& out) = 0;
};

class stream_journal {
 public:
  virtual ~stream_journal() = default;
  // With the stream's lock held, in sequence order; record only.
  virtual void appended(const journal_event& e) noexcept = 0;
  virtual void meta_changed(const stream_meta& m) noexcept = 0;

  // --- History (optional; any thread) ---
  // The first sequence open_history() can serve (0: none, or no history).
  virtual std::uint64_t first_stored_seq() const noexcept { return 0; }
  // Every event from first_stored_seq() on is stored or on its way (no write
  // failed): memory may drop all but the newest (stream_log::shed_history).
  virtual bool history_complete() const noexcept { return false; }
  // Null when this store keeps no readable history.
  virtual std::unique_ptr<history_cursor> open_history() { return nullptr; }
};

class stream_store {
 public:
  virtual ~stream_store() = default;
  // A journal for a stream the registry is creating (its shard lock held:
  // no I/O here either).
  virtual std::shared_ptr<stream_journal> open_journal(const stream_meta& meta) = 0;
  // The registry dropped `log` (finished TTL, eviction): its stored data goes.
  virtual void erased(const stream_log& log) noexcept = 0;
  // True when a publish is acknowledged only once its events are on disk
  // (fsync always); then the publish path calls when_durable.
  virtual bool acks_wait_for_disk() const noexcept = 0;
  // Calls done(true) once every event of `log` up to `seq` is on disk (or
  // done(false) when writing it failed): from the store's writer thread, or
  // inline when that is already so. `done` must only schedule work.
  virtual void when_durable(const stream_log& log, std::uint64_t seq,
                            std::function<void(bool)> done) = 0;
};

}  // namespace sluice::core
