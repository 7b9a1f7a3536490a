// Fuzz target for the SSE parser: any byte stream, fed whole and fed in
// pieces cut where the input says, must give the same transcript and the same
// last event id. Built with libFuzzer by `make fuzz` (clang), and replayed on
// seeded random inputs by the ctest `sse_parser_fuzz_replay` (any compiler).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/sse_parser.hpp"

namespace {

struct transcript : sluice::core::sse_listener {
  std::string log;
  void on_event(const sluice::core::sse_event& e) override {
    log += "E|" + std::string(e.type) + "|" + std::string(e.data) + "|" +
           std::string(e.last_event_id) + "\n";
  }
  void on_retry(std::uint64_t ms) override { log += "R|" + std::to_string(ms) + "\n"; }
  void on_comment(std::string_view c) override { log += "C|" + std::string(c) + "\n"; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  // The first byte seeds the cut positions; the rest is the stream.
  const unsigned seed = data[0];
  std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);

  transcript whole;
  sluice::core::sse_parser a(whole);
  a.feed(stream);

  transcript pieces;
  sluice::core::sse_parser b(pieces);
  std::size_t pos = 0, step = 0;
  while (pos < stream.size()) {
    std::size_t len = 1 + (seed * 31 + step * 17) % 7;
    b.feed(stream.substr(pos, len));
    pos += len;
    ++step;
  }
  if (whole.log != pieces.log || a.last_event_id() != b.last_event_id()) std::abort();
  return 0;
}
