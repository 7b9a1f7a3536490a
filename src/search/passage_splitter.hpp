// Turns one document into titled passages, the unit that is indexed, ranked
// and cited.
//
// Splitting contract (lengths in code points, so Chinese and English compare):
//  * a heading always starts a new passage; a passage never spans sections,
//    and carries the nearest heading above it (empty before the first one);
//  * inside a section, whole paragraphs are packed greedily while the passage
//    stays within max_chars; a paragraph longer than max_chars is cut at
//    sentence boundaries (a single sentence longer than max_chars is cut at a
//    code point boundary);
//  * a section's last passage shorter than min_chars / 2 is merged into the
//    previous passage of the same section when the result stays within
//    max_chars + min_chars / 2, so sections do not end in slivers;
//  * lines inside ``` fences are never headings.
// Paragraphs keep their line breaks; paragraphs are joined by "\n\n".
//
// Pure and thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::search {

enum class document_format { markdown, text, html };

struct split_options {
  std::size_t min_chars = 600;
  std::size_t max_chars = 1200;
};

struct passage {
  std::size_t ordinal = 0;  // 0-based position in the document
  std::string heading;      // nearest heading, without '#' markers
  std::string text;
};

struct parsed_document {
  std::string title;
  std::vector<passage> passages;
};

// Format from a file extension (".md", ".markdown", ".txt", ".html", ".htm",
// case-insensitive); false for anything else.
bool format_from_extension(std::string_view extension, document_format& format);

// Title: HTML <title> or first <h1>; Markdown first '# ' heading (else the
// first heading of any level); plain text its first non-empty line when that
// line is at most 120 code points; otherwise `fallback_title`.
// Plain text has no headings. The input may be any bytes; invalid UTF-8 is
// replaced with U+FFFD.
parsed_document parse_document(std::string_view content, document_format format,
                               std::string_view fallback_title, const split_options& options = {});

}  // namespace sluice::search
