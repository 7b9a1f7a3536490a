// Fuzz target for the Redis RESP reader (src/redis/resp_reader): bytes as
// they would come from a Redis connection, fed in chunks whose size the
// first byte picks, with small limits (so the limit paths run) or the
// defaults. Invariants: no crash or sanitizer report; once next() fails the
// reader stays failed; a reply respects the limits it was read under.
#include <cstdlib>

#include "fuzz_input.hpp"
#include "redis/redis_error.hpp"
#include "redis/resp_reader.hpp"

namespace {

using sluice::redis::resp_limits;
using sluice::redis::resp_value;

std::size_t count_values(const resp_value& v, std::size_t depth) {
  if (depth > 16) std::abort();  // hiredis nests at most 7 levels
  std::size_t n = 1;
  for (const auto& e : v.elements) n += count_values(e, depth + 1);
  return n;
}

void check(const resp_value& v, const resp_limits& l) {
  if (v.str.size() > l.max_bulk_bytes) std::abort();
  if (v.elements.size() > l.max_array_elements) std::abort();
  if (!v.is_array() && !v.elements.empty()) std::abort();
  for (const auto& e : v.elements) check(e, l);
}

void run(std::string_view in, std::size_t chunk, const resp_limits& limits) {
  sluice::redis::resp_reader reader(limits);
  bool failed = false;
  while (!in.empty()) {
    const auto piece = in.substr(0, chunk);
    in.remove_prefix(piece.size());
    if (reader.feed(piece)) return;  // too much buffered: the connection closes
    for (;;) {
      auto r = reader.next();
      if (!r) {
        failed = true;
        break;
      }
      if (failed) std::abort();
      if (!*r) break;
      check(**r, limits);
      if (count_values(**r, 0) > limits.max_reply_values) std::abort();
    }
    if (failed) {
      // A failed reader stays failed.
      auto again = reader.next();
      if (again) std::abort();
      return;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto in = sluice::fuzz::as_view(data, size);
  if (in.empty()) return 0;
  const std::size_t chunk = static_cast<unsigned char>(in.front()) % 64 + 1;
  in.remove_prefix(1);
  resp_limits small;
  small.max_bulk_bytes = 32;
  small.max_array_elements = 8;
  small.max_reply_values = 64;
  small.max_buffered_bytes = 256;
  run(in, chunk, small);
  run(in, chunk, resp_limits{});
  return 0;
}
