// What the WebSocket transport (/v1/ws) asks of producers wired in app/.
// Free of Beast and of agents: app/ registers a start handler that turns a
// {"op":"start","request":{...}} message into a stream, without the transport
// knowing what produces it.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/json/fwd.hpp>
#include <functional>
#include <memory>
#include <string>
#include <variant>

#include "auth/principal.hpp"
#include "core/stream_log.hpp"

namespace sluice::transport {

struct ws_start_ok {
  std::shared_ptr<core::stream_log> stream;
  bool created = false;  // false: attached to an existing run (same request id)
};

struct ws_start_error {
  std::string code;  // e.g. "invalid_request", "too_many_streams"
  std::string message;
};

using ws_start_result = std::variant<ws_start_ok, ws_start_error>;

// Called on the connection's worker thread with the op's "request" member,
// that thread's executor (a producer started here runs there) and who asks
// (the socket's principal: the handler checks `run` and records the owner).
// Must not block.
using ws_start_handler = std::function<ws_start_result(
    const boost::json::value& request, const boost::asio::any_io_executor& executor,
    const auth::principal& who)>;

}  // namespace sluice::transport
