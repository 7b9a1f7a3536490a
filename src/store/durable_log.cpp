#include "store/durable_log.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "core/event_id.hpp"
#include "core/log_text.hpp"
#include "core/stream_id.hpp"
#include "store/record_format.hpp"

namespace sluice::store {

namespace fs = std::filesystem;

std::optional<fsync_mode> parse_fsync_mode(std::string_view text) {
  if (text == "always") return fsync_mode::always;
  if (text == "interval") return fsync_mode::interval;
  if (text == "never") return fsync_mode::never;
  return std::nullopt;
}

namespace {

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string segment_name(std::uint64_t no) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020llu.seg", static_cast<unsigned long long>(no));
  return buf;
}

std::optional<std::uint64_t> parse_segment_name(const std::string& name) {
  if (name.size() != 24 || !name.ends_with(".seg")) return std::nullopt;
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(name.data(), name.data() + 20, v);
  if (ec != std::errc() || p != name.data() + 20 || v == 0) return std::nullopt;
  return v;
}

std::string errno_text(int e) {
  return std::strerror(e);
}

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool pread_all(int fd, std::string& buf, std::uint64_t offset, std::size_t n) {
  buf.resize(n);
  std::size_t got = 0;
  while (got < n) {
    const ssize_t k = ::pread(fd, buf.data() + got, n - got, static_cast<off_t>(offset + got));
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    got += static_cast<std::size_t>(k);
  }
  return true;
}

bool fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

bool read_file(const fs::path& path, std::string& out) {
  out.clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat sb {};
  if (::fstat(fd, &sb) == 0 && sb.st_size > 0) out.reserve(static_cast<std::size_t>(sb.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return true;
}

// What a journal hands the writer: a metadata change, one event, or (count
// > 1) plain events contiguous in one log segment, published together or
// one by one within a writer round, which the writer stores as one events
// record (record_format.hpp). The journal extends its last item, so a
// publisher's cost per event is mostly an add, not a 64-byte entry, and the
// writer's a few bytes of index.
struct pending_item {
  const core::log_segment* seg;  // null: a metadata change
  std::uint32_t offset;
  std::uint32_t length;  // of all its events' bytes
  std::uint32_t count;   // events (index.seq is the first)
  event_index index;     // for count > 1, end_state is the last event's
};

// An events record holds at most this many SSE bytes (a history read finds
// its events within one bounded pread).
constexpr std::uint32_t max_events_record_sse = 16u << 10;

// A run (one entry of a stream's history index) covers at most this many
// bytes of contiguous records of one stream in one segment file, so a read
// finds its start within one bounded pread; a read returns about this much
// per pread and at most history_chunk_bytes per call.
constexpr std::uint32_t run_span = 32u << 10;
constexpr std::size_t history_chunk_bytes = 64u << 10;
constexpr std::size_t history_runs_per_read = 16;
// A history read asks the kernel for this much of what follows (see
// drop_synced).
constexpr std::size_t read_ahead_bytes = 256u << 10;
// The round's buffer is written past this size (one write per round below it).
constexpr std::size_t write_chunk = 4u << 20;
constexpr std::uint32_t max_segment_bytes = 1u << 30;

}  // namespace

namespace {

// Read fds kept open by segment files, across the process: past the cap a
// read opens its file for itself and closes it after (so many segment files
// never exhaust the process's fd limit).
std::atomic<int> cached_read_fds{0};
constexpr int max_cached_read_fds = 256;

// An fd to pread from, closed at the end of the read when it is not the
// segment file's own.
struct read_fd {
  int fd = -1;
  bool own = false;
  read_fd() = default;
  read_fd(int f, bool o) : fd(f), own(o) {}
  read_fd(const read_fd&) = delete;
  read_fd& operator=(const read_fd&) = delete;
  ~read_fd() {
    if (own && fd >= 0) ::close(fd);
  }
};

}  // namespace

// One segment file as readers see it: opened read-only by the first reader
// that needs it and kept open (one fd however many readers; at most
// max_cached_read_fds such files), closed when the last reference goes (a
// deleted file stays readable through an fd already open).
struct seg_file {
  seg_file(std::uint64_t n, fs::path p) : no(n), path(std::move(p)) {}
  ~seg_file() { release(); }
  seg_file(const seg_file&) = delete;
  seg_file& operator=(const seg_file&) = delete;
  void open_for_read(read_fd& out) {
    std::lock_guard l(m);
    if (fd >= 0) {
      out.fd = fd;
      return;
    }
    const int f = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (f < 0) return;
    if (cached_read_fds.fetch_add(1) < max_cached_read_fds) {
      fd = out.fd = f;
      return;
    }
    cached_read_fds.fetch_sub(1);
    out.fd = f;
    out.own = true;
  }
  void release() {
    std::lock_guard l(m);
    if (fd < 0) return;
    ::close(fd);
    fd = -1;
    cached_read_fds.fetch_sub(1);
  }
  const std::uint64_t no;
  const fs::path path;
  std::mutex m;
  int fd = -1;  // guarded by m
};

namespace {

// Contiguous records of one stream in one segment file, holding events
// first_seq..last_seq (and possibly the stream's meta records).
struct run {
  std::shared_ptr<seg_file> file;
  std::uint32_t offset = 0;
  std::uint32_t length = 0;
  std::uint64_t first_seq = 0;  // 0: no event yet (while staging)
  std::uint64_t last_seq = 0;
  std::uint32_t events = 0;
  std::uint64_t sse_bytes = 0;
};

}  // namespace

struct durable_log::queue {
  std::mutex m;
  std::condition_variable cv;
  std::condition_variable flushed;
  bool wake_on_dirty = false;  // fsync always: write at once
  bool stop = false;
  // SSE bytes appended since the writer's last round: past wake_bytes the
  // writer starts a round before its delay is over (a burst is written in
  // cache-warm slices; a trickle waits for the delay and is written in one
  // write per round).
  static constexpr std::uint64_t wake_bytes = 4u << 20;
  std::atomic<std::uint64_t> pending_bytes{0};
  std::atomic<bool> woken{false};
  // Some stream's writes failed: its events are not all on disk, so the stop
  // is not clean (see durable_log::clean_start_).
  std::atomic<bool> any_failed{false};
  std::atomic<std::uint32_t> next_key{1};                // stream keys (record_format.hpp)
  std::uint64_t flush_requests = 0;                      // guarded by m
  std::uint64_t flush_done = 0;                          // guarded by m
  std::vector<std::shared_ptr<journal>> dirty, deleted;  // guarded by m
  struct waiter {
    std::shared_ptr<journal> j;
    std::uint64_t seq;
    std::function<void(bool)> done;
  };
  std::vector<waiter> waiters;  // guarded by m
  writer_stats stats;           // guarded by m (copied from the writer's each round)

  void push_dirty(std::shared_ptr<journal> j) {
    std::lock_guard l(m);
    dirty.push_back(std::move(j));
    if (wake_on_dirty) cv.notify_one();
  }
};

struct durable_log::journal final : core::stream_journal,
                                    std::enable_shared_from_this<durable_log::journal> {
  journal(std::shared_ptr<queue> queue, std::uint32_t k) : q(std::move(queue)), key(k) {}

  void appended(const core::journal_event& e) noexcept override {
    std::lock_guard l(m);
    if (horizon.load(std::memory_order_relaxed) == 0 && !gone_any.load(std::memory_order_relaxed))
      horizon.store(e.seq, std::memory_order_release);
    if (e.segment.get() != last_pinned) {
      pins.push_back(e.segment);
      last_pinned = e.segment.get();
    }
    if (!extend_last_locked(e))
      pending.push_back({e.segment.get(), e.offset, e.length, 1,
                         event_index{e.seq, e.publish_us, e.delta_key, e.json_offset, e.text_begin,
                                     e.text_end, e.end_state, key}});
    mark_dirty_locked();
    // The queue's byte count is shared by every stream and thread: it is
    // told in steps of report_bytes per journal, not per event (it only
    // decides when a burst wakes the writer early; the writer takes every
    // dirty journal's events whatever it says).
    unreported += e.length;
    if (unreported < report_bytes) return;
    const std::uint64_t n = std::exchange(unreported, 0);
    if (q->pending_bytes.fetch_add(n, std::memory_order_relaxed) + n >= queue::wake_bytes &&
        !q->woken.exchange(true, std::memory_order_relaxed)) {
      std::lock_guard ql(q->m);
      q->cv.notify_one();
    }
  }
  static constexpr std::uint64_t report_bytes = 16u << 10;
  // Adds e to the last item when both are plain events, contiguous in one
  // log segment, pending for the same round: a publish of many events, or
  // events published one at a time since the writer last took the stream's
  // (a paced run's tokens). The item keeps its first event's publish time,
  // so a final event published later starts an item of its own (the
  // stream's finish time, from which its TTL counts, stays exact).
  bool extend_last_locked(const core::journal_event& e) {
    if (pending.empty() || e.delta_key != 0) return false;
    pending_item& b = pending.back();
    if (b.seg != e.segment.get() || b.index.delta_key != 0 ||
        b.index.end_state != core::stream_state::open ||
        (e.end_state != core::stream_state::open && b.index.publish_us != e.publish_us) ||
        b.offset + b.length != e.offset || b.index.seq + b.count != e.seq ||
        b.length + e.length > max_events_record_sse)
      return false;
    b.length += e.length;
    ++b.count;
    b.index.end_state = e.end_state;
    return true;
  }
  void meta_changed(const core::stream_meta& meta) noexcept override {
    std::lock_guard l(m);
    latest_meta = meta;
    meta_pending = true;
    pending.push_back({nullptr, 0, 0, 0, {}});
    mark_dirty_locked();
  }
  void mark_dirty_locked() {
    if (dirty) return;
    dirty = true;
    q->push_dirty(shared_from_this());
  }
  std::uint64_t first_stored_seq() const noexcept override {
    return horizon.load(std::memory_order_acquire);
  }
  bool history_complete() const noexcept override {
    return !failed.load() && !erased.load() && !gone_any.load();
  }
  std::unique_ptr<core::history_cursor> open_history() override;

  const std::shared_ptr<queue> q;
  const std::uint32_t key;  // its stream key in every segment it writes to
  // Shared with publishers: guarded by m. What appended() touches comes
  // first, in the object's first three or four cache lines (with horizon and
  // gone_any): a paced server publishes into thousands of streams in turn,
  // and each line is a likely cache miss per event.
  std::mutex m;
  std::vector<pending_item> pending;
  std::vector<std::shared_ptr<const core::log_segment>> pins;
  const core::log_segment* last_pinned = nullptr;
  std::uint64_t unreported = 0;  // event bytes not yet added to q->pending_bytes
  bool dirty = false;
  bool meta_pending = false;          // latest_meta changed since the writer last took it
  std::atomic<bool> gone_any{false};  // its history is gone (erased, budget)
  // First sequence a history cursor can serve (0: none). Set by the first
  // append, moved on by retention and deletions (under hm).
  std::atomic<std::uint64_t> horizon{0};
  // What the writer is writing this round: changed only by the writer, under
  // m (it reads them without m); readers copy from them under m. They stay
  // until the round's bytes are in the file and in `runs`.
  std::vector<pending_item> inflight;
  std::vector<std::shared_ptr<const core::log_segment>> inflight_pins;
  core::stream_meta latest_meta;
  // Read by anyone.
  std::atomic<std::uint64_t> durable_seq{0};
  std::atomic<bool> failed{false};
  std::atomic<bool> erased{false};
  // History: the stream's runs as readers see them (bytes already written),
  // ascending. Changed only by the writer, under hm (the writer reads them
  // without it). Lock order: hm before m.
  std::mutex hm;
  std::deque<run> runs;
  std::uint64_t total_events = 0, total_sse = 0;  // in runs
  // The writer thread's alone.
  core::stream_meta meta;
  std::vector<run> staged;  // written to the round's buffer, not yet to the file
  std::uint64_t written_seq = 0;
  bool ended = false;
  core::stream_state end_state = core::stream_state::open;
  std::int64_t finished_us = 0;
  bool had_gap = false;         // recovery: its history starts after a lost stretch
  bool gone = false;            // erased, expired or lost: its records are dead
  bool tombstoned = false;      // its erased record is written
  std::uint64_t cur_seg = 0;    // the newest segment with its records (0: none)
  std::size_t cur_entry = 0;    // its entry there
  std::uint32_t seg_count = 0;  // segments with its records
  bool in_unsynced = false;
  bool in_touched = false;
};

namespace {

using journal_t = durable_log::journal;

// The writer's view of one segment file: which streams have records in it.
struct segment_info {
  std::shared_ptr<seg_file> file;
  std::uint64_t bytes = 0;  // written (what readers may read)
  struct entry {
    std::shared_ptr<journal_t> j;
    std::uint64_t first_seq = 0, last_seq = 0;  // its events here (0: none)
    bool tombstone = false;                     // j's erased record, not its records
  };
  std::vector<entry> entries;
};

}  // namespace

struct durable_log::recovered {
  std::deque<segment_info> segs;
  std::uint64_t next_no = 1;
  std::vector<std::shared_ptr<journal>> to_tombstone;  // dropped at recovery
};

namespace {

// Everything only the writer thread touches.
struct writer_ctx {
  writer_ctx(const durable_config& c, core::retention_limits r, fs::path dir)
      : cfg(c), retention(r), log_dir(std::move(dir)) {}
  const durable_config& cfg;
  core::retention_limits retention;
  fs::path log_dir;
  std::deque<segment_info> segs;  // oldest first; back() is the active one when active_fd >= 0
  int active_fd = -1;
  std::uint64_t next_no = 1;
  bool dir_needs_sync = false;
  std::uint64_t dropped = 0;  // the active file's bytes dropped from the page cache
  std::string wbuf;                                   // the round's records
  std::vector<std::shared_ptr<journal_t>> touched;    // have records in wbuf
  std::vector<std::shared_ptr<journal_t>> unsynced;   // written since the last sync
  core::stream_meta latest_meta;  // write_journal's copy of a journal's latest_meta
  writer_stats stats;
  bool gc_wanted = true;
  std::int64_t budget_warned_ns = 0;
};

void fail(journal_t& j, const char* what, int e) {
  j.q->any_failed.store(true);
  if (!j.failed.exchange(true))
    spdlog::error("durable log: {} for stream {} failed: {} (its events stay in memory only)", what,
                  core::log_escape(j.meta.id), errno_text(e));
}

void mark_unsynced(writer_ctx& w, const std::shared_ptr<journal_t>& j) {
  if (j->in_unsynced) return;
  j->in_unsynced = true;
  w.unsynced.push_back(j);
}

// Makes j's staged runs (now in the file) readable: appended to its index,
// merged with the last run when contiguous.
void publish_staged(journal_t& j) {
  std::lock_guard l(j.hm);
  for (run& r : j.staged) {
    if (r.events == 0) continue;  // only a meta record
    j.total_events += r.events;
    j.total_sse += r.sse_bytes;
    if (!j.runs.empty()) {
      run& b = j.runs.back();
      if (b.file == r.file && b.offset + b.length == r.offset && b.length + r.length <= run_span &&
          b.last_seq + 1 == r.first_seq) {
        b.length += r.length;
        b.last_seq = r.last_seq;
        b.events += r.events;
        b.sse_bytes += r.sse_bytes;
        continue;
      }
    }
    j.runs.push_back(std::move(r));
  }
  j.staged.clear();
}

// Notes a record of j at `offset` of `file` holding events seq..seq+count-1
// (count 0: not an event record).
void stage(journal_t& j, const std::shared_ptr<seg_file>& file, std::uint64_t offset,
           std::uint32_t n, std::uint64_t seq, std::uint32_t count, std::uint64_t sse) {
  const std::uint64_t last = count != 0 ? seq + count - 1 : 0;
  if (!j.staged.empty()) {
    run& r = j.staged.back();
    if (r.file == file && r.offset + r.length == offset && r.length + n <= run_span) {
      r.length += n;
      if (count != 0) {
        if (r.first_seq == 0) r.first_seq = seq;
        r.last_seq = last;
        r.events += count;
        r.sse_bytes += sse;
      }
      return;
    }
  }
  j.staged.push_back(run{file, static_cast<std::uint32_t>(offset), n, count != 0 ? seq : 0, last,
                         count, count != 0 ? sse : 0});
}

// What is synced leaves the page cache: memory already holds each stream's
// newest events (and serves them), so keeping the file's pages too would
// hold every event twice, and writing into recycled pages costs less than
// into fresh ones (docs/durability.md, "The page cache"). Readers behind
// memory read from the device, ahead of need (history's read-ahead). The
// last, partial page stays while the file is active (it is written again).
void drop_synced(writer_ctx& w, bool closing) {
  const std::uint64_t bytes = w.segs.back().bytes;
  const std::uint64_t upto = closing ? bytes : bytes & ~std::uint64_t{4095};
  if (upto <= w.dropped) return;
  // (A length of 0 is "to the end of the file", its partial last page too.)
  ::posix_fadvise(w.active_fd, static_cast<off_t>(w.dropped),
                  closing ? 0 : static_cast<off_t>(upto - w.dropped), POSIX_FADV_DONTNEED);
  w.dropped = upto;
}

void close_active(writer_ctx& w, bool sync) {
  if (w.active_fd < 0) return;
  if (sync && w.cfg.fsync != fsync_mode::never) {
    if (::fdatasync(w.active_fd) != 0) {
      const int e = errno;
      for (auto& j : w.unsynced) fail(*j, "fdatasync", e);
    } else {
      drop_synced(w, true);
    }
    ++w.stats.syncs;
  }
  ::close(w.active_fd);
  w.active_fd = -1;
}

void flush_wbuf(writer_ctx& w) {
  if (w.wbuf.empty()) return;
  auto& s = w.segs.back();
  ++w.stats.writes;
  if (write_all(w.active_fd, w.wbuf.data(), w.wbuf.size())) {
    s.bytes += w.wbuf.size();
    w.stats.bytes_written += w.wbuf.size();
    w.stats.disk_bytes += w.wbuf.size();
    for (auto& j : w.touched) {
      j->in_touched = false;
      publish_staged(*j);
      mark_unsynced(w, j);
    }
  } else {
    const int e = errno;
    spdlog::error("durable log: writing {} failed: {}", s.file->path.string(), errno_text(e));
    for (auto& j : w.touched) {
      j->in_touched = false;
      j->staged.clear();
      fail(*j, "writing", e);
    }
    // Part of the buffer may be in the file: go on in a new one (recovery
    // stops reading this one at the torn record). What was written to it
    // before is synced now (the round's sync will not see this file).
    close_active(w, true);
  }
  w.touched.clear();
  w.wbuf.clear();
}

bool open_segment(writer_ctx& w) {
  const std::uint64_t no = w.next_no++;
  fs::path path = w.log_dir / segment_name(no);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    spdlog::error("durable log: cannot create {}: {}", path.string(), errno_text(errno));
    return false;
  }
  w.segs.push_back({std::make_shared<seg_file>(no, std::move(path)), 0, {}});
  w.active_fd = fd;
  w.dropped = 0;
  w.dir_needs_sync = true;
  ++w.stats.segments;
  w.gc_wanted = true;
  return true;
}

std::uint64_t active_size(const writer_ctx& w) {
  return w.segs.back().bytes + w.wbuf.size();
}

void touch(writer_ctx& w, const std::shared_ptr<journal_t>& j) {
  if (j->in_touched) return;
  j->in_touched = true;
  w.touched.push_back(j);
}

// Makes the active segment ready for a record of j: rolls it past
// segment_bytes and, the first time j writes into a segment, writes j's meta
// record there first (every segment file is self-describing). False when no
// segment file can be written.
bool prepare(writer_ctx& w, const std::shared_ptr<journal_t>& j) {
  if (w.active_fd >= 0 && active_size(w) >= w.cfg.segment_bytes) {
    flush_wbuf(w);
    close_active(w, true);
  }
  if (w.active_fd < 0 && !open_segment(w)) {
    fail(*j, "creating a segment file", errno);
    return false;
  }
  auto& s = w.segs.back();
  if (j->cur_seg == s.file->no) return true;
  j->cur_seg = s.file->no;
  j->cur_entry = s.entries.size();
  s.entries.push_back({j, 0, 0, false});
  ++j->seg_count;
  const std::uint64_t at = active_size(w);
  append_meta_record(w.wbuf, j->meta, j->key);
  stage(*j, s.file, at, static_cast<std::uint32_t>(active_size(w) - at), 0, 0, 0);
  ++w.stats.records_written;
  touch(w, j);
  return true;
}

// j's erased record: its records in this and older segment files are dead
// (recovery must not bring it back from an older file once a newer one that
// held its final event is gone).
void tombstone(writer_ctx& w, const std::shared_ptr<journal_t>& j) {
  if (j->tombstoned || j->seg_count == 0) return;
  if (w.active_fd >= 0 && active_size(w) >= w.cfg.segment_bytes) {
    flush_wbuf(w);
    close_active(w, true);
  }
  if (w.active_fd < 0 && !open_segment(w)) return;
  append_erased_record(w.wbuf, j->meta.id);
  w.segs.back().entries.push_back({j, 0, 0, true});
  j->tombstoned = true;
  ++w.stats.records_written;
}

// The stream's records are dead from now on (erased, or lost to the budget).
void forget(journal_t& j) {
  j.gone = true;
  std::lock_guard l(j.hm);
  j.gone_any.store(true);
  j.horizon.store(0, std::memory_order_release);
  j.runs.clear();
  j.total_events = j.total_sse = 0;
}

void write_journal(writer_ctx& w, const std::shared_ptr<journal_t>& j) {
  core::stream_meta& latest = w.latest_meta;
  {
    // The items stay readable (history readers) until they are written.
    std::lock_guard l(j->m);
    j->inflight.swap(j->pending);
    j->inflight_pins.swap(j->pins);
    j->last_pinned = nullptr;
    // (Copied only for a round with a metadata change: most rounds of a
    // stream carry events alone.)
    if (std::exchange(j->meta_pending, false)) latest = j->latest_meta;
    j->dirty = false;
  }
  if (j->gone || j->erased.load(std::memory_order_relaxed)) return;
  for (const pending_item& it : j->inflight) {
    if (j->failed.load(std::memory_order_relaxed)) break;
    if (it.seg == nullptr) {
      const std::uint64_t before_seg = j->cur_seg;
      j->meta = latest;
      if (!prepare(w, j)) break;
      if (before_seg != j->cur_seg) continue;  // prepare wrote it
      const std::uint64_t at = active_size(w);
      append_meta_record(w.wbuf, j->meta, j->key);
      stage(*j, w.segs.back().file, at, static_cast<std::uint32_t>(active_size(w) - at), 0, 0, 0);
      ++w.stats.records_written;
      touch(w, j);
      continue;
    }
    if (!prepare(w, j)) break;
    const event_index& ix = it.index;
    const std::string_view sse(it.seg->bytes + it.offset, it.length);
    auto& s = w.segs.back();
    const std::uint64_t at = active_size(w);
    if (it.count > 1) {
      const std::size_t wat = w.wbuf.size();
      append_events_record(w.wbuf, {ix.seq, ix.publish_us, it.count, ix.end_state, ix.stream}, sse);
      // Checked in the copy (its bytes end the record), which the copy just
      // brought into the cache: never false for bytes the log encoded (no
      // blank line inside an event); written anyway, recovery would find a
      // corrupt record and drop the rest of the file.
      if (!splits_into_events(std::string_view(w.wbuf).substr(w.wbuf.size() - it.length),
                              it.count)) {
        w.wbuf.resize(wat);
        fail(*j, "splitting a publish into its events", EINVAL);
        break;
      }
    } else {
      append_event_record(w.wbuf, ix, sse);
    }
    const std::uint64_t last = ix.seq + it.count - 1;
    stage(*j, s.file, at, static_cast<std::uint32_t>(active_size(w) - at), ix.seq, it.count,
          it.length);
    touch(w, j);
    auto& e = s.entries[j->cur_entry];
    if (e.first_seq == 0) e.first_seq = ix.seq;
    e.last_seq = last;
    ++w.stats.records_written;
    w.stats.events_written += it.count;
    j->written_seq = last;
    if (ix.end_state != core::stream_state::open) {
      j->ended = true;
      j->finished_us = ix.publish_us;
    }
    if (w.wbuf.size() >= write_chunk) flush_wbuf(w);
  }
}

// A stream keeps on disk its disk retention, and at least what its memory
// keeps: its oldest runs leave the index once the newer ones alone hold the
// limit (their segment files go once nothing else in them is needed).
void apply_retention(writer_ctx& w, journal_t& j) {
  const std::uint64_t max_events =
      std::max(w.retention.max_events, w.cfg.disk_retention.max_events);
  const std::uint64_t max_bytes = std::max(w.retention.max_bytes, w.cfg.disk_retention.max_bytes);
  if (j.runs.size() < 2) return;
  const run& f = j.runs.front();
  if (j.total_events - f.events < max_events && j.total_sse - f.sse_bytes < max_bytes) return;
  std::lock_guard l(j.hm);
  while (j.runs.size() > 1) {
    const run& r = j.runs.front();
    if (j.total_events - r.events < max_events && j.total_sse - r.sse_bytes < max_bytes) break;
    j.total_events -= r.events;
    j.total_sse -= r.sse_bytes;
    j.runs.pop_front();
  }
  j.horizon.store(j.runs.front().first_seq, std::memory_order_release);
  w.gc_wanted = true;
}

// The first sequence j still needs on disk.
std::uint64_t floor_of(const journal_t& j) {
  return j.runs.empty() ? j.written_seq + 1 : j.runs.front().first_seq;
}

// An entry no longer needs its segment file.
bool entry_dead(const segment_info& s, const segment_info::entry& e) {
  const journal_t& j = *e.j;
  if (e.tombstone)  // needed while older files hold j's records
    return j.seg_count == 0 || (j.seg_count == 1 && j.cur_seg == s.file->no);
  if (j.gone) return true;
  if (j.cur_seg <= s.file->no) return false;  // its newest records (and meta) are here
  return e.last_seq == 0 || e.last_seq < floor_of(j);
}

// Removes segment w.segs[i] from the writer's books; the caller unlinks it.
// Streams lose the runs up to their last event in it (no gap: a stream's
// history starts after a deleted stretch); one whose newest event or
// records were in it is lost (only the budget deletes such a file, and only
// for ended streams).
fs::path drop_segment(writer_ctx& w, std::size_t i) {
  segment_info s = std::move(w.segs[i]);
  w.segs.erase(w.segs.begin() + static_cast<std::ptrdiff_t>(i));
  for (auto& e : s.entries) {
    if (e.tombstone) continue;
    journal_t& j = *e.j;
    --j.seg_count;
    if (j.gone) continue;
    if (j.cur_seg == s.file->no || (e.last_seq != 0 && e.last_seq >= j.written_seq)) {
      forget(j);
      tombstone(w, e.j);
      continue;
    }
    if (e.last_seq == 0) continue;
    std::lock_guard l(j.hm);
    bool dropped = false;
    while (!j.runs.empty() && j.runs.front().last_seq <= e.last_seq) {
      j.total_events -= j.runs.front().events;
      j.total_sse -= j.runs.front().sse_bytes;
      j.runs.pop_front();
      dropped = true;
    }
    if (dropped || j.horizon.load() <= e.last_seq)
      j.horizon.store(j.runs.empty() ? e.last_seq + 1 : j.runs.front().first_seq,
                      std::memory_order_release);
  }
  w.stats.disk_bytes -= s.bytes;
  --w.stats.segments;
  return s.file->path;
}

void unlink_all(const std::vector<fs::path>& paths) {
  for (const auto& p : paths) {
    std::error_code ec;
    fs::remove(p, ec);
    if (ec) spdlog::error("durable log: cannot delete {}: {}", p.string(), ec.message());
  }
}

// Deletes every segment file (but the active one) that nothing needs.
void collect(writer_ctx& w) {
  if (!w.gc_wanted) return;
  w.gc_wanted = false;
  std::vector<fs::path> gone;
  const std::size_t n = w.segs.size() - (w.active_fd >= 0 ? 1 : 0);
  for (std::size_t i = 0, k = 0; k < n; ++k) {
    const auto& s = w.segs[i];
    if (std::all_of(s.entries.begin(), s.entries.end(),
                    [&](const segment_info::entry& e) { return entry_dead(s, e); }))
      gone.push_back(drop_segment(w, i));
    else
      ++i;
  }
  unlink_all(gone);
}

// --disk-budget: the oldest segment files go first (never the active one,
// one holding an open stream's newest event, nor an erased record still
// needed); an ended stream whose newest event goes disappears from disk.
void enforce_budget(writer_ctx& w) {
  const std::uint64_t budget = w.cfg.disk_budget_bytes;
  if (budget == 0 || w.stats.disk_bytes <= budget) return;
  std::vector<fs::path> gone;
  std::size_t i = 0;
  std::uint64_t bytes = w.stats.disk_bytes;
  while (bytes > budget) {
    const std::size_t n = w.segs.size() - (w.active_fd >= 0 ? 1 : 0);
    if (i >= n) break;
    const auto& s = w.segs[i];
    const bool blocked =
        std::any_of(s.entries.begin(), s.entries.end(), [&](const segment_info::entry& e) {
          if (e.tombstone) return !entry_dead(s, e);
          const journal_t& j = *e.j;
          return !j.gone && !j.ended &&
                 (j.cur_seg == s.file->no || (e.last_seq != 0 && e.last_seq >= j.written_seq));
        });
    if (blocked) {
      ++i;
      continue;
    }
    bytes -= s.bytes;
    gone.push_back(drop_segment(w, i));
  }
  // Erased records first on disk, then the files go.
  flush_wbuf(w);
  if (w.active_fd >= 0 && w.cfg.fsync != fsync_mode::never && !gone.empty()) {
    if (::fdatasync(w.active_fd) == 0) ++w.stats.syncs;
  }
  unlink_all(gone);
  if (w.stats.disk_bytes > budget) {
    const std::int64_t now = now_ns();
    if (now - w.budget_warned_ns > 60'000'000'000LL) {
      w.budget_warned_ns = now;
      spdlog::warn(
          "durable log: {} bytes on disk, over --disk-budget {}, and the segment files left "
          "are the active one or hold open streams' newest events",
          w.stats.disk_bytes, budget);
    }
  }
}

void sync_all(writer_ctx& w) {
  if (w.unsynced.empty() && !w.dir_needs_sync) return;
  bool ok = true;
  int e = 0;
  if (w.active_fd >= 0 && !w.unsynced.empty()) {
    ok = ::fdatasync(w.active_fd) == 0;
    e = errno;
    ++w.stats.syncs;
    if (ok) drop_synced(w, false);
  }
  if (w.dir_needs_sync) {  // a new segment file's name
    if (!fsync_dir(w.log_dir) && ok) {
      ok = false;
      e = errno;
    }
    ++w.stats.syncs;
    w.dir_needs_sync = false;
  }
  for (auto& j : w.unsynced) {
    j->in_unsynced = false;
    if (j->gone) continue;
    if (!ok) fail(*j, "fdatasync", e);
    j->durable_seq.store(j->written_seq);
  }
  w.unsynced.clear();
}

}  // namespace

// A reader's cursor into one stream's runs. Each read does at most a few
// preads (one per run, at most 16 runs and about max_bytes <= 64 KiB in all,
// plus up to one run of 32 KiB to skip to its start, or one record larger
// than that) on the reader's own thread. Disk reads stay on the I/O thread,
// in these small bounded pieces, rather than on a pool: the history was
// written by this process and is usually in the page cache (a pread is then
// a memcpy), there is no hand-off and no second owner of the reader's state,
// and the subscriber's pump yields to other connections between writes, so
// one long replay cannot monopolise its thread. Segment files are
// append-only and a deleted one stays readable through its open fd, so no
// lock is held during I/O.
class durable_log::history final : public core::history_cursor {
 public:
  explicit history(std::shared_ptr<journal> j) : j_(std::move(j)) {}

