#include "core/sse_encoder.hpp"

#include <charconv>

namespace sluice::core {

void append_sse_id(std::string& out, std::uint64_t id) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, id);
  (void)ec;
  out.append("id: ");
  out.append(digits, end);
  out.push_back('\n');
}

void append_sse_fields(std::string& out, std::string_view type, std::string_view data) {
  if (type != default_event_type) {
    out.append("event: ");
    out.append(type);
    out.push_back('\n');
  }
  // Split on CR, LF and CRLF exactly as a conforming parser will, so the
  // client's LF-joined data equals ours with line ends normalised to LF.
  std::size_t start = 0;
  for (;;) {
    std::size_t pos = data.find_first_of("\r\n", start);
    out.append("data: ");
    if (pos == std::string_view::npos) {
      out.append(data.substr(start));
      out.push_back('\n');
      break;
    }
    out.append(data.substr(start, pos - start));
    out.push_back('\n');
    start = pos + 1;
    if (data[pos] == '\r' && start < data.size() && data[start] == '\n') ++start;
  }
}

std::string encode_sse_event(std::uint64_t id, std::string_view type, std::string_view data) {
  std::string out;
  out.reserve(data.size() + type.size() + 40);
  if (id != 0) append_sse_id(out, id);
  append_sse_fields(out, type, data);
  out.push_back('\n');
  return out;
}

std::string encode_sse_comment(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 4);
  out.push_back(':');
  // A comment is one line; anything after a line break would become a field.
  for (char c : text) out.push_back(c == '\r' || c == '\n' ? ' ' : c);
  out.append("\n\n");
  return out;
}

std::string encode_sse_retry(std::uint64_t milliseconds) {
  return "retry: " + std::to_string(milliseconds) + "\n\n";
}

int decimal_digits(std::uint64_t n) {
  int d = 1;
  while (n >= 10) {
    n /= 10;
    ++d;
  }
  return d;
}

}  // namespace sluice::core
