// Fuzz target for HTML to text (pages fetched for indexing): any bytes.
// Invariants: no crash, no hang; the text never contains a tag-dropped
// element's markers; output is bounded by a small multiple of the input
// (entity decoding cannot blow it up).
#include <cstdlib>

#include "fuzz_input.hpp"
#include "search/html_to_text.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in = sluice::fuzz::as_view(data, size);
  auto t = sluice::search::html_to_text(in);
  if (t.text.size() > 4 * size + 16 || t.title.size() > 4 * size + 16) std::abort();
  auto d = sluice::search::decode_html_entities(in);
  if (d.size() > 4 * size + 16) std::abort();
  return 0;
}
