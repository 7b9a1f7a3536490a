#include "llm/builtin_answerer.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "search/sentence_splitter.hpp"
#include "search/text.hpp"

namespace sluice::llm {
namespace {

using term_counts = std::map<std::string, int>;

struct candidate {
  std::string text;
  std::size_t source = 0;     // 0-based index into sources
  std::size_t position = 0;   // sentence index within its source
  term_counts terms;          // analyzed terms with frequencies
  std::size_t length = 0;     // number of analyzed terms
  double norm = 0;            // Euclidean norm of `terms`
  double relevance = 0;       // BM25 against all query terms
  double base = 0;            // normalized relevance blended with the position prior
  std::vector<bool> matches;  // per sub-query: shares a term with it
};

constexpr std::string_view no_answer_en =
    "The retrieved sources do not contain an answer to this question.";
constexpr std::string_view no_answer_zh = "检索到的资料中没有与问题直接相关的内容。";

bool is_terminal(char32_t cp) {
  return cp == '.' || cp == '!' || cp == '?' || cp == 0x3002 || cp == 0xFF01 || cp == 0xFF1F ||
         cp == 0xFF1B || cp == 0x2026;
}

// Removes Markdown block markers a sentence may start with: "# ", "- ",
// "* ", "+ ", "> ", "1. ", "1) ".
std::string_view strip_block_marker(std::string_view s) {
  for (;;) {
    const std::string_view before = s;
    std::size_t i = 0;
    while (i < s.size() && s[i] == '#') ++i;
    if (i > 0 && i < s.size() && s[i] == ' ') s.remove_prefix(i + 1);
    if (s.size() >= 2 && (s[0] == '-' || s[0] == '*' || s[0] == '+' || s[0] == '>') &&
        s[1] == ' ') {
      s.remove_prefix(2);
    }
    std::size_t d = 0;
    while (d < s.size() && s[d] >= '0' && s[d] <= '9') ++d;
    if (d > 0 && d + 1 < s.size() && (s[d] == '.' || s[d] == ')') && s[d + 1] == ' ') {
      s.remove_prefix(d + 2);
    }
    s = search::trim(s);
    if (s == before) return s;
  }
}

bool usable_sentence(std::string_view s) {
  if (s.empty() || s[0] == '|' || s.substr(0, 3) == "```") return false;
  return search::utf8_length(s) >= 8;
}

term_counts count_terms(const std::vector<std::string>& terms) {
  term_counts counts;
  for (const std::string& t : terms) ++counts[t];
  return counts;
}

double cosine(const candidate& a, const candidate& b) {
  if (a.norm == 0 || b.norm == 0) return 0;
  double dot = 0;
  auto i = a.terms.begin();
  auto j = b.terms.begin();
  while (i != a.terms.end() && j != b.terms.end()) {
    if (i->first < j->first) {
      ++i;
    } else if (j->first < i->first) {
      ++j;
    } else {
      dot += static_cast<double>(i->second) * j->second;
      ++i, ++j;
    }
  }
  return dot / (a.norm * b.norm);
}

class bm25_scorer {
 public:
  bm25_scorer(const std::vector<candidate>& docs, double k1, double b) : k1_(k1), b_(b) {
    double total = 0;
    for (const candidate& d : docs) {
      total += static_cast<double>(d.length);
      for (const auto& [term, count] : d.terms) ++df_[term];
    }
    n_ = static_cast<double>(docs.size());
    avgdl_ = docs.empty() ? 1.0 : std::max(total / n_, 1.0);
  }

  double score(const candidate& d, const std::set<std::string>& query) const {
    double s = 0;
    for (const std::string& term : query) {
      const auto tf_it = d.terms.find(term);
      if (tf_it == d.terms.end()) continue;
      const double df = static_cast<double>(df_.at(term));
      const double idf = std::log(1.0 + (n_ - df + 0.5) / (df + 0.5));
      const double tf = tf_it->second;
      const double dl = static_cast<double>(d.length);
      s += idf * tf * (k1_ + 1) / (tf + k1_ * (1 - b_ + b_ * dl / avgdl_));
    }
    return s;
  }

