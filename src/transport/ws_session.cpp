// One WebSocket connection (/v1/ws) carrying many streams.
//
// Model (the same as SSE, see sse_subscriber.hpp):
// - each subscribed stream is a core::subscription (a cursor), woken by its
//   waiter, which only posts to this worker's thread;
// - the session holds at most one log batch per stream (ws_batch_bytes), so a
//   slow reader pins at most that much per stream and simply lags; a lagging
//   cursor gets merged (coalesced) deltas like an SSE reader;
// - at most one WebSocket write in flight for the whole socket: one writer
//   (pump) sends queued control replies first, then one event frame per ready
//   stream in round-robin order, so a busy stream cannot starve the others;
// - control replies (pong, errors, acks) are bounded: when too many are
//   queued, the session stops reading the client until they drain.
//
// This file is the session's I/O: handshake, reads, the one writer, sweeps
// and shutdown. What the messages are is ws_ops.hpp (client -> server) and
// ws_frame_codec.hpp (server -> client: event frames straight from the log's
// bytes, control messages); what an op does is ws_dispatch.hpp, over the
// stream op layer.
//
// Thread-safety: everything runs on the owning worker's thread except
// subscribed::on_stream_ready (any thread, only posts).
#include "transport/ws_session.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/container/deque.hpp>
#include <optional>

#include "core/log_text.hpp"
#include "transport/sse_subscriber.hpp"  // completes worker::subscribers
#include "transport/ws_dispatch.hpp"
#include "transport/ws_frame_codec.hpp"
#include "transport/ws_ops.hpp"

