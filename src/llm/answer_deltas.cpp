#include "llm/answer_deltas.hpp"

#include <algorithm>

#include "search/text.hpp"

namespace sluice::llm {
namespace {

using search::decode_utf8;

// Full-width and CJK punctuation that should not start a delta of its own.
bool is_cjk_punctuation(char32_t cp) {
  return (cp >= 0x3000 && cp <= 0x303F) || (cp >= 0xFF00 && cp <= 0xFF0F) ||
         (cp >= 0xFF1A && cp <= 0xFF20) || (cp >= 0xFF3B && cp <= 0xFF40) ||
         (cp >= 0xFF5B && cp <= 0xFF65) || cp == 0x2026 || cp == 0x201C || cp == 0x201D ||
         cp == 0x2018 || cp == 0x2019;
}

char32_t peek(std::string_view text, std::size_t pos) {
  return pos < text.size() ? decode_utf8(text, pos) : 0;
}

std::size_t advance(std::string_view text, std::size_t pos) {
  decode_utf8(text, pos);
  return pos;
}

// Length of a citation marker "[digits]" at pos, or 0.
std::size_t citation_at(std::string_view text, std::size_t pos) {
  if (text[pos] != '[') return 0;
  std::size_t i = pos + 1;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  return (i > pos + 1 && i < text.size() && text[i] == ']') ? i + 1 - pos : 0;
}

}  // namespace

std::vector<std::string_view> split_into_deltas(std::string_view text,
                                                const delta_options& options) {
  std::vector<std::string_view> deltas;
  const std::size_t cjk_chunk = std::max<std::size_t>(options.cjk_chars_per_delta, 1);
  const std::size_t word_chunk = std::max<std::size_t>(options.max_word_chars, 1);
  std::size_t start = 0;
  std::size_t pos = 0;
  // Leading whitespace joins the first delta.
  while (pos < text.size() && search::is_space(peek(text, pos))) pos = advance(text, pos);
  const auto take_trailing = [&](bool cjk_punct) {
    while (pos < text.size()) {
      const char32_t cp = peek(text, pos);
      if (search::is_space(cp) || (cjk_punct && is_cjk_punctuation(cp))) {
        pos = advance(text, pos);
      } else {
        break;
      }
    }
  };
  while (pos < text.size()) {
    if (const std::size_t marker = citation_at(text, pos)) {
      pos += marker;
      take_trailing(false);
    } else if (search::is_cjk(peek(text, pos)) || is_cjk_punctuation(peek(text, pos))) {
      for (std::size_t n = 0; n < cjk_chunk && pos < text.size() && search::is_cjk(peek(text, pos));
           ++n) {
        pos = advance(text, pos);
      }
      if (pos < text.size() && is_cjk_punctuation(peek(text, pos)) && pos == start) {
        pos = advance(text, pos);  // punctuation at the very start of a delta
      }
      take_trailing(true);
    } else {
      for (std::size_t n = 0; n < word_chunk && pos < text.size(); ++n) {
        const char32_t cp = peek(text, pos);
        if (search::is_space(cp) || search::is_cjk(cp) || citation_at(text, pos) != 0) break;
        pos = advance(text, pos);
      }
      take_trailing(false);
    }
    if (pos == start) pos = advance(text, pos);  // cannot happen; guarantees progress
    deltas.push_back(text.substr(start, pos - start));
    start = pos;
  }
  if (start < text.size()) deltas.push_back(text.substr(start));  // whitespace-only text
  return deltas;
}

answer_delta_stream::answer_delta_stream(std::string text, const delta_options& options)
    : text_(std::move(text)), deltas_(split_into_deltas(text_, options)) {}

std::optional<std::string_view> answer_delta_stream::next() {
  if (next_ == deltas_.size()) return std::nullopt;
  return deltas_[next_++];
}

}  // namespace sluice::llm
