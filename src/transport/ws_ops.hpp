// The client's messages on /v1/ws, parsed and validated without a socket: a
// pure function (fuzzed by fuzz/ws_op_fuzz.cpp), so the session only acts on
// well-formed operations.
//
// {"op":"ping"}
// {"op":"subscribe","stream":ID,"lastEventId":N|"N"|"N-EPOCH","coalesce":false}
// {"op":"unsubscribe","stream":ID}
// {"op":"start","request":{...},"lastEventId":N|"N"|"N-EPOCH"}
// {"op":"cancel","stream":ID,"reason":"..."}
// {"op":"publish","stream":ID,"data":JSON,"event":T,"delta":M,"deltaField":F,"final":B}
//
// Thread-safety: pure functions.
#pragma once

#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace sluice::transport {

enum class ws_op_kind { ping, subscribe, unsubscribe, start, cancel, publish };

struct ws_op {
  ws_op_kind kind = ws_op_kind::ping;
  std::string stream;                                    // a valid stream id (not for ping, start)
  std::optional<std::string> last_event_id;              // subscribe, start: "N" or "N-EPOCH"
  bool coalesce = true;                                  // subscribe
  boost::json::value request;                            // start: a JSON object
  std::optional<std::string> reason;                     // cancel
  std::string data;                                      // publish: the data, serialized
  std::optional<std::string> event, delta, delta_field;  // publish
  bool final = false;                                    // publish
};

struct ws_op_error {
  std::string code;
  std::string message;
  std::string stream;  // the op's stream when known, else empty
  // Not a message of the protocol at all (malformed JSON, no or unknown op):
  // counts towards closing a socket that sends nothing else.
  bool protocol = false;
};

std::variant<ws_op, ws_op_error> parse_ws_op(std::string_view text);

}  // namespace sluice::transport