namespace sluice::transport {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using error_code = boost::system::error_code;

namespace {

// Replies queued before the session stops reading the client (hysteresis:
// reading resumes at half).
constexpr std::size_t max_control_messages = 64;
constexpr std::size_t max_control_bytes = 64u << 10;
// Invalid messages in a row before the connection is closed with 1008.
constexpr int max_invalid_in_a_row = 64;
// A read buffer grown past this by a large message is released afterwards.
constexpr std::size_t read_buffer_keep = 16u << 10;
// The first read of a message asks for at most this much, so the read that
// waits on an idle socket holds a small buffer (Beast would prepare 1,536
// bytes); the rest of a longer message follows in further reads.
constexpr std::size_t first_read_bytes = 128;

class ws_session final : public swept_connection,
                         public ws_stream_set,
                         public std::enable_shared_from_this<ws_session> {
 public:
  ws_session(worker& w, tcp_socket socket, connection_token token, std::string client_address,
             std::shared_ptr<const auth::principal> principal)
      : worker_(w),
        ws_(std::move(socket)),
        token_(std::move(token)),
        client_address_(std::move(client_address)),
        // --auth none: who() builds the same principal again when asked.
        principal_(w.ctx.streams.verifier() ? std::move(principal) : nullptr) {}

  void start(http::request<http::string_body> request);
  void sweep(std::int64_t now_us) override;
  void begin_shutdown() override;

 private:
  // One subscribed stream: a cursor and at most one batch read from it.
  struct subscribed final : core::stream_waiter {
    subscribed(ws_session& s, std::uint64_t serial_no, std::string stream_id,
               streams::cursor_start c)
        : session(s),
          serial(serial_no),
          id(std::move(stream_id)),
          sub(std::move(c.stream), c.next_sequence, *this, c.coalesce) {
      session.worker_.ctx.metrics.open_subscribers.fetch_add(1, std::memory_order_relaxed);
    }
    ~subscribed() {
      session.worker_.ctx.metrics.open_subscribers.fetch_sub(1, std::memory_order_relaxed);
    }
    // Under the stream's lock, from any thread: only post. No strong
    // reference to the session crosses threads.
    void on_stream_ready() noexcept override {
      net::post(session.worker_.ioc, [w = session.weak_from_this(), n = serial] {
        if (auto s = w.lock()) s->guarded("on_ready", [&] { s->on_ready(n); });
      });
    }

    ws_session& session;
    const std::uint64_t serial;
    const std::string id;
    core::subscription sub;
    core::read_batch batch;
    std::vector<event_view> events;  // of `batch`
    std::size_t next_event = 0;
    bool queued = false;   // in the outbox's ready list
    bool removed = false;  // unsubscribed while one of its frames is being written
  };
  using frame_buffers = std::array<net::const_buffer, 3>;

  const server_config& config() const { return worker_.ctx.config; }
  void on_accepted(error_code ec);
  void read_next();
  void on_read(error_code ec);
  void handle(std::string_view text);
  // Runs `f` (a handler on the worker's thread) and catches what must never
  // escape onto the I/O thread: logged as a bug, then the connection closes.
  template <class F>
  void guarded(std::string_view where, F&& f) noexcept;
  void invalid(std::string_view code, std::string_view message);
  // The --ws-ops-per-s token bucket: false when this op is over the budget.
  bool take_op_token();
  // ws_stream_set (for dispatch_ws_op).
  bool has_stream(std::string_view id) const override { return find(id) != nullptr; }
  std::size_t active_streams() const override;
  void add_stream(const std::string& id, streams::cursor_start cursor) override;
  bool remove_stream(std::string_view id) override;
  void send_control(std::string message) override;
  void send_control_when(streams::durable_wait wait, std::string message,
                         std::string stream) override;
  std::function<void(continuation)> later() override;

  subscribed* find(std::string_view id) const;
  void send_error(std::string_view code, std::string_view message, std::string_view stream = {});
  void on_ready(std::uint64_t serial);
  void pump();
  void write_event(subscribed& s);
  void start_write();
  void on_written(error_code ec, bool event_frame);
  void remove(subscribed* s);
  void erase(subscribed* s);
  void close_socket();

  // What the session sends: allocated by the first reply or subscription, so
  // an idle socket (nothing asked yet) holds none of it.
  struct outbox {
    // Round-robin order of streams with something to read. (Boost's deque
    // allocates nothing until used; std::deque allocates ~580 bytes when
    // constructed.)
    boost::container::deque<subscribed*> ready;
    boost::container::deque<std::string> control;
    std::size_t control_bytes = 0;
    std::string in_flight_control;
    std::string head;    // head of the event frame in flight
    std::string joined;  // multi-line data of the event frame in flight
    frame_buffers buffers;
  };
  outbox& out() {
    if (!out_) out_ = std::make_unique<outbox>();
    return *out_;
  }
  std::size_t queued_control() const { return out_ ? out_->control.size() : 0; }
  std::size_t queued_control_bytes() const { return out_ ? out_->control_bytes : 0; }
  // The principal ops act as; with --auth none built on first use (from the
  // client's address, as router::admit builds it) rather than held by every
  // idle socket.
  const std::shared_ptr<const auth::principal>& who();

  worker& worker_;
  websocket::stream<tcp_socket> ws_;
  connection_token token_;
  const std::string client_address_;  // the peer (ops act as who())
  // From the upgrade's token; null with --auth none until who() builds it.
  std::shared_ptr<const auth::principal> principal_;
  std::unique_ptr<http::request<http::string_body>> upgrade_;  // until the handshake is done
  beast::flat_buffer read_buf_;
  std::vector<std::unique_ptr<subscribed>> streams_;
  std::unique_ptr<outbox> out_;
  subscribed* in_flight_stream_ = nullptr;  // its batch backs the write in flight
  std::uint64_t next_serial_ = 1;
  std::int64_t last_write_us_ = 0;
  std::int64_t write_started_us_ = 0;
  int invalid_in_a_row_ = 0;
  double op_tokens_ = 0;                  // the ops budget's bucket
  std::int64_t op_tokens_refill_us_ = 0;  // 0: full bucket, never used
  int refused_in_a_row_ = 0;              // ops refused by the bucket since the last accepted
  // The close frame to send after the queued replies (by pointer: it is
  // 130 bytes and most sockets never send one before they go).
  std::unique_ptr<websocket::close_reason> close_;
  bool accepted_ = false;
  bool writing_ = false;
  bool reading_ = false;
  bool read_paused_ = false;
  bool closing_ = false;  // the close frame is written or in flight
  bool closed_ = false;
};

void ws_session::start(http::request<http::string_body> request) {
  const auto& c = config();
  websocket::stream_base::timeout t;
  t.handshake_timeout = std::chrono::seconds(10);   // opening and closing handshakes
  t.idle_timeout = websocket::stream_base::none();  // keep-alive is the worker's sweep
  t.keep_alive_pings = false;
  ws_.set_option(t);
  ws_.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(http::field::server, "sluice"); }));
  if (c.ws_deflate) {
    websocket::permessage_deflate pmd;
    pmd.server_enable = true;
    pmd.server_max_window_bits = c.ws_deflate_window_bits;
    pmd.client_max_window_bits = c.ws_deflate_window_bits;  // when the client lets us choose
    pmd.compLevel = c.ws_deflate_level;
    pmd.memLevel = c.ws_deflate_mem_level;
    ws_.set_option(pmd);
  }
  ws_.read_message_max(c.ws_max_message_bytes);
  ws_.auto_fragment(false);
  upgrade_ = std::make_unique<http::request<http::string_body>>(std::move(request));
  ws_.async_accept(*upgrade_, [self = shared_from_this()](error_code ec) {
    self->guarded("on_accepted", [&] { self->on_accepted(ec); });
  });
}

