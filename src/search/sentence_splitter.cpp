#include "search/sentence_splitter.hpp"

#include <algorithm>
#include <iterator>
#include <string>

#include "search/text.hpp"

namespace sluice::search {
namespace {

constexpr std::string_view abbreviations[] = {"e.g",    "i.e",  "etc", "vs", "mr", "mrs", "ms",
                                              "dr",     "prof", "fig", "no", "st", "cf",  "al",
                                              "approx", "inc",  "ltd", "jr", "sr"};

bool is_cjk_terminator(char32_t cp) {
  return cp == 0x3002 || cp == 0xFF01 || cp == 0xFF1F || cp == 0xFF1B || cp == 0x2026;
}

bool is_closer(char32_t cp) {
  return cp == '"' || cp == '\'' || cp == ')' || cp == ']' || cp == 0x201D || cp == 0x2019 ||
         cp == 0x300D || cp == 0x300F || cp == 0xFF09 || cp == 0x3011 || cp == 0x300B;
}

// True if the line starting at `pos` (after optional spaces) begins a Markdown block.
bool starts_block(std::string_view text, std::size_t pos) {
  while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t')) ++pos;
  if (pos >= text.size()) return false;
  const char c = text[pos];
  if (c == '#' || c == '|' || c == '>' || text.substr(pos, 3) == "```") return true;
  if ((c == '-' || c == '*' || c == '+') && pos + 1 < text.size() && text[pos + 1] == ' ') {
    return true;
  }
  std::size_t d = pos;
  while (d < text.size() && text[d] >= '0' && text[d] <= '9') ++d;
  return d > pos && d + 1 < text.size() && (text[d] == '.' || text[d] == ')') && text[d + 1] == ' ';
}

// The word ending just before `dot` (ASCII letters and inner dots), lower case.
std::string word_before(std::string_view text, std::size_t dot) {
  std::size_t begin = dot;
  while (begin > 0) {
    const char c = text[begin - 1];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.') {
      --begin;
    } else {
      break;
    }
  }
  return ascii_lower(text.substr(begin, dot - begin));
}

bool ends_sentence_at_dot(std::string_view text, std::size_t dot, std::size_t next) {
  const std::string word = word_before(text, dot);
  if (word.size() == 1) return false;  // initials: "J. Smith"
  if (std::find(std::begin(abbreviations), std::end(abbreviations), word) !=
      std::end(abbreviations)) {
    return false;
  }
  std::size_t p = next;
  while (p < text.size() && (text[p] == ' ' || text[p] == '\t')) ++p;
  return !(p < text.size() && text[p] >= 'a' && text[p] <= 'z');
}

}  // namespace

std::vector<std::string_view> split_sentences(std::string_view text) {
  std::vector<std::string_view> sentences;
  std::size_t start = 0;
  const auto emit = [&](std::size_t end) {
    const std::string_view s = trim(text.substr(start, end - start));
    if (!s.empty()) sentences.push_back(s);
    start = end;
  };
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t here = pos;
    const char32_t cp = decode_utf8(text, pos);
    if (cp == '\n') {
      std::size_t p = pos;
      while (p < text.size() && (text[p] == ' ' || text[p] == '\t' || text[p] == '\r')) ++p;
      const bool blank = p < text.size() && text[p] == '\n';
      if (blank || starts_block(text, pos)) emit(here);
      continue;
    }
    const bool ascii_end = cp == '.' || cp == '!' || cp == '?';
    if (!ascii_end && !is_cjk_terminator(cp)) continue;
    // Take repeated terminators ("?!", "……") and closing quotes along.
    std::size_t end = pos;
    while (end < text.size()) {
      std::size_t p = end;
      const char32_t c = decode_utf8(text, p);
      if (c == '.' || c == '!' || c == '?' || is_cjk_terminator(c) || is_closer(c)) {
        end = p;
      } else {
        break;
      }
    }
    if (ascii_end) {
      std::size_t p = end;
      const bool at_space = end >= text.size() || is_space(decode_utf8(text, p));
      if (!at_space) continue;  // "3.5", "example.com", "a.b"
      if (cp == '.' && !ends_sentence_at_dot(text, here, end)) continue;
    }
    emit(end);
    pos = end;
  }
  emit(text.size());
  return sentences;
}

}  // namespace sluice::search
