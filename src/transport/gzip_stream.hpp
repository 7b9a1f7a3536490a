// gzip compression of one response body, flushed after every write batch
// (Z_SYNC_FLUSH) so a client can decode each event the moment it arrives.
// Memory: zlib's deflate state is about (1 << (window_bits + 2)) +
// (1 << (mem_level + 9)) bytes; the defaults (12, 5) keep it near 32 KiB.
//
// Thread-safety: none; owned by one connection.
#pragma once

#include <span>
#include <string>

#include <zlib.h>

#include "core/stream_log.hpp"

namespace sluice::transport {

class gzip_stream {
 public:
  gzip_stream(int level, int window_bits, int mem_level);
  gzip_stream(const gzip_stream&) = delete;
  gzip_stream& operator=(const gzip_stream&) = delete;
  ~gzip_stream();

  // Appends the compressed form of `in` to `out`, flushed; `last` ends the gzip member.
  void compress(std::span<const core::read_span> in, bool last, std::string& out);

 private:
  z_stream z_{};
};

}  // namespace sluice::transport
