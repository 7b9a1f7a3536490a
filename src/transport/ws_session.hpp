// GET /v1/ws: one WebSocket connection multiplexing many stream cursors.
// See docs/websocket.md for the protocol. Included only by the HTTP request
// loop that hands upgraded sockets over (Beast stays out of wide headers).
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "auth/principal.hpp"
#include "transport/worker.hpp"

namespace sluice::transport {

// Answers `request` (a WebSocket upgrade of /v1/ws) on `socket` and runs the
// session on worker `w`'s thread until the socket closes. Call on w's thread.
// Every op of the socket acts as `principal` (authenticated at the upgrade).
void start_ws_session(worker& w, tcp_socket socket, connection_token token,
                      boost::beast::http::request<boost::beast::http::string_body> request,
                      std::string client_address, std::shared_ptr<const auth::principal> principal);

}  // namespace sluice::transport
