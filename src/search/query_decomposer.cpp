#include "search/query_decomposer.hpp"

#include <algorithm>
#include <iterator>
#include <utility>

#include "search/text.hpp"

namespace sluice::search {
namespace {

// Clause separators (each ends a question or statement).
constexpr std::string_view clause_separators[] = {"?", "？", ";", "；", "!", "！", "。", "\n"};

// Enumeration separators that always split.
constexpr std::string_view list_separators[] = {",", "，", "、", "以及", "或者", "还是"};

struct cjk_conjunction {
  std::string_view conjunction;
  std::string_view not_before;  // characters that, right after it, make a word
  std::string_view not_after;   // characters that, right before it, make a word
};

constexpr cjk_conjunction cjk_conjunctions[] = {
    {"和", "平谐睦蔼解善煦气弦", "总共温柔缓随调暖饱附应混"},
    {"与", "其否会", "参给赋授予干"},
    {"及", "时格早其", "以涉普危提波顾来不企触遍言"},
    {"或", "许多少", "或"},
    {"跟", "踪随进", ""},
};

constexpr std::string_view english_conjunctions[] = {"as well as", "versus", "and",
                                                     "or",         "vs.",    "vs"};

// Comparison/request framing, matched case-insensitively at the start.
constexpr std::string_view english_prefixes[] = {"what is the difference between ",
                                                 "what's the difference between ",
                                                 "what are the differences between ",
                                                 "the difference between ",
                                                 "difference between ",
                                                 "differences between ",
                                                 "comparison between ",
                                                 "comparison of ",
                                                 "compare ",
                                                 "contrast "};
constexpr std::string_view chinese_prefixes[] = {
    "请比较一下", "请对比一下", "比较一下", "对比一下", "请比较", "请对比", "请介绍", "介绍一下",
    "请解释",     "比较",       "对比",     "介绍",     "请问",   "解释",   "说明"};
constexpr std::string_view chinese_suffixes[] = {
    "之间有什么区别", "之间的区别", "有什么区别", "有什么不同", "有何区别",
    "有何不同",       "的区别",     "的差异",     "的异同",     "的不同",
    "的对比",         "的比较",     "哪个更好",   "哪个好",     "之间"};

constexpr std::string_view english_context_prepositions[] = {" of ", " for ", " in ", " on "};

// Punctuation stripped from the ends of sub-queries.
bool is_edge_punctuation(char32_t cp) {
  constexpr std::u32string_view chars = U".,;:!?'\"()[]{}，。；：！？、“”‘’（）《》「」…—-";
  return is_space(cp) || chars.find(cp) != std::u32string_view::npos;
}

std::string strip_edges(std::string_view text) {
  std::size_t begin = 0;
  while (begin < text.size()) {
    std::size_t next = begin;
    if (!is_edge_punctuation(decode_utf8(text, next))) break;
    begin = next;
  }
  std::size_t end = begin;
  for (std::size_t pos = begin; pos < text.size();) {
    if (!is_edge_punctuation(decode_utf8(text, pos))) end = pos;
  }
  return collapse_whitespace(text.substr(begin, end - begin));
}

bool starts_with_ci(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && ascii_lower(text.substr(0, prefix.size())) == prefix;
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

std::size_t word_count(std::string_view text) {
  std::size_t n = 0;
  for (const text_run& run : scan_runs(text)) n += run.kind == run_kind::word ? 1 : 2;
  return n;
}

// The code point before `pos` and the one at `pos + len`, 0 at the edges.
char32_t cp_before(std::string_view text, std::size_t pos) {
  if (pos == 0) return 0;
  std::size_t start = pos - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return decode_utf8(text, start);
}

char32_t cp_at(std::string_view text, std::size_t pos) {
  return pos < text.size() ? decode_utf8(text, pos) : 0;
}

bool contains_cp(std::string_view chars, char32_t cp) {
  for (std::size_t pos = 0; pos < chars.size();) {
    if (decode_utf8(chars, pos) == cp) return true;
  }
  return false;
}

bool is_ascii_word_char(char32_t cp) {
  return cp < 0x80 && is_word_char(cp);
}

// Length of the separator starting at `pos`, or 0.
std::size_t separator_at(std::string_view text, std::size_t pos) {
  const std::string_view rest = text.substr(pos);
  for (std::string_view sep : list_separators) {
    if (rest.substr(0, sep.size()) == sep) return sep.size();
  }
  for (const cjk_conjunction& c : cjk_conjunctions) {
    if (rest.substr(0, c.conjunction.size()) != c.conjunction) continue;
    const char32_t after = cp_at(text, pos + c.conjunction.size());
    const char32_t before = cp_before(text, pos);
    if (before == 0 || after == 0) return 0;  // nothing to join
    if (contains_cp(c.not_before, after) || contains_cp(c.not_after, before)) return 0;
    return c.conjunction.size();
  }
  // English conjunctions: whole words, preceded by a space (or a comma
  // separator already consumed) and followed by a space or the end.
  if (pos > 0 && !is_space(static_cast<unsigned char>(text[pos - 1]))) return 0;
  for (std::string_view word : english_conjunctions) {
    if (!starts_with_ci(rest, word)) continue;
    const char32_t after = cp_at(text, pos + word.size());
    if (after == 0 || is_space(after)) return word.size();
    if (!is_ascii_word_char(after) && word.back() != '.') return word.size();
  }
  return 0;
}

std::vector<std::string> split_clauses(std::string_view text) {
  std::vector<std::string> clauses;
  std::size_t start = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t len = 0;
    for (std::string_view sep : clause_separators) {
      if (text.substr(pos, sep.size()) == sep) {
        len = sep.size();
        break;
      }
    }
    if (len == 0) {
      decode_utf8(text, pos);
      continue;
    }
    std::string clause = strip_edges(text.substr(start, pos - start));
    if (!clause.empty()) clauses.push_back(std::move(clause));
    pos += len;
    start = pos;
  }
  std::string clause = strip_edges(text.substr(start));
  if (!clause.empty()) clauses.push_back(std::move(clause));
  return clauses;
}

std::string strip_framing(std::string text) {
  for (std::string_view prefix : english_prefixes) {
    if (starts_with_ci(text, prefix)) {
      text.erase(0, prefix.size());
      break;
    }
  }
  for (std::string_view prefix : chinese_prefixes) {
    if (text.starts_with(prefix)) {
      text.erase(0, prefix.size());
      break;
    }
  }
  for (std::string_view suffix : chinese_suffixes) {
    if (ends_with(text, suffix)) {
      text.resize(text.size() - suffix.size());
      break;
    }
  }
  return strip_edges(text);
}

std::vector<std::string> split_items(std::string_view clause) {
  std::vector<std::string> items;
  std::size_t start = 0;
  for (std::size_t pos = 0; pos < clause.size();) {
    const std::size_t len = separator_at(clause, pos);
    if (len == 0) {
      decode_utf8(clause, pos);
      continue;
    }
    std::string item = strip_edges(clause.substr(start, pos - start));
    if (!item.empty()) items.push_back(std::move(item));
    pos += len;
    start = pos;
  }
  std::string item = strip_edges(clause.substr(start));
  if (!item.empty()) items.push_back(std::move(item));
  return items;
}

void distribute_context(std::vector<std::string>& items) {
  if (items.size() < 2) return;
  // English: "<head> of X" + short items -> "<head> of Y".
  const std::string& first = items.front();
  std::size_t cut = std::string::npos;
  for (std::string_view prep : english_context_prepositions) {
    const std::size_t at = ascii_lower(first).rfind(prep);
    if (at != std::string::npos && at > 0 && (cut == std::string::npos || at + prep.size() > cut)) {
      cut = at + prep.size();
    }
  }
  const bool short_rest = std::all_of(items.begin() + 1, items.end(),
                                      [](const std::string& s) { return word_count(s) <= 3; });
  if (cut != std::string::npos && short_rest) {
    const std::string head = first.substr(0, cut);
    for (auto it = items.begin() + 1; it != items.end(); ++it) *it = head + *it;
    return;
  }
  // Chinese: "X、Y和Z的<tail>" -> "X的<tail>", "Y的<tail>".
  constexpr std::string_view de = "的";
  const std::string& last = items.back();
  const std::size_t at = last.find(de);
  const bool others_plain = std::none_of(items.begin(), items.end() - 1, [&](const std::string& s) {
    return s.find(de) != std::string::npos;
  });
  if (at != std::string::npos && at > 0 && at + de.size() < last.size() && others_plain) {
    const std::string tail = last.substr(at);
    for (auto it = items.begin(); it != items.end() - 1; ++it) *it += tail;
  }
}

std::string dedup_key(std::string_view text) {
  return ascii_lower(strip_edges(text));
}

}  // namespace

std::vector<std::string> decompose_query(std::string_view query, const decompose_options& options) {
  std::vector<std::string> out;
  const std::string original = collapse_whitespace(query);
  if (original.empty()) return out;
  const std::size_t cap = std::max<std::size_t>(options.max_queries, 1);
  out.push_back(original);
  std::vector<std::string> keys{dedup_key(original)};

  const auto add = [&](const std::string& candidate) {
    if (out.size() >= cap || analyze(candidate).empty()) return;
    std::string key = dedup_key(candidate);
    if (std::find(keys.begin(), keys.end(), key) != keys.end()) return;
    keys.push_back(std::move(key));
    out.push_back(candidate);
  };

  // Clauses are split on the raw text so line breaks still separate them.
  for (const std::string& clause : split_clauses(query)) {
    add(clause);
    std::vector<std::string> items = split_items(strip_framing(clause));
    if (items.size() < 2) continue;
    distribute_context(items);
    for (const std::string& item : items) add(item);
  }
  return out;
}

}  // namespace sluice::search
