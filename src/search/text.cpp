#include "search/text.hpp"

#include <algorithm>
#include <iterator>

namespace sluice::search {

char32_t decode_utf8(std::string_view text, std::size_t& pos) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char b0 = byte(pos);
  if (b0 < 0x80) {
    ++pos;
    return b0;
  }
  std::size_t len = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    ++pos;
    return replacement_char;
  }
  if (pos + len > text.size()) {
    ++pos;
    return replacement_char;
  }
  for (std::size_t i = 1; i < len; ++i) {
    const unsigned char b = byte(pos + i);
    if ((b & 0xC0) != 0x80) {
      ++pos;
      return replacement_char;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++pos;
    return replacement_char;
  }
  pos += len;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {

// Byte length of the valid sequence at pos, or 0 if it is invalid.
std::size_t valid_sequence_length(std::string_view text, std::size_t pos) {
  std::size_t next = pos;
  const char32_t cp = decode_utf8(text, next);
  if (cp == replacement_char && next == pos + 1 && static_cast<unsigned char>(text[pos]) >= 0x80) {
    return 0;
  }
  return next - pos;
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t len = valid_sequence_length(text, pos);
    if (len == 0) return false;
    pos += len;
  }
  return true;
}

std::size_t utf8_length(std::string_view text) {
  std::size_t count = 0;
  for (std::size_t pos = 0; pos < text.size(); ++count) decode_utf8(text, pos);
  return count;
}

std::size_t utf8_prefix_bytes(std::string_view text, std::size_t max_chars) {
  std::size_t pos = 0;
  for (std::size_t n = 0; n < max_chars && pos < text.size(); ++n) decode_utf8(text, pos);
  return pos;
}

std::string sanitize_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t len = valid_sequence_length(text, pos);
    if (len == 0) {
      append_utf8(out, replacement_char);
      ++pos;
    } else {
      out.append(text.substr(pos, len));
      pos += len;
    }
  }
  return out;
}

bool is_cjk(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) ||    // CJK Unified Ideographs
         (cp >= 0x3400 && cp <= 0x4DBF) ||    // Extension A
         (cp >= 0x20000 && cp <= 0x2EBEF) ||  // Extensions B-F
         (cp >= 0xF900 && cp <= 0xFAFF) ||    // Compatibility Ideographs
         (cp >= 0x3040 && cp <= 0x30FF) ||    // Hiragana, Katakana
         (cp >= 0x31F0 && cp <= 0x31FF) ||    // Katakana extensions
         (cp >= 0xAC00 && cp <= 0xD7AF) ||    // Hangul syllables
         cp == 0x3005 || cp == 0x3007;        // 々 〇
}

bool is_space(char32_t cp) {
  return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200B) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

bool is_word_char(char32_t cp) {
  if (cp < 0x80) {
    return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  }
  if (is_cjk(cp) || is_space(cp) || cp == replacement_char) return false;
  if (cp >= 0xFF10 && cp <= 0xFF19) return true;  // full-width digits
  if ((cp >= 0xFF21 && cp <= 0xFF3A) || (cp >= 0xFF41 && cp <= 0xFF5A)) return true;  // letters
  if (cp <= 0xBF || cp == 0xD7 || cp == 0xF7) return false;  // Latin-1 punctuation and symbols
  if (cp >= 0x2000 && cp <= 0x2BFF) return false;            // punctuation, symbols, arrows
  if (cp >= 0x2E00 && cp <= 0x2E7F) return false;            // supplemental punctuation
  if (cp >= 0x3000 && cp <= 0x303F) return false;            // CJK symbols and punctuation
  if (cp >= 0xFE30 && cp <= 0xFE4F) return false;            // CJK compatibility forms
  if (cp >= 0xFF00 && cp <= 0xFFEF) return false;            // other half/full-width forms
  if (cp >= 0x1F000 && cp <= 0x1FAFF) return false;          // emoji and pictographs
  if (cp >= 0xE000 && cp <= 0xF8FF) return false;            // private use
  return true;
}

