#include "search/passage_splitter.hpp"

#include <utility>

#include "search/html_to_text.hpp"
#include "search/sentence_splitter.hpp"
#include "search/text.hpp"

namespace sluice::search {
namespace {

struct block {
  int heading_level = 0;  // 0: paragraph
  std::string text;
};

// "## Title ##" -> level 2, "Title"; level 0 if the line is not an ATX heading.
int parse_heading(std::string_view line, std::string& text) {
  std::size_t i = 0;
  while (i < line.size() && i < 3 && line[i] == ' ') ++i;
  std::size_t hashes = 0;
  while (i + hashes < line.size() && line[i + hashes] == '#') ++hashes;
  if (hashes == 0 || hashes > 6) return 0;
  const std::size_t after = i + hashes;
  if (after < line.size() && line[after] != ' ' && line[after] != '\t') return 0;
  std::string_view rest = trim(line.substr(after));
  while (!rest.empty() && rest.back() == '#') rest.remove_suffix(1);
  text = std::string(trim(rest));
  return text.empty() ? 0 : static_cast<int>(hashes);
}

std::vector<block> parse_blocks(std::string_view text, bool headings) {
  std::vector<block> blocks;
  std::string paragraph;
  bool in_fence = false;
  const auto flush = [&] {
    const std::string_view t = trim(paragraph);
    if (!t.empty()) blocks.push_back(block{0, std::string(t)});
    paragraph.clear();
  };
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = nl + 1;
    if (trim(line).substr(0, 3) == "```") in_fence = !in_fence;
    std::string heading;
    const int level = (headings && !in_fence) ? parse_heading(line, heading) : 0;
    if (level > 0) {
      flush();
      blocks.push_back(block{level, std::move(heading)});
    } else if (!in_fence && trim(line).empty()) {
      flush();
    } else {
      if (!paragraph.empty()) paragraph.push_back('\n');
      paragraph.append(line);
    }
    if (nl == text.size()) break;
  }
  flush();
  return blocks;
}

// Cuts an oversize paragraph into pieces of at most max_chars code points.
std::vector<std::string> cut_paragraph(std::string_view paragraph, std::size_t max_chars) {
  std::vector<std::string> pieces;
  std::string current;
  std::size_t current_len = 0;
  const auto add = [&](std::string_view part) {
    const std::size_t len = utf8_length(part);
    if (!current.empty() && current_len + 1 + len > max_chars) {
      pieces.push_back(std::move(current));
      current.clear();
      current_len = 0;
    }
    if (!current.empty()) {
      current.push_back(' ');
      ++current_len;
    }
    current.append(part);
    current_len += len;
  };
  for (std::string_view sentence : split_sentences(paragraph)) {
    while (utf8_length(sentence) > max_chars) {
      const std::size_t cut = utf8_prefix_bytes(sentence, max_chars);
      add(sentence.substr(0, cut));
      sentence.remove_prefix(cut);
    }
    if (!sentence.empty()) add(sentence);
  }
  if (!current.empty()) pieces.push_back(std::move(current));
  return pieces;
}

class passage_packer {
 public:
  passage_packer(const split_options& options, std::vector<passage>& out)
      : options_(options), out_(out) {}

  void start_section(std::string heading) {
    end_section();
    heading_ = std::move(heading);
  }

  void add_paragraph(std::string_view paragraph) {
    const std::size_t len = utf8_length(paragraph);
    if (len > options_.max_chars) {
      for (const std::string& piece : cut_paragraph(paragraph, options_.max_chars)) {
        add_paragraph(piece);
      }
      return;
    }
    if (!current_.empty() && current_len_ + 2 + len > options_.max_chars) flush();
    if (!current_.empty()) {
      current_.append("\n\n");
      current_len_ += 2;
    }
    current_.append(paragraph);
    current_len_ += len;
  }

  void end_section() {
    const bool sliver = !current_.empty() && current_len_ < options_.min_chars / 2;
    if (sliver && section_first_ < out_.size()) {
      passage& previous = out_.back();
      const std::size_t merged = utf8_length(previous.text) + 2 + current_len_;
      if (merged <= options_.max_chars + options_.min_chars / 2) {
        previous.text.append("\n\n").append(current_);
        current_.clear();
        current_len_ = 0;
      }
    }
    flush();
    section_first_ = out_.size();
  }

 private:
  void flush() {
    if (current_.empty()) return;
    out_.push_back(passage{out_.size(), heading_, std::move(current_)});
    current_.clear();
    current_len_ = 0;
  }

  const split_options& options_;
  std::vector<passage>& out_;
  std::string heading_;
  std::string current_;
  std::size_t current_len_ = 0;
  std::size_t section_first_ = 0;  // index in out_ of this section's first passage
};

std::string first_line_title(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    const std::string_view line = trim(text.substr(pos, nl - pos));
    if (!line.empty()) return utf8_length(line) <= 120 ? std::string(line) : std::string();
    pos = nl + 1;
  }
  return {};
}

}  // namespace

bool format_from_extension(std::string_view extension, document_format& format) {
  const std::string ext = ascii_lower(extension);
  if (ext == ".md" || ext == ".markdown") {
    format = document_format::markdown;
  } else if (ext == ".txt") {
    format = document_format::text;
  } else if (ext == ".html" || ext == ".htm") {
    format = document_format::html;
  } else {
    return false;
  }
  return true;
}

parsed_document parse_document(std::string_view content, document_format format,
                               std::string_view fallback_title, const split_options& options) {
  parsed_document doc;
  std::string text = sanitize_utf8(content);
  if (format == document_format::html) {
    html_text html = html_to_text(text);
    doc.title = std::move(html.title);
    text = std::move(html.text);
  }
  const std::vector<block> blocks = parse_blocks(text, format != document_format::text);
  if (doc.title.empty() && format != document_format::text) {
    for (int wanted : {1, 0}) {
      for (const block& b : blocks) {
        if (b.heading_level > 0 && (wanted == 0 || b.heading_level == wanted)) {
          doc.title = b.text;
          break;
        }
      }
      if (!doc.title.empty()) break;
    }
  }
  if (doc.title.empty() && format == document_format::text) doc.title = first_line_title(text);
  if (doc.title.empty()) doc.title = std::string(fallback_title);

  passage_packer packer(options, doc.passages);
  for (const block& b : blocks) {
    if (b.heading_level > 0) {
      packer.start_section(b.text);
    } else {
      packer.add_paragraph(b.text);
    }
  }
  packer.end_section();
  return doc;
}

}  // namespace sluice::search
