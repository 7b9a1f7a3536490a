// Helpers shared by the fuzz targets: splitting one input into parts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sluice::fuzz {

// Takes the text up to the next '\n' (or the end) off the front of `in`.
inline std::string_view take_line(std::string_view& in) {
  auto nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  return line;
}

inline std::string_view as_view(const std::uint8_t* data, std::size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

}  // namespace sluice::fuzz
