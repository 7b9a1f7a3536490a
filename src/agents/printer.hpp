// How agents speak: a small printer-like interface (send a message, send a
// text delta, end the run). Agents never see sockets or SSE; the same agent
// streams to SSE, WebSocket or a test through this interface.
//
// Envelope of every message (JD Genie's AgentResponse, kept compatible):
//   {requestId, messageId, messageType, isFinal, sequence, ts, ...fields}
//
// Thread-safety: one printer per run, used from the run's executor only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "core/stream_log.hpp"

namespace sluice::agents {

class printer {
 public:
  virtual ~printer() = default;
  // One message. `fields` are added to the envelope. A final message ends the run.
  virtual void send(std::string_view message_id, std::string_view message_type,
                    boost::json::object fields, bool is_final) = 0;
  // A fragment of the text of message `message_id`, in string member `field`.
  // Consecutive deltas of one message may reach lagging readers merged (see
  // core/coalescer.hpp); their concatenation is always exactly the text.
  virtual void send_delta(std::string_view message_id, std::string_view message_type,
                          std::string_view field, std::string_view text) = 0;
  // True once a final message was sent or the run was ended from outside
  // (cancelled): further sends are dropped.
  virtual bool ended() const = 0;
};

// Writes messages into a stream log. `event_type` is the SSE event type of
// every message ("message": no event field, like the seed's /AutoAgent;
// "data" for /v1/tool/deepsearch); a final message of type "error" uses
// `error_event_type` (deep search: "error").
class stream_printer final : public printer {
 public:
  stream_printer(std::shared_ptr<core::stream_log> log, std::string request_id,
                 std::string event_type = "message", std::string error_event_type = "message");

  void send(std::string_view message_id, std::string_view message_type, boost::json::object fields,
            bool is_final) override;
  void send_delta(std::string_view message_id, std::string_view message_type,
                  std::string_view field, std::string_view text) override;
  bool ended() const override;

  const std::string& request_id() const { return request_id_; }

 private:
  boost::json::object envelope(std::string_view message_id, std::string_view message_type,
                               bool is_final);
  void note(const core::publish_outcome& out);

  std::shared_ptr<core::stream_log> log_;
  std::string request_id_;
  std::string event_type_;
  std::string error_event_type_;
  std::uint64_t next_sequence_;  // of the next message: the log's last + 1
  bool ended_ = false;
};

}  // namespace sluice::agents
