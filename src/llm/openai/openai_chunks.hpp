// The body of a streamed /chat/completions answer: server-sent events whose
// data is a JSON chunk ({"choices":[{"delta":{"content":...}}]}, a usage
// chunk, or {"error":...}), ended by "data: [DONE]". Pure logic on bytes
// from the network, fuzzed by fuzz/openai_chunk_fuzz.cpp.
//
// Thread-safety: one listener per response, used by one thread.
#pragma once

#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>
#include <functional>
#include <string>
#include <string_view>

#include "core/sse_parser.hpp"
#include "llm/chat_provider.hpp"
#include "llm/openai/openai_provider.hpp"
#include "net/error_text.hpp"

namespace sluice::llm {

// Sets the outcome's error: clients get a fixed sentence with a code
// (error_message); the operator's log gets the detail (host, port, the
// upstream's answer), which is also kept in error_detail.
void set_upstream_error(chat_outcome& out, boost::system::error_code ec,
                        outbound::upstream_failure f, std::string detail, unsigned http_status = 0);

// The server's message from an OpenAI-style error value: {"message": ...}
// (OpenAI, vLLM, llama.cpp) or a bare string (Ollama's native API). Empty
// when there is none.
std::string error_value_message(const boost::json::value& error);

// Turns the events of one response into outcome fields and deltas. Stops
// looking at events after [DONE] or the first error.
class chunk_listener final : public core::sse_listener {
 public:
  chunk_listener(chat_outcome& out, std::function<void(std::string_view)>& on_delta)
      : out_(out), on_delta_(on_delta) {}

  bool done() const { return done_; }
  bool failed() const { return failed_; }

  void on_event(const core::sse_event& event) override;

 private:
  void fail(openai_errc e, std::string message);

  chat_outcome& out_;
  std::function<void(std::string_view)>& on_delta_;
  bool done_ = false;
  bool failed_ = false;
};

}  // namespace sluice::llm
