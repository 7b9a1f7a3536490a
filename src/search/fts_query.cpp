#include "search/fts_query.hpp"

#include <algorithm>

#include "search/text.hpp"

namespace sluice::search {
namespace {

// Terms contain only word/CJK characters, but quoting doubles '"' anyway so
// the function is safe on its own.
std::string quote(std::string_view token) {
  std::string out = "\"";
  for (char c : token) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

void add_cjk_segment(const std::string& segment, std::vector<std::string>& terms) {
  const std::vector<std::string> grams = cjk_bigrams(segment);
  if (grams.size() == 1 && utf8_length(grams.front()) == 1) {
    terms.push_back(quote(grams.front()) + " *");
    return;
  }
  for (const std::string& gram : grams) terms.push_back(quote(gram));
  if (grams.size() > 1) {
    std::string phrase;
    for (const std::string& gram : grams) {
      if (!phrase.empty()) phrase.push_back(' ');
      phrase.append(gram);
    }
    terms.push_back(quote(phrase));
  }
}

}  // namespace

fts_query build_fts_query(std::string_view user_text, std::size_t max_terms) {
  const std::vector<text_run> runs = scan_runs(user_text);
  std::vector<std::string> content_terms;
  std::vector<std::string> stop_terms;  // used only if nothing else is left
  for (const text_run& run : runs) {
    if (run.kind == run_kind::word) {
      (is_english_stop_word(run.text) ? stop_terms : content_terms).push_back(quote(run.text));
      continue;
    }
    std::vector<std::string> segments = split_cjk_at_stop_words(run.text);
    if (segments.empty()) {
      add_cjk_segment(run.text, stop_terms);
      continue;
    }
    for (const std::string& segment : segments) add_cjk_segment(segment, content_terms);
  }
  std::vector<std::string>& chosen = content_terms.empty() ? stop_terms : content_terms;

  fts_query query;
  for (std::string& term : chosen) {
    if (query.terms.size() >= max_terms) break;
    if (std::find(query.terms.begin(), query.terms.end(), term) != query.terms.end()) continue;
    query.terms.push_back(std::move(term));
  }
  for (const std::string& term : query.terms) {
    if (!query.match.empty()) query.match.append(" OR ");
    query.match.append(term);
  }
  return query;
}

}  // namespace sluice::search
