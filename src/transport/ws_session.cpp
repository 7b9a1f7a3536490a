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
// Event frames are built from the log's SSE bytes without copying the data:
// the SSE framing written by core::sse_encoder is split back into id, type and
// data lines (decode_events), and a frame is sent as a gathered write of a
// small per-frame head, the data bytes straight from the log's shared segment,
// and "}". Only data that spans several SSE lines (JSON with raw newlines) is
// joined into a scratch string. Encoding a second, WebSocket-shaped copy of
// every event in the log would double its memory for a saving of one ~60-byte
// head per frame; with permessage-deflate Beast copies into its compressor
// anyway.
//
// Thread-safety: everything runs on the owning worker's thread except
// subscribed::on_stream_ready (any thread, only posts).
#include "transport/ws_session.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <charconv>
#include <deque>
#include <optional>

#include "auth/jwt.hpp"
#include "core/log_text.hpp"
#include "core/stream_id.hpp"
#include "transport/routes.hpp"
#include "transport/sse_subscriber.hpp"  // completes worker::subscribers
#include "transport/ws_ops.hpp"

namespace sluice::transport {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
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
constexpr std::string_view frame_tail = "}";

// One event of a log batch, viewed inside the batch's bytes.
struct event_view {
  std::uint64_t id = 0;
  std::string_view type;
  // The data itself, or when it spans several SSE lines, those "data: ..."
  // lines (joined with LF when written).
  std::string_view data;
  bool multi_line = false;
};

// Splits bytes framed by core::sse_encoder (id line, optional event line,
// one or more data lines, blank line) into events. False on anything else,
// which would be a bug in the log.
bool decode_events(std::string_view bytes, std::vector<event_view>& out) {
  while (!bytes.empty()) {
    event_view ev;
    if (!bytes.starts_with("id: ")) return false;
    auto nl = bytes.find('\n');
    if (nl == std::string_view::npos) return false;
    auto [end, ec] = std::from_chars(bytes.data() + 4, bytes.data() + nl, ev.id);
    if (ec != std::errc() || end != bytes.data() + nl) return false;
    bytes.remove_prefix(nl + 1);
    ev.type = core::default_event_type;
    if (bytes.starts_with("event: ")) {
      nl = bytes.find('\n');
      if (nl == std::string_view::npos) return false;
      ev.type = bytes.substr(7, nl - 7);
      bytes.remove_prefix(nl + 1);
    }
    const char* first = bytes.data();
    int lines = 0;
    while (bytes.starts_with("data: ")) {
      nl = bytes.find('\n');
      if (nl == std::string_view::npos) return false;
      ev.data = bytes.substr(6, nl - 6);
      ++lines;
      bytes.remove_prefix(nl + 1);
    }
    if (lines == 0 || !bytes.starts_with('\n')) return false;
    if (lines > 1) {
      ev.multi_line = true;
      ev.data = std::string_view(first, static_cast<std::size_t>(bytes.data() - first));
    }
    bytes.remove_prefix(1);
    out.push_back(ev);
  }
  return true;
}

void join_data_lines(std::string_view lines, std::string& out) {
  out.clear();
  bool first = true;
  while (!lines.empty()) {
    auto nl = lines.find('\n');
    if (!first) out.push_back('\n');
    out.append(lines.substr(6, nl - 6));
    first = false;
    lines.remove_prefix(nl + 1);
  }
}

std::string op_message(std::string_view op, std::string_view stream) {
  std::string s = "{\"op\":\"";
  s += op;
  s += "\",\"stream\":\"";
  s += stream;  // a valid stream id: nothing to escape
  s += "\"}";
  return s;
}

// {"error":{"code","message"}} of an HTTP reply made by json_error().
std::pair<std::string, std::string> error_of(const http_reply& r) {
  error_code ec;
  json::value v = json::parse(r.body, ec);
  if (!ec && v.is_object())
    if (const auto* e = v.as_object().if_contains("error"); e && e->is_object()) {
      const auto& o = e->as_object();
      const auto* c = o.if_contains("code");
      const auto* m = o.if_contains("message");
      if (c && c->is_string() && m && m->is_string())
        return {std::string(c->as_string()), std::string(m->as_string())};
    }
  return {"internal_error", "unexpected reply " + std::to_string(r.status)};
}

class ws_session final : public swept_connection, public std::enable_shared_from_this<ws_session> {
 public:
  ws_session(worker& w, tcp::socket socket, connection_token token, std::string client_address,
             std::shared_ptr<const auth::principal> principal)
      : worker_(w),
        ws_(std::move(socket)),
        token_(std::move(token)),
        client_address_(std::move(client_address)),
        principal_(std::move(principal)) {}

