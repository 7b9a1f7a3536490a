#include "store/durable_log.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <deque>
#include <stdexcept>

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

std::string segment_name(std::uint64_t first_seq) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020llu.seg", static_cast<unsigned long long>(first_seq));
  return buf;
}

std::optional<std::uint64_t> parse_segment_name(const std::string& name) {
  if (name.size() != 24 || !name.ends_with(".seg")) return std::nullopt;
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(name.data(), name.data() + 20, v);
  if (ec != std::errc() || p != name.data() + 20) return std::nullopt;
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

struct pending_item {
  const core::log_segment* seg;  // null: a metadata change
  std::uint32_t offset;
  std::uint32_t length;
  event_index index;
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
  // write per stream).
  static constexpr std::uint64_t wake_bytes = 4u << 20;
  std::atomic<std::uint64_t> pending_bytes{0};
  std::atomic<bool> woken{false};
  // Some stream's writes failed: its events are not all on disk, so the stop
  // is not clean (see durable_log::clean_start_).
  std::atomic<bool> any_failed{false};
  std::uint64_t flush_requests = 0;                               // guarded by m
  std::uint64_t flush_done = 0;                                   // guarded by m
  std::vector<std::shared_ptr<journal>> dirty, created, deleted;  // guarded by m
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
  explicit journal(std::shared_ptr<queue> queue) : q(std::move(queue)) {}

  void appended(const core::journal_event& e) noexcept override {
    std::lock_guard l(m);
    if (horizon.load(std::memory_order_relaxed) == 0 && !gone_any.load(std::memory_order_relaxed))
      horizon.store(e.seq, std::memory_order_release);
    if (e.segment.get() != last_pinned) {
      pins.push_back(e.segment);
      last_pinned = e.segment.get();
    }
    pending.push_back({e.segment.get(), e.offset, e.length,
                       event_index{e.seq, e.publish_us, e.delta_key, e.json_offset, e.text_begin,
                                   e.text_end, e.end_state}});
    mark_dirty_locked();
    if (q->pending_bytes.fetch_add(e.length, std::memory_order_relaxed) + e.length >=
            queue::wake_bytes &&
        !q->woken.exchange(true, std::memory_order_relaxed)) {
      std::lock_guard ql(q->m);
      q->cv.notify_one();
    }
  }
  void meta_changed(const core::stream_meta& meta) noexcept override {
    std::lock_guard l(m);
    latest_meta = meta;
    pending.push_back({nullptr, 0, 0, {}});
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
  // Shared with publishers: guarded by m.
  std::mutex m;
  std::vector<pending_item> pending;
  std::vector<std::shared_ptr<const core::log_segment>> pins;
  // What the writer is writing this round: changed only by the writer, under
  // m (it reads them without m); readers copy from them under m.
  std::vector<pending_item> inflight;
  std::vector<std::shared_ptr<const core::log_segment>> inflight_pins;
  const core::log_segment* last_pinned = nullptr;
  core::stream_meta latest_meta;
  bool dirty = false;
  // Read by anyone.
  std::atomic<std::uint64_t> durable_seq{0};
  std::atomic<bool> failed{false};
  std::atomic<bool> erased{false};
  // History: the segment files as readers see them (bytes already written),
  // published by the writer after each write. Lock order: hm before m.
  using point = std::pair<std::uint64_t, std::uint64_t>;  // (seq, offset of its record)
  struct visible_segment {
    std::uint64_t first_seq = 0;
    std::uint64_t last_seq = 0;  // 0: no event written yet
    std::uint64_t bytes = 0;     // written
    fs::path path;
    std::vector<point> points;  // sparse, ascending (see point_spacing)
  };
  std::mutex hm;
  std::deque<visible_segment> visible;  // guarded by hm; mirrors segs
  // First sequence a history cursor can serve (0: none). Set by the first
  // append, moved on by deletions (under hm).
  std::atomic<std::uint64_t> horizon{0};
  std::atomic<bool> gone_any{false};  // all files deleted (budget, erased)
  // The writer thread's alone.
  struct segment_file {
    std::uint64_t first_seq = 0;
    std::uint64_t last_seq = 0;
    std::vector<point> new_points;  // not yet published to `visible`
    std::uint64_t last_point_offset = 0;
    bool has_point = false;
    std::uint64_t events = 0;
    std::uint64_t sse_bytes = 0;
    std::uint64_t file_bytes = 0;
    std::int64_t order = 0;  // creation time (ns): oldest deleted first by the disk budget
    fs::path path;
  };
  core::stream_meta meta;
  fs::path dir;
  int fd = -1;
  std::deque<segment_file> segs;
  std::uint64_t total_events = 0, total_sse = 0;
  std::uint64_t written_seq = 0;
  std::uint64_t next_seq = 1;
  bool dir_created = false;
  bool dir_needs_sync = false;
  bool needs_sync = false;
  bool in_unsynced = false;
  bool ended = false;
  std::int64_t finished_us = 0;
  bool gone = false;  // files deleted (erased, or dropped by the disk budget)
  std::uint64_t last_round = 0;
};

namespace {

// Everything only the writer thread touches.
struct writer_ctx {
  writer_ctx(const durable_config& c, core::retention_limits r, fs::path dir)
      : cfg(c), retention(r), streams_dir(std::move(dir)) {}
  const durable_config& cfg;
  core::retention_limits retention;
  fs::path streams_dir;
  std::vector<std::shared_ptr<durable_log::journal>> live;
  std::vector<std::shared_ptr<durable_log::journal>> unsynced;
  std::string wbuf;
  std::uint64_t round = 0;
  std::size_t open_files = 0;
  bool streams_dir_needs_sync = false;
  writer_stats stats;
  std::int64_t budget_warned_ns = 0;
};

using journal_t = durable_log::journal;

// A history read finds its start within this many bytes of a sparse index
// point, and reads at most this much per call (one pread, bounded I/O on the
// reader's thread).
constexpr std::uint64_t point_spacing = 32u << 10;
constexpr std::size_t history_chunk_bytes = 64u << 10;

// Makes what the writer has written to j's files visible to history readers.
void publish_visible(journal_t& j) {
  std::lock_guard l(j.hm);
  while (j.visible.size() < j.segs.size()) {
    const auto& s = j.segs[j.visible.size()];
    j.visible.push_back({s.first_seq, 0, 0, s.path, {}});
  }
  if (j.segs.empty()) return;
  auto& s = j.segs.back();
  auto& v = j.visible.back();
  v.last_seq = s.last_seq;
  v.bytes = s.file_bytes;
  v.points.insert(v.points.end(), s.new_points.begin(), s.new_points.end());
  s.new_points.clear();
}

void note_event_offset(journal_t::segment_file& seg, std::uint64_t seq, std::uint64_t offset) {
  if (!seg.has_point || offset - seg.last_point_offset >= point_spacing) {
    seg.new_points.emplace_back(seq, offset);
    seg.last_point_offset = offset;
    seg.has_point = true;
  }
  seg.last_seq = seq;
}

void mark_unsynced(writer_ctx& w, const std::shared_ptr<journal_t>& j) {
  if (j->in_unsynced) return;
  j->in_unsynced = true;
  w.unsynced.push_back(j);
}

void fail(journal_t& j, const char* what, int e) {
  j.q->any_failed.store(true);
  if (!j.failed.exchange(true))
    spdlog::error("durable log: {} for stream {} failed: {} (its events stay in memory only)", what,
                  core::log_escape(j.meta.id), errno_text(e));
}

void flush_wbuf(writer_ctx& w, const std::shared_ptr<journal_t>& j) {
  if (w.wbuf.empty()) return;
  if (j->fd >= 0 && !j->failed.load(std::memory_order_relaxed)) {
    if (write_all(j->fd, w.wbuf.data(), w.wbuf.size())) {
      w.stats.bytes_written += w.wbuf.size();
      j->needs_sync = true;
      mark_unsynced(w, j);
      publish_visible(*j);
    } else {
      fail(*j, "writing", errno);
    }
  }
  w.wbuf.clear();
}

void close_file(writer_ctx& w, journal_t& j) {
  if (j.fd < 0) return;
  if (j.needs_sync && w.cfg.fsync != fsync_mode::never) {
    if (::fdatasync(j.fd) != 0) fail(j, "fdatasync", errno);
    ++w.stats.syncs;
  }
  j.needs_sync = false;
  ::close(j.fd);
  j.fd = -1;
  --w.open_files;
}

void close_idle_files(writer_ctx& w) {
  for (auto& j : w.live)
    if (j->fd >= 0 && j->last_round != w.round) close_file(w, *j);
}

bool open_file(writer_ctx& w, journal_t& j, const fs::path& path, bool create) {
  if (w.open_files >= w.cfg.max_open_files) close_idle_files(w);
  int flags = O_WRONLY | O_APPEND | O_CLOEXEC;
  if (create) flags |= O_CREAT | O_TRUNC;
  j.fd = ::open(path.c_str(), flags, 0644);
  if (j.fd < 0) {
    fail(j, "opening a segment file", errno);
    return false;
  }
  ++w.open_files;
  return true;
}

void start_segment(writer_ctx& w, const std::shared_ptr<journal_t>& j, std::uint64_t first_seq) {
  flush_wbuf(w, j);
  close_file(w, *j);
  if (!j->dir_created) {
    std::error_code ec;
    fs::create_directory(j->dir, ec);
    if (ec) {
      fail(*j, "creating its folder", ec.value());
      return;
    }
    j->dir_created = true;
    w.streams_dir_needs_sync = true;
  }
  journal_t::segment_file seg{};
  seg.first_seq = first_seq;
  seg.path = j->dir / segment_name(first_seq);
  seg.order = now_ns();
  if (!open_file(w, *j, seg.path, true)) return;
  j->dir_needs_sync = true;
  mark_unsynced(w, j);
  const std::size_t before = w.wbuf.size();
  append_meta_record(w.wbuf, j->meta);
  seg.file_bytes = w.wbuf.size() - before;
  w.stats.disk_bytes += seg.file_bytes;
  ++w.stats.records_written;
  j->segs.push_back(std::move(seg));
}

void delete_segment_front(writer_ctx& w, journal_t& j) {
  auto& s = j.segs.front();
  {
    // Readers stop seeing it before it goes (one already reading keeps its fd).
    std::lock_guard l(j.hm);
    if (!j.visible.empty() && j.visible.front().first_seq == s.first_seq) j.visible.pop_front();
    if (j.segs.size() > 1) {
      j.horizon.store(j.segs[1].first_seq, std::memory_order_release);
    } else {
      j.gone_any.store(true);
      j.horizon.store(0, std::memory_order_release);
    }
  }
  std::error_code ec;
  fs::remove(s.path, ec);
  j.total_events -= s.events;
  j.total_sse -= s.sse_bytes;
  w.stats.disk_bytes -= s.file_bytes;
  j.segs.pop_front();
}

void delete_files(writer_ctx& w, journal_t& j) {
  if (j.gone) return;
  if (j.fd >= 0) {
    ::close(j.fd);
    j.fd = -1;
    --w.open_files;
  }
  j.needs_sync = false;
  {
    std::lock_guard l(j.hm);
    j.gone_any.store(true);
    j.horizon.store(0, std::memory_order_release);
    j.visible.clear();
  }
  while (!j.segs.empty()) delete_segment_front(w, j);
  std::error_code ec;
  fs::remove_all(j.dir, ec);
  j.gone = true;
}

// A stream keeps on disk its disk retention, and at least what its memory
// keeps: the oldest segment goes once the newer ones alone hold the limit.
void apply_retention(writer_ctx& w, journal_t& j) {
  const std::uint64_t max_events =
      std::max(w.retention.max_events, w.cfg.disk_retention.max_events);
  const std::uint64_t max_bytes = std::max(w.retention.max_bytes, w.cfg.disk_retention.max_bytes);
  while (j.segs.size() > 1) {
    const auto& s = j.segs.front();
    if (j.total_events - s.events >= max_events || j.total_sse - s.sse_bytes >= max_bytes)
      delete_segment_front(w, j);
    else
      break;
  }
}

void write_journal(writer_ctx& w, const std::shared_ptr<journal_t>& j) {
  core::stream_meta latest;
  {
    // The items stay readable (history readers) until they are written.
    std::lock_guard l(j->m);
    j->inflight.swap(j->pending);
    j->inflight_pins.swap(j->pins);
    j->last_pinned = nullptr;
    latest = j->latest_meta;
    j->dirty = false;
  }
  auto done = [&] {
    std::lock_guard l(j->m);
    j->inflight.clear();
    j->inflight_pins.clear();  // written: let memory retention free them
  };
  if (j->gone || j->erased.load(std::memory_order_relaxed)) {
    done();
    return;
  }
  j->last_round = w.round;
  for (const pending_item& it : j->inflight) {
    if (j->failed.load(std::memory_order_relaxed)) break;
    if (it.seg == nullptr) {
      j->meta = latest;
      if (j->segs.empty()) {
        start_segment(w, j, j->next_seq);
      } else {
        if (j->fd < 0 && !open_file(w, *j, j->segs.back().path, false)) break;
        const std::size_t before = w.wbuf.size();
        append_meta_record(w.wbuf, j->meta);
        j->segs.back().file_bytes += w.wbuf.size() - before;
        w.stats.disk_bytes += w.wbuf.size() - before;
        ++w.stats.records_written;
      }
      continue;
    }
    const event_index& ix = it.index;
    if (j->segs.empty() || j->segs.back().file_bytes >= w.cfg.segment_bytes) {
      start_segment(w, j, ix.seq);
      if (j->fd < 0) break;
    } else if (j->fd < 0 && !open_file(w, *j, j->segs.back().path, false)) {
      break;
    }
    const std::size_t before = w.wbuf.size();
    append_event_record(w.wbuf, ix, std::string_view(it.seg->bytes.get() + it.offset, it.length));
    const std::size_t n = w.wbuf.size() - before;
    auto& seg = j->segs.back();
    note_event_offset(seg, ix.seq, seg.file_bytes);
    ++seg.events;
    seg.sse_bytes += it.length;
    seg.file_bytes += n;
    ++j->total_events;
    j->total_sse += it.length;
    w.stats.disk_bytes += n;
    ++w.stats.records_written;
    j->written_seq = ix.seq;
    j->next_seq = ix.seq + 1;
    if (ix.end_state != core::stream_state::open) {
      j->ended = true;
      j->finished_us = ix.publish_us;
    }
    // Bound the buffer: one write per stream per round unless it is large.
    if (w.wbuf.size() >= (1u << 20)) flush_wbuf(w, j);
  }
  flush_wbuf(w, j);
  done();
  apply_retention(w, *j);
  if (w.cfg.fsync == fsync_mode::never) j->durable_seq.store(j->written_seq);
}

// Past this many files to sync in one round, one syncfs(2) of the data
// folder's file system replaces the per-file fdatasync and folder fsync calls
// (one system call instead of thousands when many streams are live).
constexpr std::size_t syncfs_threshold = 16;

void sync_all(writer_ctx& w) {
  if (w.unsynced.size() > syncfs_threshold) {
    const int fd = ::open(w.streams_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const bool ok = fd >= 0 && ::syncfs(fd) == 0;
    const int e = errno;
    if (fd >= 0) ::close(fd);
    ++w.stats.syncs;
    w.streams_dir_needs_sync = false;
    for (auto& j : w.unsynced) {
      j->in_unsynced = false;
      if (j->gone) continue;
      if (!ok) fail(*j, "syncfs", e);
      j->needs_sync = false;
      j->dir_needs_sync = false;
      j->durable_seq.store(j->written_seq);
    }
    w.unsynced.clear();
    return;
  }
  if (w.streams_dir_needs_sync) {
    fsync_dir(w.streams_dir);
    ++w.stats.syncs;
    w.streams_dir_needs_sync = false;
  }
  for (auto& j : w.unsynced) {
    j->in_unsynced = false;
    if (j->gone) continue;
    if (j->fd >= 0 && j->needs_sync) {
      if (::fdatasync(j->fd) != 0) fail(*j, "fdatasync", errno);
      ++w.stats.syncs;
    }
    j->needs_sync = false;
    if (j->dir_needs_sync) {
      if (!fsync_dir(j->dir)) fail(*j, "syncing its folder", errno);
      ++w.stats.syncs;
      j->dir_needs_sync = false;
    }
    j->durable_seq.store(j->written_seq);
  }
  w.unsynced.clear();
}

void enforce_budget(writer_ctx& w) {
  const std::uint64_t budget = w.cfg.disk_budget_bytes;
  if (budget == 0) return;
  while (w.stats.disk_bytes > budget) {
    // The oldest segment that is not a stream's newest.
    journal_t* best = nullptr;
    for (auto& j : w.live)
      if (!j->gone && j->segs.size() > 1 &&
          (best == nullptr || j->segs.front().order < best->segs.front().order))
        best = j.get();
    if (best != nullptr) {
      delete_segment_front(w, *best);
      continue;
    }
    // Then finished streams, oldest finished first (memory still serves them
    // until their TTL; a restart will not bring them back).
    for (auto& j : w.live)
      if (!j->gone && j->ended && (best == nullptr || j->finished_us < best->finished_us))
        best = j.get();
    if (best != nullptr) {
      delete_files(w, *best);
      continue;
    }
    const std::int64_t now = now_ns();
    if (now - w.budget_warned_ns > 60'000'000'000LL) {
      w.budget_warned_ns = now;
      spdlog::warn(
          "durable log: {} bytes on disk, over --disk-budget {}, and only open streams' "
          "newest segments are left",
          w.stats.disk_bytes, budget);
    }
    break;
  }
}

// Recovery: every kept file is readable history.
void restore_visible(journal_t& j) {
  std::lock_guard l(j.hm);
  for (auto& s : j.segs) {
    j.visible.push_back({s.first_seq, s.last_seq, s.file_bytes, s.path, std::move(s.new_points)});
    s.new_points.clear();
  }
  if (!j.segs.empty()) j.horizon.store(j.segs.front().first_seq, std::memory_order_release);
}

}  // namespace

// A reader's cursor into one stream's files. Each read does at most one
// pread of about max_bytes (<= 64 KiB), plus one to skip from a sparse index
// point (<= 32 KiB) or to fit a record larger than that, on the reader's own
// thread. Disk reads stay on the I/O thread, in these small bounded pieces,
// rather than on a pool: the history was written by this process and is
// usually in the page cache (a pread is then a memcpy), there is no hand-off
// and no second owner of the reader's state, and the subscriber's pump yields
// to other connections between writes, so one long replay cannot monopolise
// its thread. The files are append-only and a deleted file stays readable
// through an open fd, so no lock is held during I/O.
class durable_log::history final : public core::history_cursor {
 public:
  explicit history(std::shared_ptr<journal> j) : j_(std::move(j)) {}
  ~history() override { close_fd(); }

  result read(std::uint64_t from, std::uint64_t to, std::size_t max_bytes,
              std::string& out) override {
    result r;
    if (from > to) return r;
    max_bytes = std::clamp<std::size_t>(max_bytes, 1, history_chunk_bytes);
    std::uint64_t offset = 0, limit = 0, seg_first = 0;
    fs::path path;
    {
      std::lock_guard hl(j_->hm);
      const std::uint64_t horizon = j_->horizon.load(std::memory_order_acquire);
      r.first_available = horizon;
      if (horizon == 0 || from < horizon) return r;
      const auto& vis = j_->visible;
      auto it = std::upper_bound(
          vis.begin(), vis.end(), from,
          [](std::uint64_t seq, const journal::visible_segment& v) { return seq < v.first_seq; });
      if (it == vis.begin() || std::prev(it)->last_seq < from) {
        // Not in the files yet: the writer has it, or it is still pending.
        std::lock_guard ml(j_->m);
        copy_unwritten(j_->inflight, from, to, max_bytes, out, r);
        copy_unwritten(j_->pending, from, to, max_bytes, out, r);
        return r;
      }
      const journal::visible_segment& v = *std::prev(it);
      seg_first = v.first_seq;
      limit = v.bytes;
      if (cached_seg_ == seg_first && cached_seq_ == from) {
        offset = cached_off_;
      } else {
        auto p = std::upper_bound(
            v.points.begin(), v.points.end(), from,
            [](std::uint64_t seq, const journal::point& pt) { return seq < pt.first; });
        offset = p == v.points.begin() ? 0 : std::prev(p)->second;
      }
      if (fd_seg_ != seg_first || fd_ < 0) path = v.path;
    }
    if (!path.empty()) {
      close_fd();
      fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd_ < 0) return r;  // deleted meanwhile: the horizon has moved past it
      fd_seg_ = seg_first;
    }
    bool done = false;
    std::uint64_t record_size = 0;  // one record larger than a chunk: read exactly it
    while (!done && offset < limit) {
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(
          limit - offset, record_size != 0 ? record_size : max_bytes + record_header_bytes + 64));
      record_size = 0;
      if (!pread_all(offset, want)) {
        spdlog::error("durable log: reading {} failed: {}", path_text(), errno_text(errno));
        close_fd();
        return r;
      }
      std::size_t pos = 0, consumed = 0;
      parsed_record rec;
      parse_status ps;
      while ((ps = next_record(buf_, pos, rec)) == parse_status::ok) {
        if (rec.type == record_type::event) {
          event_index ix;
          std::string_view sse;
          if (!decode_event(rec, ix, sse)) {
            ps = parse_status::corrupt;
            break;
          }
          if (ix.seq > to || (ix.seq >= from && r.events != 0 && ix.seq != r.last_seq + 1)) {
            done = true;
            break;
          }
          if (ix.seq >= from) {
            if (r.events == 0) {
              if (ix.seq != from) {  // a hole: never written
                done = true;
                break;
              }
              r.first_publish_us = ix.publish_us;
            }
            out.append(sse);
            ++r.events;
            r.last_seq = ix.seq;
          }
        }
        consumed = pos;
        if (r.events != 0 && out.size() >= max_bytes) {
          done = true;
          break;
        }
      }
      if (ps == parse_status::corrupt) {
        spdlog::error("durable log: {}: unreadable record at byte {}", path_text(),
                      offset + consumed);
        close_fd();
        return r;
      }
      if (ps == parse_status::torn && consumed == 0) {
        // One record larger than the chunk: read exactly it next time round.
        std::uint32_t len = 0;
        if (buf_.size() >= 8) std::memcpy(&len, buf_.data() + 4, 4);  // little-endian host
        if (buf_.size() < 8 || len > max_record_payload ||
            record_header_bytes + std::uint64_t{len} <= buf_.size()) {
          spdlog::error("durable log: {}: bad record at byte {}", path_text(), offset);
          close_fd();
          return r;
        }
        record_size = record_header_bytes + std::uint64_t{len};
        continue;
      }
      offset += consumed;
      if (r.events != 0) done = true;  // one chunk per call
    }
    cached_seg_ = seg_first;
    cached_seq_ = r.last_seq + 1;
    cached_off_ = offset;
    // Done with this file (its end, or memory takes over): release the fd.
    if (offset >= limit || r.last_seq == to) close_fd();
    if (r.last_seq == to) std::string().swap(buf_);
    return r;
  }

 private:
  static void copy_unwritten(const std::vector<pending_item>& items, std::uint64_t from,
                             std::uint64_t to, std::size_t max_bytes, std::string& out, result& r) {
    for (const pending_item& it : items) {
      if (it.seg == nullptr) continue;
      const std::uint64_t seq = it.index.seq;
      const std::uint64_t want = r.events == 0 ? from : r.last_seq + 1;
      if (seq < want) continue;
      if (seq != want || seq > to || (r.events != 0 && out.size() >= max_bytes)) return;
      if (r.events == 0) r.first_publish_us = it.index.publish_us;
      out.append(it.seg->bytes.get() + it.offset, it.length);
      ++r.events;
      r.last_seq = seq;
    }
  }
  bool pread_all(std::uint64_t offset, std::size_t n) {
    buf_.resize(n);
    std::size_t got = 0;
    while (got < n) {
      const ssize_t k = ::pread(fd_, buf_.data() + got, n - got, static_cast<off_t>(offset + got));
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) return false;
      got += static_cast<std::size_t>(k);
    }
    return true;
  }
  std::string path_text() const { return j_->dir.string(); }
  void close_fd() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    fd_seg_ = 0;
  }

  std::shared_ptr<journal> j_;
  std::string buf_;
  int fd_ = -1;
  std::uint64_t fd_seg_ = 0;
  std::uint64_t cached_seg_ = 0, cached_seq_ = 0, cached_off_ = 0;
};

