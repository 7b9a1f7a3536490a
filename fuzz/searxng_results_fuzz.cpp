// Fuzz target for SearXNG answers: parse_searxng_results on any body, with a
// limit taken from the first byte.
// Invariants: no crash; at most `limit` hits, each with a non-empty unique
// URL and a score in (0, 1]; on failure no hits and a client message with a
// code that quotes nothing of the body.
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <set>

#include "fuzz_input.hpp"
#include "search/searxng_client.hpp"

namespace {
const bool quiet = (spdlog::set_level(spdlog::level::off), true);
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t limit = data[0] % 32;
  std::string_view body = sluice::fuzz::as_view(data + 1, size - 1);
  sluice::search::searxng_outcome out;
  sluice::search::parse_searxng_results("SearXNG at http://fuzz", body, "application/json", limit,
                                        out);
  if (out.hits.size() > limit) std::abort();
  std::set<std::string> urls;
  for (const auto& h : out.hits) {
    if (h.source_id.empty() || !urls.insert(h.source_id).second) std::abort();
    if (!(h.score > 0.0 && h.score <= 1.0)) std::abort();
  }
  if (out.ec) {
    if (!out.hits.empty()) std::abort();
    if (out.error_message.find("(upstream_") == std::string::npos) std::abort();
    if (out.error_message.find("fuzz") != std::string::npos) std::abort();
  }
  return 0;
}
