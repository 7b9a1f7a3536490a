#include "search/html_to_text.hpp"

#include <algorithm>
#include <cstdint>
#include <iterator>

#include "search/text.hpp"

namespace sluice::search {
namespace {

struct named_entity {
  std::string_view name;
  char32_t cp;
};

constexpr named_entity named_entities[] = {
    {"amp", '&'},      {"lt", '<'},       {"gt", '>'},        {"quot", '"'},      {"apos", '\''},
    {"nbsp", 0xA0},    {"ndash", 0x2013}, {"mdash", 0x2014},  {"lsquo", 0x2018},  {"rsquo", 0x2019},
    {"ldquo", 0x201C}, {"rdquo", 0x201D}, {"hellip", 0x2026}, {"copy", 0xA9},     {"reg", 0xAE},
    {"trade", 0x2122}, {"middot", 0xB7},  {"bull", 0x2022},   {"laquo", 0xAB},    {"raquo", 0xBB},
    {"times", 0xD7},   {"divide", 0xF7},  {"deg", 0xB0},      {"euro", 0x20AC},   {"yen", 0xA5},
    {"pound", 0xA3},   {"cent", 0xA2},    {"sect", 0xA7},     {"para", 0xB6},     {"rarr", 0x2192},
    {"larr", 0x2190},  {"ensp", 0x2002},  {"emsp", 0x2003},   {"thinsp", 0x2009}, {"zwnj", 0x200C},
    {"zwj", 0x200D},
};

// Elements whose content is not document text.
constexpr std::string_view skipped_elements[] = {"script",   "style", "noscript",
                                                 "template", "svg",   "head"};

// Elements that start or end a paragraph.
constexpr std::string_view block_elements[] = {
    "p",       "div",     "br",      "li",      "ul",      "ol",         "tr",         "table",
    "section", "article", "header",  "footer",  "nav",     "aside",      "blockquote", "pre",
    "hr",      "dl",      "dt",      "dd",      "figure",  "figcaption", "main",       "form",
    "h1",      "h2",      "h3",      "h4",      "h5",      "h6",         "body",       "html",
    "td",      "th",      "caption", "details", "summary", "address"};

bool contains(const auto& list, std::string_view name) {
  return std::find(std::begin(list), std::end(list), name) != std::end(list);
}

bool is_ascii_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

struct tag {
  std::string name;  // lower case
  bool closing = false;
  std::size_t end = 0;  // index just past '>'
};

// Parses the tag starting at text[pos] == '<'. Quoted attribute values may
// contain '>'. Returns false if this '<' does not start a tag (then it is text).
bool parse_tag(std::string_view text, std::size_t pos, tag& out) {
  std::size_t i = pos + 1;
  out.closing = i < text.size() && text[i] == '/';
  if (out.closing) ++i;
  if (i >= text.size() || !is_ascii_alpha(text[i])) return false;
  out.name.clear();
  while (i < text.size() && (is_ascii_alpha(text[i]) || (text[i] >= '0' && text[i] <= '9'))) {
    out.name.push_back(static_cast<char>(text[i] | 0x20));
    ++i;
  }
  char quote = 0;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '>') {
      out.end = i + 1;
      return true;
    }
  }
  out.end = text.size();  // unterminated tag: swallow the rest
  return true;
}

// Finds the closing tag `</name` at or after pos (case-insensitive); returns
// the index just past its '>' or text.size().
std::size_t skip_element(std::string_view text, std::size_t pos, std::string_view name) {
  for (std::size_t i = pos; i < text.size(); ++i) {
    if (text[i] != '<' || i + 1 >= text.size() || text[i + 1] != '/') continue;
    if (ascii_lower(text.substr(i + 2, name.size())) != name) continue;
    const std::size_t after = i + 2 + name.size();
    if (after < text.size() && (is_ascii_alpha(text[after]) || text[after] == '-')) continue;
    const std::size_t close = text.find('>', after);
    return close == std::string_view::npos ? text.size() : close + 1;
  }
  return text.size();
}

class text_builder {
 public:
  void add_text(std::string_view raw) { current_.append(raw); }
  void end_paragraph() {
    std::string para = collapse_whitespace(decode_html_entities(current_));
    current_.clear();
    if (para.empty()) return;
    if (heading_level_ > 0) {
      para = std::string(static_cast<std::size_t>(heading_level_), '#') + " " + para;
    }
    if (!out_.empty()) out_.append("\n\n");
    out_.append(para);
  }
  void set_heading_level(int level) { heading_level_ = level; }
  std::string take() { return std::move(out_); }

