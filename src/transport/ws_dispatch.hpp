// Op dispatch of /v1/ws: a parsed client message (ws_ops.hpp) carried out
// through the stream op layer (streams::stream_service) and answered with
// the protocol's control messages (ws_frame_codec.hpp). No socket: the
// session that owns one implements ws_stream_set.
//
// Thread-safety: called on the session's thread only.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "auth/principal.hpp"
#include "streams/stream_service.hpp"
#include "transport/ws_ops.hpp"

namespace sluice::transport {

// What dispatch asks of the session holding the socket.
class ws_stream_set {
 public:
  virtual bool has_stream(std::string_view id) const = 0;
  virtual std::size_t active_streams() const = 0;
  // Starts delivering `cursor.stream` as `id`.
  virtual void add_stream(const std::string& id, streams::cursor_start cursor) = 0;
  // Stops delivering `id` (no frame of it follows); false when not subscribed.
  virtual bool remove_stream(std::string_view id) = 0;
  // Queues a control message (sent before event frames ready at that moment).
  virtual void send_control(std::string message) = 0;
  // Queues `message` once `wait` completes with true (the events are on
  // disk, --fsync always), an error store_unavailable for `stream` if false.
  virtual void send_control_when(streams::durable_wait wait, std::string message,
                                 std::string stream) = 0;
  // For an op that completes later (a shared store, see
  // streams::stream_backend): a function that may be called from any thread
  // with `f`, which then runs on the session's thread with the session (if it
  // still exists), followed by sending what it queued.
  using continuation = std::function<void(ws_stream_set&)>;
  virtual std::function<void(continuation)> later() = 0;

 protected:
  ~ws_stream_set() = default;
};

struct ws_op_context {
  streams::stream_service& service;
  std::shared_ptr<const auth::principal> who;  // the upgrade's principal (never null on /v1/ws)
  boost::asio::any_io_executor executor;       // runs started by this socket run here
  std::size_t max_streams = 64;                // --ws-max-streams-per-socket
};

// Carries out `op` (not ping: the session answers it) and queues its replies.
void dispatch_ws_op(const ws_op& op, const ws_op_context& ctx, ws_stream_set& session);

}  // namespace sluice::transport
