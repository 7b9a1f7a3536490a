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
};

class stream_journal {
 public:
  virtual ~stream_journal() = default;
  // With the stream's lock held, in sequence order; record only.
  virtual void appended(const journal_event& e) noexcept = 0;
  virtual void meta_changed(const stream_meta& m) noexcept = 0;
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
