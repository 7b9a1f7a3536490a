// HTML to plain text for indexing. Not a conforming HTML parser: a tolerant
// tag scanner that is good enough for documentation pages.
//
// Output contract:
//  * script, style, noscript, template, svg and head content (except <title>)
//    and comments are dropped;
//  * block elements (p, div, li, tr, br, section, ...) end a paragraph; the
//    text has paragraphs separated by one blank line, whitespace inside a
//    paragraph collapsed to single spaces;
//  * <h1>..<h6> become Markdown heading lines ("## Text"), so the passage
//    splitter treats HTML and Markdown the same way;
//  * character references are decoded: all numeric ones and the common named
//    ones (amp, lt, gt, quot, apos, nbsp, dashes, quotes, ellipsis, copy, ...);
//    unknown names are kept literally.
//
// Pure and thread-safe. Never fails; malformed markup degrades to text.
#pragma once

#include <string>
#include <string_view>

namespace sluice::search {

struct html_text {
  std::string title;  // <title>, else the first <h1>, else empty
  std::string text;
};

html_text html_to_text(std::string_view html);

// Decodes character references in `text` (also used for attribute-free text).
std::string decode_html_entities(std::string_view text);

}  // namespace sluice::search
