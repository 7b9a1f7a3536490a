// Small pieces of the error messages the outbound clients write.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace sluice::outbound {

// "250 ms"
std::string ms_text(std::chrono::milliseconds d);

// The first `max` bytes of s, with "..." when it was longer: a body quoted in
// an error message.
std::string excerpt(std::string_view s, std::size_t max = 200);

}  // namespace sluice::outbound
