// The embedded durable log: streams kept in append-only segment files under
// --data-dir, so they survive a restart (see docs/durability.md).
//
// Layout: DIR/LOCK (held with flock while a server uses DIR) and ONE
// node-wide log, DIR/log/<segment number, 20 digits>.seg: every stream's
// records interleaved in one active segment file, rolled past
// segment_bytes. Every segment file is self-describing: the first time a
// stream writes into a segment, its meta record (id, owner, times, flags,
// epoch) precedes its events there; an erased record ends a stream
// (record_format.hpp).
//
// The in-memory log stays the hot path: a publish hands its journal the
// encoded bytes (a reference to the immutable segment, no copy) with the
// stream's lock held; one writer thread takes every journal's new events in
// one batch, appends them all with one write(2) to the active segment file
// and syncs that one file as the fsync mode says (group commit: everything
// written in a round shares that round's fdatasync).
//
// Readers whose cursor is behind a stream's in-memory window get the older
// events from the files (core::history_cursor): each stream keeps an index
// of runs (segment, offset, length, sequences) of its records, and a read is
// a few bounded preads on the reader's thread, then it continues in memory.
//
// Retention, TTL and the disk budget delete whole segment files: one goes
// once every stream with records in it is erased or has all of them below
// its disk-retention floor (and continues in newer files).
//
// Thread-safety: all public members are thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "core/stream_registry.hpp"
#include "core/stream_store.hpp"

namespace sluice::store {

enum class fsync_mode { always, interval, never };
std::optional<fsync_mode> parse_fsync_mode(std::string_view text);

struct durable_config {
  std::filesystem::path dir;
  fsync_mode fsync = fsync_mode::interval;
  std::chrono::milliseconds fsync_interval{50};
  // Bytes of all segment files together (0: no limit); above it the oldest
  // segment files are deleted first (never the active one, nor one holding
  // an open stream's newest event): streams lose their oldest history, a
  // finished stream whose newest event goes disappears from disk.
  std::uint64_t disk_budget_bytes = 0;
  // What each stream keeps on disk (never less than memory's retention).
  // Readers behind memory's retained window read the rest from the files
  // (docs/durability.md).
  core::retention_limits disk_retention{10'000'000, std::size_t{1} << 30};
  // The node-wide log's active segment file is closed and a new one started
  // past this size (at most 1 GiB). Deleting data is by whole segment files.
  std::uint32_t segment_bytes = 32u << 20;
  // With fsync interval/never: how long the writer gathers before writing
  // (0: the fsync interval, so each round writes and syncs once).
  std::chrono::milliseconds write_delay{0};
};

struct recovery_stats {
  std::size_t streams = 0;      // restored into the registry
  std::size_t events = 0;       // events read (before memory retention)
  std::size_t interrupted = 0;  // open local-producer streams ended "interrupted"
  std::size_t torn_tails = 0;   // segment files truncated at a torn or corrupt record
  std::size_t expired = 0;      // finished past their TTL: dropped
  std::size_t dropped = 0;      // empty open streams of external producers: dropped
  std::size_t gaps = 0;         // streams whose history now starts after a lost stretch
  std::size_t segments = 0;     // segment files kept
  // The previous run did not end cleanly (no DIR/CLEAN marker): events
  // readers saw may be missing, so every open stream began a new epoch.
  bool unclean = false;
  std::size_t new_epochs = 0;  // streams that began a new epoch
};

struct writer_stats {
  std::uint64_t records_written = 0;
  std::uint64_t events_written = 0;  // in those records (an events record holds several)
  std::uint64_t bytes_written = 0;  // record bytes (headers, index, SSE bytes)
  std::uint64_t syncs = 0;          // fdatasync/fsync calls
  std::uint64_t rounds = 0;
  std::uint64_t writes = 0;      // write(2) calls (one per round unless a round is large)
  std::uint64_t disk_bytes = 0;  // bytes in live segment files now
  std::uint64_t segments = 0;    // live segment files now
};

// Create with std::make_shared (recover() hands the registry a reference).
class durable_log final : public core::stream_store,
                          public std::enable_shared_from_this<durable_log> {
 public:
  // Creates DIR (and DIR/log) when absent and locks it. Throws
  // std::runtime_error when it cannot, or another process holds the lock.
  explicit durable_log(durable_config config);
  ~durable_log() override;  // writes and syncs what is pending, then stops

  // Loads every stored stream into `registry` (within its retention and
  // TTL), starts the writer, attaches this store to the registry and ends
  // open local-producer streams with {"code":"interrupted"}. Call once,
  // before serving.
  recovery_stats recover(core::stream_registry& registry);

  // Blocks until everything published before the call is written (and,
  // unless fsync never, synced). For tests and shutdown.
  void flush();
  writer_stats stats() const;
  const durable_config& config() const { return config_; }

  // core::stream_store
  std::shared_ptr<core::stream_journal> open_journal(const core::stream_meta& meta) override;
  void erased(const core::stream_log& log) noexcept override;
  bool acks_wait_for_disk() const noexcept override { return config_.fsync == fsync_mode::always; }
  void when_durable(const core::stream_log& log, std::uint64_t seq,
                    std::function<void(bool)> done) override;

  struct journal;    // one stream's records and index (durable_log.cpp)
  class history;     // a reader's cursor into them (durable_log.cpp)
  struct queue;      // what publishers hand the writer
  struct recovered;  // what recover() hands the writer thread

 private:
  void run_writer();
  void start_writer();

  const durable_config config_;
  int lock_fd_ = -1;
  // DIR/CLEAN was there at start: the previous server stopped cleanly. The
  // marker is removed at start and written again by a clean stop.
  bool clean_start_ = false;
  core::retention_limits retention_;
  std::shared_ptr<queue> queue_;
  std::shared_ptr<recovered> recovered_;  // recover() -> the writer thread
  std::thread writer_;
};

}  // namespace sluice::store