char32_t fold_char(char32_t cp) {
  if (cp >= 'A' && cp <= 'Z') return cp + 32;
  if (cp >= 0xFF21 && cp <= 0xFF3A) return cp - 0xFF21 + 'a';
  if (cp >= 0xFF41 && cp <= 0xFF5A) return cp - 0xFF41 + 'a';
  if (cp >= 0xFF10 && cp <= 0xFF19) return cp - 0xFF10 + '0';
  return cp;
}

bool contains_cjk(std::string_view text) {
  for (std::size_t pos = 0; pos < text.size();) {
    if (is_cjk(decode_utf8(text, pos))) return true;
  }
  return false;
}

std::string_view trim(std::string_view text) {
  std::size_t begin = 0;
  while (begin < text.size()) {
    std::size_t next = begin;
    if (!is_space(decode_utf8(text, next))) break;
    begin = next;
  }
  std::size_t end = begin;
  for (std::size_t pos = begin; pos < text.size();) {
    if (!is_space(decode_utf8(text, pos))) end = pos;
  }
  return text.substr(begin, end - begin);
}

std::string collapse_whitespace(std::string_view text) {
  text = trim(text);
  std::string out;
  out.reserve(text.size());
  bool in_space = false;
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t start = pos;
    const char32_t cp = decode_utf8(text, pos);
    if (is_space(cp)) {
      in_space = true;
      continue;
    }
    if (in_space) out.push_back(' ');
    in_space = false;
    out.append(text.substr(start, pos - start));
  }
  return out;
}

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return out;
}

std::vector<text_run> scan_runs(std::string_view text) {
  std::vector<text_run> runs;
  bool open = false;
  for (std::size_t pos = 0; pos < text.size();) {
    const char32_t cp = fold_char(decode_utf8(text, pos));
    run_kind kind;
    if (is_cjk(cp)) {
      kind = run_kind::cjk;
    } else if (is_word_char(cp)) {
      kind = run_kind::word;
    } else {
      open = false;
      continue;
    }
    if (!open || runs.back().kind != kind) runs.push_back(text_run{kind, {}});
    open = true;
    append_utf8(runs.back().text, cp);
  }
  return runs;
}

