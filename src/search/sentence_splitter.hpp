// Rule-based sentence segmentation for English and Chinese text.
//
// Boundaries:
//  * Chinese/full-width terminators 。！？；… end a sentence wherever they
//    occur (closing quotes/brackets right after them stay with the sentence);
//  * '.', '!' and '?' end a sentence when followed by whitespace or the end of
//    text, except '.' after a known abbreviation (e.g., i.e., etc., vs., Dr.)
//    or a single letter, or when the next word starts in lower case;
//  * a blank line, and a line break before a Markdown block marker (heading
//    '#', list item '-', '*', '+', '1.', table row '|', code fence), always
//    end a sentence; other line breaks are soft.
//
// Returned views point into the input, are trimmed and never empty; they keep
// their terminal punctuation and appear in text order. Pure and thread-safe.
#pragma once

#include <string_view>
#include <vector>

namespace sluice::search {

std::vector<std::string_view> split_sentences(std::string_view text);

}  // namespace sluice::search
