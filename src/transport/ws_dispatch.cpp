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
  add_cursor(s, op.stream, ctx.service.subscribe(ctx.who, op.stream, in));
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
  auto run = ctx.service.start_run(ctx.who, in);
  if (!run) {
    send_error(s, run.error());
    return;
  }
  const std::string id = run->stream->id();
  s.send_control(started_message(id, run->created));
  if (s.has_stream(id)) return;  // a retried start of a run this socket already reads
  streams::subscribe_input cursor;
  if (op.last_event_id) cursor.last_event_id = *op.last_event_id;
  add_cursor(s, id, ctx.service.open_cursor(std::move(run->stream), cursor));
}

void cancel(const ws_op& op, const ws_op_context& ctx, ws_stream_set& s) {
  std::optional<std::string_view> reason;
  if (op.reason) reason = *op.reason;
  auto out = ctx.service.cancel(ctx.who, op.stream, reason);
  if (!out) return send_error(s, out.error(), op.stream);
  s.send_control(ack_message("cancelled", op.stream, out->sequence));
}

void publish(const ws_op& op, const ws_op_context& ctx, ws_stream_set& s) {
  streams::publish_input in;
  if (op.event) in.type = *op.event;
  in.body = op.data;
  in.final = op.final;
  if (op.delta) in.delta_of = *op.delta;
  if (op.delta_field) in.delta_field = *op.delta_field;
  auto out = ctx.service.publish(ctx.who, op.stream, in);
  if (!out) return send_error(s, out.error(), op.stream);
  if (out->wait_durable)
    return s.send_control_when(std::move(out->wait_durable),
                               ack_message("published", op.stream, out->first_sequence),
                               op.stream);
  s.send_control(ack_message("published", op.stream, out->first_sequence));
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