namespace {

constexpr std::string_view english_stop_words[] = {
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "him",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "out",
    "over",
    "own",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "explain",
    "tell",
    "describe",
    "vs",
    "versus",
    "compare",
    "please",
    // Question filler: "how does X work", "what does X mean".
    "work",
    "works",
    "happen",
    "happens",
    "mean",
    "means",
    "also",
    "way",
};

// Chinese function words used to split CJK runs, longest first so that
// "为什么" wins over "什么". Kept small on purpose: without a dictionary every
// entry also cuts real words that contain it (在 in 存在), so only very common
// grammatical words are listed.
constexpr std::string_view chinese_stop_words[] = {
    "为什么", "有哪些", "什么", "如何", "怎么", "怎样", "哪些", "哪个", "是否", "请问", "一下",
    "以及",   "或者",   "还是", "可以", "能否", "关于", "有关", "之间", "我们", "你们", "他们",
    "这个",   "那个",   "介绍", "的",   "了",   "吗",   "呢",   "吧",   "啊",   "呀",   "是",
    "和",     "与",     "或",   "及",   "在",   "也",   "都",   "被",
};

bool starts_with(std::string_view text, std::size_t pos, std::string_view prefix) {
  return text.substr(pos, prefix.size()) == prefix;
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

}  // namespace

bool is_english_stop_word(std::string_view folded_word) {
  return std::find(std::begin(english_stop_words), std::end(english_stop_words), folded_word) !=
         std::end(english_stop_words);
}

std::vector<std::string> split_cjk_at_stop_words(std::string_view cjk_run) {
  std::vector<std::string> segments;
  std::string current;
  for (std::size_t pos = 0; pos < cjk_run.size();) {
    std::size_t stop_len = 0;
    for (std::string_view stop : chinese_stop_words) {
      if (starts_with(cjk_run, pos, stop)) {
        stop_len = stop.size();
        break;
      }
    }
    if (stop_len > 0) {
      if (!current.empty()) segments.push_back(std::move(current));
      current.clear();
      pos += stop_len;
      continue;
    }
    const std::size_t start = pos;
    decode_utf8(cjk_run, pos);
    current.append(cjk_run.substr(start, pos - start));
  }
  if (!current.empty()) segments.push_back(std::move(current));
  return segments;
}

std::vector<std::string> cjk_bigrams(std::string_view cjk_segment) {
  std::vector<std::size_t> starts;
  for (std::size_t pos = 0; pos < cjk_segment.size();) {
    starts.push_back(pos);
    decode_utf8(cjk_segment, pos);
  }
  starts.push_back(cjk_segment.size());
  std::vector<std::string> grams;
  if (starts.size() == 2) {
    grams.emplace_back(cjk_segment);
    return grams;
  }
  for (std::size_t i = 0; i + 2 < starts.size(); ++i) {
    grams.emplace_back(cjk_segment.substr(starts[i], starts[i + 2] - starts[i]));
  }
  return grams;
}

std::string light_stem(std::string_view word) {
  std::string w(word);
  const bool ascii = std::all_of(w.begin(), w.end(), [](char c) { return c >= 'a' && c <= 'z'; });
  if (!ascii || w.size() <= 3) return w;
  if (ends_with(w, "ies") && w.size() > 4) return w.substr(0, w.size() - 3) + "y";
  if (ends_with(w, "sses")) return w.substr(0, w.size() - 2);
  if (ends_with(w, "ing") && w.size() > 5) {
    w.resize(w.size() - 3);
    if (w.size() >= 2 && w[w.size() - 1] == w[w.size() - 2] && w.back() != 'l' && w.back() != 's') {
      w.pop_back();  // "running" -> "run"
    }
    return w;
  }
  if (ends_with(w, "ed") && w.size() > 4) {
    w.resize(w.size() - 2);
    if (w.size() >= 2 && w[w.size() - 1] == w[w.size() - 2] && w.back() != 'l' && w.back() != 's') {
      w.pop_back();
    }
    return w;
  }
  if (ends_with(w, "es") && w.size() > 4 &&
      (ends_with(w, "xes") || ends_with(w, "ches") || ends_with(w, "shes"))) {
    return w.substr(0, w.size() - 2);
  }
  if (w.back() == 's' && !ends_with(w, "ss") && !ends_with(w, "us") && !ends_with(w, "is")) {
    w.pop_back();
  }
  return w;
}

std::vector<std::string> analyze(std::string_view text, const analyze_options& options) {
  std::vector<std::string> terms;
  for (text_run& run : scan_runs(text)) {
    if (run.kind == run_kind::word) {
      if (options.drop_stop_words && is_english_stop_word(run.text)) continue;
      terms.push_back(options.stem ? light_stem(run.text) : std::move(run.text));
      continue;
    }
    std::vector<std::string> segments;
    if (options.drop_stop_words) {
      segments = split_cjk_at_stop_words(run.text);
    } else {
      segments.push_back(std::move(run.text));
    }
    for (const std::string& segment : segments) {
      for (std::string& gram : cjk_bigrams(segment)) terms.push_back(std::move(gram));
    }
  }
  return terms;
}

std::string fts_index_form(std::string_view text) {
  std::string out;
  out.reserve(text.size() * 2);
  const auto add = [&](std::string_view token) {
    if (!out.empty()) out.push_back(' ');
    out.append(token);
  };
  for (const text_run& run : scan_runs(text)) {
    if (run.kind == run_kind::word) {
      add(run.text);
      continue;
    }
    const std::vector<std::string> grams = cjk_bigrams(run.text);
    for (const std::string& gram : grams) add(gram);
    if (grams.size() > 1 || utf8_length(grams.front()) == 2) {
      // Trailing unigram: the last character is otherwise only the second
      // character of a bigram, which a prefix query cannot reach.
      std::size_t last = 0;
      for (std::size_t pos = 0; pos < run.text.size();) {
        last = pos;
        decode_utf8(run.text, pos);
      }
      add(std::string_view(run.text).substr(last));
    }
  }
  return out;
}

}  // namespace sluice::search