 private:
  double k1_;
  double b_;
  double n_ = 0;
  double avgdl_ = 1;
  std::unordered_map<std::string, std::size_t> df_;
};

std::set<std::string> term_set(std::string_view text) {
  const std::vector<std::string> terms = search::analyze(text);
  return {terms.begin(), terms.end()};
}

char32_t last_char_before(std::string_view s, std::size_t end) {
  std::size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return search::decode_utf8(s, start);
}

// "text." -> "text [2]." ; "文本。" -> "文本[2]。" ; "text" -> "text [2]".
std::string with_citation(std::string_view sentence, std::size_t number) {
  std::size_t body_end = sentence.size();
  while (body_end > 0) {
    const char32_t cp = last_char_before(sentence, body_end);
    if (!is_terminal(cp)) break;
    std::size_t start = body_end - 1;
    while (start > 0 && (static_cast<unsigned char>(sentence[start]) & 0xC0) == 0x80) --start;
    body_end = start;
  }
  const std::string_view body = sentence.substr(0, body_end);
  const std::string_view tail = sentence.substr(body_end);
  const bool cjk = !body.empty() && search::is_cjk(last_char_before(body, body.size()));
  std::string out(body);
  if (!cjk && !body.empty()) out.push_back(' ');
  out.push_back('[');
  out.append(std::to_string(number));
  out.push_back(']');
  out.append(tail);
  return out;
}

bool ends_with_ascii(std::string_view s) {
  return !s.empty() && static_cast<unsigned char>(s.back()) < 0x80;
}

}  // namespace

std::string_view no_answer_text(std::string_view query) {
  return search::contains_cjk(query) ? no_answer_zh : no_answer_en;
}

extractive_answer answer_extractively(std::string_view query,
                                      std::span<const std::string> sub_queries,
                                      std::span<const source_document> sources,
                                      const answer_options& options) {
  // 1. Candidate sentences; an exact repeat of an earlier sentence (mirrored
  // sources) is dropped, so the earlier, better-ranked source is cited.
  std::vector<candidate> candidates;
  std::unordered_set<std::string> seen;
  for (std::size_t s = 0; s < sources.size(); ++s) {
    std::size_t position = 0;
    for (std::string_view raw : search::split_sentences(sources[s].text)) {
      if (raw.starts_with("#")) continue;  // a heading names a topic, it answers nothing
      const std::string_view text = strip_block_marker(raw);
      if (!usable_sentence(text)) continue;
      const std::size_t this_position = position++;
      if (!seen.insert(search::collapse_whitespace(text)).second) continue;
      candidate c;
      c.text = search::collapse_whitespace(text);  // a sentence wrapped over lines reads as one
      c.source = s;
      c.position = this_position;
      const std::vector<std::string> terms = search::analyze(text);
      if (terms.size() < 3) continue;  // fragments such as "See below." carry no answer
      c.terms = count_terms(terms);
      c.length = terms.size();
      double sq = 0;
      for (const auto& [term, count] : c.terms) sq += static_cast<double>(count) * count;
      c.norm = std::sqrt(sq);
      candidates.push_back(std::move(c));
    }
  }

  // 2. Relevance: BM25 with statistics over the candidates, against the union
  // of query and sub-query terms.
  std::set<std::string> all_terms = term_set(query);
  std::vector<std::set<std::string>> aspects;
  for (const std::string& sq : sub_queries) {
    std::set<std::string> terms = term_set(sq);
    if (terms.empty()) continue;
    all_terms.insert(terms.begin(), terms.end());
    if (std::find(aspects.begin(), aspects.end(), terms) == aspects.end()) {
      aspects.push_back(std::move(terms));
    }
  }
  const bm25_scorer scorer(candidates, options.bm25_k1, options.bm25_b);
  double best = 0;
  for (candidate& c : candidates) {
    c.relevance = scorer.score(c, all_terms);
    best = std::max(best, c.relevance);
    for (const std::set<std::string>& aspect : aspects) {
      c.matches.push_back(std::any_of(aspect.begin(), aspect.end(),
                                      [&](const std::string& t) { return c.terms.count(t) > 0; }));
    }
  }

  extractive_answer answer;
  if (best <= 0) {
    answer.text = std::string(no_answer_text(query));
    return answer;
  }

  // 3. Base score: normalized relevance blended with a position prior that
  // favours better-ranked sources and a passage's opening sentences.
  for (candidate& c : candidates) {
    const double prior = 1.0 / (1.0 + 0.5 * static_cast<double>(c.source)) * 1.0 /
                         (1.0 + 0.2 * static_cast<double>(c.position));
    c.base = (1 - options.position_weight) * (c.relevance / best) + options.position_weight * prior;
  }
  // 3b. Context: a sentence from a passage whose title (and heading) names
  // the query's terms is about the question even when it does not repeat them.
  if (!all_terms.empty() && options.context_weight > 0) {
    std::vector<double> context(sources.size(), 0.0);
    for (std::size_t s = 0; s < sources.size(); ++s) {
      const std::set<std::string> t = term_set(sources[s].title);
      std::size_t hits = 0;
      for (const std::string& q : all_terms) hits += t.count(q);
      context[s] = static_cast<double>(hits) / static_cast<double>(all_terms.size());
    }
    for (candidate& c : candidates)
      if (c.relevance > 0) c.base += options.context_weight * context[c.source];
  }

  // 4. Greedy MMR with sub-query coverage, within the length budget.
  std::vector<std::size_t> chosen;
  std::vector<bool> covered(aspects.size(), false);
  std::vector<bool> excluded(candidates.size(), false);
  std::size_t used_chars = 0;
  while (chosen.size() < options.max_sentences) {
    std::optional<std::size_t> pick;
    double pick_score = 0;
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      const candidate& c = candidates[i];
      if (excluded[i] || c.relevance < options.min_relevance * best) continue;
      double redundancy = 0;
      for (std::size_t j : chosen) redundancy = std::max(redundancy, cosine(c, candidates[j]));
      if (redundancy >= options.redundancy_cutoff) {
        excluded[i] = true;
        continue;
      }
      double coverage = 0;
      for (std::size_t a = 0; a < aspects.size(); ++a) {
        if (!covered[a] && c.matches[a]) coverage += options.coverage_bonus;
      }
      const double score =
          options.mmr_lambda * (c.base + coverage) - (1 - options.mmr_lambda) * redundancy;
      if (!pick || score > pick_score) {
        pick = i;
        pick_score = score;
      }
    }
    if (!pick) break;
    excluded[*pick] = true;
    const candidate& c = candidates[*pick];
    const std::size_t cost =
        search::utf8_length(with_citation(c.text, c.source + 1)) + (chosen.empty() ? 0 : 1);
    if (used_chars + cost > options.max_chars) continue;  // try a shorter one
    used_chars += cost;
    chosen.push_back(*pick);
    for (std::size_t a = 0; a < aspects.size(); ++a) covered[a] = covered[a] || c.matches[a];
  }

  if (chosen.empty()) {  // every relevant sentence is longer than the budget
    answer.text = std::string(no_answer_text(query));
    return answer;
  }

  // 5. Assembly.
  std::set<std::size_t> cited;
  for (std::size_t i : chosen) {
    const candidate& c = candidates[i];
    const std::string cited_text = with_citation(c.text, c.source + 1);
    if (!answer.text.empty() && ends_with_ascii(answer.text)) answer.text.push_back(' ');
    answer.text += cited_text;
    answer.sentences.push_back(answer_sentence{c.text, c.source + 1, c.relevance});
    cited.insert(c.source + 1);
  }
  answer.cited_sources.assign(cited.begin(), cited.end());
  answer.found = true;
  return answer;
}

}  // namespace sluice::llm
