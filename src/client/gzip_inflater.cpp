#include "client/gzip_inflater.hpp"

#include <array>
#include <new>

namespace sluice::client {

gzip_inflater::gzip_inflater() {
  // 16 + MAX_WBITS: gzip wrapper only (not zlib, not raw deflate).
  if (inflateInit2(&z_, 16 + MAX_WBITS) != Z_OK) throw std::bad_alloc();
  ok_ = true;
}

gzip_inflater::~gzip_inflater() { inflateEnd(&z_); }

void gzip_inflater::reset() {
  inflateReset(&z_);
  ok_ = true;
}

bool gzip_inflater::inflate(std::string_view in, std::string& out) {
  if (!ok_) return false;
  std::array<unsigned char, 16 * 1024> buf;
  z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z_.avail_in = static_cast<uInt>(in.size());
  for (;;) {
    z_.next_out = buf.data();
    z_.avail_out = static_cast<uInt>(buf.size());
    const int rc = ::inflate(&z_, Z_SYNC_FLUSH);
    out.append(reinterpret_cast<const char*>(buf.data()), buf.size() - z_.avail_out);
    if (rc == Z_STREAM_END) {
      if (z_.avail_in == 0) return true;
      inflateReset(&z_);  // another member follows
      continue;
    }
    if (rc == Z_BUF_ERROR) return true;  // needs more input (or output space, refilled above)
    if (rc != Z_OK) {
      ok_ = false;
      return false;
    }
    if (z_.avail_in == 0 && z_.avail_out != 0) return true;
  }
}

}  // namespace sluice::client