void ws_session::on_accepted(error_code ec) {
  upgrade_.reset();
  if (ec) {
    close_socket();
    return;
  }
  accepted_ = true;
  last_write_us_ = steady_us();
  worker_.swept.push_back(*this);
  if (worker_.ctx.stopping.load(std::memory_order_relaxed)) {
    begin_shutdown();
    return;
  }
  read_next();
}

void ws_session::read_next() {
  if (reading_ || closed_ || closing_ || close_) return;
  reading_ = true;
  // A message arrives in one or more reads (see first_read_bytes); the read
  // stays pending on an idle socket, so its operation is allocated exactly.
  ws_.async_read_some(
      read_buf_, read_buf_.size() == 0 ? first_read_bytes : 0,
      exact_alloc(worker_.ioc, [self = shared_from_this()](error_code ec, std::size_t) {
        self->guarded("on_read", [&] { self->on_read(ec); });
      }));
}

void ws_session::on_read(error_code ec) {
  reading_ = false;
  if (ec) {
    // The peer closed (Beast answered its close frame), went away, or broke
    // the protocol or read_message_max (Beast closed with 1002/1007/1009).
    close_socket();
    return;
  }
  if (closed_) return;
  if (!ws_.is_message_done()) {
    read_next();
    return;
  }
  if (!ws_.got_text()) {
    read_buf_.clear();
    if (!close_)
      close_ = std::make_unique<websocket::close_reason>(websocket::close_code::unknown_data,
                                                         "only JSON text messages");
    pump();
    return;
  }
  const auto data = read_buf_.cdata();
  if (take_op_token()) {
    refused_in_a_row_ = 0;
    try {
      handle(std::string_view(static_cast<const char*>(data.data()), data.size()));
    } catch (const std::exception& e) {
      // The last line: a bug, but one message must not take the worker down.
      spdlog::error("bug: ws message handler threw: {}", core::log_escape(e.what()));
      send_error("internal_error", "the message failed on the server");
    }
  } else {
    // Over --ws-ops-per-s: the op is refused unread; persistent abuse closes.
    send_error("rate_limited", "too many operations on this socket; slow down");
    if (++refused_in_a_row_ >= config().budgets.ws_max_refused_in_a_row && !close_)
      close_ = std::make_unique<websocket::close_reason>(websocket::close_code::policy_error,
                                                         "rate limit exceeded");
  }
  read_buf_.clear();
  if (read_buf_.capacity() > read_buffer_keep) read_buf_.shrink_to_fit();
  if (queued_control() >= max_control_messages || queued_control_bytes() >= max_control_bytes)
    read_paused_ = true;  // on_written resumes reading once replies drain
  else
    read_next();
  pump();
}

bool ws_session::take_op_token() {
  const budget_config& b = config().budgets;
  if (b.ws_ops_per_s <= 0) return true;
  const std::int64_t now = steady_us();
  if (op_tokens_refill_us_ == 0)
    op_tokens_ = b.ws_ops_burst;
  else
    op_tokens_ =
        std::min(b.ws_ops_burst, op_tokens_ + static_cast<double>(now - op_tokens_refill_us_) *
                                                  b.ws_ops_per_s / 1e6);
  op_tokens_refill_us_ = now;
  if (op_tokens_ < 1) return false;
  op_tokens_ -= 1;
  return true;
}

void ws_session::invalid(std::string_view code, std::string_view message) {
  send_error(code, message);
  if (++invalid_in_a_row_ >= max_invalid_in_a_row && !close_)
    close_ = std::make_unique<websocket::close_reason>(websocket::close_code::policy_error,
                                                       "too many invalid messages");
}

void ws_session::handle(std::string_view text) {
  auto parsed = parse_ws_op(text);
  if (auto* err = std::get_if<ws_op_error>(&parsed)) {
    if (err->protocol)
      invalid(err->code, err->message);
    else
      send_error(err->code, err->message, err->stream);
    if (!err->protocol) invalid_in_a_row_ = 0;
    return;
  }
  const ws_op_context ctx{worker_.ctx.streams, who(), worker_.ioc.get_executor(),
                          config().ws_max_streams_per_socket};
  dispatch_ws_op(std::get<ws_op>(parsed), ctx, *this);
  invalid_in_a_row_ = 0;
}