  result read(std::uint64_t from, std::uint64_t to, std::size_t max_bytes,
              std::string& out) override {
    result r;
    if (from > to) return r;
    max_bytes = std::clamp<std::size_t>(max_bytes, 1, history_chunk_bytes);
    std::vector<run> span_runs, ahead;
    std::uint64_t start = 0;
    {
      std::lock_guard hl(j_->hm);
      const std::uint64_t horizon = j_->horizon.load(std::memory_order_acquire);
      r.first_available = horizon;
      if (horizon == 0 || from < horizon) return r;
      const auto& runs = j_->runs;
      auto it = std::upper_bound(runs.begin(), runs.end(), from,
                                 [](std::uint64_t seq, const run& v) { return seq < v.first_seq; });
      if (it == runs.begin() || std::prev(it)->last_seq < from) {
        // Not in the files yet: the writer has it, or it is still pending.
        std::lock_guard ml(j_->m);
        copy_unwritten(j_->inflight, from, to, max_bytes, out, r);
        copy_unwritten(j_->pending, from, to, max_bytes, out, r);
        return r;
      }
      std::size_t bytes = 0;
      for (auto k = std::prev(it); k != runs.end() && span_runs.size() < history_runs_per_read;
           ++k) {
        if (!span_runs.empty() && k->first_seq != span_runs.back().last_seq + 1) break;
        span_runs.push_back(*k);
        bytes += k->length;
        if (bytes >= max_bytes || k->last_seq >= to) break;
      }
      // Read-ahead: the runs after these, up to read_ahead_bytes, not asked
      // for by an earlier read.
      std::size_t ahead_bytes = 0;
      for (auto k = std::prev(it) + static_cast<std::ptrdiff_t>(span_runs.size());
           k != runs.end() && ahead_bytes < read_ahead_bytes; ++k) {
        ahead_bytes += k->length;
        if (k->last_seq > advised_seq_) ahead.push_back(*k);
      }
      const run& first = span_runs.front();
      start = first.offset;
      if (cached_file_ == first.file && cached_seq_ == from && cached_off_ > first.offset &&
          cached_off_ < std::uint64_t{first.offset} + first.length)
        start = cached_off_;
    }
    cached_file_.reset();
    // The writer drops what it has synced from the page cache: ask the
    // kernel to read what comes next while this read is served.
    for (const run& v : ahead) {
      read_fd fd;
      v.file->open_for_read(fd);
      if (fd.fd >= 0) ::posix_fadvise(fd.fd, v.offset, v.length, POSIX_FADV_WILLNEED);
      advised_seq_ = v.last_seq;
    }
    for (std::size_t k = 0; k < span_runs.size(); ++k) {
      const run& v = span_runs[k];
      const std::uint64_t begin = k == 0 ? start : v.offset;
      const std::uint64_t end = std::uint64_t{v.offset} + v.length;
      read_fd fd;
      v.file->open_for_read(fd);
      if (fd.fd < 0) return r;  // deleted meanwhile: the horizon has moved past it
      if (!pread_all(fd.fd, buf_, begin, static_cast<std::size_t>(end - begin))) {
        spdlog::error("durable log: reading {} failed: {}", v.file->path.string(),
                      errno_text(errno));
        return r;
      }
      std::size_t pos = 0;
      parsed_record rec;
      parse_status ps;
      bool done = false;
      std::size_t at = 0;  // where the record being read starts in buf_
      while ((ps = next_record(buf_, pos, rec)) == parse_status::ok) {
        const std::size_t rec_start = at;
        at = pos;
        if (rec.type != record_type::event && rec.type != record_type::events)
          continue;  // its meta records
        record_events ev;
        if (!ev.open(rec)) {
          ps = parse_status::corrupt;
          break;
        }
        if (ev.last_seq() < from) continue;
        event_index ix;
        std::string_view sse;
        while (ev.next(ix, sse)) {
          if (ix.seq < from) continue;
          if (ix.seq > to || (r.events != 0 && ix.seq != r.last_seq + 1) ||
              (r.events == 0 && ix.seq != from)) {
            done = true;  // past `to`, or a hole (never served)
            break;
          }
          if (r.events == 0) r.first_publish_us = ix.publish_us;
          out.append(sse);
          ++r.events;
          r.last_seq = ix.seq;
          if (out.size() >= max_bytes && ix.seq != to) {
            // Go on from here next time without rescanning the run: after
            // this record, or at its start when it holds more events.
            const std::size_t resume = ix.seq == ev.last_seq() ? pos : rec_start;
            if (begin + resume < end) {
              cached_file_ = v.file;
              cached_seq_ = ix.seq + 1;
              cached_off_ = begin + resume;
            }
            done = true;
            break;
          }
        }
        if (done) break;
      }
      if (ps != parse_status::ok && ps != parse_status::end) {
        spdlog::error("durable log: {}: unreadable record at byte {}", v.file->path.string(),
                      begin + pos);
        return r;
      }
      if (done || r.last_seq >= to) break;
    }
    if (r.last_seq == to) std::string().swap(buf_);
    return r;
  }