std::unique_ptr<core::history_cursor> durable_log::journal::open_history() {
  return std::make_unique<history>(shared_from_this());
}

durable_log::durable_log(durable_config config)
    : config_(std::move(config)), queue_(std::make_shared<queue>()) {
  queue_->wake_on_dirty = config_.fsync == fsync_mode::always;
  std::error_code ec;
  fs::create_directories(config_.dir / "streams", ec);
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
        "durable log: {} records, {} bytes written, {} syncs in {} rounds; {} bytes on disk",
        st.records_written, st.bytes_written, st.syncs, st.rounds, st.disk_bytes);
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

std::shared_ptr<core::stream_journal> durable_log::open_journal(const core::stream_meta& meta) {
  auto j = std::make_shared<journal>(queue_);
  j->dir = config_.dir / "streams" / ("s_" + meta.id);
  j->meta = meta;
  {
    std::lock_guard l(queue_->m);
    queue_->created.push_back(j);
  }
  j->meta_changed(meta);  // the first segment file is created with this
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
  writer_ctx w{config_, retention_, config_.dir / "streams"};
  w.live = std::move(recovered_);  // handed over before the thread started
  for (auto& j : w.live)
    for (auto& s : j->segs) w.stats.disk_bytes += s.file_bytes;
  auto last_sync = std::chrono::steady_clock::now();
  const auto write_delay =
      config_.write_delay.count() > 0 ? config_.write_delay : config_.fsync_interval;
  std::vector<std::shared_ptr<journal>> dirty, created, deleted;
  std::vector<queue::waiter> waiters, ready;
  for (;;) {
    std::uint64_t flush_target = 0;
    bool stop = false;
    {
      std::unique_lock l(q.m);
      auto wanted = [&] {
        return q.stop || q.flush_requests != q.flush_done || !q.deleted.empty() ||
               q.woken.load(std::memory_order_relaxed) ||
               (q.wake_on_dirty && (!q.dirty.empty() || !q.waiters.empty()));
      };
      if (q.wake_on_dirty)
        q.cv.wait(l, wanted);
      else
        q.cv.wait_for(l, write_delay, wanted);
      q.pending_bytes.store(0, std::memory_order_relaxed);
      q.woken.store(false, std::memory_order_relaxed);
      dirty.swap(q.dirty);
      created.swap(q.created);
      deleted.swap(q.deleted);
      flush_target = q.flush_requests;
      stop = q.stop;
    }
    ++w.round;
    for (auto& j : created) w.live.push_back(std::move(j));
    created.clear();
    for (auto& j : deleted) delete_files(w, *j);
    if (!deleted.empty())
      std::erase_if(w.live, [](const std::shared_ptr<journal>& j) { return j->gone; });
    deleted.clear();
    for (auto& j : dirty) write_journal(w, j);
    dirty.clear();
    const auto now = std::chrono::steady_clock::now();
    const bool flushing = flush_target != 0;
    if (config_.fsync == fsync_mode::always || stop ||
        (config_.fsync == fsync_mode::interval &&
         (flushing || now - last_sync >= config_.fsync_interval))) {
      sync_all(w);
      last_sync = now;
    } else if (config_.fsync == fsync_mode::never) {
      for (auto& j : w.unsynced) j->in_unsynced = false;
      w.unsynced.clear();
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
  for (auto& j : w.live) close_file(w, *j);
  // Nobody will complete these any more.
  std::vector<queue::waiter> left;
  {
    std::lock_guard l(q.m);
    left.swap(q.waiters);
    q.flush_done = q.flush_requests;
    q.flushed.notify_all();
  }
  for (auto& wt : left) wt.done(false);
}

recovery_stats durable_log::recover(core::stream_registry& registry) {
  retention_ = registry.config().retention;
  recovery_stats st;
  st.unclean = !clean_start_;
  const std::int64_t now_us = core::realtime_us();
  std::vector<std::shared_ptr<journal>> recovered;
  std::vector<std::shared_ptr<core::stream_log>> to_interrupt;
  std::string bytes;
  std::error_code ec;
  for (const auto& de : fs::directory_iterator(config_.dir / "streams", ec)) {
    const std::string name = de.path().filename().string();
    if (!de.is_directory() || !name.starts_with("s_")) continue;
    const std::string id = name.substr(2);
    if (!core::is_valid_stream_id(id)) continue;
    std::vector<std::pair<std::uint64_t, fs::path>> files;
    for (const auto& fe : fs::directory_iterator(de.path(), ec))
      if (auto n = parse_segment_name(fe.path().filename().string()))
        files.emplace_back(*n, fe.path());
    std::sort(files.begin(), files.end());

    auto j = std::make_shared<journal>(queue_);
    j->dir = de.path();
    j->dir_created = true;
    std::optional<core::stream_meta> meta;
    std::shared_ptr<core::stream_log> log;
    std::deque<std::string> contents;  // per file, kept while its events are restored
    struct ev {
      event_index ix;
      std::string_view sse;
    };
    std::vector<ev> events;
    std::uint64_t expected = 0;
    bool stop = false;
    core::stream_state state = core::stream_state::open;
    for (std::size_t i = 0; i < files.size(); ++i) {
      const fs::path& path = files[i].second;
      if (stop) {
        fs::remove(path, ec);
        continue;
      }
      contents.emplace_back();
      std::string& data = contents.back();
      if (!read_file(path, data)) {
        spdlog::error("durable log: cannot read {}: {}", path.string(), errno_text(errno));
        stop = true;
        fs::remove(path, ec);
        continue;
      }
      journal::segment_file seg{};
      seg.first_seq = files[i].first;
      seg.path = path;
      struct stat sb {};
      if (::stat(path.c_str(), &sb) == 0)
        seg.order =
            static_cast<std::int64_t>(sb.st_mtim.tv_sec) * 1'000'000'000 + sb.st_mtim.tv_nsec;
      std::size_t pos = 0;
      parsed_record r;
      parse_status ps;
      while ((ps = next_record(data, pos, r)) == parse_status::ok) {
        const std::size_t start = pos - record_header_bytes - r.payload.size();
        bool bad = false;
        if (r.type == record_type::meta) {
          auto m = decode_meta(r);
          if (!m || m->id != id)
            bad = true;
          else
            meta = std::move(m);
        } else {
          event_index ix;
          std::string_view sse;
          if (!meta || state != core::stream_state::open || !decode_event(r, ix, sse) ||
              (expected != 0 && ix.seq != expected))
            bad = true;
          else {
            events.push_back({ix, sse});
            expected = ix.seq + 1;
            state = ix.end_state;
            ++seg.events;
            seg.sse_bytes += sse.size();
            note_event_offset(seg, ix.seq, start);
          }
        }
        if (bad) {
          pos = start;
          ps = parse_status::corrupt;
          break;
        }
      }
      if (ps != parse_status::end) {
        // A torn tail or a corrupt record: keep what precedes it, drop the rest.
        spdlog::warn("durable log: stream {}: {} record at byte {} of {}; truncated there",
                     core::log_escape(id), ps == parse_status::torn ? "torn" : "corrupt", pos,
                     path.filename().string());
        ++st.torn_tails;
        if (::truncate(path.c_str(), static_cast<off_t>(pos)) != 0)
          spdlog::error("durable log: cannot truncate {}: {}", path.string(), errno_text(errno));
        data.resize(pos);
        stop = true;
      }
      seg.file_bytes = pos;
      if (seg.file_bytes == 0) {
        fs::remove(path, ec);
        continue;
      }
      j->total_events += seg.events;
      j->total_sse += seg.sse_bytes;
      j->segs.push_back(std::move(seg));
    }
    if (!meta) {
      fs::remove_all(de.path(), ec);
      ++st.dropped;
      continue;
    }
    const bool ended = state != core::stream_state::open;
    const std::int64_t finished_us = ended ? events.back().ix.publish_us : 0;
    const std::int64_t ttl =
        meta->finished_ttl_us > 0 ? meta->finished_ttl_us : registry.config().finished_ttl_us;
    if (ended && now_us - finished_us >= ttl) {
      fs::remove_all(de.path(), ec);
      ++st.expired;
      continue;
    }
    if (!ended && events.empty() && !meta->local_producer) {
      fs::remove_all(de.path(), ec);
      ++st.dropped;
      continue;
    }
    log = registry.restore(*meta);
    if (!log) continue;
    for (const ev& e : events)
      log->restore_event({e.ix.seq, e.ix.publish_us, e.sse, e.ix.delta_key, e.ix.json_offset,
                          e.ix.text_begin, e.ix.text_end});
    if (ended) log->restore_end(state, finished_us);
    st.events += events.size();
    j->meta = *meta;
    j->latest_meta = *meta;
    j->written_seq = events.empty() ? 0 : events.back().ix.seq;
    j->next_seq = j->written_seq + 1;
    j->durable_seq.store(j->written_seq);
    j->ended = ended;
    j->finished_us = finished_us;
    restore_visible(*j);
    log->attach_journal(j);
    // After an unclean stop, events readers saw (or that were acknowledged,
    // with fsync interval/never) may be missing: the stream goes on in a new
    // epoch from here, so a resume past what is on disk is refused
    // (history_truncated) instead of continuing into different events. The
    // meta record goes to disk before anything appended after it.
    if (!clean_start_ && !ended) {
      log->begin_epoch(core::random_epoch());
      ++st.new_epochs;
    }
    recovered.push_back(j);
    ++st.streams;
    if (!ended && meta->local_producer) to_interrupt.push_back(log);
  }
  recovered_ = std::move(recovered);
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
