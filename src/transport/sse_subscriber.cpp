#include "transport/sse_subscriber.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <cstdio>

#include "core/log_text.hpp"

namespace sluice::transport {
namespace {

constexpr std::string_view chunk_end = "\r\n";
constexpr std::string_view last_chunk = "0\r\n\r\n";
constexpr std::string_view heartbeat_comment = ": heartbeat\n\n";
constexpr std::string_view heartbeat_data = "data: heartbeat\n\n";
constexpr std::size_t max_discarded_bytes = 64 * 1024;
// Writes one subscriber may complete in one turn before it yields to the
// event loop (so a fast reader of a fast stream does not starve the others).
constexpr int max_inline_writes = 8;
// How long one pass over the ready list spends on the subscribers of one
// stream before the rest of them wait for the next pass, after the handlers
// queued meanwhile. A publish that wakes thousands of subscribers of one
// stream then does not hold the thread until every one is written: the
// publisher's next request, new connections and timers run between passes,
// and the subscribers pumped later carry everything published meanwhile in
// the same write, so fan-out batches itself instead of writing once per event
// per subscriber. The rest of that pass (other streams' subscribers queued
// after them too) goes first in the next pass; streams with one reader each
// are all pumped in one pass, as before. (Measured in docs/benchmarks.md,
// "Fan-out: the ready list drained per stream".)
constexpr std::int64_t drain_per_stream_us = 50;

std::string make_head(bool gzip, bool keep_alive, const std::string& extra) {
  std::string h =
      "HTTP/1.1 200 OK\r\n"
      "Content-Type: text/event-stream; charset=utf-8\r\n"
      "Cache-Control: no-cache\r\n"
      "X-Accel-Buffering: no\r\n"
      "Transfer-Encoding: chunked\r\n";
  if (gzip) h += "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n";
  if (!keep_alive) h += "Connection: close\r\n";
  h += extra;
  h += "\r\n";
  return h;
}

}  // namespace

sse_subscriber::sse_subscriber(worker& w, tcp_socket socket, connection_token token,
                               stream_reply reply, options opts)
    : worker_(w),
      socket_(std::move(socket)),
      token_(std::move(token)),
      sub_(std::move(reply.stream), reply.next_seq, *this, reply.coalesce),
      head_(make_head(opts.gzip, opts.keep_alive, reply.extra_headers)),
      scratch_(core::encode_sse_retry(w.ctx.config.retry_hint_ms) + reply.preamble),
      opened_us_(steady_us()),
      last_write_us_(opened_us_),
      gzip_wanted_(opts.gzip),
      keep_alive_(opts.keep_alive) {
  w.ctx.metrics.open_subscribers.fetch_add(1, std::memory_order_relaxed);
}

sse_subscriber::~sse_subscriber() {
  worker_.ctx.metrics.open_subscribers.fetch_sub(1, std::memory_order_relaxed);
}

void sse_subscriber::start() {
  boost::system::error_code ec;
  if (!socket_.non_blocking()) socket_.non_blocking(true, ec);  // (the accept set it)
  worker_.subscribers.push_back(*this);
  if (gzip_wanted_) {
    const auto& c = worker_.ctx.config;
    gzip_ = std::make_unique<gzip_stream>(c.gzip_level, c.gzip_window_bits, c.gzip_mem_level);
  }
  watch_peer();
  pump();
}

void sse_subscriber::on_stream_ready() noexcept {
  // Called under the stream's lock: never pump here (the read takes the lock).
  if (worker_.ioc.get_executor().running_in_this_thread()) {
    if (ready_hook::is_linked()) return;  // already queued
    worker_.ready.push_back(*this);
    post_drain(worker_);
    return;
  }
  if (auto self = weak_from_this().lock())
    net::post(worker_.ioc, [self = std::move(self)] { self->pump(); });
}

void sse_subscriber::post_drain(worker& w) {
  if (w.drain_posted) return;
  w.drain_posted = true;
  net::post(w.ioc, [&w] {
    w.drain_posted = false;
    drain_ready(w);
  });
}

void sse_subscriber::flush_ready(void* ctx) noexcept {
  auto& w = *static_cast<worker*>(ctx);
  if (w.ready.empty() || w.draining) return;
  try {
    drain_ready(w);
  } catch (const std::exception& e) {
    // What a posted drain would have let the worker's last line log; the
    // subscribers not pumped stay in the list for the posted drain.
    spdlog::error("sse: draining ready subscribers after a publish failed: {}",
                  core::log_escape(e.what()));
  }
}

void sse_subscriber::drain_ready(worker& w) {
  // This pass: everything queued now. A publish wakes a stream's subscribers
  // one after another, so one stream's subscribers are adjacent here.
  ready_list pass;
  pass.splice(pass.end(), w.ready);
  w.draining = true;
  try {
    drain_pass(w, pass);
    w.draining = false;
  } catch (...) {
    w.draining = false;
    // The subscribers not pumped yet stay queued (an intrusive list unlinks
    // what it still holds when it goes).
    w.ready.splice(w.ready.begin(), pass);
    if (!w.ready.empty()) post_drain(w);
    throw;
  }
  // A drain stays posted while the list is not empty.
  if (!w.ready.empty()) post_drain(w);
}

void sse_subscriber::drain_pass(worker& w, ready_list& pass) {
  const core::stream_log* stream = nullptr;
  std::int64_t run_began = 0;
  while (!pass.empty()) {
    sse_subscriber& s = pass.front();
    const core::stream_log* of = &s.sub_.log();
    if (of != stream) {
      stream = of;
      run_began = 0;  // the clock is read from a stream's second subscriber on
    } else if (run_began == 0) {
      run_began = steady_us();
    } else if (steady_us() - run_began >= drain_per_stream_us) {
      // The rest of this pass goes first in the next one (one splice, not a
      // move per subscriber: a fan-out stream has thousands of them).
      w.ready.splice(w.ready.begin(), pass);
      break;
    }
    pass.pop_front();
    if (auto self = s.weak_from_this().lock()) self->pump();
  }
}

void sse_subscriber::pump() {
  for (int round = 0; round < max_inline_writes; ++round) {
    if (writing_ || closed_ || terminator_sent_) return;
    metrics_shard& m = worker_.ctx.metrics.local();
    bool done_inline = false;
    if (!batch_) batch_ = worker_.take_batch();
    const core::read_status status = sub_.read(*batch_, worker_.ctx.config.write_batch_bytes);
    if (status != core::read_status::data) release_batch();  // nothing read: keep none
    switch (status) {
      case core::read_status::data:
        batch_counts_ = true;
        done_inline = write_body(batch_->spans, batch_->final || stop_requested_);
        break;
      case core::read_status::waiting:
        // The waiter is armed; write the head now if nothing has been sent yet.
        if (!stop_requested_ && head_.empty()) return;
        done_inline = write_body({}, stop_requested_);
        break;
      case core::read_status::ended:
        done_inline = write_body({}, true);
        break;
      case core::read_status::window_exceeded: {
        m.add(m.retention_errors, 1);
        const std::uint64_t first = sub_.first_available();
        scratch_ += core::encode_sse_event(
            0, "error",
            "{\"code\":\"resume_window_exceeded\",\"message\":\"events before " +
                std::to_string(first) +
                " are no longer retained\",\"first_available\":" + std::to_string(first) + "}");
        done_inline = write_body({}, true);
        break;
      }
    }
    if (!done_inline || !finish_write({})) return;
  }
  // Still more to write: let the other connections on this thread go first.
  net::post(worker_.ioc, [self = shared_from_this()] { self->pump(); });
}

// Writes `spans` (after the pending intro bytes in scratch_, if any) as one
// chunk, preceded by the HTTP head on the first write and followed by the
// last chunk when `terminate`.
bool sse_subscriber::write_body(std::span<const core::read_span> spans, bool terminate) {
  // The worker's list: an asynchronous write takes a copy of it.
  std::vector<net::const_buffer>& buffers = worker_.write_buffers;
  buffers.clear();
  if (!head_.empty()) buffers.emplace_back(head_.data(), head_.size());
  std::size_t body = 0;
  auto chunk_header_at = buffers.size();
  buffers.emplace_back();  // chunk header, filled below
  if (gzip_) {
    std::string intro = std::move(scratch_);  // intro bytes, if any
    scratch_.clear();
    if (!intro.empty()) {
      const core::read_span s{intro.data(), intro.size()};
      gzip_->compress({&s, 1}, false, scratch_);
    }
    gzip_->compress(spans, terminate, scratch_);
    buffers.emplace_back(scratch_.data(), scratch_.size());
    body = scratch_.size();
  } else {
    if (!scratch_.empty()) {
      buffers.emplace_back(scratch_.data(), scratch_.size());
      body += scratch_.size();
    }
    for (const auto& s : spans) {  // straight from the log's segments
      buffers.emplace_back(s.data, s.size);
      body += s.size;
    }
  }
  if (body > 0) {
    // "<size in hex>\r\n" (to_chars: no printf on the path of every write).
    char* end = std::to_chars(chunk_header_, chunk_header_ + sizeof chunk_header_ - 2, body, 16).ptr;
    *end++ = '\r';
    *end++ = '\n';
    buffers[chunk_header_at] =
        net::const_buffer(chunk_header_, static_cast<std::size_t>(end - chunk_header_));
    buffers.emplace_back(chunk_end.data(), chunk_end.size());
  } else {
    buffers.erase(buffers.begin() + static_cast<std::ptrdiff_t>(chunk_header_at));
  }
  if (terminate) {
    buffers.emplace_back(last_chunk.data(), last_chunk.size());
    terminator_sent_ = true;
  }
  writing_ = true;
  write_started_us_ = steady_us();
  // The socket is non-blocking: try the whole gathered write now.
  boost::system::error_code ec;
  std::size_t total = 0;
  for (const auto& b : buffers) total += b.size();
  const std::size_t n = socket_.write_some(buffers, ec);
  metrics_shard& m = worker_.ctx.metrics.local();
  if (!ec && n == total) {
    m.add(m.wire_bytes, n);
    return true;
  }
  if (ec && ec != net::error::would_block && ec != net::error::try_again) {
    if (finish_write(ec)) pump();  // closes
    return false;
  }
  // The socket took part of it: the rest goes out asynchronously.
  std::size_t skip = ec ? 0 : n;
  m.add(m.wire_bytes, skip);
  auto first = buffers.begin();
  while (skip > 0 && skip >= first->size()) skip -= (first++)->size();
  buffers.erase(buffers.begin(), first);
  if (skip > 0) buffers.front() += skip;
  net::async_write(socket_, buffers,
                   [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                     metrics_shard& m = self->worker_.ctx.metrics.local();
                     m.add(m.wire_bytes, n);
                     if (self->finish_write(ec)) self->pump();
                   });
  return false;
}

bool sse_subscriber::finish_write(boost::system::error_code ec) {
  writing_ = false;
  if (!head_.empty()) std::string().swap(head_);
  if (gzip_)
    scratch_.clear();  // compressed bytes of this write; keep the capacity
  else if (!scratch_.empty())
    std::string().swap(scratch_);  // the intro, sent once
  if (ec) {
    close();
    return false;
  }
  last_write_us_ = steady_us();
  if (batch_counts_ && batch_) {
    metrics_shard& m = worker_.ctx.metrics.local();
    m.add(m.events_delivered, batch_->last_seq - batch_->first_seq + 1);
    m.add(m.sse_events_written, batch_->sse_events);
    m.add(m.coalesced_events, batch_->coalesced_events);
    m.add(m.bytes_delivered, batch_->bytes);
    m.observe_latency_us(core::realtime_us() - batch_->oldest_publish_us);
  }
  batch_counts_ = false;
  release_batch();  // releases the segments this write pinned
  if (terminator_sent_) {
    after_terminator();
    return false;
  }
  return true;
}

void sse_subscriber::release_batch() {
  if (!batch_) return;
  batch_->clear();
  worker_.give_back_batch(std::move(batch_));
}

void sse_subscriber::after_terminator() {
  if (keep_alive_ && !stop_requested_ && discarded_bytes_ == 0 &&
      !worker_.ctx.stopping.load(std::memory_order_relaxed))
    hand_back();
  else
    close();
}

void sse_subscriber::hand_back() {
  handing_back_ = true;
  auto_unlink_hook::unlink();
  if (peer_watch_pending_) {
    socket_.cancel();  // the wait's handler finishes the hand-back
    return;
  }
  closed_ = true;
  start_http_session(worker_, std::move(socket_), std::move(token_), false);
}

void sse_subscriber::watch_peer() {
  peer_watch_pending_ = true;
  // Pending for the connection's life: exact_alloc keeps it small.
  socket_.async_wait(
      tcp_socket::wait_read,
      exact_alloc(worker_.ioc, [self = shared_from_this()](boost::system::error_code ec) {
        self->peer_watch_pending_ = false;
        if (self->closed_) return;
        if (self->handing_back_) {
          self->closed_ = true;
          start_http_session(self->worker_, std::move(self->socket_), std::move(self->token_),
                             false);
          return;
        }
        if (ec) {
          self->close();
          return;
        }
        char buf[512];
        boost::system::error_code rec;
        std::size_t n = self->socket_.read_some(net::buffer(buf), rec);
        if (rec == net::error::would_block || rec == net::error::try_again) {
          self->watch_peer();
          return;
        }
        if (rec) {  // eof or reset: the client has gone
          self->close();
          return;
        }
        // Bytes from a client mid-stream are not a request we can serve now.
        self->discarded_bytes_ += n;
        if (self->discarded_bytes_ > max_discarded_bytes) {
          self->close();
          return;
        }
        self->watch_peer();
      }));
}

void sse_subscriber::sweep(std::int64_t now_us) {
  if (closed_ || terminator_sent_) return;
  const auto& c = worker_.ctx.config;
  if (writing_) {
    if (now_us - write_started_us_ >= c.write_stall_timeout.count() * 1000) {
      metrics_shard& m = worker_.ctx.metrics.local();
      m.add(m.write_stalls, 1);
      close();
    }
    return;
  }
  if (now_us - opened_us_ >= c.max_stream_duration.count() * 1000) {
    // The client reconnects with Last-Event-ID and resumes.
    stop_requested_ = true;
    pump();
    return;
  }
  if (now_us - last_write_us_ >= c.heartbeat_interval.count() * 1000) {
    metrics_shard& m = worker_.ctx.metrics.local();
    m.add(m.heartbeats, 1);
    std::string_view hb = c.heartbeat == heartbeat_style::data ? heartbeat_data : heartbeat_comment;
    const core::read_span beat{hb.data(), hb.size()};
    if (write_body({&beat, 1}, false) && finish_write({})) pump();
  }
}

void sse_subscriber::begin_shutdown() {
  stop_requested_ = true;
  pump();  // if a write is in flight, its completion ends the response
}

void sse_subscriber::close() {
  if (closed_) return;
  closed_ = true;
  auto_unlink_hook::unlink();
  boost::system::error_code ec;
  socket_.shutdown(tcp_socket::shutdown_both, ec);
  socket_.close(ec);
}

}  // namespace sluice::transport