 private:
  static void copy_unwritten(const std::vector<pending_item>& items, std::uint64_t from,
                             std::uint64_t to, std::size_t max_bytes, std::string& out, result& r) {
    for (const pending_item& it : items) {
      if (it.seg == nullptr) continue;
      if (it.index.seq + it.count - 1 < (r.events == 0 ? from : r.last_seq + 1)) continue;
      sse_event_splitter split(std::string_view(it.seg->bytes + it.offset, it.length), it.count);
      std::string_view sse;
      for (std::uint64_t seq = it.index.seq; split.next(sse); ++seq) {
        const std::uint64_t want = r.events == 0 ? from : r.last_seq + 1;
        if (seq < want) continue;
        if (seq != want || seq > to || (r.events != 0 && out.size() >= max_bytes)) return;
        if (r.events == 0) r.first_publish_us = it.index.publish_us;
        out.append(sse);
        ++r.events;
        r.last_seq = seq;
      }
    }
  }

  std::shared_ptr<journal> j_;
  std::string buf_;
  std::uint64_t advised_seq_ = 0;  // the read-ahead asked for runs up to here
  // Where the last read stopped inside a run.
  std::shared_ptr<seg_file> cached_file_;
  std::uint64_t cached_seq_ = 0, cached_off_ = 0;
};

std::unique_ptr<core::history_cursor> durable_log::journal::open_history() {
  return std::make_unique<history>(shared_from_this());
}

durable_log::durable_log(durable_config config)
    : config_(std::move(config)), queue_(std::make_shared<queue>()) {
  queue_->wake_on_dirty = config_.fsync == fsync_mode::always;
  std::error_code ec;
  fs::create_directories(config_.dir / "log", ec);
  if (ec) throw std::runtime_error("--data-dir " + config_.dir.string() + ": " + ec.message());
  const fs::path lock = config_.dir / "LOCK";
  lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0)
    throw std::runtime_error("--data-dir " + config_.dir.string() +
                             ": cannot open LOCK: " + errno_text(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd_);
    lock_fd_ = -1;
    throw std::runtime_error("--data-dir " + config_.dir.string() +
                             " is in use by another sluice process");
  }
  // The clean-stop marker is consumed now: from here on a crash finds none.
  const fs::path clean = config_.dir / "CLEAN";
  clean_start_ = fs::exists(clean, ec);
  if (clean_start_) {
    fs::remove(clean, ec);
    if (ec || !fsync_dir(config_.dir))
      throw std::runtime_error("--data-dir " + config_.dir.string() + ": cannot remove CLEAN");
  }
}

