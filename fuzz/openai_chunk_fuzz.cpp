// Fuzz target for the OpenAI-compatible stream parser: the bytes of a
// /chat/completions response body through the SSE parser into the chunk
// listener, fed whole and fed in pieces cut where the first byte says.
// Invariants: no crash; both feedings give the same outcome (text, finish
// reason, usage, error code and message); the deltas add up to the text; a
// client-facing error message never quotes the upstream's bytes.
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <string>

#include "fuzz_input.hpp"
#include "llm/openai/openai_chunks.hpp"

namespace {

// Upstream failures are logged; not here, millions of times.
const bool quiet = (spdlog::set_level(spdlog::level::off), true);

struct run {
  sluice::llm::chat_outcome out;
  std::string deltas;
};

void feed(std::string_view body, unsigned seed, bool pieces, run& r) {
  std::function<void(std::string_view)> on_delta = [&r](std::string_view d) { r.deltas += d; };
  sluice::llm::chunk_listener listener(r.out, on_delta);
  sluice::core::sse_parser sse(listener);
  if (!pieces) {
    sse.feed(body);
    return;
  }
  std::size_t pos = 0, step = 0;
  while (pos < body.size() && !listener.failed() && !listener.done()) {
    std::size_t len = 1 + (seed * 31 + step * 17) % 13;
    sse.feed(body.substr(pos, len));
    pos += len;
    ++step;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const unsigned seed = data[0];
  std::string_view body = sluice::fuzz::as_view(data + 1, size - 1);
  run whole, cut;
  feed(body, seed, false, whole);
  feed(body, seed, true, cut);
  // The whole feed may go on past an error or [DONE] (the listener ignores
  // later events), so compare what both saw up to there.
  if (whole.out.text != cut.out.text || whole.out.ec != cut.out.ec ||
      whole.out.error_message != cut.out.error_message ||
      whole.out.finish_reason != cut.out.finish_reason ||
      whole.out.usage.prompt_tokens != cut.out.usage.prompt_tokens ||
      whole.out.usage.completion_tokens != cut.out.usage.completion_tokens)
    std::abort();
  if (whole.deltas != whole.out.text) std::abort();
  if (whole.out.ec && whole.out.error_message.find("(upstream_") == std::string::npos) std::abort();
  return 0;
}