  void start(http::request<http::string_body> request);
  void sweep(std::int64_t now_us) override;
  void begin_shutdown() override;

 private:
  // One subscribed stream: a cursor and at most one batch read from it.
  struct subscribed final : core::stream_waiter {
    subscribed(ws_session& s, std::uint64_t serial_no, std::string stream_id, stream_reply r)
        : session(s),
          serial(serial_no),
          id(std::move(stream_id)),
          sub(std::move(r.stream), r.next_seq, *this, r.coalesce) {
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
    bool queued = false;   // in ready_
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
  std::size_t active_streams() const;
  subscribed* find(std::string_view id);
  void op_subscribe(const ws_op& op);
  void op_unsubscribe(const ws_op& op);
  void op_start(const ws_op& op);
  // cancel and publish: runs the op's HTTP route and answers
  // {"op":ack,"stream":id,"sequence":N}, or the route's error.
  void op_route(const ws_op& op, std::string_view ack);
  void add_subscription(const std::string& id, handler_result result);
  void complete_request(request_context& ctx);
  void send_control(std::string message);
  void send_error(std::string_view code, std::string_view message, std::string_view stream = {});
  void on_ready(std::uint64_t serial);
  void pump();
  void write_event(subscribed& s);
  void start_write();
  void on_written(error_code ec, bool event_frame);
  void remove(subscribed* s);
  void erase(subscribed* s);
  void close_socket();

  worker& worker_;
  websocket::stream<tcp::socket> ws_;
  connection_token token_;
  const std::string client_address_;
  const std::shared_ptr<const auth::principal> principal_;  // from the upgrade's token
  std::optional<http::request<http::string_body>> upgrade_;  // until the handshake is done
  beast::flat_buffer read_buf_;
  std::vector<std::unique_ptr<subscribed>> streams_;
  std::deque<subscribed*> ready_;  // round-robin order of streams with something to read
  std::deque<std::string> control_;
  std::size_t control_bytes_ = 0;
  std::string in_flight_control_;
  subscribed* in_flight_stream_ = nullptr;  // its batch backs the write in flight
  std::string head_;                        // head of the event frame in flight
  std::string joined_;                      // multi-line data of the event frame in flight
  frame_buffers buffers_;
  std::uint64_t next_serial_ = 1;
  std::int64_t last_write_us_ = 0;
  std::int64_t write_started_us_ = 0;
  int invalid_in_a_row_ = 0;
  double op_tokens_ = 0;                  // the ops budget's bucket
  std::int64_t op_tokens_refill_us_ = 0;  // 0: full bucket, never used
  int refused_in_a_row_ = 0;              // ops refused by the bucket since the last accepted
  std::optional<websocket::close_reason> close_;  // send after the queued replies
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
  upgrade_.emplace(std::move(request));
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
  ws_.async_read(read_buf_, [self = shared_from_this()](error_code ec, std::size_t) {
    self->guarded("on_read", [&] { self->on_read(ec); });
  });
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
  if (!ws_.got_text()) {
    read_buf_.clear();
    if (!close_)
      close_ =
          websocket::close_reason(websocket::close_code::unknown_data, "only JSON text messages");
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
      close_ = websocket::close_reason(websocket::close_code::policy_error, "rate limit exceeded");
  }
  read_buf_.clear();
  if (read_buf_.capacity() > read_buffer_keep) read_buf_.shrink_to_fit();
  if (control_.size() >= max_control_messages || control_bytes_ >= max_control_bytes)
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
    close_ =
        websocket::close_reason(websocket::close_code::policy_error, "too many invalid messages");
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
  const ws_op& op = std::get<ws_op>(parsed);
  switch (op.kind) {
    case ws_op_kind::ping:
      send_control(R"({"op":"pong"})");
      break;
    case ws_op_kind::subscribe:
      op_subscribe(op);
      break;
    case ws_op_kind::unsubscribe:
      op_unsubscribe(op);
      break;
    case ws_op_kind::start:
      op_start(op);
      break;
    case ws_op_kind::cancel:
      op_route(op, "cancelled");
      break;
    case ws_op_kind::publish:
      op_route(op, "published");
      break;
  }
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

ws_session::subscribed* ws_session::find(std::string_view id) {
  for (const auto& s : streams_)
    if (!s->removed && s->id == id) return s.get();
  return nullptr;
}

void ws_session::complete_request(request_context& ctx) {
  ctx.target = ctx.path;
  ctx.executor = worker_.ioc.get_executor();
  ctx.client_address = client_address_;
  ctx.subject = principal_->subject;
  ctx.principal = principal_;
}

void ws_session::op_subscribe(const ws_op& op) {
  const std::string* id = &op.stream;
  if (find(*id)) {
    send_error("already_subscribed", "this socket is already subscribed to the stream", *id);
    return;
  }
  if (active_streams() >= config().ws_max_streams_per_socket) {
    send_error(
        "too_many_subscriptions",
        "at most " + std::to_string(config().ws_max_streams_per_socket) + " streams per socket",
        *id);
    return;
  }
  // The same decisions as GET /v1/streams/{id}/events: one place.
  request_context ctx = route_request_of(op);
  complete_request(ctx);
  add_subscription(*id, worker_.ctx.routes.dispatch(ctx));
}

void ws_session::add_subscription(const std::string& id, handler_result result) {
  if (auto* reply = std::get_if<http_reply>(&result)) {
    if (reply->status == 204) {  // the client already has the final event
      send_control(op_message("end", id));
      return;
    }
    auto [code, message] = error_of(*reply);
    send_error(code, message, id);
    return;
  }
  auto* sr = std::get_if<stream_reply>(&result);
  if (sr == nullptr) {
    send_error("internal_error", "unexpected reply to a subscription", id);
    return;
  }
  if (!sr->preamble.empty()) {
    json::object o;
    o["op"] = "notice";
    o["code"] = "history_truncated";
    o["stream"] = id;
    o["first_available"] = sr->next_seq;
    send_control(json::serialize(o));
  }
  auto s = std::make_unique<subscribed>(*this, next_serial_++, id, std::move(*sr));
  s->queued = true;
  ready_.push_back(s.get());
  streams_.push_back(std::move(s));
}

void ws_session::op_unsubscribe(const ws_op& op) {
  const std::string* id = &op.stream;
  subscribed* s = find(*id);
  if (s == nullptr) {
    send_error("not_subscribed", "this socket is not subscribed to the stream", *id);
    return;
  }
  remove(s);
  // No frame of the stream follows this acknowledgement.
  send_control(op_message("unsubscribed", *id));
}

void ws_session::op_start(const ws_op& op) {
  const auto& handler = worker_.ctx.ws_start;
  if (!handler) {
    send_error("start_unavailable", "this server has no producer behind \"start\"");
    return;
  }
  if (active_streams() >= config().ws_max_streams_per_socket) {
    send_error(
        "too_many_subscriptions",
        "at most " + std::to_string(config().ws_max_streams_per_socket) + " streams per socket");
    return;
  }
  if (principal_->expires_at != 0 && principal_->expires_at + auth::clock_skew_s <=
                                         core::realtime_us() / 1'000'000) {
    send_error("unauthorized", "the token has expired");
    return;
  }
  ws_start_result r = handler(op.request, worker_.ioc.get_executor(), *principal_);
  if (auto* err = std::get_if<ws_start_error>(&r)) {
    send_error(err->code, err->message);
    return;
  }
  auto& ok = std::get<ws_start_ok>(r);
  const std::string id = ok.stream->id();
  json::object o;
  o["op"] = "started";
  o["stream"] = id;
  o["created"] = ok.created;
  send_control(json::serialize(o));
  if (find(id)) return;  // a retried start of a run this socket already reads
  request_context ctx;
  ctx.method = "GET";
  ctx.path = "/v1/streams/" + id + "/events";
  complete_request(ctx);
  if (op.last_event_id) ctx.last_event_id = *op.last_event_id;
  add_subscription(id, worker_.ctx.routes.subscribe(ctx, std::move(ok.stream)));
}

void ws_session::op_route(const ws_op& op, std::string_view ack) {
  // The same validation and effect as the HTTP route: one place.
  request_context ctx = route_request_of(op);
  complete_request(ctx);
  handler_result result = worker_.ctx.routes.dispatch(ctx);
  const auto* reply = std::get_if<http_reply>(&result);
  if (reply == nullptr) {
    send_error("internal_error", "unexpected reply to the operation", op.stream);
    return;
  }
  if (reply->status != 200) {
    auto [code, message] = error_of(*reply);
    send_error(code, message, op.stream);
    return;
  }
  error_code ec;
  json::value body = json::parse(reply->body, ec);
  const json::value* seq =
      !ec && body.is_object() ? body.get_object().if_contains("sequence") : nullptr;
  if (seq == nullptr) {
    send_error("internal_error", "unexpected reply to the operation", op.stream);
    return;
  }
  json::object o;
  o["op"] = ack;
  o["stream"] = op.stream;
  o["sequence"] = *seq;
  if (reply->before_send) {
    // --fsync always: acknowledged once the event is on disk (as over HTTP).
    reply->before_send([w = weak_from_this(), &ioc = worker_.ioc, msg = json::serialize(o),
                        stream = op.stream](bool ok) {
      net::post(ioc, [w, msg, stream, ok] {
        auto s = w.lock();
        if (!s) return;
        s->guarded("durable_ack", [&] {
          if (ok)
            s->send_control(msg);
          else
            s->send_error("store_unavailable",
                          "the event was published but could not be written to disk", stream);
          s->pump();
        });
      });
    });
    return;
  }
  send_control(json::serialize(o));
}

void ws_session::send_control(std::string message) {
  if (closed_ || closing_) return;
  control_bytes_ += message.size();
  control_.push_back(std::move(message));
}

void ws_session::send_error(std::string_view code, std::string_view message,
                            std::string_view stream) {
  json::object o;
  o["op"] = "error";
  o["code"] = code;
  o["message"] = message;
  if (!stream.empty()) o["stream"] = stream;
  send_control(json::serialize(o));
}

void ws_session::on_ready(std::uint64_t serial) {
  for (const auto& s : streams_) {
    if (s->serial != serial) continue;
    if (!s->queued && !s->removed) {
      s->queued = true;
      ready_.push_back(s.get());
      pump();
    }
    return;
  }
}

void ws_session::pump() {
  while (!writing_ && !closed_ && !closing_) {
    if (!control_.empty()) {
      in_flight_control_ = std::move(control_.front());
      control_.pop_front();
      control_bytes_ -= in_flight_control_.size();
      buffers_ = {net::buffer(in_flight_control_), net::const_buffer(), net::const_buffer()};
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
    if (ready_.empty()) return;
    subscribed* s = ready_.front();
    ready_.pop_front();
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
          ok = ok && decode_events(std::string_view(span.data, span.size), s->events);
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
        const std::uint64_t first = s->sub.first_available();
        json::object o;
        o["op"] = "error";
        o["code"] = "resume_window_exceeded";
        o["message"] = "events before " + std::to_string(first) + " are no longer retained";
        o["stream"] = s->id;
        o["first_available"] = first;
        send_control(json::serialize(o));
        remove(s);
        continue;
      }
    }
  }
}

void ws_session::write_event(subscribed& s) {
  const event_view& e = s.events[s.next_event++];
  head_.clear();
  head_.append("{\"stream\":\"").append(s.id).append("\",\"id\":");
  char digits[24];
  head_.append(digits, std::to_chars(digits, digits + sizeof digits, e.id).ptr);
  head_.append(",\"event\":\"").append(e.type).append("\",\"data\":");
  std::string_view data = e.data;
  if (e.multi_line) {
    join_data_lines(e.data, joined_);
    data = joined_;
  }
  buffers_ = {net::buffer(head_), net::buffer(data.data(), data.size()), net::buffer(frame_tail)};
  in_flight_stream_ = &s;
  // Round-robin: the stream goes to the back; its next turn sends its next
  // event, or reads the log again.
  s.queued = true;
  ready_.push_back(&s);
  start_write();
}

void ws_session::start_write() {
  writing_ = true;
  write_started_us_ = steady_us();
  ws_.text(true);
  ws_.async_write(buffers_, [self = shared_from_this()](error_code ec, std::size_t) {
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
  if (read_paused_ && control_.size() <= max_control_messages / 2 &&
      control_bytes_ <= max_control_bytes / 2) {
    read_paused_ = false;
    read_next();
  }
  pump();
}

// Stops delivering `s`; frees it now, or after the write that uses its batch.
void ws_session::remove(subscribed* s) {
  if (s->queued) {
    std::erase(ready_, s);
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
  close_ = websocket::close_reason(websocket::close_code::going_away, "server shutting down");
  pump();
}

void ws_session::close_socket() {
  if (closed_) return;
  closed_ = true;
  unlink();
  ready_.clear();
  error_code ec;
  auto& sock = ws_.next_layer();
  sock.shutdown(tcp::socket::shutdown_both, ec);
  sock.close(ec);
}

}  // namespace

void start_ws_session(worker& w, tcp::socket socket, connection_token token,
                      http::request<http::string_body> request, std::string client_address,
                      std::shared_ptr<const auth::principal> principal) {
  auto s = std::make_shared<ws_session>(w, std::move(socket), std::move(token),
                                        std::move(client_address), std::move(principal));
  s->start(std::move(request));
}

}  // namespace sluice::transport
