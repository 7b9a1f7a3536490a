#include "transport/gzip_stream.hpp"

#include <stdexcept>

namespace sluice::transport {

gzip_stream::gzip_stream(int level, int window_bits, int mem_level) {
  // +16: gzip wrapper instead of raw zlib.
  if (deflateInit2(&z_, level, Z_DEFLATED, 16 + window_bits, mem_level, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("deflateInit2 failed");
}

gzip_stream::~gzip_stream() { deflateEnd(&z_); }

void gzip_stream::compress(std::span<const core::read_span> in, bool last, std::string& out) {
  auto run = [&](const char* data, std::size_t size, int flush) {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
    z_.avail_in = static_cast<uInt>(size);
    do {
      std::size_t old = out.size();
      std::size_t room = deflateBound(&z_, z_.avail_in) + 64;
      out.resize(old + room);
      z_.next_out = reinterpret_cast<Bytef*>(out.data() + old);
      z_.avail_out = static_cast<uInt>(room);
      deflate(&z_, flush);
      out.resize(old + room - z_.avail_out);
    } while (z_.avail_out == 0 || z_.avail_in != 0);
  };
  for (const auto& s : in) run(s.data, s.size, Z_NO_FLUSH);
  run(nullptr, 0, last ? Z_FINISH : Z_SYNC_FLUSH);
}

}  // namespace sluice::transport
