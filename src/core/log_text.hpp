// Request-derived (or upstream-derived) text made safe for one log line.
//
// Every byte a client sends is an attack, including the bytes we log: a path
// with "\n" forges a second log line, "\x1b[" drives the operator's terminal.
// log_escape() keeps printable ASCII and well-formed UTF-8 as they are and
// writes everything else (C0 controls, DEL, C1 controls, invalid UTF-8, the
// backslash itself) as a backslash escape, and cuts the text at `max` bytes of
// input (marked "...").
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sluice::core {

std::string log_escape(std::string_view text, std::size_t max = 512);

}  // namespace sluice::core
