// Incremental gzip decoding of a response body (Content-Encoding: gzip): each
// piece is decoded as soon as it arrives, so a server that flushes after every
// event (Z_SYNC_FLUSH) delivers each event at once. Concatenated gzip members
// are decoded one after the other.
//
// Thread-safety: none; one per response.
#pragma once

#include <string>
#include <string_view>

#include <zlib.h>

namespace sluice::client {

class gzip_inflater {
 public:
  gzip_inflater();
  gzip_inflater(const gzip_inflater&) = delete;
  gzip_inflater& operator=(const gzip_inflater&) = delete;
  ~gzip_inflater();

  // Appends the bytes `in` decodes to to `out`. False when `in` is not valid
  // gzip (the decoder is then unusable until reset()).
  bool inflate(std::string_view in, std::string& out);
  void reset();

 private:
  z_stream z_{};
  bool ok_ = false;
};

}  // namespace sluice::client