durable_log::~durable_log() {
  if (writer_.joinable()) {
    {
      std::lock_guard l(queue_->m);
      queue_->stop = true;
    }
    queue_->cv.notify_all();
    writer_.join();
    // Everything was written and synced: mark the stop clean (a restart
    // then keeps every stream's epoch).
    if (!queue_->any_failed.load()) {
      const fs::path clean = config_.dir / "CLEAN";
      const int fd = ::open(clean.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0 || ::fsync(fd) != 0 || !fsync_dir(config_.dir))
        spdlog::error("durable log: cannot write {}: {}", clean.string(), errno_text(errno));
      if (fd >= 0) ::close(fd);
    }
    const writer_stats st = stats();
    spdlog::info(
        "durable log: {} records ({} events), {} bytes written, {} syncs in {} rounds ({} "
        "writes); {} bytes in {} segment files",
        st.records_written, st.events_written, st.bytes_written, st.syncs, st.rounds, st.writes,
        st.disk_bytes, st.segments);
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

std::shared_ptr<core::stream_journal> durable_log::open_journal(const core::stream_meta& meta) {
  auto j = std::make_shared<journal>(queue_, queue_->next_key.fetch_add(1));
  j->meta = meta;
  j->meta_changed(meta);  // its first record
  return j;
}

void durable_log::erased(const core::stream_log& log) noexcept {
  auto j = std::static_pointer_cast<journal>(log.journal());
  if (!j) return;
  j->erased.store(true);
  std::lock_guard l(queue_->m);
  queue_->deleted.push_back(std::move(j));
  queue_->cv.notify_one();
}

void durable_log::when_durable(const core::stream_log& log, std::uint64_t seq,
                               std::function<void(bool)> done) {
  auto j = std::static_pointer_cast<journal>(log.journal());
  if (!j || config_.fsync != fsync_mode::always || j->durable_seq.load() >= seq) {
    done(!j || !j->failed.load());
    return;
  }
  {
    std::lock_guard l(queue_->m);
    // Checked again under the lock the writer completes waiters under.
    if (j->failed.load() || j->durable_seq.load() < seq) {
      queue_->waiters.push_back({std::move(j), seq, std::move(done)});
      queue_->cv.notify_one();
      return;
    }
  }
  done(!j->failed.load());
}

void durable_log::flush() {
  std::unique_lock l(queue_->m);
  if (!writer_.joinable()) return;
  const std::uint64_t target = ++queue_->flush_requests;
  queue_->cv.notify_one();
  queue_->flushed.wait(l, [&] { return queue_->flush_done >= target; });
}

writer_stats durable_log::stats() const {
  std::lock_guard l(queue_->m);
  return queue_->stats;
}

void durable_log::start_writer() {
  writer_ = std::thread([this] { run_writer(); });
  // Named so that its CPU time can be told apart (bench/durable_pair.sh).
  pthread_setname_np(writer_.native_handle(), "sluice-writer");
}

void durable_log::run_writer() {
  queue& q = *queue_;
  durable_config cfg = config_;
  cfg.segment_bytes = std::clamp<std::uint32_t>(cfg.segment_bytes, 1, max_segment_bytes);
  writer_ctx w{cfg, retention_, config_.dir / "log"};
  std::vector<std::shared_ptr<journal>> deleted;
  if (recovered_) {  // handed over before the thread started
    w.segs = std::move(recovered_->segs);
    w.next_no = recovered_->next_no;
    deleted = std::move(recovered_->to_tombstone);
    recovered_.reset();
  }
  for (auto& s : w.segs) w.stats.disk_bytes += s.bytes;
  w.stats.segments = w.segs.size();
  auto last_sync = std::chrono::steady_clock::now();
  auto last_collect = last_sync - std::chrono::hours(1);
  const auto write_delay =
      config_.write_delay.count() > 0 ? config_.write_delay : config_.fsync_interval;
  std::vector<std::shared_ptr<journal>> dirty;
  std::vector<queue::waiter> waiters, ready;
  bool first = true;
  for (;;) {
    std::uint64_t flush_target = 0;
    bool flushing = false;  // a flush() waits for this round
    bool stop = false;
    {
      std::unique_lock l(q.m);
      auto wanted = [&] {
        return q.stop || q.flush_requests != q.flush_done || !q.deleted.empty() ||
               q.woken.load(std::memory_order_relaxed) ||
               (q.wake_on_dirty && (!q.dirty.empty() || !q.waiters.empty()));
      };
      if (first)
        first = false;  // recovery's tombstones and garbage at once
      else if (q.wake_on_dirty)
        q.cv.wait(l, wanted);
      else
        q.cv.wait_for(l, write_delay, wanted);
      q.pending_bytes.store(0, std::memory_order_relaxed);
      q.woken.store(false, std::memory_order_relaxed);
      dirty.swap(q.dirty);
      deleted.insert(deleted.end(), q.deleted.begin(), q.deleted.end());
      q.deleted.clear();
      flush_target = q.flush_requests;
      flushing = q.flush_requests != q.flush_done;
      stop = q.stop;
    }
    for (auto& j : deleted) {
      if (!j->gone) forget(*j);
      tombstone(w, j);
      w.gc_wanted = true;
    }
    deleted.clear();
    for (auto& j : dirty) write_journal(w, j);
    flush_wbuf(w);
    for (auto& j : dirty) {
      {
        std::lock_guard l(j->m);
        j->inflight.clear();
        j->inflight_pins.clear();  // written: let memory retention free them
      }
      if (!j->gone) apply_retention(w, *j);
    }
    dirty.clear();
    const auto now = std::chrono::steady_clock::now();
    if (config_.fsync == fsync_mode::always || stop ||
        (config_.fsync == fsync_mode::interval &&
         (flushing || now - last_sync >= config_.fsync_interval))) {
      sync_all(w);
      last_sync = now;
    } else if (config_.fsync == fsync_mode::never) {
      for (auto& j : w.unsynced) {
        j->in_unsynced = false;
        if (!j->gone) j->durable_seq.store(j->written_seq);
      }
      w.unsynced.clear();
    }
    // Looking for deletable files costs a pass over every file's streams: at
    // most once a second (and on a flush, and at the end).
    if (w.gc_wanted && (flushing || stop || now - last_collect >= std::chrono::seconds(1))) {
      collect(w);
      last_collect = now;
    }
    enforce_budget(w);
    ++w.stats.rounds;
    {
      std::lock_guard l(q.m);
      for (auto& wt : q.waiters) {
        if (wt.j->failed.load() || wt.j->erased.load() || wt.j->gone ||
            wt.j->durable_seq.load() >= wt.seq)
          ready.push_back(std::move(wt));
        else
          waiters.push_back(std::move(wt));
      }
      q.waiters.swap(waiters);
      waiters.clear();
      q.stats = w.stats;
      if (flush_target > q.flush_done) {
        q.flush_done = flush_target;
        q.flushed.notify_all();
      }
    }
    for (auto& wt : ready)
      wt.done(!wt.j->failed.load() && !wt.j->erased.load() && wt.j->durable_seq.load() >= wt.seq);
    ready.clear();
    if (stop) break;
  }
  flush_wbuf(w);
  close_active(w, true);
  // Nobody will complete these any more.
  std::vector<queue::waiter> left;
  {
    std::lock_guard l(q.m);
    left.swap(q.waiters);
    q.stats = w.stats;
    q.flush_done = q.flush_requests;
    q.flushed.notify_all();
  }
  for (auto& wt : left) wt.done(false);
}

namespace {

// Puts into `log` the events memory keeps (its retention, counted from the
// newest), read back from j's runs. False when a run cannot be read.
bool restore_tail(journal_t& j, core::stream_log& log, core::retention_limits retention) {
  std::size_t start = j.runs.size();
  std::uint64_t events = 0, bytes = 0;
  while (start > 0 && events < retention.max_events && bytes < retention.max_bytes) {
    --start;
    events += j.runs[start].events;
    bytes += j.runs[start].sse_bytes;
  }
  const std::uint64_t want_from =
      j.written_seq >= retention.max_events ? j.written_seq - retention.max_events + 1 : 1;
  std::string buf;
  for (std::size_t i = start; i < j.runs.size(); ++i) {
    const run& v = j.runs[i];
    read_fd fd;
    v.file->open_for_read(fd);
    if (fd.fd < 0 || !pread_all(fd.fd, buf, v.offset, v.length)) {
      spdlog::error("durable log: cannot read {}: {}", v.file->path.string(), errno_text(errno));
      return false;
    }
    std::size_t pos = 0;
    parsed_record rec;
    while (next_record(buf, pos, rec) == parse_status::ok) {
      record_events ev;
      if ((rec.type != record_type::event && rec.type != record_type::events) || !ev.open(rec) ||
          ev.last_seq() < want_from)
        continue;
      event_index ix;
      std::string_view sse;
      while (ev.next(ix, sse))
        if (ix.seq >= want_from)
          log.restore_event({ix.seq, ix.publish_us, sse, ix.delta_key, ix.json_offset,
                             ix.text_begin, ix.text_end});
    }
  }
  return true;
}

}  // namespace

recovery_stats durable_log::recover(core::stream_registry& registry) {
  retention_ = registry.config().retention;
  recovery_stats st;
  st.unclean = !clean_start_;
  const std::int64_t now_us = core::realtime_us();
  auto rec = std::make_shared<recovered>();
  const fs::path log_dir = config_.dir / "log";
  std::error_code ec;
  if (fs::exists(config_.dir / "streams", ec))
    spdlog::warn(
        "durable log: {} holds a streams/ folder (the per-stream file layout of earlier "
        "versions); it is not read: streams are kept in {} now",
        config_.dir.string(), log_dir.string());
  std::vector<std::pair<std::uint64_t, fs::path>> files;
  for (const auto& fe : fs::directory_iterator(log_dir, ec))
    if (auto n = parse_segment_name(fe.path().filename().string()))
      files.emplace_back(*n, fe.path());
  std::sort(files.begin(), files.end());

  // The live incarnation of each id while scanning; erased ones leave it.
  std::unordered_map<std::string, std::shared_ptr<journal>> current;
  std::string data;
  for (const auto& [no, path] : files) {
    rec->next_no = no + 1;
    if (!read_file(path, data)) {
      // Kept as it is: streams with records in it continue after a gap.
      spdlog::error("durable log: cannot read {}: {}", path.string(), errno_text(errno));
      continue;
    }
    segment_info seg{std::make_shared<seg_file>(no, path), 0, {}};
    std::unordered_map<std::uint32_t, std::shared_ptr<journal>> keys;
    std::vector<std::shared_ptr<journal>> here;  // streams with records in this file
    std::size_t pos = 0;
    parsed_record r;
    parse_status ps;
    while ((ps = next_record(data, pos, r)) == parse_status::ok) {
      const std::size_t start = pos - record_header_bytes - r.payload.size();
      const auto n = static_cast<std::uint32_t>(pos - start);
      bool bad = false;
      if (r.type == record_type::meta) {
        std::uint32_t key = 0;
        auto m = decode_meta(r, &key);
        if (!m || !core::is_valid_stream_id(m->id)) {
          bad = true;
        } else {
          auto& j = current[m->id];
          if (!j) j = std::make_shared<journal>(queue_, queue_->next_key.fetch_add(1));
          j->meta = std::move(*m);
          if (j->cur_seg != no) {
            j->cur_seg = no;
            j->cur_entry = seg.entries.size();
            seg.entries.push_back({j, 0, 0, false});
            ++j->seg_count;
            here.push_back(j);
          }
          keys[key] = j;
          stage(*j, seg.file, start, n, 0, 0, 0);
        }
      } else if (r.type == record_type::event || r.type == record_type::events) {
        record_events ev;
        auto k = ev.open(r) ? keys.find(ev.stream()) : keys.end();
        if (k == keys.end() || k->second->ended ||
            (k->second->written_seq != 0 && ev.first_seq() <= k->second->written_seq)) {
          bad = true;  // no meta before it, after the final event, or out of order
        } else {
          journal& j = *k->second;
          if (j.written_seq != 0 && ev.first_seq() != j.written_seq + 1) {
            // A stretch is missing (a deleted or unreadable older file): the
            // stream's history starts after it.
            j.runs.clear();
            j.total_events = j.total_sse = 0;
            j.had_gap = true;
          }
          stage(j, seg.file, start, n, ev.first_seq(), ev.count(), ev.sse_bytes());
          auto& e = seg.entries[j.cur_entry];
          if (e.first_seq == 0) e.first_seq = ev.first_seq();
          e.last_seq = ev.last_seq();
          j.written_seq = ev.last_seq();
          if (ev.end_state() != core::stream_state::open) {
            j.ended = true;
            j.end_state = ev.end_state();
            j.finished_us = ev.publish_us();
          }
        }
      } else {
        std::string_view id;
        if (!decode_erased(r, id)) {
          bad = true;
        } else if (auto c = current.find(std::string(id)); c != current.end()) {
          auto j = c->second;
          current.erase(c);
          j->staged.clear();
          forget(*j);
          j->tombstoned = true;
          seg.entries.push_back({j, 0, 0, true});
          std::erase_if(keys, [&](const auto& kv) { return kv.second == j; });
        }
      }
      if (bad) {
        pos = start;
        ps = parse_status::corrupt;
        break;
      }
    }
    if (ps != parse_status::end) {
      // A torn tail (a crash mid-write) or a corrupt record: keep what
      // precedes it, drop the rest of this file.
      spdlog::warn("durable log: {} record at byte {} of {}; truncated there",
                   ps == parse_status::torn ? "torn" : "corrupt", pos, path.filename().string());
      ++st.torn_tails;
      if (::truncate(path.c_str(), static_cast<off_t>(pos)) != 0)
        spdlog::error("durable log: cannot truncate {}: {}", path.string(), errno_text(errno));
    }
    seg.bytes = pos;
    for (auto& j : here) publish_staged(*j);
    if (seg.bytes == 0) {
      fs::remove(path, ec);
      continue;
    }
    rec->segs.push_back(std::move(seg));
  }

  std::vector<std::shared_ptr<core::stream_log>> to_interrupt;
  for (auto& [id, j] : current) {
    const core::stream_meta& meta = j->meta;
    const std::int64_t ttl =
        meta.finished_ttl_us > 0 ? meta.finished_ttl_us : registry.config().finished_ttl_us;
    auto drop = [&, jp = j] {
      forget(*jp);
      rec->to_tombstone.push_back(jp);
    };
    if (j->ended && now_us - j->finished_us >= ttl) {
      drop();
      ++st.expired;
      continue;
    }
    if (j->written_seq == 0 && !meta.local_producer) {
      drop();
      ++st.dropped;
      continue;
    }
    auto log = registry.restore(meta);
    if (!log) {
      drop();
      ++st.dropped;
      continue;
    }
    if (!restore_tail(*j, *log, retention_)) j->failed.store(true);
    if (j->ended) log->restore_end(j->end_state, j->finished_us);
    st.events += j->total_events;
    if (j->had_gap) ++st.gaps;
    j->latest_meta = meta;
    j->durable_seq.store(j->written_seq);
    j->horizon.store(j->runs.empty() ? 0 : j->runs.front().first_seq);
    log->attach_journal(j);
    // After an unclean stop, events readers saw (or that were acknowledged,
    // with fsync interval/never) may be missing: the stream goes on in a new
    // epoch from here, so a resume past what is on disk is refused
    // (history_truncated) instead of continuing into different events. The
    // meta record goes to disk before anything appended after it.
    if (!clean_start_ && !j->ended) {
      log->begin_epoch(core::random_epoch());
      ++st.new_epochs;
    }
    ++st.streams;
    if (!j->ended && meta.local_producer) to_interrupt.push_back(log);
  }
  // Readers open the files again when they need them.
  for (auto& s : rec->segs) s.file->release();
  st.segments = rec->segs.size();
  recovered_ = std::move(rec);
  start_writer();
  registry.attach_store(shared_from_this());
  const std::string interrupted =
      "{\"code\":\"interrupted\",\"error\":\"the server restarted while this run was producing; "
      "it will not continue\",\"message\":\"the server restarted while this run was producing; "
      "it will not continue\"}";
  for (auto& log : to_interrupt)
    if (log->publish("error", interrupted, true).status == core::publish_status::ok)
      ++st.interrupted;
  return st;
}

}  // namespace sluice::store