template <class F>
void ws_session::guarded(std::string_view where, F&& f) noexcept {
  try {
    f();
  } catch (const std::exception& e) {
    spdlog::error("bug: ws {} threw: {}", where, core::log_escape(e.what()));
    close_socket();
  } catch (...) {
    spdlog::error("bug: ws {} threw", where);
    close_socket();
  }
}

std::size_t ws_session::active_streams() const {
  std::size_t n = 0;
  for (const auto& s : streams_) n += s->removed ? 0 : 1;
  return n;
}

ws_session::subscribed* ws_session::find(std::string_view id) const {
  for (const auto& s : streams_)
    if (!s->removed && s->id == id) return s.get();
  return nullptr;
}

void ws_session::add_stream(const std::string& id, streams::cursor_start cursor) {
  auto s = std::make_unique<subscribed>(*this, next_serial_++, id, std::move(cursor));
  s->queued = true;
  out().ready.push_back(s.get());
  streams_.push_back(std::move(s));
}

bool ws_session::remove_stream(std::string_view id) {
  subscribed* s = find(id);
  if (s == nullptr) return false;
  remove(s);
  return true;
}

void ws_session::send_control(std::string message) {
  if (closed_ || closing_) return;
  outbox& o = out();
  o.control_bytes += message.size();
  o.control.push_back(std::move(message));
}

void ws_session::send_control_when(streams::durable_wait wait, std::string message,
                                   std::string stream) {
  // --fsync always: acknowledged once the event is on disk (as over HTTP).
  wait([w = weak_from_this(), &ioc = worker_.ioc, message = std::move(message),
        stream = std::move(stream)](bool ok) mutable {
    net::post(ioc, [w, message = std::move(message), stream = std::move(stream), ok]() mutable {
      auto s = w.lock();
      if (!s) return;
      s->guarded("durable_ack", [&] {
        if (ok)
          s->send_control(std::move(message));
        else
          s->send_error("store_unavailable",
                        "the event was published but could not be written to disk", stream);
        s->pump();
      });
    });
  });
}

std::function<void(ws_stream_set::continuation)> ws_session::later() {
  return [w = weak_from_this(), &ioc = worker_.ioc](continuation f) {
    net::post(ioc, [w, f = std::move(f)] {
      auto s = w.lock();
      if (!s || s->closed_) return;
      s->guarded("deferred_op", [&] {
        f(*s);
        s->pump();
      });
    });
  };
}

void ws_session::send_error(std::string_view code, std::string_view message,
                            std::string_view stream) {
  send_control(error_message(code, message, stream));
}

void ws_session::on_ready(std::uint64_t serial) {
  for (const auto& s : streams_) {
    if (s->serial != serial) continue;
    if (!s->queued && !s->removed) {
      s->queued = true;
      out().ready.push_back(s.get());
      pump();
    }
    return;
  }
}

void ws_session::pump() {
  while (!writing_ && !closed_ && !closing_) {
    if (out_ && !out_->control.empty()) {
      outbox& o = *out_;
      o.in_flight_control = std::move(o.control.front());
      o.control.pop_front();
      o.control_bytes -= o.in_flight_control.size();
      o.buffers = {net::buffer(o.in_flight_control), net::const_buffer(), net::const_buffer()};
      start_write();
      return;
    }
    if (close_) {
      closing_ = true;
      writing_ = true;
      write_started_us_ = steady_us();
      ws_.async_close(*close_, [self = shared_from_this()](error_code) {
        self->writing_ = false;
        self->close_socket();  // (cannot throw)
      });
      return;
    }
    if (!out_ || out_->ready.empty()) return;
    subscribed* s = out_->ready.front();
    out_->ready.pop_front();
    s->queued = false;
    if (s->next_event < s->events.size()) {
      write_event(*s);
      return;
    }
    s->batch.clear();  // releases the segments the last batch pinned
    s->events.clear();
    s->next_event = 0;
    metrics_shard& m = worker_.ctx.metrics.local();
    switch (s->sub.read(s->batch, config().ws_batch_bytes)) {
      case core::read_status::data: {
        bool ok = true;
        for (const auto& span : s->batch.spans)
          ok = ok && decode_sse_events(std::string_view(span.data, span.size), s->events);
        if (!ok || s->events.empty()) {
          spdlog::error("ws: stream {} holds bytes outside the SSE framing", s->id);
          send_error("internal_error", "the stream could not be decoded", s->id);
          remove(s);
          continue;
        }
        m.add(m.events_delivered, s->batch.last_seq - s->batch.first_seq + 1);
        m.add(m.coalesced_events, s->batch.coalesced_events);
        m.add(m.bytes_delivered, s->batch.bytes);
        m.observe_latency_us(core::realtime_us() - s->batch.oldest_publish_us);
        write_event(*s);
        return;
      }
      case core::read_status::waiting:
        continue;  // the waiter is armed
      case core::read_status::ended:
        send_control(op_message("end", s->id));
        remove(s);
        continue;
      case core::read_status::window_exceeded: {
        m.add(m.retention_errors, 1);
        send_control(window_exceeded_message(s->id, s->sub.first_available()));
        remove(s);
        continue;
      }
    }
  }
}

