// What a conforming SSE client sees of bytes the core produced: the unit tests
// of the encoder, the log and coalescing decode with the project's WHATWG
// parser instead of comparing only bytes.
#pragma once

#include <atomic>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "core/sse_parser.hpp"
#include "core/stream_log.hpp"

namespace sluice::test {

// String concatenation without `"literal" + std::string`, which trips GCC 12's
// false -Wrestrict positive (GCC PR 105651) under -Werror.
template <class... T>
std::string cat(const T&... parts) {
  std::string s;
  (s.append(std::string_view(parts)), ...);
  return s;
}

struct decoded_event {
  std::string type, data, id;
  bool operator==(const decoded_event&) const = default;
};

inline void PrintTo(const decoded_event& e, std::ostream* os) {
  *os << "{" << e.id << " " << e.type << " " << testing::PrintToString(e.data) << "}";
}

struct transcript : core::sse_listener {
  std::vector<decoded_event> events;
  std::vector<std::string> comments;
  std::vector<std::uint64_t> retries;
  void on_event(const core::sse_event& e) override {
    events.push_back({std::string(e.type), std::string(e.data), std::string(e.last_event_id)});
  }
  void on_retry(std::uint64_t ms) override { retries.push_back(ms); }
  void on_comment(std::string_view text) override { comments.emplace_back(text); }
};

inline transcript decode_all(std::string_view bytes) {
  transcript t;
  core::sse_parser p(t);
  p.feed(bytes);
  return t;
}

inline std::vector<decoded_event> decode(std::string_view bytes) { return decode_all(bytes).events; }

// The batch's bytes as a writer would send them (all spans, in order).
inline std::string bytes_of(const core::read_batch& b) {
  std::string s;
  for (const core::read_span& sp : b.spans) s.append(sp.data, sp.size);
  return s;
}

struct counting_waiter final : core::stream_waiter {
  std::atomic<int> calls{0};
  void on_stream_ready() noexcept override { calls.fetch_add(1); }
};

// Line ends normalised the way an SSE client joins data lines.
inline std::string normalise(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace sluice::test