 private:
  std::string current_;
  std::string out_;
  int heading_level_ = 0;
};

}  // namespace

std::string decode_html_entities(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t amp = text.find('&', i);
    if (amp == std::string_view::npos) {
      out.append(text.substr(i));
      break;
    }
    out.append(text.substr(i, amp - i));
    const std::size_t semi = text.find(';', amp);
    if (semi == std::string_view::npos || semi - amp > 12) {
      out.push_back('&');
      i = amp + 1;
      continue;
    }
    const std::string_view body = text.substr(amp + 1, semi - amp - 1);
    char32_t cp = 0;
    bool ok = false;
    if (body.size() >= 2 && body[0] == '#') {
      const bool hex = body[1] == 'x' || body[1] == 'X';
      const std::string_view digits = body.substr(hex ? 2 : 1);
      std::uint32_t value = 0;
      ok = !digits.empty() && digits.size() <= 8;
      for (char c : digits) {
        std::uint32_t d;
        if (c >= '0' && c <= '9') {
          d = static_cast<std::uint32_t>(c - '0');
        } else if (hex && c >= 'a' && c <= 'f') {
          d = static_cast<std::uint32_t>(c - 'a' + 10);
        } else if (hex && c >= 'A' && c <= 'F') {
          d = static_cast<std::uint32_t>(c - 'A' + 10);
        } else {
          ok = false;
          break;
        }
        value = value * (hex ? 16 : 10) + d;
      }
      if (ok) {
        cp = value;
        if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = replacement_char;
      }
    } else {
      for (const named_entity& e : named_entities) {
        if (e.name == body) {
          cp = e.cp;
          ok = true;
          break;
        }
      }
    }
    if (!ok) {
      out.push_back('&');
      i = amp + 1;
      continue;
    }
    append_utf8(out, cp);
    i = semi + 1;
  }
  return out;
}

html_text html_to_text(std::string_view html) {
  html_text result;
  text_builder builder;
  std::string first_h1;
  bool in_h1 = false;
  tag t;
  std::size_t i = 0;
  while (i < html.size()) {
    const std::size_t lt = html.find('<', i);
    const std::size_t text_end = lt == std::string_view::npos ? html.size() : lt;
    if (text_end > i) {
      builder.add_text(html.substr(i, text_end - i));
      if (in_h1) first_h1.append(html.substr(i, text_end - i));
      i = text_end;
    }
    if (i >= html.size()) break;
    if (html.substr(i, 4) == "<!--") {
      const std::size_t close = html.find("-->", i + 4);
      i = close == std::string_view::npos ? html.size() : close + 3;
      continue;
    }
    if (html.substr(i, 2) == "<!" || html.substr(i, 2) == "<?") {  // doctype, CDATA, PI
      const std::size_t close = html.find('>', i);
      i = close == std::string_view::npos ? html.size() : close + 1;
      continue;
    }
    if (!parse_tag(html, i, t)) {
      builder.add_text("<");
      ++i;
      continue;
    }
    i = t.end;
    if (t.name == "title" && !t.closing) {
      const std::size_t end = skip_element(html, i, "title");
      const std::size_t close_start = html.rfind('<', end == 0 ? 0 : end - 1);
      if (result.title.empty() && close_start != std::string_view::npos && close_start >= i) {
        result.title = collapse_whitespace(decode_html_entities(html.substr(i, close_start - i)));
      }
      i = end;
      continue;
    }
    if (!t.closing && contains(skipped_elements, t.name)) {
      // <head> is skipped as a whole but its <title> is still wanted.
      if (t.name == "head") {
        const std::size_t end = skip_element(html, i, "head");
        const html_text inner = html_to_text(html.substr(i, end - i));
        if (result.title.empty()) result.title = inner.title;
        i = end;
      } else {
        i = skip_element(html, i, t.name);
      }
      continue;
    }
    if (!contains(block_elements, t.name)) continue;  // inline: "<b>SQL</b>ite" is one word
    builder.end_paragraph();
    const bool heading =
        t.name.size() == 2 && t.name[0] == 'h' && t.name[1] >= '1' && t.name[1] <= '6';
    if (heading) {
      builder.set_heading_level(t.closing ? 0 : t.name[1] - '0');
      in_h1 = !t.closing && t.name[1] == '1' && first_h1.empty();
    }
  }
  builder.end_paragraph();
  result.text = builder.take();
  if (result.title.empty()) result.title = collapse_whitespace(decode_html_entities(first_h1));
  return result;
}

}  // namespace sluice::search
