// Fuzz target for the SSE client's gzip inflater (Content-Encoding: gzip from
// a server): the input fed whole and fed in pieces must decode to the same
// bytes with the same verdict; the output is bounded so a zip bomb in the
// corpus cannot exhaust memory (the client bounds what it keeps the same way).
// A second case compresses the input and checks the round trip.
#include <zlib.h>

#include <cstdlib>
#include <string>

#include "client/gzip_inflater.hpp"
#include "fuzz_input.hpp"

namespace {

constexpr std::size_t max_out = 1u << 20;

bool inflate_all(std::string_view in, std::size_t piece, std::string& out) {
  sluice::client::gzip_inflater z;
  for (std::size_t pos = 0; pos < in.size(); pos += piece) {
    if (!z.inflate(in.substr(pos, piece), out)) return false;
    if (out.size() > max_out) return true;
  }
  return true;
}

std::string gzip(std::string_view in) {
  z_stream s{};
  deflateInit2(&s, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&s, static_cast<uLong>(in.size())) + 64, '\0');
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  s.avail_in = static_cast<uInt>(in.size());
  s.next_out = reinterpret_cast<Bytef*>(out.data());
  s.avail_out = static_cast<uInt>(out.size());
  deflate(&s, Z_FINISH);
  out.resize(s.total_out);
  deflateEnd(&s);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t piece = 1 + data[0] % 64;
  std::string_view in = sluice::fuzz::as_view(data + 1, size - 1);
  std::string whole, pieces;
  const bool ok_whole = inflate_all(in, in.size() + 1, whole);
  const bool ok_pieces = inflate_all(in, piece, pieces);
  if (whole.size() <= max_out && pieces.size() <= max_out) {
    // Pieces decode what the whole decodes up to the first error.
    if (ok_whole != ok_pieces && ok_whole) std::abort();
    if (ok_whole && whole != pieces) std::abort();
  }
  if (in.size() <= 4096) {
    std::string round;
    if (!inflate_all(gzip(in), piece, round) || round != in) std::abort();
  }
  return 0;
}
