#include "transport/ws_dispatch.hpp"

#include "transport/ws_frame_codec.hpp"

namespace sluice::transport {

namespace {

void send_error(ws_stream_set& s, const streams::op_error& e, std::string_view stream = {}) {
  s.send_control(error_message(e.code, e.message, stream, e.first_available));
}

// A reader's start, as the protocol says it: "end" at once when the client
// has the final event, else a history_truncated notice when the start is no
// longer retained, then the stream's frames.
void add_cursor(ws_stream_set& s, const std::string& id,
                streams::op_result<streams::cursor_start> c) {
  if (!c) {
    send_error(s, c.error(), id);
    return;
  }
  if (c->complete) {
    s.send_control(op_message("end", id));
    return;
  }
  if (c->history_truncated_at)
    s.send_control(history_truncated_message(id, *c->history_truncated_at));
  s.add_stream(id, std::move(*c));
}

// Runs an op and `then` with its result: at once when it completed inline
// (one node), else later on the session's thread.
template <class T, class Start, class Then>
void run_op(ws_stream_set& s, Start start, Then then) {
  auto later = s.later();
  auto now = streams::complete_inline_or_later<T>(
      [&start](streams::op_callback<T> cb) { start(std::move(cb)); },
      [later, then](streams::op_result<T> r) {
        auto shared = std::make_shared<streams::op_result<T>>(std::move(r));
        later([then, shared](ws_stream_set& s) { then(s, std::move(*shared)); });
      });
  if (now) then(s, std::move(*now));
}

bool room_for_one_more(ws_stream_set& s, const ws_op_context& ctx, std::string_view stream) {
  if (s.active_streams() < ctx.max_streams) return true;
  s.send_control(error_message("too_many_subscriptions",
                               "at most " + std::to_string(ctx.max_streams) + " streams per socket",
                               stream));
  return false;
}

void subscribe(const ws_op& op, const ws_op_context& ctx, ws_stream_set& s) {
  if (s.has_stream(op.stream)) {
    s.send_control(error_message("already_subscribed",
                                 "this socket is already subscribed to the stream", op.stream));
    return;
  }
  if (!room_for_one_more(s, ctx, op.stream)) return;
  streams::subscribe_input in;
  if (op.last_event_id) in.last_event_id = *op.last_event_id;
  in.coalesce = op.coalesce;
  run_op<streams::cursor_start>(
      s, [&](auto done) { ctx.service.subscribe_async(ctx.who, op.stream, in, std::move(done)); },
      [id = op.stream](ws_stream_set& s, streams::op_result<streams::cursor_start> c) {
        // (Another subscribe of the same stream may have completed first.)
        if (c && s.has_stream(id)) {
          s.send_control(error_message("already_subscribed",
                                       "this socket is already subscribed to the stream", id));
          return;
        }
        add_cursor(s, id, std::move(c));
      });
}

void unsubscribe(const ws_op& op, ws_stream_set& s) {
  if (!s.remove_stream(op.stream)) {
    s.send_control(
        error_message("not_subscribed", "this socket is not subscribed to the stream", op.stream));
    return;
  }
  s.send_control(op_message("unsubscribed", op.stream));
}

void start(const ws_op& op, const ws_op_context& ctx, ws_stream_set& s) {
  if (!ctx.service.runs_available()) {
    s.send_control(
        error_message("start_unavailable", "this server has no producer behind \"start\""));
    return;
  }
  if (!room_for_one_more(s, ctx, {})) return;
  streams::run_input in;
  in.endpoint = "agent";
  in.request = &op.request;
  // (Unlike a retried HTTP POST, a start with lastEventId of a run that does
  // not exist starts it; the cursor then answers unknown_last_event_id.)
  in.resuming = false;
  in.executor = ctx.executor;
  run_op<streams::run_started>(
      s, [&](auto done) { ctx.service.start_run_async(ctx.who, in, std::move(done)); },
      [&service = ctx.service, last = op.last_event_id](
          ws_stream_set& s, streams::op_result<streams::run_started> run) {
        if (!run) {
          send_error(s, run.error());
          return;
        }
        const std::string id = run->stream->id();
        s.send_control(started_message(id, run->created));
        if (s.has_stream(id)) return;  // a retried start of a run this socket already reads
        streams::subscribe_input cursor;
        if (last) cursor.last_event_id = *last;
        add_cursor(s, id, service.open_cursor(std::move(run->stream), cursor));
      });
}

void cancel(const ws_op& op, const ws_op_context& ctx, ws_stream_set& s) {
  std::optional<std::string_view> reason;
  if (op.reason) reason = *op.reason;
  run_op<streams::cancel_result>(
      s, [&](auto done) { ctx.service.cancel_async(ctx.who, op.stream, reason, std::move(done)); },
      [id = op.stream](ws_stream_set& s, streams::op_result<streams::cancel_result> out) {
        if (!out) return send_error(s, out.error(), id);
        s.send_control(ack_message("cancelled", id, out->sequence));
      });
}

void publish(const ws_op& op, const ws_op_context& ctx, ws_stream_set& s) {
  streams::publish_input in;
  if (op.event) in.type = *op.event;
  in.body = op.data;
  in.final = op.final;
  if (op.delta) in.delta_of = *op.delta;
  if (op.delta_field) in.delta_field = *op.delta_field;
  run_op<streams::publish_result>(
      s, [&](auto done) { ctx.service.publish_async(ctx.who, op.stream, in, std::move(done)); },
      [id = op.stream](ws_stream_set& s, streams::op_result<streams::publish_result> out) {
        if (!out) return send_error(s, out.error(), id);
        if (out->wait_durable)
          return s.send_control_when(std::move(out->wait_durable),
                                     ack_message("published", id, out->first_sequence), id);
        s.send_control(ack_message("published", id, out->first_sequence));
      });
}

}  // namespace

void dispatch_ws_op(const ws_op& op, const ws_op_context& ctx, ws_stream_set& s) {
  switch (op.kind) {
    case ws_op_kind::ping:
      s.send_control(R"({"op":"pong"})");
      break;
    case ws_op_kind::subscribe:
      subscribe(op, ctx, s);
      break;
    case ws_op_kind::unsubscribe:
      unsubscribe(op, s);
      break;
    case ws_op_kind::start:
      start(op, ctx, s);
      break;
    case ws_op_kind::cancel:
      cancel(op, ctx, s);
      break;
    case ws_op_kind::publish:
      publish(op, ctx, s);
      break;
  }
}

}  // namespace sluice::transport
