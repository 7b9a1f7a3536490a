#include "core/sse_parser.hpp"

#include <utility>

#include <cstring>
#include <limits>

namespace sluice::core {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// Position of `c` in [from, end), or end. memchr is vectorised by libc, so
// long data lines are scanned far faster than a byte loop would.
const char* find_byte(const char* from, const char* end, char c) {
  const void* hit = std::memchr(from, c, static_cast<std::size_t>(end - from));
  return hit != nullptr ? static_cast<const char*>(hit) : end;
}

bool all_ascii_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

std::uint64_t parse_saturating(std::string_view digits) {
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t value = 0;
  for (char c : digits) {
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (value > (kMax - d) / 10) return kMax;
    value = value * 10 + d;
  }
  return value;
}

}  // namespace

const char* sse_parser::skip_bom(const char* p, const char* end) {
  while (p < end && bom_matched_ < kBom.size()) {
    if (*p != kBom[bom_matched_]) {
      // Not a BOM after all: the bytes held back start the first line. They
      // are EF or EF BB, never CR or LF, so they belong in line_.
      line_.append(kBom.data(), bom_matched_);
      bom_done_ = true;
      return p;
    }
    ++bom_matched_;
    ++p;
  }
  if (bom_matched_ == kBom.size()) bom_done_ = true;
  return p;
}

void sse_parser::feed(std::string_view bytes) {
  const char* p = bytes.data();
  const char* const end = p + bytes.size();
  if (!bom_done_) p = skip_bom(p, end);
  if (p == end) return;
  if (last_was_cr_) {
    last_was_cr_ = false;
    if (*p == '\n') ++p;  // second half of a CRLF split across feeds
  }

  // Next CR and LF at or after p, found once and reused until p passes them,
  // so each byte is scanned at most once per character searched for.
  const char* next_cr = find_byte(p, end, '\r');
  const char* next_lf = find_byte(p, end, '\n');
  while (p < end) {
    if (next_cr < p) next_cr = find_byte(p, end, '\r');
    if (next_lf < p) next_lf = find_byte(p, end, '\n');
    const char* eol = next_cr < next_lf ? next_cr : next_lf;
    if (eol == end) {
      line_.append(p, end);
      return;
    }
    if (line_.empty()) {
      process_line(std::string_view(p, static_cast<std::size_t>(eol - p)));
    } else {
      line_.append(p, eol);
      process_line(line_);
      line_.clear();
    }
    p = eol + 1;
    if (*eol == '\r') {
      if (p == end) {
        last_was_cr_ = true;
      } else if (*p == '\n') {
        ++p;
      }
    }
  }
}

void sse_parser::reset_partial() {
  line_.clear();
  bom_done_ = false;
  bom_matched_ = 0;
  last_was_cr_ = false;
  data_.clear();
  type_.clear();
  id_buffer_ = last_event_id_;
  block_has_id_ = false;
}

void sse_parser::process_line(std::string_view line) {
  if (line.empty()) {
    dispatch();
    return;
  }
  if (line.front() == ':') {
    listener_.on_comment(line.substr(1));
    return;
  }
  const std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    process_field(line, {});
    return;
  }
  std::string_view value = line.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  process_field(line.substr(0, colon), value);
}

void sse_parser::process_field(std::string_view field, std::string_view value) {
  if (field == "data") {
    data_.append(value);
    data_.push_back('\n');
  } else if (field == "event") {
    type_.assign(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) {
      id_buffer_.assign(value);
      block_has_id_ = true;
    }
  } else if (field == "retry") {
    if (all_ascii_digits(value)) listener_.on_retry(parse_saturating(value));
  }
  // Any other field is ignored, as the standard requires.
}

void sse_parser::dispatch() {
  // The standard commits the id on every blank line, even one that ends a
  // block without data.
  last_event_id_ = id_buffer_;
  const bool has_id = std::exchange(block_has_id_, false);
  if (data_.empty()) {
    type_.clear();
    return;
  }
  data_.pop_back();  // the LF appended after the last data line
  const sse_event event{type_.empty() ? std::string_view("message") : std::string_view(type_),
                        data_, last_event_id_, has_id};
  listener_.on_event(event);
  data_.clear();
  type_.clear();
}

}  // namespace sluice::core
