// A streaming chat completion that can be cancelled: the interface agents use
// to talk to a language model. Implementations: `openai` (any server speaking
// OpenAI's /v1/chat/completions with "stream": true).
//
// Cancellation: stream_chat honours the awaiting coroutine's cancellation slot
// (co_spawn with net::bind_cancellation_slot). A terminal cancellation closes
// the upstream connection at once and completes with operation_aborted.
//
// Thread-safety: a provider object is immutable configuration and may be
// shared; each call runs on the executor of the coroutine that awaits it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

namespace sluice::llm {

struct chat_message {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

struct chat_request {
  std::vector<chat_message> messages;
  double temperature = 0.2;
  int max_tokens = 0;  // 0: the server's default
};

struct chat_usage {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
};

struct chat_outcome {
  // Empty on success. operation_aborted when cancelled; otherwise an error
  // whose `error_message` is for clients: a fixed sentence and a code, never
  // the upstream's host, port or answer; `error_detail` is for the operator's
  // log (what happened upstream: the HTTP status and the server's error
  // message, a cut mid-stream, a malformed chunk, a timeout, the host).
  boost::system::error_code ec;
  std::string error_message;
  std::string error_detail;
  std::string text;           // all content deltas concatenated
  std::string finish_reason;  // "stop", "length", ...
  chat_usage usage;
};

class chat_provider {
 public:
  virtual ~chat_provider() = default;
  virtual std::string_view name() const = 0;
  // Streams a completion; `on_delta` gets each content fragment as it arrives
  // (on the awaiting coroutine's executor), in order.
  virtual boost::asio::awaitable<chat_outcome> stream_chat(
      const chat_request& request, std::function<void(std::string_view)> on_delta) = 0;
};

}  // namespace sluice::llm
