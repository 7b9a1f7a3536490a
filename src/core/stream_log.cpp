#include "core/stream_log.hpp"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>

namespace sluice::core {
namespace {

constexpr std::size_t first_segment_capacity = 4096;
constexpr std::size_t max_segment_capacity = 64 * 1024;

// Whether `data` has a line break (CR or LF). JSON data, the common case,
// has none (JSON escapes them): two vectorised memchr scans instead of a
// scan per byte.
bool has_line_break(std::string_view data) {
  return std::memchr(data.data(), '\n', data.size()) != nullptr ||
         std::memchr(data.data(), '\r', data.size()) != nullptr;
}

// Size of "event: T\n" + data lines + "\n" for (type, data), as append_sse_fields
// frames it; `breaks`: has_line_break(data).
std::size_t fields_size(std::string_view type, std::string_view data, bool breaks) {
  std::size_t n = 0;
  if (type != default_event_type) n += 8 + type.size();  // "event: " + T + "\n"
  if (!breaks) return n + 7 + data.size() + 1;           // "data: " + data + "\n" + "\n"
  std::size_t lines = 1;
  std::size_t break_bytes = 0;
  for (std::size_t i = 0; i < data.size(); ++i) {
    char c = data[i];
    if (c == '\n' || c == '\r') {
      ++lines;
      ++break_bytes;
      if (c == '\r' && i + 1 < data.size() && data[i + 1] == '\n') {
        ++i;
        ++break_bytes;
      }
    }
  }
  // Each line: "data: " + "\n"; the line-break bytes themselves are not copied.
  return n + lines * 7 + (data.size() - break_bytes) + 1;
}

char* put(char* p, std::string_view s) {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

// Writes the same bytes as append_sse_fields + "\n" without allocating.
// `breaks`: has_line_break(data).
char* put_fields(char* p, std::string_view type, std::string_view data, bool breaks) {
  if (type != default_event_type) {
    p = put(p, "event: ");
    p = put(p, type);
    *p++ = '\n';
  }
  if (!breaks) {
    p = put(p, "data: ");
    p = put(p, data);
    *p++ = '\n';
    *p++ = '\n';
    return p;
  }
  std::size_t start = 0;
  for (;;) {
    std::size_t pos = data.find_first_of("\r\n", start);
    p = put(p, "data: ");
    if (pos == std::string_view::npos) {
      p = put(p, data.substr(start));
      *p++ = '\n';
      break;
    }
    p = put(p, data.substr(start, pos - start));
    *p++ = '\n';
    start = pos + 1;
    if (data[pos] == '\r' && start < data.size() && data[start] == '\n') ++start;
  }
  *p++ = '\n';
  return p;
}

// "id: N\n" or "id: N-E\n" (see event_id.hpp).
char* put_id(char* p, std::uint64_t seq, std::string_view epoch) {
  p = put(p, "id: ");
  p = std::to_chars(p, p + 24, seq).ptr;
  if (!epoch.empty()) {
    *p++ = '-';
    p = put(p, epoch);
  }
  *p++ = '\n';
  return p;
}

}  // namespace

std::string_view to_string(stream_state s) {
  switch (s) {
    case stream_state::open:
      return "open";
    case stream_state::finished:
      return "finished";
    case stream_state::cancelled:
      return "cancelled";
  }
  return "unknown";
}

std::int64_t realtime_us() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

log_segment::log_segment(std::size_t cap)
    : capacity(static_cast<std::uint32_t>(segment_memory::round_up(cap))),
      bytes(segment_memory::allocate(cap)) {}

void read_batch::clear() {
  spans.clear();
  pins.clear();
  owned.clear();
  first_seq = last_seq = 0;
  bytes = sse_events = coalesced_events = 0;
  oldest_publish_us = 0;
  final = false;
}

stream_log::stream_log(std::string id, retention_limits limits, std::string owner,
                       std::shared_ptr<std::atomic<std::int64_t>> memory)
    : id_(std::move(id)),
      owner_(std::move(owner)),
      limits_(limits),
      created_us_(realtime_us()),
      memory_(std::move(memory)) {
  last_activity_us_ = created_us_;
  unread_since_us_ = created_us_;
}

void stream_log::cancel_when_unread(std::int64_t grace_us) {
  std::lock_guard lock(mutex_);
  unread_grace_us_ = grace_us;
  if (journal_) journal_->meta_changed(meta_locked());
}

void stream_log::keep_finished_for(std::int64_t ttl_us) {
  std::lock_guard lock(mutex_);
  finished_ttl_us_ = ttl_us;
  if (journal_) journal_->meta_changed(meta_locked());
}

stream_log::~stream_log() {
  assert(subscribers_.empty());
  if (memory_)
    memory_->fetch_sub(static_cast<std::int64_t>(retained_bytes_), std::memory_order_relaxed);
}

void stream_log::account_locked(std::size_t retained_before) {
  if (memory_ && retained_bytes_ != retained_before)
    memory_->fetch_add(
        static_cast<std::int64_t>(retained_bytes_) - static_cast<std::int64_t>(retained_before),
        std::memory_order_relaxed);
}

char* stream_log::reserve_locked(std::size_t size, bool delta, std::uint32_t& segment_no,
                                 std::uint32_t& offset) {
  const std::size_t layout = delta ? sizeof(delta_layout) : 0;
  size += layout;
  log_segment* seg = segments_.empty() ? nullptr : segments_.back().get();
  if (seg == nullptr || seg->capacity - seg->size < size) {
    std::size_t cap = seg == nullptr
                          ? first_segment_capacity
                          : std::min<std::size_t>(seg->capacity * 2u, max_segment_capacity);
    cap = std::max(cap, size);
    segments_.push_back(std::make_shared<log_segment>(cap));
    seg = segments_.back().get();
  }
  segment_no = first_segment_no_ + static_cast<std::uint32_t>(segments_.size() - 1);
  offset = seg->size + static_cast<std::uint32_t>(layout);
  return seg->bytes + offset;
}

stream_log::delta_layout stream_log::delta_layout_locked(const entry& e) const {
  assert(e.delta_key != 0);
  delta_layout d;
  std::memcpy(&d, bytes_locked(e) - sizeof d, sizeof d);
  return d;
}

std::uint32_t stream_log::intern_delta_key_locked(const delta_event& d) {
  // Only equality of adjacent entries matters (see read()): the previous
  // delta is the only one a new delta can merge with. Numbers wrap past 0,
  // which means "not a delta"; neighbours always differ by one.
  // (Held by pointer: most streams have no deltas, and an idle stream is
  // smaller without three empty strings.)
  if (!last_delta_key_) last_delta_key_ = std::make_unique<delta_key_info>();
  const delta_key_info& k = *last_delta_key_;
  if (last_delta_no_ != 0 && k.message_id == d.message_id && k.field == d.field && k.type == d.type)
    return last_delta_no_;
  *last_delta_key_ = {d.message_id, d.field, d.type};
  last_delta_no_ = last_delta_no_ == UINT32_MAX ? 1 : last_delta_no_ + 1;
  return last_delta_no_;
}

publish_outcome stream_log::append_locked(const publish_item& item, std::int64_t now_us) {
  const std::uint64_t seq = next_seq_;
  std::string_view type = item.delta ? std::string_view(item.delta->type) : item.type;
  std::string_view data = item.delta ? std::string_view(item.delta->json) : item.data;
  const std::string_view epoch = epochs_ ? std::string_view(epochs_->current) : std::string_view();
  const std::size_t id_len =
      5 + static_cast<std::size_t>(decimal_digits(seq)) + (epoch.empty() ? 0 : 1 + epoch.size());
  const bool breaks = has_line_break(data);
  const std::size_t size = id_len + fields_size(type, data, breaks);

  entry e{};
  char* p = reserve_locked(size, item.delta != nullptr, e.segment_no, e.offset);
  char* end = put_fields(put_id(p, seq, epoch), type, data, breaks);
  assert(static_cast<std::size_t>(end - p) == size);
  (void)end;
  e.length = static_cast<std::uint32_t>(size);
  e.publish_us = now_us;
  if (item.delta) {
    e.delta_key = intern_delta_key_locked(*item.delta);
    // Delta JSON is one line: id line, optional event line, then "data: ".
    std::size_t event_line = type == default_event_type ? 0 : 8 + type.size();
    const delta_layout d{static_cast<std::uint32_t>(id_len + event_line + 6),
                         item.delta->text_begin, item.delta->text_end};
    std::memcpy(p - sizeof d, &d, sizeof d);
  }
  // Publish the bytes: size is only read under the mutex.
  segments_.back()->size = e.offset + e.length;
  entries_.push_back(e);
  retained_bytes_ += size;
  ++next_seq_;
  return {publish_status::ok, seq, seq};
}

void stream_log::trim_locked() {
  // Always keep the newest event so a finished stream can still be replayed.
  while (retained_count_locked() > 1 &&
         (retained_count_locked() > limits_.max_events || retained_bytes_ > limits_.max_bytes)) {
    retained_bytes_ -= entries_[0].length;
    entries_.pop_front();
    ++first_seq_;
  }
  // Drop segments no retained event lives in (readers may still pin them).
  const std::uint32_t oldest_needed = entries_[0].segment_no;
  while (first_segment_no_ < oldest_needed) {
    segments_.erase(segments_.begin());
    ++first_segment_no_;
  }
}

void stream_log::notify_locked() {
  if (waiting_count_ != 0) {
    for (subscription* s : subscribers_) {
      if (s->waiting_) {
        s->waiting_ = false;
        s->waiter_.on_stream_ready();
      }
    }
    waiting_count_ = 0;
  }
  check_drain_locked();
}

void stream_log::check_drain_locked() {
  if (!drain_waiter_) return;
  bool drained = state_ != stream_state::open;
  if (!drained) {
    std::uint64_t min_next = next_seq_;
    for (const subscription* s : subscribers_) min_next = std::min(min_next, s->next_seq_);
    drained = next_seq_ - min_next <= drain_max_lag_;
  }
  if (drained) {
    auto fn = std::move(drain_waiter_);
    drain_waiter_ = nullptr;
    fn();
  }
}

void stream_log::end_locked(stream_state s, std::int64_t now_us) {
  state_ = s;
  finished_us_ = now_us;
}

publish_outcome stream_log::publish(std::string_view type, std::string_view data, bool final) {
  publish_item item{type, data, final, nullptr};
  return publish_all(std::span<const publish_item>(&item, 1));
}

publish_outcome stream_log::publish(const delta_event& delta, bool final) {
  publish_item item{delta.type, delta.json, final, &delta};
  return publish_all(std::span<const publish_item>(&item, 1));
}

publish_outcome stream_log::publish_all(std::span<const publish_item> items) {
  const std::int64_t now = realtime_us();
  std::lock_guard lock(mutex_);
  if (state_ != stream_state::open) return {publish_status::stream_ended, 0, 0};
  publish_outcome out{};
  // Nothing to append: trim_locked() below assumes at least one retained event.
  if (items.empty()) return out;
  const std::size_t retained_before = retained_bytes_;
  for (const publish_item& item : items) {
    publish_outcome one = append_locked(item, now);
    if (out.first_sequence == 0) out.first_sequence = one.first_sequence;
    out.last_sequence = one.last_sequence;
    if (item.final) {
      end_locked(stream_state::finished, now);
      break;
    }
  }
  last_activity_us_ = now;
  if (journal_) journal_appended_locked(out.first_sequence, items);
  trim_locked();
  account_locked(retained_before);
  notify_locked();
  return out;
}

publish_outcome stream_log::append_mirrored(std::uint64_t first_seq,
                                            std::span<const publish_item> items,
                                            stream_state end_state) {
  const std::int64_t now = realtime_us();
  std::lock_guard lock(mutex_);
  if (state_ != stream_state::open || items.empty() || first_seq == 0)
    return {publish_status::stream_ended, 0, 0};
  if (retained_count_locked() == 0 && next_seq_ == 1)
    first_seq_ = next_seq_ = first_seq;
  else if (first_seq != next_seq_)
    return {publish_status::stream_ended, 0, 0};
  publish_outcome out{};
  const std::size_t retained_before = retained_bytes_;
  for (const publish_item& item : items) {
    publish_outcome one = append_locked(item, now);
    if (out.first_sequence == 0) out.first_sequence = one.first_sequence;
    out.last_sequence = one.last_sequence;
  }
  if (end_state != stream_state::open) end_locked(end_state, now);
  last_activity_us_ = now;
  if (journal_) journal_appended_locked(out.first_sequence, items);
  trim_locked();
  account_locked(retained_before);
  notify_locked();
  return out;
}

void stream_log::set_read_elsewhere(bool read) {
  std::lock_guard lock(mutex_);
  if (read_elsewhere_ == read) return;
  read_elsewhere_ = read;
  if (!read) unread_since_us_ = realtime_us();
}

bool stream_log::cancel(std::string_view reason) {
  std::vector<std::pair<std::uint64_t, std::function<void()>>> handlers;
  {
    const std::int64_t now = realtime_us();
    std::lock_guard lock(mutex_);
    if (state_ != stream_state::open) return false;
    // {"reason":"..."} with the reason escaped as a JSON string.
    std::string data = "{\"reason\":\"";
    for (unsigned char c : reason) {
      if (c == '"' || c == '\\') {
        data.push_back('\\');
        data.push_back(static_cast<char>(c));
      } else if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        data.append(buf);
      } else {
        data.push_back(static_cast<char>(c));
      }
    }
    data.append("\"}");
    publish_item item{"cancelled", data, true, nullptr};
    end_cancelled_locked(item, now, handlers);
  }
  for (auto& [id, fn] : handlers) fn();
  return true;
}

void stream_log::end_cancelled_locked(
    const publish_item& item, std::int64_t now,
    std::vector<std::pair<std::uint64_t, std::function<void()>>>& handlers) {
  const std::size_t retained_before = retained_bytes_;
  const publish_outcome appended = append_locked(item, now);
  end_locked(stream_state::cancelled, now);
  last_activity_us_ = now;
  if (journal_) journal_appended_locked(appended.first_sequence);
  trim_locked();
  account_locked(retained_before);
  notify_locked();
  handlers.swap(cancel_handlers_);
}

bool stream_log::end_if_unpublished(std::string_view type, std::string_view data) {
  std::vector<std::pair<std::uint64_t, std::function<void()>>> handlers;
  {
    const std::int64_t now = realtime_us();
    std::lock_guard lock(mutex_);
    if (state_ != stream_state::open || next_seq_ != 1) return false;
    publish_item item{type, data, true, nullptr};
    end_cancelled_locked(item, now, handlers);
  }
  for (auto& [id, fn] : handlers) fn();
  return true;
}

std::uint64_t stream_log::on_cancel(std::function<void()> handler) {
  std::unique_lock lock(mutex_);
  if (state_ == stream_state::cancelled) {
    lock.unlock();
    handler();
    return 0;
  }
  const std::uint64_t id = next_handler_id_++;
  cancel_handlers_.emplace_back(id, std::move(handler));
  return id;
}

void stream_log::remove_cancel_handler(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  std::erase_if(cancel_handlers_, [id](const auto& h) { return h.first == id; });
}

bool stream_log::wait_for_drain(std::size_t max_lag, std::function<void()> on_drained) {
  std::lock_guard lock(mutex_);
  drain_waiter_ = nullptr;
  if (state_ != stream_state::open) return true;
  std::uint64_t min_next = next_seq_;
  for (const subscription* s : subscribers_) min_next = std::min(min_next, s->next_seq_);
  if (next_seq_ - min_next <= max_lag) return true;
  drain_max_lag_ = max_lag;
  drain_waiter_ = std::move(on_drained);
  return false;
}

stream_status stream_log::status() const {
  std::lock_guard lock(mutex_);
  stream_status s;
  s.state = state_;
  const std::size_t n = retained_count_locked();
  s.first_sequence = n ? first_seq_ : 0;
  // With a store that keeps history, readers can start further back.
  if (journal_) {
    const std::uint64_t stored = journal_->first_stored_seq();
    if (stored != 0 && (s.first_sequence == 0 || stored < s.first_sequence))
      s.first_sequence = stored;
  }
  s.last_sequence = next_seq_ - 1;
  s.retained_events = n;
  s.retained_bytes = retained_bytes_;
  s.subscribers = subscribers_.size();
  s.created_us = created_us_;
  s.finished_us = finished_us_;
  s.last_activity_us = last_activity_us_;
  s.unread_since_us = subscribers_.empty() && !read_elsewhere_ ? unread_since_us_ : 0;
  s.unread_grace_us = unread_grace_us_;
  s.finished_ttl_us = finished_ttl_us_;
  if (epochs_) s.epochs = *epochs_;
  return s;
}

bool stream_log::set_epoch(std::string_view epoch) {
  if (!is_valid_epoch(epoch)) return false;
  std::lock_guard lock(mutex_);
  if (next_seq_ != 1) return false;
  if (!epochs_) epochs_ = std::make_unique<epoch_info>();
  epochs_->current = epoch;
  if (journal_) journal_->meta_changed(meta_locked());
  return true;
}

bool stream_log::begin_epoch(std::string_view new_epoch) {
  if (!is_valid_epoch(new_epoch)) return false;
  std::lock_guard lock(mutex_);
  if (!epochs_) epochs_ = std::make_unique<epoch_info>();
  if (epochs_->current == new_epoch) return true;
  if (epochs_->boundary != 0 && epochs_->boundary == next_seq_) {
    // The current epoch has no event (two restarts in a row): no id of it
    // exists, so the previous epoch and the boundary stay.
    epochs_->current = new_epoch;
  } else {
    epochs_->previous = std::move(epochs_->current);
    epochs_->current = new_epoch;
    epochs_->boundary = next_seq_;
  }
  // A run of deltas must not merge events of two epochs into one.
  last_delta_key_.reset();
  if (journal_) journal_->meta_changed(meta_locked());
  return true;
}

std::string stream_log::epoch() const {
  std::lock_guard lock(mutex_);
  return epochs_ ? epochs_->current : std::string();
}

epoch_info stream_log::epochs() const {
  std::lock_guard lock(mutex_);
  return epochs_ ? *epochs_ : epoch_info{};
}

stream_state stream_log::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

void stream_log::build_coalesced_locked(std::uint64_t from, std::uint64_t to,
                                        read_batch& out) const {
  const entry& last_entry = entry_at_locked(to);
  const delta_layout last = delta_layout_locked(last_entry);
  const char* last_bytes = bytes_locked(last_entry);
  const char* json = last_bytes + last.json_offset;
  const std::size_t json_len = last_entry.length - last.json_offset - 2;  // minus "\n\n"

  std::size_t text_total = 0;
  for (std::uint64_t s = from; s <= to; ++s) {
    const delta_layout d = delta_layout_locked(entry_at_locked(s));
    text_total += d.text_end - d.text_begin;
  }
  auto buf = std::make_unique<std::string>();
  std::string& o = *buf;
  o.reserve(last.json_offset + json_len + text_total + 64);
  // The id line (`to`, in its epoch), the event line (if any) and "data: "
  // are copied from the last event.
  o.append(last_bytes, last.json_offset);
  o.append("{\"coalesced\":[");
  char digits[24];
  o.append(digits, std::to_chars(digits, digits + sizeof digits, from).ptr);
  o.push_back(',');
  o.append(digits, std::to_chars(digits, digits + sizeof digits, to).ptr);
  o.append("],");
  o.append(json + 1, last.text_begin - 1);  // `"field":"` after the opening brace
  for (std::uint64_t s = from; s <= to; ++s) {
    const entry& e = entry_at_locked(s);
    const delta_layout d = delta_layout_locked(e);
    const char* b = bytes_locked(e) + d.json_offset;
    o.append(b + d.text_begin, d.text_end - d.text_begin);
  }
  o.append(json + last.text_end, json_len - last.text_end);
  o.append("\n\n");
  out.spans.push_back({o.data(), o.size()});
  out.bytes += o.size();
  out.owned.push_back(std::move(buf));
  ++out.sse_events;
  ++out.coalesced_events;
}

subscription::subscription(std::shared_ptr<stream_log> log, std::uint64_t next_seq,
                           stream_waiter& waiter, bool coalesce)
    : log_(std::move(log)), waiter_(waiter), next_seq_(next_seq), coalesce_(coalesce) {
  std::lock_guard lock(log_->mutex_);
  index_ = log_->subscribers_.size();
  log_->subscribers_.push_back(this);
  log_->last_activity_us_ = realtime_us();
}

subscription::~subscription() {
  std::lock_guard lock(log_->mutex_);
  auto& subs = log_->subscribers_;
  subs[index_] = subs.back();
  subs[index_]->index_ = index_;
  subs.pop_back();
  if (waiting_) --log_->waiting_count_;
  log_->last_activity_us_ = realtime_us();
  if (subs.empty()) log_->unread_since_us_ = log_->last_activity_us_;
  log_->check_drain_locked();
}

read_status subscription::read(read_batch& out, std::size_t max_bytes) {
  out.clear();
  stream_log& l = *log_;
  std::unique_lock lock(l.mutex_);
  const std::uint64_t head = l.next_seq_;  // one past the last sequence
  if (next_seq_ >= head) {
    if (l.state_ != stream_state::open) return read_status::ended;
    if (!waiting_) {
      waiting_ = true;
      ++l.waiting_count_;
    }
    return read_status::waiting;
  }
  if (next_seq_ < l.first_seq_) {
    if (l.journal_) {
      const std::uint64_t to = l.first_seq_ - 1;
      lock.unlock();  // the store's I/O runs without the stream's lock
      return read_history(out, max_bytes, to);
    }
    first_available_ = l.first_seq_;
    return read_status::window_exceeded;
  }

  const bool may_coalesce = coalesce_ && head - next_seq_ > 1;
  const log_segment* pinned = nullptr;
  read_span* open_span = nullptr;  // last span, extendable when contiguous
  const char* open_end = nullptr;
  out.first_seq = next_seq_;
  out.oldest_publish_us = l.entry_at_locked(next_seq_).publish_us;
  std::uint64_t s = next_seq_;
  while (s < head && (out.bytes == 0 || out.bytes < max_bytes)) {
    const stream_log::entry& e = l.entry_at_locked(s);
    if (may_coalesce && e.delta_key != 0 && s + 1 < head &&
        l.entry_at_locked(s + 1).delta_key == e.delta_key) {
      // Extend the run while it stays one message and within the batch budget.
      std::uint64_t run_end = s + 1;
      std::size_t run_bytes = e.length + l.entry_at_locked(run_end).length;
      while (run_end + 1 < head && run_bytes < max_bytes &&
             l.entry_at_locked(run_end + 1).delta_key == e.delta_key) {
        ++run_end;
        run_bytes += l.entry_at_locked(run_end).length;
      }
      l.build_coalesced_locked(s, run_end, out);
      open_span = nullptr;
      s = run_end + 1;
      continue;
    }
    const auto& seg = l.segments_[e.segment_no - l.first_segment_no_];
    const char* p = seg->bytes + e.offset;
    if (seg.get() != pinned) {
      out.pins.push_back(seg);
      pinned = seg.get();
    }
    if (open_span != nullptr && open_end == p) {
      open_span->size += e.length;
    } else {
      out.spans.push_back({p, e.length});
      open_span = &out.spans.back();
    }
    open_end = p + e.length;
    out.bytes += e.length;
    ++out.sse_events;
    ++s;
  }
  out.last_seq = s - 1;
  out.final = s == head && l.state_ != stream_state::open;
  next_seq_ = s;
  l.check_drain_locked();
  return read_status::data;
}

read_status subscription::read_history(read_batch& out, std::size_t max_bytes, std::uint64_t to) {
  stream_log& l = *log_;
  // journal_ is set before the stream is shared and never changes.
  if (!history_) history_ = l.journal_->open_history();
  auto bytes = std::make_unique<std::string>();
  history_cursor::result r;
  if (history_) r = history_->read(next_seq_, to, max_bytes, *bytes);
  std::lock_guard lock(l.mutex_);
  if (r.last_seq < next_seq_) {
    // Older than the store keeps too (or no history): the horizon is the
    // store's first event, else memory's.
    first_available_ =
        r.first_available != 0 && r.first_available > next_seq_ && r.first_available < l.first_seq_
            ? r.first_available
            : l.first_seq_;
    return read_status::window_exceeded;
  }
  out.first_seq = next_seq_;
  out.last_seq = r.last_seq;
  out.oldest_publish_us = r.first_publish_us;
  out.bytes = bytes->size();
  out.sse_events = r.events;
  out.spans.push_back({bytes->data(), bytes->size()});
  out.owned.push_back(std::move(bytes));
  out.final = false;  // memory always keeps the final event
  next_seq_ = r.last_seq + 1;
  l.check_drain_locked();
  return read_status::data;
}

bool stream_log::shed_history(std::size_t& freed) {
  std::lock_guard lock(mutex_);
  if (state_ == stream_state::open || !journal_ || !journal_->history_complete()) return false;
  const std::uint64_t first_stored = journal_->first_stored_seq();
  if (first_stored == 0 || first_stored > first_seq_) return false;  // the store lacks some
  if (retained_count_locked() <= 1) return true;                     // shed already
  // Keep only the final event, in a segment of its own size.
  // (A delta keeps its layout in front of its bytes.)
  const entry last = entry_at_locked(last_seq_locked());
  const std::size_t layout = last.delta_key != 0 ? sizeof(delta_layout) : 0;
  auto seg = std::make_shared<log_segment>(layout + last.length);
  std::memcpy(seg->bytes, bytes_locked(last) - layout, layout + last.length);
  seg->size = static_cast<std::uint32_t>(layout + last.length);
  const std::size_t before = retained_bytes_;
  entry e = last;
  e.offset = static_cast<std::uint32_t>(layout);
  e.segment_no = 0;
  entries_.clear();
  entries_.push_back(e);
  first_seq_ = next_seq_ - 1;
  segments_.assign(1, std::move(seg));
  segments_.shrink_to_fit();
  first_segment_no_ = 0;
  retained_bytes_ = last.length;
  account_locked(before);
  freed += before - retained_bytes_;
  return true;
}

stream_log::stream_log(const stream_meta& meta, retention_limits limits,
                       std::shared_ptr<std::atomic<std::int64_t>> memory)
    : id_(meta.id),
      owner_(meta.owner),
      limits_(limits),
      created_us_(meta.created_us),
      memory_(std::move(memory)) {
  last_activity_us_ = created_us_;
  unread_since_us_ = realtime_us();
  unread_grace_us_ = meta.unread_grace_us;
  finished_ttl_us_ = meta.finished_ttl_us;
  local_producer_ = meta.local_producer;
  if (!meta.epoch.empty() || meta.epoch_boundary != 0)
    epochs_ = std::make_unique<epoch_info>(
        epoch_info{meta.epoch, meta.previous_epoch, meta.epoch_boundary});
}

void stream_log::restore_event(const restored_event& r) {
  std::lock_guard lock(mutex_);
  assert(r.seq == next_seq_ || retained_count_locked() == 0);
  if (retained_count_locked() == 0) first_seq_ = r.seq;
  next_seq_ = r.seq;
  const std::size_t retained_before = retained_bytes_;
  entry e{};
  char* p = reserve_locked(r.sse.size(), r.delta_key != 0, e.segment_no, e.offset);
  std::memcpy(p, r.sse.data(), r.sse.size());
  e.length = static_cast<std::uint32_t>(r.sse.size());
  e.publish_us = r.publish_us;
  e.delta_key = r.delta_key;
  if (r.delta_key != 0) {
    const delta_layout d{r.json_offset, r.text_begin, r.text_end};
    std::memcpy(p - sizeof d, &d, sizeof d);
    // New deltas get numbers different from the last restored one.
    last_delta_no_ = r.delta_key;
    last_delta_key_ = {};
  }
  segments_.back()->size = e.offset + e.length;
  entries_.push_back(e);
  retained_bytes_ += e.length;
  ++next_seq_;
  last_activity_us_ = std::max(last_activity_us_, r.publish_us);
  trim_locked();
  account_locked(retained_before);
}

void stream_log::restore_end(stream_state s, std::int64_t finished_us) {
  std::lock_guard lock(mutex_);
  end_locked(s, finished_us);
}

void stream_log::attach_journal(std::shared_ptr<stream_journal> journal) {
  std::lock_guard lock(mutex_);
  journal_ = std::move(journal);
}

void stream_log::set_local_producer() {
  std::lock_guard lock(mutex_);
  local_producer_ = true;
  if (journal_) journal_->meta_changed(meta_locked());
}

stream_meta stream_log::meta() const {
  std::lock_guard lock(mutex_);
  return meta_locked();
}

stream_meta stream_log::meta_locked() const {
  stream_meta m;
  m.id = id_;
  m.owner = owner_;
  m.created_us = created_us_;
  m.unread_grace_us = unread_grace_us_;
  m.finished_ttl_us = finished_ttl_us_;
  m.local_producer = local_producer_;
  if (epochs_) {
    m.epoch = epochs_->current;
    m.previous_epoch = epochs_->previous;
    m.epoch_boundary = epochs_->boundary;
  }
  return m;
}

void stream_log::journal_appended_locked(std::uint64_t from, std::span<const publish_item> items) {
  for (std::uint64_t s = from; s < next_seq_; ++s) {
    const entry& e = entry_at_locked(s);
    const bool last = s + 1 == next_seq_;
    const std::size_t i = static_cast<std::size_t>(s - from);
    const delta_layout d = e.delta_key != 0 ? delta_layout_locked(e) : delta_layout{};
    journal_->appended(journal_event{s, e.publish_us, segments_[e.segment_no - first_segment_no_],
                                     e.offset, e.length, e.delta_key, d.json_offset, d.text_begin,
                                     d.text_end, last ? state_ : stream_state::open,
                                     i < items.size() ? items[i].delta : nullptr});
  }
}

}  // namespace sluice::core