void ws_session::write_event(subscribed& s) {
  outbox& o = out();
  const event_view& e = s.events[s.next_event++];
  event_frame_head(s.id, e, o.head);
  std::string_view data = e.data;
  if (e.multi_line) {
    join_data_lines(e.data, o.joined);
    data = o.joined;
  }
  o.buffers = {net::buffer(o.head), net::buffer(data.data(), data.size()),
               net::buffer(event_frame_tail.data(), event_frame_tail.size())};
  in_flight_stream_ = &s;
  // Round-robin: the stream goes to the back; its next turn sends its next
  // event, or reads the log again.
  s.queued = true;
  o.ready.push_back(&s);
  start_write();
}

void ws_session::start_write() {
  writing_ = true;
  write_started_us_ = steady_us();
  ws_.text(true);
  ws_.async_write(out_->buffers, [self = shared_from_this()](error_code ec, std::size_t) {
    self->guarded("on_written", [&] { self->on_written(ec, true); });
  });
}

void ws_session::on_written(error_code ec, bool /*event_frame*/) {
  writing_ = false;
  if (subscribed* s = std::exchange(in_flight_stream_, nullptr); s && s->removed) erase(s);
  if (ec) {
    close_socket();
    return;
  }
  last_write_us_ = steady_us();
  if (read_paused_ && queued_control() <= max_control_messages / 2 &&
      queued_control_bytes() <= max_control_bytes / 2) {
    read_paused_ = false;
    read_next();
  }
  pump();
}

// Stops delivering `s`; frees it now, or after the write that uses its batch.
void ws_session::remove(subscribed* s) {
  if (s->queued) {
    auto& ready = out_->ready;  // queued: there is an outbox
    ready.erase(std::remove(ready.begin(), ready.end(), s), ready.end());
    s->queued = false;
  }
  s->removed = true;
  if (in_flight_stream_ != s) erase(s);
}

void ws_session::erase(subscribed* s) {
  std::erase_if(streams_, [s](const auto& p) { return p.get() == s; });
}

void ws_session::sweep(std::int64_t now_us) {
  if (closed_ || !accepted_) return;
  const auto& c = config();
  if (writing_) {
    if (now_us - write_started_us_ >= c.write_stall_timeout.count() * 1000) {
      metrics_shard& m = worker_.ctx.metrics.local();
      m.add(m.write_stalls, 1);
      close_socket();
    }
    return;
  }
  if (closing_) return;
  if (now_us - last_write_us_ >= c.heartbeat_interval.count() * 1000) {
    // Keeps proxies from timing the connection out; Beast answers the pong.
    metrics_shard& m = worker_.ctx.metrics.local();
    m.add(m.heartbeats, 1);
    writing_ = true;
    write_started_us_ = now_us;
    ws_.async_ping({}, [self = shared_from_this()](error_code ec) {
      self->guarded("on_written", [&] { self->on_written(ec, false); });
    });
  }
}

void ws_session::begin_shutdown() {
  if (closed_ || closing_) return;
  if (!accepted_) {
    close_socket();
    return;
  }
  // Replies already queued go first; the client reconnects and resumes.
  close_ = std::make_unique<websocket::close_reason>(websocket::close_code::going_away,
                                                     "server shutting down");
  pump();
}

const std::shared_ptr<const auth::principal>& ws_session::who() {
  if (!principal_) principal_ = auth::principal::anyone(client_address_);
  return principal_;
}

void ws_session::close_socket() {
  if (closed_) return;
  closed_ = true;
  unlink();
  if (out_) out_->ready.clear();
  error_code ec;
  auto& sock = ws_.next_layer();
  sock.shutdown(tcp_socket::shutdown_both, ec);
  sock.close(ec);
}

}  // namespace

void start_ws_session(worker& w, tcp_socket socket, connection_token token,
                      http::request<http::string_body> request, std::string client_address,
                      std::shared_ptr<const auth::principal> principal) {
  auto s = std::make_shared<ws_session>(w, std::move(socket), std::move(token),
                                        std::move(client_address), std::move(principal));
  s->start(std::move(request));
}

}  // namespace sluice::transport
